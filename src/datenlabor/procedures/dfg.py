"""Directly-follows graph (process map) with frequency and performance, and bottlenecks.

An edge (a, b) counts every pair of consecutive events of one case, a directly followed by
b, in the log's order (timestamp, then source order). Its performance is the time between
the two events: median, mean, min, max and total, in seconds (pm4py's performance DFG).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from datenlabor.procedures.log import Result

if TYPE_CHECKING:
    from datenlabor.procedures.log import ProcedureLog


def pairs_sql(log: ProcedureLog) -> str:
    """SQL of the directly-follows pairs: case_no, from, to, d (seconds)."""
    pairs = log.ensure_pairs()
    return (
        f'SELECT p.case_no, x.name AS "from", y.name AS "to", p.d FROM {pairs} p '
        "JOIN activity_names x ON x.code = p.a JOIN activity_names y ON y.code = p.b"
    )


def _named_edges(log: ProcedureLog) -> str:
    """The edges with activity names instead of codes."""
    return (
        'SELECT x.name AS "from", y.name AS "to", e.* EXCLUDE (a, b) '
        f"FROM {log.ensure_edges()} e "
        "JOIN activity_names x ON x.code = e.a JOIN activity_names y ON y.code = e.b"
    )


def dfg(log: ProcedureLog) -> Result:
    """Columns: from, to, count, mean_s, median_s, p90_s, min_s, max_s, total_s; by count.

    ``totals`` holds ``start_activities`` and ``end_activities`` (activity -> cases).
    """
    sql = f'SELECT * FROM ({_named_edges(log)}) ORDER BY count DESC, "from", "to"'
    result = log.result("dfg", sql)
    starts, finals = log.start_end_counts()
    result.totals.update(start_activities=starts, end_activities=finals)
    return result


def bottlenecks(log: ProcedureLog, limit: int | None = 10) -> Result:
    """Transitions ranked by the case time they take in total (count × mean).

    Columns: rank, from, to, count, median_s, mean_s, total_s, share (of all time between
    consecutive events). A transition is a bottleneck when much case time is spent there,
    whether because it is slow or because it is frequent; median_s tells which.
    """
    lim = f" LIMIT {int(limit)}" if limit is not None else ""
    edges = _named_edges(log)
    sql = (
        'SELECT row_number() OVER (ORDER BY total_s DESC, "from", "to") AS rank, "from", "to", '
        "count, median_s, mean_s, total_s, total_s / sum(total_s) OVER () AS share "
        f"FROM ({edges}) ORDER BY rank{lim}"
    )
    return log.result("bottlenecks", sql)
