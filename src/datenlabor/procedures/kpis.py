"""Key figures of a procedure: volumes, backlog, throughput, waiting, rework, workload.

Each function takes a :class:`~datenlabor.procedures.log.ProcedureLog` (filters already
applied) and runs one vectorised DuckDB query; durations are seconds (DOUBLE), periods are
calendar periods in the log's time zone. Definitions are in ``docs/procedures.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from datenlabor.errors import BadInput
from datenlabor.procedures.log import Result
from datenlabor.query.connection import quote_literal

if TYPE_CHECKING:
    from datenlabor.procedures.log import ProcedureLog

FREQS = {"day": "1 day", "week": "1 week", "month": "1 month", "quarter": "3 months", "year": "1 year"}

# Duration statistics of a column of seconds; median and p90 interpolate like numpy/pm4py.
def duration_stats(col: str) -> str:
    return (
        f"mean({col}) AS mean_s, median({col}) AS median_s, "
        f"quantile_cont({col}, 0.9) AS p90_s, min({col}) AS min_s, max({col}) AS max_s"
    )


def duration_stats_grouped(col: str) -> str:
    """The same statistics for a grouped query; both quantiles from one sort per group
    (``q``: the aggregate's list, taken apart with :func:`unpack_stats`)."""
    return (
        f"mean({col}) AS mean_s, quantile_cont({col}, [0.5, 0.9]) AS q, "
        f"min({col}) AS min_s, max({col}) AS max_s"
    )


UNPACK_STATS = "mean_s, q[1] AS median_s, q[2] AS p90_s, min_s, max_s"


def check_freq(freq: str) -> str:
    if freq not in FREQS:
        raise BadInput(f"unknown period {freq!r}; choose {', '.join(FREQS)}", column="freq")
    return freq


def segment_sql(log: ProcedureLog, by: str) -> str:
    """Per case (``case_no``), the value of ``by`` at its first event where it is set
    (``segment``); computed once per opened log and column (see ``ensure_segment``)."""
    return f"SELECT case_no, segment FROM {log.ensure_segment(by)}"


def segment_query(col: str) -> str:
    """The SQL behind :func:`segment_sql` for the quoted column ``col``."""
    return (
        f"SELECT case_no, arg_min({col}, seq) FILTER (WHERE {col} IS NOT NULL) AS segment "
        "FROM ev GROUP BY case_no"
    )


def summary(log: ProcedureLog, *, dfg_limit: int | None = None) -> dict[str, Any]:
    """The main figures of the log as one JSON-ready dict (what ``procedures kpis`` prints)."""
    from datenlabor.procedures.dfg import dfg
    from datenlabor.procedures.variants import variant_count

    cases = log.ensure_cases()
    row = log.con.execute(
        f"SELECT count(*), sum(events), count(completed_at), min(start), max(\"end\"), "
        f"median(duration_s) FILTER (WHERE completed_at IS NOT NULL), "
        f"mean(duration_s) FILTER (WHERE completed_at IS NOT NULL), "
        f"quantile_cont(duration_s, 0.9) FILTER (WHERE completed_at IS NOT NULL) FROM {cases}"
    ).fetchone()
    assert row is not None
    activities = log.con.execute("SELECT count(DISTINCT activity) FROM ev").fetchone()
    graph = dfg(log)
    edges = [
        {
            "from": r["from"],
            "to": r["to"],
            "count": r["count"],
            "median_s": r["median_s"],
            "mean_s": r["mean_s"],
        }
        for r in graph.rows()
    ]
    return {
        "dataset": log.slug,
        "version": log.version,
        "cases": int(row[0]),
        "events": int(row[1] or 0),
        "activities": int(activities[0]) if activities else 0,
        "variants": variant_count(log),
        "completed_cases": int(row[2]),
        "open_cases": int(row[0]) - int(row[2]),
        "first_event": row[3].isoformat() if row[3] else None,
        "last_event": row[4].isoformat() if row[4] else None,
        "throughput_median_s": row[5],
        "throughput_mean_s": row[6],
        "throughput_p90_s": row[7],
        "start_activities": graph.totals["start_activities"],
        "end_activities": graph.totals["end_activities"],
        "dfg": edges[:dfg_limit] if dfg_limit is not None else edges,
        "provenance": log.provenance,
    }


def cases_over_time(log: ProcedureLog, freq: str = "month") -> Result:
    """Cases started and completed per period, and the backlog (open cases) at its end.

    Columns: period (DATE, first day), started, completed, open_at_end. Periods without
    any start or completion are included (zero), so the series has no gaps.
    """
    step = FREQS[check_freq(freq)]
    f = quote_literal(freq)
    cases = log.ensure_cases()
    sql = f"""
        WITH s AS (SELECT date_trunc({f}, start) AS p, count(*) AS n FROM {cases} GROUP BY 1),
        e AS (SELECT date_trunc({f}, completed_at) AS p, count(*) AS n FROM {cases}
              WHERE completed_at IS NOT NULL GROUP BY 1),
        b AS (SELECT min(p) AS lo, max(p) AS hi FROM (SELECT p FROM s UNION ALL SELECT p FROM e)),
        g AS (SELECT unnest(generate_series(lo, hi, INTERVAL '{step}')) AS p FROM b
              WHERE lo IS NOT NULL)
        SELECT CAST(g.p AS DATE) AS period, coalesce(s.n, 0) AS started,
               coalesce(e.n, 0) AS completed,
               CAST(sum(coalesce(s.n, 0) - coalesce(e.n, 0)) OVER (ORDER BY g.p) AS BIGINT)
               AS open_at_end
        FROM g LEFT JOIN s ON s.p = g.p LEFT JOIN e ON e.p = g.p ORDER BY g.p
    """
    result = log.result("cases_over_time", sql, freq=freq)
    t = result.table
    result.totals.update(
        started=int(sum(t.column("started").to_pylist())),
        completed=int(sum(t.column("completed").to_pylist())),
        open_now=int(t.column("open_at_end").to_pylist()[-1]) if t.num_rows else 0,
    )
    return result


def backlog(log: ProcedureLog, freq: str = "month") -> Result:
    """Alias of :func:`cases_over_time` (its ``open_at_end`` column is the backlog)."""
    return cases_over_time(log, freq)


def throughput(log: ProcedureLog, by: str | None = None) -> Result:
    """Throughput time (first to last event) of completed cases, overall or per segment.

    Columns: [segment], cases, mean_s, median_s, p90_s, min_s, max_s; ordered by cases.
    """
    cases = log.ensure_cases()
    stats = duration_stats("duration_s")
    overall = log.con.execute(
        f"SELECT count(*), {stats} FROM {cases} WHERE completed_at IS NOT NULL"
    ).fetchone()
    assert overall is not None
    totals = dict(
        zip(["cases", "mean_s", "median_s", "p90_s", "min_s", "max_s"], overall, strict=True)
    )
    if by is None:
        sql = f"SELECT count(*) AS cases, {stats} FROM {cases} WHERE completed_at IS NOT NULL"
    else:
        sql = (
            f"SELECT seg.segment, count(*) AS cases, {stats} FROM {cases} c "
            f"JOIN ({segment_sql(log, by)}) seg USING (case_no) "
            "WHERE c.completed_at IS NOT NULL GROUP BY seg.segment "
            "ORDER BY cases DESC, seg.segment NULLS LAST"
        )
    result = log.result("throughput", sql, **totals)
    if by is not None:
        result.totals["by"] = by
    return result


def histogram(log: ProcedureLog, bins: int = 20) -> Result:
    """Throughput times of completed cases in ``bins`` equal-width bins (seconds)."""
    if not 1 <= bins <= 1000:
        raise BadInput("bins must be between 1 and 1000", column="bins")
    cases = log.ensure_cases()
    sql = f"""
        WITH d AS (SELECT duration_s AS x FROM {cases} WHERE completed_at IS NOT NULL),
        r AS (SELECT min(x) AS lo, greatest(max(x) - min(x), 1e-9) / {bins} AS w FROM d),
        b AS (SELECT least(CAST(floor((x - lo) / w) AS BIGINT), {bins - 1}) AS i, count(*) AS n
              FROM d, r GROUP BY 1)
        SELECT i AS bin, lo + i * w AS from_s, lo + (i + 1) * w AS to_s, coalesce(n, 0) AS cases
        FROM r, range({bins}) AS t(i) LEFT JOIN b USING (i) WHERE lo IS NOT NULL ORDER BY i
    """
    return log.result("histogram", sql, bins=bins)


def waiting_times(log: ProcedureLog) -> Result:
    """Time before each activity: from the case's previous event to this event.

    Columns: activity, events (with a predecessor), mean_s, median_s, p90_s, min_s, max_s,
    total_s; ordered by total_s (where the most case time goes first).
    """
    pairs = log.ensure_pairs()
    sql = f"""
        WITH w AS (SELECT b, count(*) AS events, {duration_stats("d")}, sum(d) AS total_s
                   FROM {pairs} GROUP BY b)
        SELECT name AS activity, w.* EXCLUDE (b) FROM w JOIN activity_names ON code = b
        ORDER BY total_s DESC, activity
    """
    return log.result("waiting_times", sql)


def rework(log: ProcedureLog) -> Result:
    """Repeated activities: per activity the cases that ran it more than once.

    Columns: activity, cases (with the activity), cases_repeated, repetitions (executions
    beyond the first per case), rework_rate (cases_repeated / cases).
    """
    sql = """
        WITH per AS (SELECT case_no, activity, count(*) AS n FROM ev GROUP BY ALL)
        SELECT activity, count(*) AS cases, count(*) FILTER (WHERE n > 1) AS cases_repeated,
               CAST(sum(n - 1) AS BIGINT) AS repetitions,
               count(*) FILTER (WHERE n > 1) / count(*) AS rework_rate
        FROM per GROUP BY activity ORDER BY repetitions DESC, activity
    """
    result = log.result("rework", sql)
    row = log.con.execute(
        "WITH per AS (SELECT case_no, max(n) AS m FROM (SELECT case_no, activity, count(*) AS n "
        "FROM ev GROUP BY ALL) GROUP BY case_no) "
        "SELECT count(*), count(*) FILTER (WHERE m > 1) FROM per"
    ).fetchone()
    assert row is not None
    result.totals.update(
        cases=int(row[0]),
        cases_with_rework=int(row[1]),
        rework_rate=(row[1] / row[0]) if row[0] else None,
    )
    return result


def workload(log: ProcedureLog, freq: str | None = None) -> Result:
    """Events and cases per resource (optionally per period of the event time).

    Columns: [period], resource, events, cases, activities, share (of the events in the
    same period, or overall).
    """
    if "resource" not in log.columns:
        raise BadInput("the log has no resource column", column="resource")
    if freq is None:
        sql = """
            SELECT resource, count(*) AS events, count(DISTINCT case_no) AS cases,
                   count(DISTINCT activity) AS activities,
                   count(*) / sum(count(*)) OVER () AS share
            FROM ev GROUP BY resource ORDER BY events DESC, resource NULLS LAST
        """
    else:
        f = quote_literal(check_freq(freq))
        sql = f"""
            SELECT CAST(date_trunc({f}, timestamp) AS DATE) AS period, resource,
                   count(*) AS events, count(DISTINCT case_no) AS cases,
                   count(DISTINCT activity) AS activities,
                   count(*) / sum(count(*)) OVER (PARTITION BY period) AS share
            FROM ev GROUP BY ALL ORDER BY period, events DESC, resource NULLS LAST
        """
    return log.result("workload", sql, freq=freq)


def case_list(
    log: ProcedureLog,
    *,
    edge: tuple[str, str] | list[str] | None = None,
    activity: str | None = None,
    variant: list[str] | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> Result:
    """The cases behind a number (drill-down): all, or those with a directly-follows
    ``edge`` (from, to), an ``activity``, or exactly the ``variant`` (list of activities).

    Columns: case_id, start, end, events, duration_s, last_activity, completed_at; longest
    first. ``totals["cases"]`` is the full count before ``limit``.
    """
    cases = log.ensure_cases()
    conds = []
    if edge is not None:
        if len(edge) != 2:
            raise BadInput("an edge is (from, to)", column="edge")
        from datenlabor.procedures.dfg import pairs_sql

        conds.append(
            f"case_no IN (SELECT case_no FROM ({pairs_sql(log)}) WHERE \"from\" = "
            f"{quote_literal(edge[0])} AND \"to\" = {quote_literal(edge[1])})"
        )
    if activity is not None:
        conds.append(
            f"case_no IN (SELECT case_no FROM ev WHERE activity = {quote_literal(activity)})"
        )
    if variant is not None:
        items = ", ".join(quote_literal(a) for a in variant)
        seqs = log.ensure_sequences()
        conds.append(
            f"case_no IN (SELECT case_no FROM {seqs}, (SELECT list(name ORDER BY code) AS "
            f"names FROM activity_names) WHERE len(codes) = {len(variant)} AND "
            f"list_transform(codes, x -> names[x + 1]) = [{items}]::VARCHAR[])"
        )
    where = f" WHERE {' AND '.join(conds)}" if conds else ""
    total = log.con.execute(f"SELECT count(*) FROM {cases}{where}").fetchone()
    sql = (
        f"WITH page AS (SELECT * FROM {cases}{where} ORDER BY duration_s DESC, case_no "
        f"LIMIT {int(limit)} OFFSET {int(offset)}) "
        f"SELECT i.case_id, page.* FROM page JOIN ({log.case_ids_sql('page')}) i "
        "USING (case_no) ORDER BY duration_s DESC, case_no"
    )
    return log.result("cases", sql, cases=int(total[0]) if total else 0)
