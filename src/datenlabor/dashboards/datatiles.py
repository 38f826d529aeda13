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
from datenlabor.dashboards.tile import TileData, fill, truncate
from datenlabor.query.connection import quote_ident, quote_literal

if TYPE_CHECKING:
    from datenlabor.access.principal import Principal
    from datenlabor.dashboards.filters import FilterState
    from datenlabor.dashboards.spec import Source, Spec, Tile
    from datenlabor.dashboards.suppression import Control
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


def tile_sql(
    spec: Spec,
    tile: Tile,
    src: Source,
    state: FilterState,
    period: Any = None,
    *,
    counted: bool = False,
) -> str:
    """The tile's query; ``counted`` adds the number of rows behind each figure (``__n``),
    which disclosure control needs."""
    conds, _applied = conditions(spec, src, state, period)
    where = f" WHERE {' AND '.join(conds)}" if conds else ""
    base = base_relation(src)
    n = ", count(*) AS __n" if counted else ""
    if tile.type == "kpi":
        return f"SELECT {_agg(tile.agg, tile.value)} AS value{n} FROM {base}{where}"
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
        # Under disclosure control every group is read: their total is known.
        limit = "" if counted else f" LIMIT {int(tile.limit)}"
        return f"SELECT {x}, {ys}{n} FROM {base}{where} GROUP BY {x} ORDER BY {x}{limit}"
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
    control: Control | None = None,
) -> TileData:
    from datenlabor.dashboards.access import run_sql

    if control is not None:
        from datenlabor.dashboards.suppression import withhold

        if src.sql is not None:
            return withhold(out, control, WITHHELD_SQL)
        if tile.type == "table" and not (tile.x and tile.y):
            return withhold(out, control, WITHHELD_ROWS)
    counted = control is not None
    sql = tile_sql(spec, tile, src, state, counted=counted)
    result = run_sql(
        gate, p, sql, client=client, max_rows=max(tile.limit, 100_000 if counted else 1000)
    )
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
    table = result.table
    if tile.type == "kpi":
        value = table.column("value")[0].as_py() if table.num_rows else None
        out.kpi = {"value": value, "kind": "number" if isinstance(value, float) else "int"}
        hidden: list[str] = []
        if control is not None and _few(table, control):
            out.kpi["value"], value = None, None
            hidden.append("value")
        if tile.trend and state.previous_period() is not None:
            prev_sql = tile_sql(
                spec, tile, src, state, period=state.previous_period(), counted=counted
            )
            prev = run_sql(gate, p, prev_sql, client=client).table
            previous = prev.column("value")[0].as_py() if prev.num_rows else None
            if control is not None and _few(prev, control):
                previous = None
                hidden.append("previous")
            out.kpi.update(_trend(value, previous))
            if hidden:
                out.kpi["change"] = None
                hidden.append("change")
            out.provenance["previous_query"] = prev_sql
        if hidden:
            out.kpi["suppressed"] = hidden
        return out
    if tile.type == "map":
        from datenlabor.dashboards.mapsvg import attach_map

        kind = "int" if tile.agg == "count" else "number"
        hidden_regions: dict[str, list[str]] = {}
        if control is not None:
            from datenlabor.dashboards.suppression import protect_map

            table, hidden_regions = protect_map(table, tile, control)
        attach_map(out, table, tile.level, kind)
        if control is not None:
            from datenlabor.dashboards.suppression import mark_map

            mark_map(out, hidden_regions)
        return out
    if control is None:
        fill(out, table, limit=tile.limit)
    else:
        from datenlabor.dashboards.suppression import protect_dataset_rows

        fill(out, table)
        protect_dataset_rows(out, tile, control)
        truncate(out, tile.limit)
    out.truncated = out.truncated or result.truncated
    if tile.type == "histogram":
        out.x, out.y = "from_value", ["count"]
    else:
        out.x = tile.x or (out.columns[0]["name"] if out.columns else None)
        out.y = list(tile.y or [])
        if src.dataset and tile.x and src.version is None and control is None:
            out.drill = {"kind": "dataset", "slug": src.dataset, "column": tile.x}
    return out


WITHHELD_SQL = (
    "an SQL source is shown only to viewers with microdata access to its datasets: its "
    "figures cannot be checked for small counts (disclosure control)"
)
WITHHELD_ROWS = "single rows are not shown to viewers without microdata access (disclosure control)"


def _few(table: Any, control: Control) -> bool:
    """A KPI over fewer rows than the minimum frequency."""
    from datenlabor.dashboards.suppression import small

    n = table.column("__n")[0].as_py() if table.num_rows and "__n" in table.column_names else 0
    return small(n, control)


def _trend(value: Any, previous: Any) -> dict[str, Any]:
    if value is None or previous is None:
        return {"previous": previous, "change": None}
    change = (value - previous) / previous if previous else None
    return {"previous": previous, "change": change}
