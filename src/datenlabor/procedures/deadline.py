"""Deadline rules such as "decision within 3 months of receipt", and their breaches.

Rule syntax (also used in dashboard specs)::

    FROM -> TO within DURATION        e.g.  Eingang -> Bescheid within 3 months
                                            @start -> @end innerhalb 90 Tage

``FROM``/``TO`` are activity names, ``@start`` the case's first event and ``@end`` its
completion. ``DURATION`` is a number and a unit (``minutes``, ``hours``, ``days``, ``weeks``,
``months``, ``years``; German ``Minuten``, ``Stunden``, ``Tage``, ``Wochen``, ``Monate``,
``Jahre``) or ISO 8601 (``P3M``, ``P90D``, ``PT36H``). Months and years are calendar months
(31 January + 1 month = 28/29 February), computed in the log's time zone.

A case is subject to the rule from its first ``FROM`` event (t0); the deadline is t0 + DURATION.
Its outcome: ``met`` (first ``TO`` at or after t0 is at or before the deadline), ``breached``
(that ``TO`` came later), ``overdue`` (no ``TO`` yet and the deadline has passed at
``as_of``, by default the log's last event), ``open`` (no ``TO`` yet, deadline not passed).
The breach rate is (breached + overdue) / (met + breached + overdue).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from datenlabor.errors import BadInput
from datenlabor.procedures.kpis import check_freq, segment_sql
from datenlabor.procedures.log import Result
from datenlabor.query.connection import quote_literal

if TYPE_CHECKING:
    from datenlabor.procedures.log import ProcedureLog

CASE_START, CASE_END = "@start", "@end"

_UNITS = {
    "minute": "minutes", "minutes": "minutes", "min": "minutes", "minute(n)": "minutes",
    "minuten": "minutes",
    "hour": "hours", "hours": "hours", "h": "hours", "stunde": "hours", "stunden": "hours",
    "day": "days", "days": "days", "d": "days", "tag": "days", "tage": "days", "tagen": "days",
    "week": "weeks", "weeks": "weeks", "woche": "weeks", "wochen": "weeks",
    "month": "months", "months": "months", "monat": "months", "monate": "months",
    "monaten": "months",
    "year": "years", "years": "years", "jahr": "years", "jahre": "years", "jahren": "years",
}  # fmt: skip
_ISO = re.compile(
    r"^P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?)?$"
)


def parse_duration(text: str) -> dict[str, int]:
    """``"3 months"`` -> ``{"months": 3}``; ISO 8601 ``"P1M15D"`` -> months 1, days 15."""
    t = text.strip()
    m = _ISO.match(t.upper())
    if m and t.upper() != "P" and any(m.groupdict().values()):
        return {k: int(v) for k, v in m.groupdict().items() if v}
    m = re.fullmatch(r"(\d+)\s*([A-Za-zäöüÄÖÜ()]+)", t)
    if not m or m.group(2).lower() not in _UNITS:
        raise BadInput(
            f"cannot read duration {text!r}: use e.g. '3 months', '90 days', '6 Wochen' or "
            "ISO 8601 'P3M'",
            column="within",
        )
    return {_UNITS[m.group(2).lower()]: int(m.group(1))}


@dataclass(frozen=True)
class DeadlineRule:
    """``from_activity`` -> ``to_activity`` within ``within`` (see module doc)."""

    from_activity: str
    to_activity: str
    within: str
    name: str | None = None

    def __post_init__(self) -> None:
        if not self.from_activity or not self.to_activity:
            raise BadInput("a deadline rule needs a FROM and a TO activity", column="rule")
        parse_duration(self.within)

    @classmethod
    def parse(cls, text: str, name: str | None = None) -> DeadlineRule:
        m = re.fullmatch(r"\s*(.+?)\s*->\s*(.+?)\s+(?:within|innerhalb)\s+(.+?)\s*", text)
        if not m:
            raise BadInput(
                f"cannot read deadline rule {text!r}: write 'FROM -> TO within 3 months'",
                column="rule",
            )
        return cls(m.group(1), m.group(2), m.group(3), name=name)

    def interval_sql(self) -> str:
        parts = parse_duration(self.within)
        return " + ".join(f"INTERVAL {n} {unit[:-1].upper()}" for unit, n in parts.items())

    def __str__(self) -> str:
        return f"{self.from_activity} -> {self.to_activity} within {self.within}"


def check_deadline(
    log: ProcedureLog,
    rule: DeadlineRule | str,
    *,
    by: str | None = None,
    freq: str | None = None,
    as_of: datetime | None = None,
) -> Result:
    """Outcomes of ``rule`` per segment (``by``) and/or period of t0 (``freq``).

    Columns: [period], [segment], cases, met, breached, overdue, open, breach_rate,
    median_s (time from FROM to TO where reached). ``totals`` has the same over all cases.
    """
    if isinstance(rule, str):
        rule = DeadlineRule.parse(rule)
    cases = log.ensure_cases()
    if rule.from_activity == CASE_START:
        t0 = f"SELECT case_no, start AS t0 FROM {cases}"
    else:
        t0 = (
            "SELECT case_no, min(timestamp) AS t0 FROM ev WHERE activity = "
            f"{quote_literal(rule.from_activity)} GROUP BY case_no"
        )
    if rule.to_activity == CASE_END:
        t1 = (
            f"SELECT d.case_no, c.completed_at AS t1 FROM d JOIN {cases} c USING (case_no) "
            "WHERE c.completed_at >= d.t0"
        )
    else:
        t1 = (
            "SELECT d.case_no, min(e.timestamp) AS t1 FROM d JOIN ev e ON e.case_no = d.case_no "
            f"AND e.activity = {quote_literal(rule.to_activity)} AND e.timestamp >= d.t0 "
            "GROUP BY d.case_no"
        )
    now = (
        f"CAST({quote_literal(as_of.isoformat(sep=' '))} AS TIMESTAMPTZ)"
        if as_of is not None
        else "(SELECT max(timestamp) FROM src)"
    )
    keys: list[str] = []  # (name, SQL over r and seg)
    joins = ""
    if freq is not None:
        f = quote_literal(check_freq(freq))
        keys.append(f"CAST(date_trunc({f}, r.t0) AS DATE) AS period")
    if by is not None:
        keys.append("seg.segment AS segment")
        joins = f" LEFT JOIN ({segment_sql(log, by)}) seg USING (case_no)"
    base = f"""
        WITH d AS (SELECT case_no, t0, t0 + {rule.interval_sql()} AS due FROM ({t0})),
        b AS ({t1}),
        r AS (SELECT d.case_no, d.t0, d.due, b.t1,
                     CASE WHEN b.t1 IS NOT NULL AND b.t1 <= d.due THEN 'met'
                          WHEN b.t1 IS NOT NULL THEN 'breached'
                          WHEN d.due < {now} THEN 'overdue' ELSE 'open' END AS status
              FROM d LEFT JOIN b USING (case_no))
    """
    measures = """count(*) AS cases,
        count(*) FILTER (WHERE status = 'met') AS met,
        count(*) FILTER (WHERE status = 'breached') AS breached,
        count(*) FILTER (WHERE status = 'overdue') AS overdue,
        count(*) FILTER (WHERE status = 'open') AS open,
        count(*) FILTER (WHERE status IN ('breached', 'overdue'))
            / nullif(count(*) FILTER (WHERE status <> 'open'), 0) AS breach_rate,
        median((epoch_us(t1) - epoch_us(t0)) / 1e6) AS median_s"""
    names = ["cases", "met", "breached", "overdue", "open", "breach_rate", "median_s"]
    if keys:
        # One query for the groups and the totals (the base joins over the events are the
        # expensive part): the grouping set () is the totals row, sorted first.
        cols = ", ".join(k.rsplit(" AS ", 1)[1] for k in keys)
        positions = ", ".join(str(i + 1) for i in range(len(keys)))
        sql = (
            f"{base} SELECT {cols}, {measures}, grouping_id({cols}) AS __total "
            f"FROM (SELECT r.*, {', '.join(keys)} FROM r{joins}) "
            f"GROUP BY GROUPING SETS ((), ({cols})) ORDER BY __total DESC, {positions}"
        )
        table = log.arrow(sql)
        total = [table.column(n)[0].as_py() for n in names]
        table = table.slice(1).drop_columns(["__total"])
        result = Result("deadline", table, log.provenance, dict(zip(names, total, strict=True)))
    else:  # the totals are the result's only row
        result = log.result("deadline", f"{base} SELECT {measures} FROM r")
        result.totals.update(result.rows()[0])
    result.totals["rule"] = str(rule)
    if rule.name:
        result.totals["name"] = rule.name
    return result


def breaching_cases(log: ProcedureLog, rule: DeadlineRule | str, limit: int = 1000) -> Result:
    """The cases behind a breach count (drill-down): breached and overdue, latest first."""
    if isinstance(rule, str):
        rule = DeadlineRule.parse(rule)
    cases = log.ensure_cases()
    t0 = (
        f"SELECT case_no, start AS t0 FROM {cases}"
        if rule.from_activity == CASE_START
        else "SELECT case_no, min(timestamp) AS t0 FROM ev WHERE activity = "
        f"{quote_literal(rule.from_activity)} GROUP BY case_no"
    )
    if rule.to_activity == CASE_END:
        t1 = f"SELECT case_no, completed_at AS t1 FROM {cases}"
    else:
        t1 = (
            "SELECT case_no, timestamp AS t1 FROM ev WHERE activity = "
            f"{quote_literal(rule.to_activity)}"
        )
    sql = f"""
        WITH d AS (SELECT case_no, t0, t0 + {rule.interval_sql()} AS due FROM ({t0})),
        r AS (SELECT d.case_no, d.t0, d.due, min(b.t1) AS t1 FROM d
              LEFT JOIN ({t1}) b ON b.case_no = d.case_no AND b.t1 >= d.t0 GROUP BY ALL)
        , page AS (
            SELECT case_no, t0 AS "from", due, t1 AS "to",
               (epoch_us(coalesce(t1, (SELECT max(timestamp) FROM src))) - epoch_us(due)) / 1e6
               AS late_s
            FROM r WHERE coalesce(t1, (SELECT max(timestamp) FROM src)) > due
            ORDER BY late_s DESC, case_no LIMIT {int(limit)})
        SELECT i.case_id, page.* FROM page JOIN ({log.case_ids_sql("page")}) i USING (case_no)
        ORDER BY late_s DESC, case_no
    """
    return log.result("deadline_breaches", sql, rule=str(rule))
