"""Tiles over a procedure log, computed by the procedures library on an opened log.

Every number comes from :mod:`datenlabor.procedures` (``ProcedureLog`` methods); the map adds
one grouping the library has no function for (the Land of a Kreis key), written against the
library's own per-case table and segment definition so the figures agree.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from datenlabor.dashboards import boundaries
from datenlabor.dashboards.tile import TileData, fill, truncate
from datenlabor.procedures.kpis import segment_sql
from datenlabor.procedures.variants import variant_count
from datenlabor.query.connection import quote_literal

if TYPE_CHECKING:
    from datenlabor.dashboards.spec import Tile
    from datenlabor.dashboards.suppression import Control
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


def kpi_value(log: ProcedureLog, tile: Tile) -> tuple[Any, str, list[int]]:
    """The headline figure of a KPI tile, its kind (int, duration_s, rate), and the counts
    of cases it is computed from (disclosure control suppresses it when one is small)."""
    m = tile.measure
    cases = log.ensure_cases()
    row = log.con.execute(f"SELECT count(*), count(completed_at) FROM {cases}").fetchone()
    assert row is not None
    n_cases, n_done = int(row[0]), int(row[1])
    if m in ("cases", "completed_cases", "open_cases"):
        value = {"cases": n_cases, "completed_cases": n_done, "open_cases": n_cases - n_done}[m]
        return int(value), "int", [value]
    if m == "events":
        ev = log.con.execute("SELECT count(*) FROM ev").fetchone()
        return int(ev[0]) if ev else 0, "int", [n_cases]
    if m == "variants":
        return variant_count(log), "int", [n_cases]
    if m and m.startswith("throughput_"):
        return log.throughput().totals[m.removeprefix("throughput_") + "_s"], "duration_s", [n_done]
    if m in ("breaches", "breach_rate"):
        assert tile.deadline is not None
        totals = deadline_totals(log, tile.deadline)
        late = int(totals["breached"] + totals["overdue"])
        if m == "breaches":
            return late, "int", [late]
        return totals["breach_rate"], "rate", [late, int(totals["met"])]
    if m == "rework_rate":
        totals = log.rework().totals
        again = int(totals["cases_with_rework"])
        return totals["rework_rate"], "rate", [again, int(totals["cases"]) - again]
    raise AssertionError(f"unchecked measure {m}")  # the spec validation lists them all


def deadline_result(
    log: ProcedureLog, rule: str, *, by: str | None = None, freq: str | None = None
) -> Result:
    """``log.deadline`` once per (rule, by, freq) and opened log: a dashboard asks for the
    same rule in several tiles (KPI, map, chart), and every result carries the totals."""
    memo: dict[tuple[str, str | None, str | None], Result] = log.__dict__.setdefault(
        "_deadline_memo", {}
    )
    key = (rule, by, freq)
    if key not in memo:
        memo[key] = log.deadline(rule, by=by, freq=freq)
    return memo[key]


def deadline_totals(log: ProcedureLog, rule: str) -> dict[str, Any]:
    """The overall outcome of ``rule``: from any result of the rule already computed on this
    log (all carry the same totals), else from the rule alone."""
    memo: dict[tuple[str, str | None, str | None], Result] = log.__dict__.get("_deadline_memo", {})
    for (r, _by, _freq), result in memo.items():
        if r == rule:
            return result.totals
    return deadline_result(log, rule).totals


def analysis(log: ProcedureLog, tile: Tile, control: Control | None = None) -> Result:
    """The library result behind a chart or table tile."""
    m = tile.metric
    if m == "cases_over_time":
        return log.cases_over_time(tile.freq)
    if m == "throughput":
        return log.throughput(by=tile.by)
    if m == "deadline":
        assert tile.deadline is not None
        return deadline_result(log, tile.deadline, by=tile.by, freq=None if tile.by else tile.freq)
    if m == "waiting_times":
        return log.waiting_times()
    if m == "rework":
        return log.rework()
    if m == "workload":
        return log.workload()
    if m == "variants":  # all of them under disclosure control (their total is known)
        return log.variants(limit=None if control else tile.limit)
    if m == "bottlenecks":
        return log.bottlenecks(limit=None if control else tile.limit)
    if m == "dfg":
        return log.dfg()
    if m == "cases":
        return log.cases(limit=tile.limit)
    raise AssertionError(f"unchecked metric {m}")


def chart_tile(
    log: ProcedureLog, tile: Tile, out: TileData, control: Control | None = None
) -> TileData:
    result = analysis(log, tile, control)
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
    limit = 2000 if x == "period" else tile.limit
    if control is None:
        fill(out, table, limit=limit)
    else:  # disclosure control sees every row (their totals are known), then the cut
        from datenlabor.dashboards.suppression import protect_log_chart

        fill(out, table)
        protect_log_chart(out, tile.metric or "", control, log)
        truncate(out, limit)
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
    if control is not None:
        out.drill = None  # no drill-down to single cases
        totals = {k: v for k, v in out.provenance["totals"].items() if k not in ("min_s", "max_s")}
        counts = [v for k, v in totals.items() if isinstance(v, int) and not isinstance(v, bool)]
        if any(0 < v < control.min_frequency for v in counts):  # the margins are small too
            totals = {k: v for k, v in totals.items() if isinstance(v, str)}
        out.provenance["totals"] = totals
    return out


def histogram_tile(
    log: ProcedureLog, tile: Tile, out: TileData, control: Control | None = None
) -> TileData:
    if control is None:
        result = log.histogram(tile.bins)
        fill(out, result.table)
        out.provenance.update(analysis=f"histogram(bins={tile.bins})")
    else:
        from datenlabor.dashboards.suppression import protect_rows_single

        fill(out, rounded_histogram(log, tile.bins))
        protect_rows_single(out, "cases", control)
        out.provenance.update(analysis=f"histogram(bins={tile.bins}, from 0 to a rounded bound)")
    out.x, out.y = "from_s", ["cases"]
    return out


def rounded_histogram(log: ProcedureLog, bins: int) -> pa.Table:
    """Throughput times of completed cases in ``bins`` equal bins from 0 to a rounded bound
    (1, 2 or 5 times a power of ten days), so that the edges do not give away the shortest
    and the longest case as the library's histogram (min to max) does; same columns."""
    cases = log.ensure_cases()
    row = log.con.execute(
        f"SELECT max(duration_s) FROM {cases} WHERE completed_at IS NOT NULL"
    ).fetchone()
    longest = float(row[0]) if row and row[0] is not None else 0.0
    days = max(longest / 86400, 1e-9)
    scale = 10 ** math.floor(math.log10(days))
    bound = next(f * scale for f in (1, 2, 5, 10) if f * scale >= days) * 86400
    width = bound / bins
    return log.arrow(
        f"WITH b AS (SELECT least(CAST(floor(duration_s / {width!r}) AS BIGINT), {bins - 1}) AS i, "
        f"count(*) AS n FROM {cases} WHERE completed_at IS NOT NULL GROUP BY 1) "
        f"SELECT i AS bin, i * {width!r} AS from_s, (i + 1) * {width!r} AS to_s, "
        f"coalesce(n, 0) AS cases FROM range({bins}) AS t(i) LEFT JOIN b USING (i) "
        f"WHERE {longest!r} > 0 OR EXISTS (SELECT 1 FROM b) ORDER BY i"
    )


def process_map_tile(
    log: ProcedureLog, tile: Tile, out: TileData, control: Control | None = None
) -> TileData:
    from datenlabor.dashboards.processmap import layout

    result = log.dfg()
    table = result.table
    fill(out, table, limit=tile.limit)
    measure = tile.measure or "frequency"
    counts = dict(log.con.execute("SELECT activity, count(*) FROM ev GROUP BY 1").fetchall())
    activity_counts: dict[str, int | None] = {str(k): int(v) for k, v in counts.items()}
    start, end = result.totals["start_activities"], result.totals["end_activities"]
    drawn = out.rows
    if control is not None:
        # One pattern for the graph's edges, starts, ends and activity counts under its flow
        # equations; suppressed edges are listed (".") but not drawn.
        from datenlabor.dashboards.suppression import EXTREMES, dfg_pattern, drop_columns, mark

        pattern = dfg_pattern(log, control)
        drop_columns(out, EXTREMES)
        for i, r in enumerate(out.rows):
            if pattern["edges"].get((r["from"], r["to"])):
                mark(out, i, [c["name"] for c in out.columns if c["name"] not in ("from", "to")])
        drawn = [r for r in out.rows if r.get("count") is not None]
        start = {a: n for a, n in start.items() if not pattern["starts"].get(a)}
        end = {a: n for a, n in end.items() if not pattern["ends"].get(a)}
        activity_counts = {
            a: (None if pattern["nodes"].get(a) else n) for a, n in activity_counts.items()
        }
    out.graph = layout(
        drawn,
        start=start,
        end=end,
        measure=measure,
        activity_counts=activity_counts,  # type: ignore[arg-type]
    )
    out.x, out.y = "from", ["count" if measure == "frequency" else "median_s"]
    out.drill = {"kind": "edge"} if control is None else None
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
        dl = deadline_result(log, tile.deadline, by=column).table
        log.con.register("__dl", dl)
        sql = (
            f"SELECT left(CAST(segment AS VARCHAR), {digits}) AS key, sum(cases) AS cases, "
            "sum(breached + overdue) AS breaches, "
            "sum(breached + overdue) / nullif(sum(met + breached + overdue), 0) AS breach_rate, "
            "sum(met) AS met "
            "FROM __dl WHERE segment IS NOT NULL GROUP BY 1 ORDER BY 1"
        )
        table = log.arrow(sql)
        log.con.unregister("__dl")
        return table.select(["key", "cases", v, "breaches", "met"]).rename_columns(
            ["key", "cases", "value", "breaches", "met"]
        )
    cases = log.ensure_cases()
    seg = segment_sql(log, column)
    stat = {
        "cases": "count(*)",
        "throughput_median": "median(duration_s) FILTER (WHERE completed_at IS NOT NULL)",
        "throughput_mean": "mean(duration_s) FILTER (WHERE completed_at IS NOT NULL)",
    }[v or "cases"]
    return log.arrow(
        f"SELECT left(CAST(seg.segment AS VARCHAR), {digits}) AS key, count(*) AS cases, "
        f"{stat} AS value, count(completed_at) AS completed "
        f"FROM {cases} c JOIN ({seg}) seg USING (case_no) "
        "WHERE seg.segment IS NOT NULL GROUP BY 1 ORDER BY 1"
    )


def map_tile(
    log: ProcedureLog, tile: Tile, column: str, out: TileData, control: Control | None = None
) -> TileData:
    from datenlabor.dashboards.mapsvg import attach_map

    table = map_values(log, tile, column)
    kind = {"cases": "int", "breaches": "int", "breach_rate": "rate"}.get(
        tile.value or "", "duration_s"
    )
    hidden: dict[str, list[str]] = {}
    if control is not None:
        from datenlabor.dashboards.suppression import protect_map

        table, hidden = protect_map(table, tile, control)
    attach_map(out, table, tile.level, kind)
    out.drill = {"kind": "value", "column": column, "key": "key", "level": tile.level}
    if control is not None:
        from datenlabor.dashboards.suppression import mark_map

        mark_map(out, hidden)
        out.drill = None
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
