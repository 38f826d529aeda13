"""Variants: the distinct activity sequences of the cases, with frequency and duration."""

from __future__ import annotations

from typing import TYPE_CHECKING

from datenlabor.procedures.log import Result

if TYPE_CHECKING:
    from datenlabor.procedures.log import ProcedureLog



def variants(log: ProcedureLog, limit: int | None = None) -> Result:
    """Columns: rank, activities (list), length, cases, share, median_s, mean_s (throughput
    time of the variant's cases); most frequent first, ties by the sequence itself.

    ``totals`` holds the number of variants and cases.
    """
    case_variants = log.ensure_variants()
    lim = f" LIMIT {int(limit)}" if limit is not None else ""
    # Grouped by variant number, named afterwards.
    sql = f"""
        WITH g0 AS (
            SELECT variant, count(*) AS cases, median(duration_s) AS median_s,
                   mean(duration_s) AS mean_s
            FROM {case_variants} GROUP BY variant),
        g AS (SELECT list_transform(codes, x -> names[x + 1]) AS activities, cases, median_s,
                     mean_s
              FROM g0 JOIN variant_codes USING (variant),
                   (SELECT list(name ORDER BY code) AS names FROM activity_names))
        SELECT row_number() OVER (ORDER BY cases DESC, activities) AS rank, activities,
               len(activities) AS length, cases, cases / sum(cases) OVER () AS share,
               median_s, mean_s
        FROM g ORDER BY rank{lim}
    """
    result = log.result("variants", sql)
    row = log.con.execute(
        f"SELECT count(DISTINCT variant), count(*) FROM {case_variants}"
    ).fetchone()
    assert row is not None
    result.totals.update(variants=int(row[0]), cases=int(row[1]))
    return result


def variant_count(log: ProcedureLog) -> int:
    row = log.con.execute(f"SELECT count(*) FROM {log.ensure_variants()}").fetchone()
    if row and row[0] == 0:
        return 0
    row = log.con.execute("SELECT count(*) FROM variant_codes").fetchone()
    return int(row[0]) if row else 0
