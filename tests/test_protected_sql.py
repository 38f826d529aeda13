"""Aggregates over confidential datasets answered from the cells of their protected table.

The rewrite is checked against the truth: over a table of *all* cells and totals (nothing
suppressed), the rewritten query must give exactly what the original query gives over the
microdata, for every supported form.
"""

from __future__ import annotations

import duckdb
import pytest

from datenlabor.errors import BadInput
from datenlabor.query.protected_sql import ProtectedTable, rewrite
from datenlabor.query.sandbox import check_select

MICRODATA = """
CREATE TABLE micro AS
SELECT
    ['05111', '05112', '05113', '09162'][1 + (i * 7) % 4] AS kreis,
    ['2024-01', '2024-02', '2024-03'][1 + (i * 5) % 3] AS monat,
    ['A', 'B'][1 + (i * 3) % 2] AS art,
    (i % 17) * 10.5 AS betrag
FROM range(400) t(i)
"""

# Every cell and every total of the three dimensions, as the protected table holds them.
CELLS = """
CREATE TABLE antraege AS
SELECT coalesce(kreis, 'Insgesamt') AS kreis, coalesce(monat, 'Insgesamt') AS monat,
       coalesce(art, 'Insgesamt') AS art, count(*) AS n, sum(betrag) AS betrag, '' AS status
FROM micro GROUP BY CUBE (kreis, monat, art)
"""

TABLE = ProtectedTable(
    "antraege",
    ("kreis", "monat", "art"),
    ("betrag",),
    {
        "kreis": ["05111", "05112", "05113", "09162"],
        "monat": ["2024-01", "2024-02", "2024-03"],
        "art": ["A", "B"],
    },
)


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.execute(MICRODATA)
    c.execute(CELLS)
    return c


def _rows(con: duckdb.DuckDBPyConnection, sql: str, drop_status: bool = False) -> list[tuple]:
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    rows = cur.fetchall()
    if drop_status and names[-1] == "status":
        rows = [r[:-1] for r in rows]
    return sorted(rows, key=repr)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT kreis, COUNT(*) AS faelle FROM {t} GROUP BY kreis",
        "SELECT count(*) FROM {t}",
        "SELECT kreis, monat, count(*), sum(betrag) FROM {t} GROUP BY kreis, monat",
        "SELECT kreis, count(*) FROM {t} WHERE art = 'A' GROUP BY kreis",
        "SELECT kreis, count(*) FROM {t} WHERE 'B' = art AND monat = '2024-02' GROUP BY kreis",
        "SELECT kreis, sum(betrag) s FROM {t} WHERE kreis IN ('05111', '09162') GROUP BY kreis",
        "SELECT art, count(*) c FROM {t} GROUP BY art HAVING count(*) > 150 ORDER BY c DESC",
        "SELECT kreis, monat, art, count(*) FROM {t} GROUP BY kreis, monat, art",
        "SELECT monat, art, count(*) FROM {t} GROUP BY 1, 2 ORDER BY 3",
        "SELECT x.kreis, x.c FROM (SELECT kreis, count(*) c FROM {t} GROUP BY kreis) x",
        "WITH m AS (SELECT monat, sum(betrag) b FROM {t} GROUP BY monat) SELECT * FROM m",
    ],
)
def test_rewritten_aggregate_equals_the_microdata_aggregate(
    con: duckdb.DuckDBPyConnection, query: str
) -> None:
    truth = _rows(con, query.format(t="micro"))
    checked = check_select(query.format(t="antraege"))
    answered = rewrite(checked.sql, {"antraege": TABLE})
    assert answered != checked.sql
    assert _rows(con, answered, drop_status=True) == truth


def test_the_answer_carries_the_status_column(con: duckdb.DuckDBPyConnection) -> None:
    sql = rewrite("SELECT kreis, count(*) FROM antraege GROUP BY kreis", {"antraege": TABLE})
    cur = con.execute(sql)
    assert [d[0] for d in cur.description] == ["kreis", "count(*)", "status"]


def test_reading_cells_is_left_alone() -> None:
    for sql in (
        "SELECT * FROM antraege WHERE status = 'primary'",
        "SELECT sum(n) FROM (SELECT * FROM antraege WHERE art = 'A') q",
        "SELECT count(*) FROM other GROUP BY x",
    ):
        assert rewrite(sql, {"antraege": TABLE}) == sql


def test_a_cte_named_like_the_dataset_is_not_the_dataset() -> None:
    sql = "WITH antraege AS (SELECT 1 AS x) SELECT count(*) FROM antraege"
    assert rewrite(sql, {"antraege": TABLE}) == sql


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("SELECT avg(betrag) FROM antraege", "AVG(betrag) cannot be answered"),
        ("SELECT kreis, count(*) FROM antraege WHERE betrag > 5 GROUP BY kreis", "WHERE may only"),
        ("SELECT count(*) FROM antraege WHERE kreis IN ('05111', '05112')", "one code"),
        ("SELECT betrag, count(*) FROM antraege GROUP BY betrag", "GROUP BY may name only"),
        ("SELECT kreis, count(*) FROM antraege GROUP BY ROLLUP (kreis)", "already holds every total"),
        ("SELECT a.kreis, count(*) FROM antraege a JOIN o ON a.kreis = o.k GROUP BY 1", "joined"),
        ("SELECT monat, count(*) FROM antraege GROUP BY kreis", "neither grouped"),
        ("SELECT count(DISTINCT art) FROM antraege", "cannot be answered"),
        ("SELECT kreis, count(*) FROM antraege WHERE kreis LIKE '05%' GROUP BY kreis", "WHERE"),
    ],
)
def test_what_the_cells_cannot_answer_is_refused_with_the_form_that_works(
    query: str, says: str
) -> None:
    with pytest.raises(BadInput, match="confidential") as info:
        rewrite(query, {"antraege": TABLE})
    assert says in str(info.value)
