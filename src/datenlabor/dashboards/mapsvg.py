"""Choropleth maps of Germany by Land or Kreis, drawn as SVG paths on the server.

Why SVG from the server rather than a Plotly geo trace: Plotly's map traces load base
layers or fonts from the internet, which an air-gapped authority does not allow; an SVG with
one ``<path>`` per region is small, needs no script, and each region can be a link (keyboard
reachable) with a text title. Colours come from five classes (quantiles of the values); the
legend names each class's range and every value is also in the tile's data table, so no
information is given by colour alone.
"""

from __future__ import annotations

import itertools
from functools import cache
from typing import Any

import pyarrow as pa

from datenlabor.dashboards import boundaries
from datenlabor.dashboards.tile import TileData

WIDTH = 460.0
# Sequential blues, light to dark, each distinguishable in greyscale too; text on the two
# darkest classes is not needed (labels live in titles and the table).
PALETTE = ("#deebf7", "#9ecae1", "#6baed6", "#3182bd", "#08519c")
NO_DATA = "#f2f2f2"


@cache
def shapes(level: str) -> tuple[tuple[tuple[str, str], ...], float, float]:
    """((key, SVG path), …), width, height of ``level``'s regions in a WIDTH-wide frame."""
    feats = boundaries.load(level)["features"]
    rings: list[tuple[str, list[list[list[float]]]]] = []
    for f in feats:
        g = f["geometry"]
        polys = g["coordinates"] if g["type"] == "MultiPolygon" else [g["coordinates"]]
        projected = [
            [[*boundaries.project(lon, lat)] for lon, lat in ring]
            for poly in polys
            for ring in poly
        ]
        rings.append((f["id"], projected))
    xs = [p[0] for _k, rs in rings for r in rs for p in r]
    ys = [p[1] for _k, rs in rings for r in rs for p in r]
    x0, y0 = min(xs), min(ys)
    scale = WIDTH / (max(xs) - x0)
    out = []
    for key, rs in rings:
        parts = []
        for ring in rs:
            # Tenths of a unit, the first point absolute and the rest relative: half the
            # bytes of absolute coordinates (the Kreis map is on the page as is).
            pts = [(round((x - x0) * scale * 10), round((y - y0) * scale * 10)) for x, y in ring]
            steps = [_num(pts[0][0]) + "," + _num(pts[0][1]) + "l"]
            for (ax, ay), (bx, by) in itertools.pairwise(pts):
                if (ax, ay) != (bx, by):
                    steps.append(_num(bx - ax) + "," + _num(by - ay) + " ")
            parts.append("M" + "".join(steps).rstrip() + "Z")
        out.append((key, "".join(parts)))
    return tuple(out), WIDTH, round((max(ys) - y0) * scale, 1)


def _num(tenths: int) -> str:
    """Tenths as the shortest decimal text: 12 -> "1.2", -5 -> "-.5", 30 -> "3"."""
    whole, frac = divmod(abs(tenths), 10)
    sign = "-" if tenths < 0 else ""
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole if whole else ''}.{frac}"


def classes(values: list[float]) -> list[float]:
    """Upper bounds of up to five quantile classes of ``values`` (sorted, distinct)."""
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return []
    bounds: list[float] = []
    for i in range(1, len(PALETTE) + 1):
        b = vals[min(len(vals) - 1, round(i * len(vals) / len(PALETTE)) - 1)]
        if not bounds or b > bounds[-1]:
            bounds.append(b)
    return bounds


def attach_map(out: TileData, table: pa.Table, level: str, kind: str) -> TileData:
    """Fill ``out`` with rows (key, name, cases, value) and the map drawing."""
    names = boundaries.names(level)
    rows = [
        {
            "key": r["key"],
            "name": names.get(r["key"], r["key"]),
            "cases": r["cases"],
            "value": r["value"],
        }
        for r in table.to_pylist()
    ]
    out.columns = [
        {"name": "key", "kind": "text"},
        {"name": "name", "kind": "text"},
        {"name": "cases", "kind": "int"},
        {"name": "value", "kind": kind},
    ]
    out.rows = rows
    out.x, out.y = "name", ["value"]
    by_key = {r["key"]: r for r in rows}
    bounds = classes([r["value"] for r in rows if r["value"] is not None])
    paths, width, height = shapes(level)
    regions: list[dict[str, Any]] = []
    for key, path in paths:
        row = by_key.get(key)
        value = row["value"] if row else None
        cls = None
        if value is not None and bounds:
            cls = next(i for i, b in enumerate(bounds) if value <= b)
        regions.append(
            {
                "key": key,
                "name": names.get(key, key),
                "path": path,
                "value": value,
                "class": cls,
                "fill": PALETTE[cls] if cls is not None else NO_DATA,
            }
        )
    unknown = sorted(set(by_key) - {k for k, _p in paths})
    out.graph = {
        "level": level,
        "width": width,
        "height": height,
        "kind": kind,
        "regions": regions,
        "legend": [
            {"fill": PALETTE[i], "low": bounds[i - 1] if i else None, "high": b}
            for i, b in enumerate(bounds)
        ],
        "no_data": NO_DATA,
        "unknown_keys": unknown,  # keys in the data without a boundary (shown in the table)
        "attribution": boundaries.ATTRIBUTION,
    }
    return out
