"""Tiles over a pool dataset or an SQL result: generated SQL run through the SQL sandbox.

The query is built from the tile's columns (``x``, ``y``, ``value``, ``key``, ``agg``) and the
global filters the source maps to its columns (``sources.<id>.columns``); it runs with
:func:`datenlabor.dashboards.access.run_sql`, so the caller's grants apply and confidential
datasets are answered from their protected table.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from datenlabor.dashboards import boundaries
from datenlabor.dashboards.tile import TileData, fill
from datenlabor.query.connection import quote_ident, quote_literal

if TYPE_CHECKING:
    from datenlabor.access.principal import Principal
    from datenlabor.dashboards.filters import FilterState
    from datenlabor.dashboards.spec import Source, Spec, Tile
    from datenlabor.service.gate import Gate


def base_relation(src: Source) -> str:
    if src.sql is not None:
        return f"({src.sql.strip().rstrip(';')}) AS q"
    assert src.dataset is not None
    name = src.dataset if src.version is None else f"{src.dataset}@{src.version}"
    return quote_ident(name)


def conditions(
    spec: Spec,
    src: Source,
    state: FilterState,
    period: tuple[date | None, date | None] | None = None,
) -> tuple[list[str], dict[str, Any]]:
    """SQL conditions for the filters this source maps, and what was applied."""
    conds: list[str] = []
    applied: dict[str, Any] = {}
    for f in spec.filters:
        col = src.columns.get(f.id)
        if col is None:
            continue
        q = quote_ident(col)
        if f.type == "period":
            start, end = period if period is not None else state.period
            if start:
                conds.append(f"CAST({q} AS DATE) >= DATE {quote_literal(start.isoformat())}")
            if end:
                conds.append(f"CAST({q} AS DATE) < DATE {quote_literal(end.isoformat())}")
            if start or end:
                applied[f.id] = [
                    start.isoformat() if start else None,
                    end.isoformat() if end else None,
                ]
        elif state.values.get(f.id):
            values = state.values[f.id]
            if f.type == "region":  # a key selects itself and every key below it
                ors = " OR ".join(
                    f"CAST({q} AS VARCHAR) LIKE {quote_literal(v + '%')}" for v in values
                )
                conds.append(f"({ors})")
            else:
                listed = ", ".join(quote_literal(v) for v in values)
                conds.append(f"CAST({q} AS VARCHAR) IN ({listed})")
            applied[f.id] = list(values)
    return conds, applied


def _agg(agg: str, col: str | None) -> str:
    if agg == "count" or col is None:
        return "count(*)"
    fn = {"avg": "avg", "sum": "sum", "min": "min", "max": "max", "median": "median"}[agg]
    return f"{fn}({quote_ident(col)})"


def tile_sql(spec: Spec, tile: Tile, src: Source, state: FilterState, period: Any = None) -> str:
    conds, _applied = conditions(spec, src, state, period)
    where = f" WHERE {' AND '.join(conds)}" if conds else ""
    base = base_relation(src)
    if tile.type == "kpi":
        return f"SELECT {_agg(tile.agg, tile.value)} AS value FROM {base}{where}"
    if tile.type == "map":
        assert tile.key is not None
        digits = boundaries.key_length(tile.level)
        k = f"left(CAST({quote_ident(tile.key)} AS VARCHAR), {digits})"
        return (
            f"SELECT {k} AS key, count(*) AS cases, {_agg(tile.agg, tile.value)} AS value "
            f"FROM {base}{where} GROUP BY 1 ORDER BY 1"
        )
    if tile.type == "histogram":
        v = quote_ident(tile.value or "")
        return (
            f"WITH d AS (SELECT CAST({v} AS DOUBLE) AS x FROM {base}{where}), "
            f"r AS (SELECT min(x) AS lo, greatest(max(x) - min(x), 1e-9) / {tile.bins} AS w FROM d), "
            f"b AS (SELECT least(CAST(floor((x - lo) / w) AS BIGINT), {tile.bins - 1}) AS i, "
            "count(*) AS n FROM d, r WHERE x IS NOT NULL GROUP BY 1) "
            "SELECT i AS bin, lo + i * w AS from_value, lo + (i + 1) * w AS to_value, "
            f"coalesce(n, 0) AS count FROM r, range({tile.bins}) AS t(i) LEFT JOIN b USING (i) "
            "WHERE lo IS NOT NULL ORDER BY i"
        )
    if tile.x and tile.y:
        x = quote_ident(tile.x)
        ys = ", ".join(f"{_agg(tile.agg, y)} AS {quote_ident(y)}" for y in tile.y)
        return (
            f"SELECT {x}, {ys} FROM {base}{where} GROUP BY {x} ORDER BY {x} LIMIT {int(tile.limit)}"
        )
    return f"SELECT * FROM {base}{where} LIMIT {int(tile.limit)}"


def compute(
    gate: Gate,
    p: Principal,
    spec: Spec,
    tile: Tile,
    src: Source,
    state: FilterState,
    out: TileData,
    *,
    client: str | None = None,
) -> TileData:
    from datenlabor.dashboards.access import run_sql

    sql = tile_sql(spec, tile, src, state)
    result = run_sql(gate, p, sql, client=client, max_rows=max(tile.limit, 1000))
    _conds, applied = conditions(spec, src, state)
    out.provenance.update(
        query=sql,
        datasets=[
            {"slug": s.slug, "version": s.version, "partial": not s.view.whole}
            for s in result.sources
        ],
        filters=applied,
    )
    if any(s.disclosure is not None for s in result.sources):
        out.provenance["protected"] = True
    if tile.type == "kpi":
        value = result.table.column("value")[0].as_py() if result.table.num_rows else None
        out.kpi = {"value": value, "kind": "number" if isinstance(value, float) else "int"}
        if tile.trend and state.previous_period() is not None:
            prev_sql = tile_sql(spec, tile, src, state, period=state.previous_period())
            prev = run_sql(gate, p, prev_sql, client=client).table
            previous = prev.column("value")[0].as_py() if prev.num_rows else None
            out.kpi.update(_trend(value, previous))
            out.provenance["previous_query"] = prev_sql
        return out
    if tile.type == "map":
        from datenlabor.dashboards.mapsvg import attach_map

        kind = "int" if tile.agg == "count" else "number"
        attach_map(out, result.table, tile.level, kind)
        return out
    fill(out, result.table, limit=tile.limit)
    out.truncated = out.truncated or result.truncated
    if tile.type == "histogram":
        out.x, out.y = "from_value", ["count"]
    else:
        out.x = tile.x or (out.columns[0]["name"] if out.columns else None)
        out.y = list(tile.y or [])
        if src.dataset and tile.x and src.version is None:
            out.drill = {"kind": "dataset", "slug": src.dataset, "column": tile.x}
    return out


def _trend(value: Any, previous: Any) -> dict[str, Any]:
    if value is None or previous is None:
        return {"previous": previous, "change": None}
    change = (value - previous) / previous if previous else None
    return {"previous": previous, "change": change}
