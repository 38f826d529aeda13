"""Boundaries of the Länder and Kreise for choropleth maps, shipped as package data.

The files ``datenlabor/data/geo/{laender,kreise}.geojson`` are built from BKG VG5000
(Stand 01.01.2021, see ``datenlabor/data/SOURCES.md``) by :func:`build`:

- the Länder file's several features per Land (land and water parts, e.g. "Bayern
  (Bodensee)") are dissolved into one (Multi)Polygon per ARS key;
- each level is simplified as a *coverage* (``shapely.coverage_simplify``), so neighbouring
  regions keep one shared border without gaps or overlaps, which simplifying each polygon on
  its own would not guarantee;
- coordinates are rounded to 4 decimals (about 10 m, far below the 1:5,000,000 scale).

Rebuild (needs the dev dependency shapely)::

    .venv/bin/python -m datenlabor.dashboards.boundaries ../shared/data/geo

At run time only the small GeoJSON files are read; maps are drawn as SVG on the server
(:mod:`datenlabor.dashboards.mapsvg`), so nothing is fetched from elsewhere.
"""

from __future__ import annotations

import json
import math
import sys
from functools import cache
from pathlib import Path
from typing import Any

from datenlabor.errors import BadInput

LEVELS = {"land": ("laender", 2), "kreis": ("kreise", 5)}
DATA = Path(__file__).resolve().parents[1] / "data" / "geo"
SOURCE_FILES = {"land": "vg5000_laender.geojson", "kreis": "vg5000_kreise.geojson"}
TOLERANCE = 0.01  # degrees, Visvalingam–Whyatt area threshold scale of coverage_simplify
ATTRIBUTION = "© GeoBasis-DE / BKG 2021 (Daten verändert), dl-de/by-2-0"


def check_level(level: str) -> str:
    if level not in LEVELS:
        raise BadInput(f"unknown map level {level!r}; choose land or kreis", column="level")
    return level


@cache
def load(level: str) -> dict[str, Any]:
    """The GeoJSON FeatureCollection of ``level`` (``land`` or ``kreis``); feature ``id`` is
    the ARS key (2 or 5 digits), properties ``name`` and ``kind`` (BEZ)."""
    name, _digits = LEVELS[check_level(level)]
    data: dict[str, Any] = json.loads((DATA / f"{name}.geojson").read_text(encoding="utf-8"))
    return data


@cache
def names(level: str) -> dict[str, str]:
    """ARS key -> region name; Kreise as in the official key list ("München, Kreisfreie
    Stadt"), since several Kreise share a name."""
    if level == "kreis":
        return {
            f["id"]: f"{f['properties']['name']}, {f['properties']['kind']}"
            for f in load(level)["features"]
        }
    return {f["id"]: f["properties"]["name"] for f in load(level)["features"]}


def key_length(level: str) -> int:
    return LEVELS[check_level(level)][1]


# -- building the package data (dev only) ----------------------------------------------------
def _rounded(coords: Any) -> Any:
    if isinstance(coords, float | int):
        return round(float(coords), 4)
    return [_rounded(c) for c in coords]


def build(
    source_dir: Path, target_dir: Path = DATA, tolerance: float = TOLERANCE
) -> dict[str, int]:
    """Write ``laender.geojson`` and ``kreise.geojson`` from the VG5000 files in
    ``source_dir``; returns the size in bytes of each file written."""
    import shapely
    from shapely.geometry import mapping, shape

    sizes: dict[str, int] = {}
    for level, (name, digits) in LEVELS.items():
        path = source_dir / SOURCE_FILES[level]
        raw = json.loads(path.read_text(encoding="utf-8"))
        parts: dict[str, list[Any]] = {}
        labels: dict[str, tuple[str, str]] = {}
        for i, feature in enumerate(raw["features"], start=1):
            props = feature.get("properties") or {}
            key = str(props.get("ARS", ""))
            if len(key) != digits or not key.isdigit():
                raise BadInput(f"feature {i}: ARS {key!r} is not {digits} digits", file=str(path))
            geom = shape(feature["geometry"])
            if not geom.is_valid:
                geom = shapely.make_valid(geom)
            parts.setdefault(key, []).append(geom)
            gen = str(props.get("GEN", key)).split(" (")[0]  # "Bayern (Bodensee)" -> "Bayern"
            if key not in labels or "(" not in str(props.get("GEN", "")):
                labels[key] = (gen, str(props.get("BEZ", "")))
        keys = sorted(parts)
        merged = [shapely.union_all(parts[k]) for k in keys]
        simple = shapely.coverage_simplify(merged, tolerance)
        features = []
        for key, geom in zip(keys, simple, strict=True):
            gj = mapping(geom)
            features.append(
                {
                    "type": "Feature",
                    "id": key,
                    "properties": {"name": labels[key][0], "kind": labels[key][1]},
                    "geometry": {"type": gj["type"], "coordinates": _rounded(gj["coordinates"])},
                }
            )
        out = {
            "type": "FeatureCollection",
            "attribution": ATTRIBUTION,
            "source": f"BKG VG5000 (Stand 01.01.2021), {SOURCE_FILES[level]}",
            "simplified": f"shapely.coverage_simplify tolerance {tolerance}",
            "features": features,
        }
        text = json.dumps(out, ensure_ascii=False, separators=(",", ":"))
        target_dir.mkdir(parents=True, exist_ok=True)
        (target_dir / f"{name}.geojson").write_text(text, encoding="utf-8")
        sizes[name] = len(text.encode())
    load.cache_clear()
    names.cache_clear()
    return sizes


# -- projection for drawing ------------------------------------------------------------------
_LAT0 = math.radians(51.2)  # middle of Germany: equirectangular with true scale there


def project(lon: float, lat: float) -> tuple[float, float]:
    """Plane coordinates (x east, y south) of a point; a plate carrée projection with true
    scale at 51.2° N is close enough for a country the size of Germany."""
    return lon * math.cos(_LAT0), -lat


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/geo")
    for file, size in build(src).items():
        print(f"{file}.geojson: {size:,} bytes")
