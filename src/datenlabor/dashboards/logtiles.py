"""Tiles over a procedure log, computed by the procedures library on an opened log.

Every number comes from :mod:`datenlabor.procedures` (``ProcedureLog`` methods); the map adds
one grouping the library has no function for (the Land of a Kreis key), written against the
library's own per-case table and segment definition so the figures agree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from datenlabor.dashboards import boundaries
from datenlabor.dashboards.tile import TileData, fill
from datenlabor.procedures.kpis import segment_sql
from datenlabor.procedures.variants import variant_count
from datenlabor.query.connection import quote_literal

if TYPE_CHECKING:
    from datenlabor.dashboards.spec import Tile
    from datenlabor.procedures.log import ProcedureLog, Result

# metric -> (x column, default y columns, drill kind)
CHART_AXES: dict[str, tuple[str, list[str], str | None]] = {
    "cases_over_time": ("period", ["started", "completed"], "period"),
    "throughput": ("segment", ["median_s"], "value"),
    "deadline": ("segment", ["breach_rate"], "value"),
    "waiting_times": ("activity", ["median_s"], "activity"),
    "rework": ("activity", ["cases_repeated"], "activity"),
    "workload": ("resource", ["events"], "resource"),
    "variants": ("rank", ["cases"], "variant"),
    "bottlenecks": ("rank", ["total_s"], "edge"),
    "dfg": ("from", ["count"], "edge"),
    "cases": ("case_id", ["duration_s"], None),
}


def kpi_value(log: ProcedureLog, tile: Tile) -> tuple[Any, str]:
    """The headline figure of a KPI tile and its kind (int, duration_s, rate)."""
    m = tile.measure
    if m in ("cases", "completed_cases", "open_cases"):
        cases = log.ensure_cases()
        row = log.con.execute(f"SELECT count(*), count(completed_at) FROM {cases}").fetchone()
        assert row is not None
        value = {"cases": row[0], "completed_cases": row[1], "open_cases": row[0] - row[1]}[m]
        return int(value), "int"
    if m == "events":
        row = log.con.execute("SELECT count(*) FROM ev").fetchone()
        return int(row[0]) if row else 0, "int"
    if m == "variants":
        return variant_count(log), "int"
    if m and m.startswith("throughput_"):
        return log.throughput().totals[m.removeprefix("throughput_") + "_s"], "duration_s"
    if m in ("breaches", "breach_rate"):
        assert tile.deadline is not None
        totals = log.deadline(tile.deadline).totals
        if m == "breaches":
            return int(totals["breached"] + totals["overdue"]), "int"
        return totals["breach_rate"], "rate"
    if m == "rework_rate":
        return log.rework().totals["rework_rate"], "rate"
    raise AssertionError(f"unchecked measure {m}")  # the spec validation lists them all


def analysis(log: ProcedureLog, tile: Tile) -> Result:
    """The library result behind a chart or table tile."""
    m = tile.metric
    if m == "cases_over_time":
        return log.cases_over_time(tile.freq)
    if m == "throughput":
        return log.throughput(by=tile.by)
    if m == "deadline":
        assert tile.deadline is not None
        return log.deadline(tile.deadline, by=tile.by, freq=None if tile.by else tile.freq)
    if m == "waiting_times":
        return log.waiting_times()
    if m == "rework":
        return log.rework()
    if m == "workload":
        return log.workload()
    if m == "variants":
        return log.variants(limit=tile.limit)
    if m == "bottlenecks":
        return log.bottlenecks(limit=tile.limit)
    if m == "dfg":
        return log.dfg()
    if m == "cases":
        return log.cases(limit=tile.limit)
    raise AssertionError(f"unchecked metric {m}")


def chart_tile(log: ProcedureLog, tile: Tile, out: TileData) -> TileData:
    result = analysis(log, tile)
    x, default_y, drill = CHART_AXES[tile.metric or ""]
    table = result.table
    if tile.metric == "deadline" and not tile.by:
        x = "period"
    if tile.metric == "throughput" and not tile.by:
        x = "cases"
    if tile.metric == "variants":
        # The sequence as text too: a readable label for tables and CSV.
        names = [" → ".join(a) for a in table.column("activities").to_pylist()]
        table = table.append_column("variant", pa.array(names, pa.string()))
    # Time series are shown whole (``limit`` caps rankings, not periods).
    fill(out, table, limit=2000 if x == "period" else tile.limit)
    out.x = x
    out.y = [c for c in (tile.y or default_y) if c in table.column_names]
    if not out.y:
        from datenlabor.errors import BadInput

        raise BadInput(
            f"tile {tile.id}: y must name columns of {tile.metric}: {', '.join(table.column_names)}",
            column="y",
        )
    if drill == "value" and tile.by:
        out.drill = {"kind": "value", "column": tile.by, "key": "segment"}
        if tile.metric == "deadline":
            out.drill["breach"] = True
    elif drill == "period" or (tile.metric == "deadline" and not tile.by):
        out.drill = {"kind": "period", "freq": tile.freq, "key": "period"}
        if tile.metric == "deadline":
            out.drill["breach"] = True
    elif drill == "resource":
        out.drill = {"kind": "value", "column": "resource", "key": "resource"}
    elif drill in ("activity", "variant", "edge"):
        out.drill = {"kind": drill}
    out.provenance.update(analysis=_analysis_label(tile), totals=_plain(result.totals))
    return out


def histogram_tile(log: ProcedureLog, tile: Tile, out: TileData) -> TileData:
    result = log.histogram(tile.bins)
    fill(out, result.table)
    out.x, out.y = "from_s", ["cases"]
    out.provenance.update(analysis=f"histogram(bins={tile.bins})")
    return out


def process_map_tile(log: ProcedureLog, tile: Tile, out: TileData) -> TileData:
    from datenlabor.dashboards.processmap import layout

    result = log.dfg()
    table = result.table
    fill(out, table, limit=tile.limit)
    measure = tile.measure or "frequency"
    counts = dict(log.con.execute("SELECT activity, count(*) FROM ev GROUP BY 1").fetchall())
    out.graph = layout(
        out.rows,
        start=result.totals["start_activities"],
        end=result.totals["end_activities"],
        measure=measure,
        activity_counts={str(k): int(v) for k, v in counts.items()},
    )
    out.x, out.y = "from", ["count" if measure == "frequency" else "median_s"]
    out.drill = {"kind": "edge"}
    out.provenance.update(analysis=f"dfg() top {tile.limit} edges by count", measure=measure)
    return out


def map_values(log: ProcedureLog, tile: Tile, column: str) -> pa.Table:
    """Columns: key (ARS of ``tile.level``), cases, value — one row per region with cases.

    ``column`` holds region keys; a Land map over Kreis (or longer) keys groups by their
    first two digits. Counts and breach rates add up from the library's per-segment
    deadline outcomes; medians are computed on the library's per-case table.
    """
    digits = boundaries.key_length(tile.level)
    v = tile.value
    if v in ("breaches", "breach_rate"):
        assert tile.deadline is not None
        dl = log.deadline(tile.deadline, by=column).table
        log.con.register("__dl", dl)
        sql = (
            f"SELECT left(CAST(segment AS VARCHAR), {digits}) AS key, sum(cases) AS cases, "
            "sum(breached + overdue) AS breaches, "
            "sum(breached + overdue) / nullif(sum(met + breached + overdue), 0) AS breach_rate "
            "FROM __dl WHERE segment IS NOT NULL GROUP BY 1 ORDER BY 1"
        )
        table = log.arrow(sql)
        log.con.unregister("__dl")
        return table.select(["key", "cases", v]).rename_columns(["key", "cases", "value"])
    cases = log.ensure_cases()
    seg = segment_sql(log, column)
    stat = {
        "cases": "count(*)",
        "throughput_median": "median(duration_s) FILTER (WHERE completed_at IS NOT NULL)",
        "throughput_mean": "mean(duration_s) FILTER (WHERE completed_at IS NOT NULL)",
    }[v or "cases"]
    return log.arrow(
        f"SELECT left(CAST(seg.segment AS VARCHAR), {digits}) AS key, count(*) AS cases, "
        f"{stat} AS value FROM {cases} c JOIN ({seg}) seg USING (case_no) "
        "WHERE seg.segment IS NOT NULL GROUP BY 1 ORDER BY 1"
    )


def map_tile(log: ProcedureLog, tile: Tile, column: str, out: TileData) -> TileData:
    from datenlabor.dashboards.mapsvg import attach_map

    table = map_values(log, tile, column)
    kind = {"cases": "int", "breaches": "int", "breach_rate": "rate"}.get(
        tile.value or "", "duration_s"
    )
    attach_map(out, table, tile.level, kind)
    out.drill = {"kind": "value", "column": column, "key": "key", "level": tile.level}
    out.provenance.update(analysis=f"{tile.value} by {column} ({tile.level})")
    return out


def region_choices(log: ProcedureLog, column: str, level: str) -> list[str]:
    """The region keys (of ``level``) present in ``column`` of the caller's log."""
    col = log.check_column(column)
    digits = boundaries.key_length(level)
    rows = log.con.execute(
        f"SELECT DISTINCT left(CAST({col} AS VARCHAR), {digits}) FROM src "
        f"WHERE {col} IS NOT NULL ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def value_choices(log: ProcedureLog, column: str, limit: int = 200) -> list[str]:
    col = log.check_column(column)
    rows = log.con.execute(
        f"SELECT DISTINCT CAST({col} AS VARCHAR) FROM src WHERE {col} IS NOT NULL "
        f"ORDER BY 1 LIMIT {int(limit)}"
    ).fetchall()
    return [r[0] for r in rows]


def case_rows(log: ProcedureLog, drill: dict[str, Any], limit: int = 200) -> Result:
    """The cases behind a clicked bar, edge, activity or variant (filters already applied
    to ``log``); a deadline drill lists the breaching cases."""
    if drill.get("breach") and drill.get("deadline"):
        from datenlabor.procedures.deadline import breaching_cases

        return breaching_cases(log, drill["deadline"], limit=limit)
    if drill.get("edge"):
        return log.cases(edge=tuple(drill["edge"]), limit=limit)
    if drill.get("activity"):
        return log.cases(activity=drill["activity"], limit=limit)
    if drill.get("variant"):
        return log.cases(variant=list(drill["variant"]), limit=limit)
    return log.cases(limit=limit)


def _analysis_label(tile: Tile) -> str:
    args = []
    if tile.metric in ("cases_over_time",):
        args.append(f"freq={tile.freq!r}")
    if tile.by:
        args.append(f"by={tile.by!r}")
    if tile.deadline:
        args.append(f"rule={tile.deadline!r}")
    return f"{tile.metric}({', '.join(args)})"


def _plain(totals: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in totals.items() if isinstance(v, int | float | str | type(None))}


def quote_values(values: list[str]) -> str:
    return ", ".join(quote_literal(v) for v in values)
