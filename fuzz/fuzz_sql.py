"""Fuzz target: the SQL sandbox's validator (sqlglot and DuckDB parse trees) and row filters."""

from __future__ import annotations

import harness

TARGET = "sql"
INSTRUMENT = ("datenlabor", "sqlglot")
MAX_LEN = 2048
QUERIES = [
    'SELECT "Kreisschlüssel", sum("Anträge") FROM antraege GROUP BY 1',
    'SELECT count(*) FROM "antraege@1" WHERE jahr >= 2020',
    "WITH t AS (SELECT * FROM a) SELECT * FROM t JOIN b USING (ags) ORDER BY 1 LIMIT 10",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT 1; DROP TABLE x",
    "ATTACH 'x.db' AS y",
    "PIVOT a ON jahr USING sum(n)",
    "SELECT * FROM a UNION ALL SELECT * FROM b EXCEPT SELECT * FROM c",
    "SUMMARIZE antraege",
    "SELECT getenv('HOME'), current_setting('threads')",
    "FROM antraege SELECT ags, list(n) FILTER (WHERE n > 2) QUALIFY row_number() OVER () < 3",
]
PREDICATES = ["ags LIKE '05%'", "jahr >= 2020 AND status IN ('offen', 'neu')", "n IS NULL"]


def seeds() -> harness.Iterator[harness.Seed]:
    for i, q in enumerate(QUERIES):
        yield f"q{i}.sql", b"\x00" + q.encode()
    for i, p in enumerate(PREDICATES):
        yield f"p{i}.sql", b"\x01" + p.encode()
    yield from harness.regressions(TARGET)


def prepare() -> None:
    import datenlabor.query.sandbox  # noqa: F401


def one_input(data: bytes) -> None:
    from datenlabor.query.sandbox import _check_select, check_predicate

    if not data:
        return
    text = data[1:].decode("utf-8", "replace")
    if data[0] & 1:
        check_predicate(text, ["ags", "jahr", "status", "n"])
    else:
        _check_select.__wrapped__(text)  # uncached: every input is really checked


if __name__ == "__main__":
    harness.main(__name__)
