"""The SQL sandbox: which queries and row filters pass, and the row- and time-limited runner."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datenlabor.errors import BadInput
from datenlabor.query.connection import connect
from datenlabor.query.sandbox import (
    CheckedQuery,
    TableRef,
    check_predicate,
    check_select,
    run_limited,
)

ONLY_QUERIES = "only read-only queries"


def names(sql: str) -> list[str]:
    return [t.name for t in check_select(sql).tables]


def rejected(sql: str) -> str:
    with pytest.raises(BadInput) as info:
        check_select(sql)
    return str(info.value)


# --- accepted queries --------------------------------------------------------------------------


def test_join_of_two_datasets_reports_both_with_slug_and_version() -> None:
    checked = check_select(
        'SELECT a.ags, b.n FROM bevoelkerung a JOIN "arbeitsmarkt@2" b USING (ags)'
    )
    assert checked == CheckedQuery(
        sql='SELECT a.ags, b.n FROM bevoelkerung a JOIN "arbeitsmarkt@2" b USING (ags)',
        tables=(
            TableRef("bevoelkerung", "bevoelkerung", None),
            TableRef("arbeitsmarkt@2", "arbeitsmarkt", 2),
        ),
    )


def test_original_sql_is_kept_as_written() -> None:
    sql = "select  *  from bev -- all rows\n"
    assert check_select(sql).sql == sql


def test_cte_name_is_not_a_table_but_what_it_reads_is() -> None:
    assert names("WITH k AS (SELECT * FROM bev WHERE jahr = 2020) SELECT * FROM k") == ["bev"]


def test_cte_scoping_follows_duckdb() -> None:
    # A CTE does not see itself (without RECURSIVE) or later CTEs: those names are tables.
    assert names("WITH bev AS (SELECT * FROM bev) SELECT * FROM bev") == ["bev"]
    assert names("WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a, b") == ["b"]
    # A CTE defined in a subquery does not hide a table of the same name outside it.
    assert names("SELECT * FROM k, (WITH k AS (SELECT 1) SELECT * FROM k) s") == ["k"]
    recursive = (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) "
        "SELECT * FROM r"
    )
    assert names(recursive) == []


def test_quoted_version_and_hyphenated_slug() -> None:
    checked = check_select('SELECT * FROM "kreis-daten" JOIN "kreis-daten@12" USING (ags)')
    assert checked.tables == (
        TableRef("kreis-daten", "kreis-daten", None),
        TableRef("kreis-daten@12", "kreis-daten", 12),
    )


def test_names_are_lower_case_unique_and_in_order_of_appearance() -> None:
    # DuckDB resolves Bev, BEV and "BEV" to the same table bev.
    sql = 'SELECT (SELECT max(n) FROM Zweite) FROM "BEV@3", Bev, bev x, "BEV@3" WHERE 1 = 1'
    assert names(sql) == ["zweite", "bev@3", "bev"]


def test_subqueries_in_where_report_inner_tables() -> None:
    sql = (
        "SELECT * FROM bev WHERE ags IN (SELECT ags FROM kreise) "
        "AND EXISTS (SELECT 1 FROM laender WHERE laender.id = bev.land)"
    )
    assert names(sql) == ["bev", "kreise", "laender"]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT land, sum(n) AS n FROM bev GROUP BY land HAVING sum(n) > 10 ORDER BY n DESC",
        "SELECT ags, row_number() OVER (PARTITION BY land ORDER BY n) AS r FROM bev",
        "SELECT ags, rank() OVER w FROM bev WINDOW w AS (ORDER BY n) QUALIFY rank() OVER w < 3",
        "SELECT ags FROM bev UNION ALL SELECT ags FROM bev",
        "SELECT ags FROM bev INTERSECT SELECT ags FROM bev EXCEPT SELECT ags FROM bev",
        "SELECT * EXCLUDE (n) REPLACE (upper(ags) AS ags) FROM bev",
        "FROM bev",
        "FROM bev SELECT ags WHERE n > 1",
        "SELECT * FROM bev PIVOT (sum(n) FOR land IN ('BY', 'NW'))",
        "PIVOT bev ON land USING sum(n)",
        "UNPIVOT bev ON n INTO NAME k VALUE v",
        "SUMMARIZE bev",
        "SUMMARIZE SELECT n FROM bev",
        "SELECT * FROM bev, unnest([1, 2]) AS u(x)",
        "SELECT * FROM bev JOIN generate_series(2000, 2020) AS g(jahr) USING (jahr)",
        "SELECT * FROM bev UNION BY NAME SELECT * FROM bev",
        "SELECT list_transform([1, 2], x -> x + 1), {'a': 1} FROM bev",
        "SELECT 'no; second statement' AS text FROM bev",
    ],
)
def test_common_analyses_are_accepted(sql: str) -> None:
    assert names(sql) == ["bev"]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM range(10)",
        "SELECT * FROM range(0, 10, 2) AS r(x)",
        "VALUES (1, 'a'), (2, 'b')",
        "SELECT 1 + 1",
        "(SELECT 1) UNION (SELECT 2)",
    ],
)
def test_queries_without_datasets_need_no_tables(sql: str) -> None:
    assert check_select(sql).tables == ()


# --- rejected queries --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "word"),
    [
        ("INSERT INTO bev VALUES (1)", "INSERT"),
        ("UPDATE bev SET n = 0", "UPDATE"),
        ("DELETE FROM bev", "DELETE"),
        ("MERGE INTO bev USING x ON bev.a = x.a WHEN MATCHED THEN DELETE", "MERGE"),
        ("CREATE TABLE x AS SELECT 1", "CREATE"),
        ("CREATE MACRO m(x) AS x", "CREATE"),
        ("CREATE SECRET s (TYPE s3, KEY_ID 'k')", "CREATE"),
        ("DROP TABLE bev", "DROP"),
        ("ALTER TABLE bev ADD COLUMN y INT", "ALTER"),
        ("ATTACH 'x.db'", "ATTACH"),
        ("DETACH x", "DETACH"),
        ("INSTALL httpfs", "INSTALL"),
        ("LOAD httpfs", "LOAD"),
        ("COPY (SELECT 1) TO '/tmp/x'", "COPY"),
        ("COPY bev FROM '/tmp/x.csv'", "COPY"),
        ("EXPORT DATABASE '/tmp/x'", "EXPORT"),
        ("IMPORT DATABASE '/tmp/x'", "IMPORT"),
        ("PRAGMA database_list", "PRAGMA"),
        ("SET enable_external_access = true", "SET"),
        ("SET VARIABLE x = 1", "SET"),
        ("RESET threads", "RESET"),
        ("CALL duckdb_settings()", "CALL"),
        ("USE other", "USE"),
        ("CHECKPOINT", "CHECKPOINT"),
        ("FORCE CHECKPOINT", "FORCE"),
        ("VACUUM", "VACUUM"),
        ("EXPLAIN ANALYZE SELECT 1", "EXPLAIN"),
        ("EXPLAIN SELECT 1", "EXPLAIN"),
        ("DESCRIBE bev", "DESCRIBE"),
        ("SHOW TABLES", "SHOW"),
        ("BEGIN TRANSACTION", "BEGIN"),
        ("COMMIT", "COMMIT"),
        ("ROLLBACK", "ROLLBACK"),
        ("PREPARE p AS SELECT 1", "PREPARE"),
        ("TRUNCATE bev", "TRUNCATE"),
        ("WITH x AS (SELECT 1) INSERT INTO bev SELECT * FROM x", "INSERT"),
        ("/* looks harmless */ DROP TABLE bev", "DROP"),
        ("TABLE bev", "TABLE"),
    ],
)
def test_statements_other_than_queries_are_rejected_by_name(sql: str, word: str) -> None:
    message = rejected(sql)
    assert ONLY_QUERIES in message
    assert message.endswith(f"not {word}")


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("WITH x AS (DELETE FROM bev RETURNING *) SELECT * FROM x", "DELETE"),
        ("WITH x AS (INSERT INTO bev VALUES (1) RETURNING *) SELECT * FROM x", "INSERT"),
        ("WITH x AS (UPDATE bev SET n = 0 RETURNING *) SELECT * FROM x", "UPDATE"),
        ("SELECT 1 INTO t", "INTO"),
        ("SELECT * FROM bev FOR UPDATE", "LOCK"),
    ],
)
def test_writes_hidden_inside_a_query_are_rejected(sql: str, kind: str) -> None:
    message = rejected(sql)
    assert message.startswith(f"{kind} is not allowed inside a query")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; DROP TABLE x",
        "SELECT 1 /* ; */ ; -- comment\n DROP TABLE x",
        "SELECT 1 -- comment\n; DROP TABLE x",
        "SELECT 1;\nSELECT 2",
    ],
)
def test_several_statements_are_rejected(sql: str) -> None:
    assert rejected(sql) == "expected exactly one SQL statement, found 2"


@pytest.mark.parametrize("sql", ["SELECT 1 /* ; DROP TABLE x */", "SELECT 1 -- ; DROP TABLE x"])
def test_a_second_statement_inside_a_comment_is_just_a_comment(sql: str) -> None:
    assert check_select(sql).tables == ()


@pytest.mark.parametrize("sql", ["", "   ", "-- only a comment", ";", "/* x */ ;"])
def test_empty_sql_is_rejected(sql: str) -> None:
    assert "empty" in rejected(sql)


@pytest.mark.parametrize(
    ("sql", "function"),
    [
        ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
        ("SELECT * FROM read_csv_auto('/etc/passwd')", "read_csv_auto"),
        ("SELECT * FROM read_parquet('s3://bucket/x.parquet')", "read_parquet"),
        ("SELECT * FROM parquet_scan('x.parquet')", "parquet_scan"),
        ("SELECT * FROM read_json_auto('x.json')", "read_json_auto"),
        ("SELECT * FROM read_text('/etc/passwd')", "read_text"),
        ("SELECT * FROM read_blob('/etc/passwd')", "read_blob"),
        ("SELECT * FROM glob('/home/*')", "glob"),
        ("SELECT * FROM sniff_csv('x.csv')", "sniff_csv"),
        ("SELECT * FROM query('SELECT 1')", "query"),
        ("SELECT * FROM query_table('x')", "query_table"),
        ("SELECT * FROM iceberg_scan('x')", "iceberg_scan"),
        ("SELECT * FROM delta_scan('x')", "delta_scan"),
        ("SELECT * FROM sqlite_scan('x.db', 't')", "sqlite_scan"),
        ("SELECT * FROM postgres_scan('dsn', 'public', 't')", "postgres_scan"),
        ("SELECT * FROM duckdb_settings()", "duckdb_settings"),
        ("SELECT * FROM duckdb_secrets()", "duckdb_secrets"),
        ("SELECT * FROM pragma_table_info('bev')", "pragma_table_info"),
        ("SELECT * FROM bev JOIN LATERAL read_csv('x') ON true", "read_csv"),
        ("SELECT * FROM bev WHERE ags IN (FROM read_csv('x'))", "read_csv"),
        ("SELECT getenv('HOME')", "getenv"),
        ("SELECT current_setting('threads')", "current_setting"),
        ("SELECT getvariable('x')", "getvariable"),
        ("SELECT GETENV('HOME')", "getenv"),
        ("SELECT \"getenv\"('HOME')", "getenv"),
        ("SELECT list_transform(['HOME'], x -> getenv(x))", "getenv"),
        ("SELECT {'home': getenv('HOME')}", "getenv"),
        ("SELECT load_extension('x')", "load_extension"),
        ("SELECT json_execute_serialized_sql('x')", "json_execute_serialized_sql"),
    ],
)
def test_functions_reaching_outside_the_query_are_rejected(sql: str, function: str) -> None:
    message = rejected(sql)
    assert message.startswith(f"function {function}() is not allowed")


@pytest.mark.parametrize("function", ["sequence", "test_all_types", "checkpoint_all", "summary"])
def test_table_functions_outside_the_allowlist_are_rejected(function: str) -> None:
    message = rejected(f"SELECT * FROM {function}(1)")
    assert message.startswith(f"table function {function}() is not allowed")
    assert "range()" in message


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM '/etc/passwd'",
        "FROM 'x.csv'",
        "SELECT * FROM bev JOIN 'https://example.org/x.parquet' USING (ags)",
        "PIVOT '/etc/passwd' ON a USING count(*)",
        "SUMMARIZE FROM 'x.csv'",
    ],
)
def test_strings_used_as_tables_are_rejected(sql: str) -> None:
    assert "is a string, not a table: files and URLs cannot be read" in rejected(sql)


def test_summarize_of_a_file_is_rejected() -> None:
    assert rejected("SUMMARIZE '/etc/passwd'") == "SUMMARIZE needs a dataset name or a query"


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM information_schema.tables",
        "SELECT * FROM pg_catalog.pg_settings",
        "SELECT * FROM main.bev",
        "SELECT * FROM system.main.bev",
        "SELECT * FROM temp.bev",
        "SELECT * FROM memory.main.bev",
        "SELECT * FROM other_db.bev",
        "SELECT * FROM bev WHERE ags IN (SELECT ags FROM main.kreise)",
    ],
)
def test_qualified_table_names_are_rejected(sql: str) -> None:
    assert "qualified table name" in rejected(sql)


@pytest.mark.parametrize(
    "table",
    ["pg_settings", "duckdb_tables", "duckdb_logs", "sqlite_master", "pragma_database_list"],
)
def test_duckdb_catalog_views_are_not_datasets(table: str) -> None:
    assert (
        rejected(f"SELECT * FROM {table}")
        == f"line 1: {table} is a DuckDB catalog view, not a dataset"
    )


@pytest.mark.parametrize("table", ['"x.csv"', '"/etc/passwd"', '"bev@x"', '"bev@"', '"9lives"'])
def test_names_that_are_no_dataset_slug_are_rejected(table: str) -> None:
    message = rejected(f"SELECT * FROM {table}")
    assert f"unknown table name {table}" in message
    assert "bevoelkerung@3" in message


def test_syntax_errors_name_line_and_column() -> None:
    with pytest.raises(BadInput) as info:
        check_select("SELECT *\nFROM bev\nWHERE (n =")
    assert info.value.line == 3
    assert "SQL syntax error (column" in info.value.reason


def test_sql_that_only_duckdb_cannot_parse_is_a_syntax_error() -> None:
    # sqlglot accepts the method-call form, DuckDB 1.5 does not: DuckDB has the last word.
    assert rejected("SELECT 'HOME'.upper()").startswith("SQL syntax error: Parser Error")


def test_deeply_nested_sql_is_rejected_without_crashing() -> None:
    assert rejected("SELECT " + "(" * 5000 + "1" + ")" * 5000) == "the query is nested too deeply"


# "No accepted query calls a denied function": every denied name in every position is rejected.
DENIED = ["read_csv", "read_text", "getenv", "current_setting", "query", "query_table", "glob",
          "duckdb_settings", "pragma_version", "parquet_metadata", "sqlite_scan", "getvariable"]  # fmt: skip
POSITIONS = [
    "SELECT {f}('x')",
    "SELECT * FROM {f}('x')",
    "SELECT * FROM bev, {f}('x') AS t",
    "SELECT * FROM bev WHERE ags IN (SELECT {f}('x'))",
    "WITH c AS (SELECT {F}('x') AS v) SELECT * FROM c",
    "SELECT list_transform([1], x -> {f}('x'))",
    "SELECT * FROM (FROM {f}('x'))",
    "SUMMARIZE SELECT {f}('x')",
    "PIVOT (SELECT {f}('x') AS a) ON a",
    "SELECT count(*) FILTER (WHERE {f}('x') IS NULL) FROM bev",
    "SELECT * FROM bev ORDER BY {f}('x')",
    "SELECT \"{f}\"('x')",
]


@pytest.mark.parametrize("function", DENIED)
@pytest.mark.parametrize("template", POSITIONS)
def test_denied_functions_are_rejected_in_every_position(template: str, function: str) -> None:
    with pytest.raises(BadInput, match="is not allowed"):
        check_select(template.format(f=function, F=function.upper()))


# Generated queries: (SQL, whether it contains something forbidden) built from the pieces below.
Piece = tuple[str, bool]
SAFE_FUNCTIONS = ["upper", "abs", "coalesce", "length", "round", "md5"]
DENIED_FUNCTIONS = ["getenv", "read_text", "current_setting", "query", "glob", "duckdb_functions",
                    "pragma_version", "parquet_metadata", "getvariable"]  # fmt: skip
SAFE_TABLES = ["bev", '"bev@2"', '"kreis-daten"', "range(3)", "unnest([1, 2])"]
BAD_TABLES = ["'x.csv'", "main.bev", "read_csv('x')", "duckdb_settings()", "pg_settings",
              "information_schema.tables", "sequence(1, 3)", '"/etc/passwd"']  # fmt: skip


def _expressions(children: st.SearchStrategy[Piece]) -> st.SearchStrategy[Piece]:
    functions = st.one_of(
        st.sampled_from(SAFE_FUNCTIONS).map(lambda f: (f, False)),
        st.sampled_from(DENIED_FUNCTIONS).map(lambda f: (f, True)),
    )
    return st.one_of(
        st.tuples(functions, children).map(lambda t: (f"{t[0][0]}({t[1][0]})", t[0][1] or t[1][1])),
        st.tuples(children, children).map(
            lambda t: (f"({t[0][0]} + {t[1][0]})", t[0][1] or t[1][1])
        ),
        children.map(lambda c: (f"list_transform([1], x -> {c[0]})", c[1])),
        st.tuples(children, _tables()).map(
            lambda t: (f"(SELECT {t[0][0]} FROM {t[1][0]})", t[0][1] or t[1][1])
        ),
    )


def _tables() -> st.SearchStrategy[Piece]:
    return st.one_of(
        st.sampled_from(SAFE_TABLES).map(lambda t: (t, False)),
        st.sampled_from(BAD_TABLES).map(lambda t: (t, True)),
    )


EXPRESSIONS = st.recursive(
    st.sampled_from(["n", "1", "'text'", "NULL"]).map(lambda e: (e, False)),
    _expressions,
    max_leaves=6,
)


@st.composite
def generated_queries(draw: st.DrawFn) -> Piece:
    select, where = draw(EXPRESSIONS), draw(EXPRESSIONS)
    first, second = draw(_tables()), draw(_tables())
    sql = (
        f"SELECT {select[0]} AS v FROM {first[0]} JOIN {second[0]} ON true WHERE {where[0]} IS NULL"
    )
    if draw(st.booleans()):
        sql = f"WITH c AS ({sql}) SELECT * FROM c"
    return sql, select[1] or where[1] or first[1] or second[1]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(generated_queries())
def test_a_query_is_accepted_exactly_when_it_contains_nothing_forbidden(query: Piece) -> None:
    sql, forbidden = query
    if forbidden:
        with pytest.raises(BadInput):
            check_select(sql)
    else:
        assert {t.name for t in check_select(sql).tables} <= {"bev", "bev@2", "kreis-daten"}


# --- row filters -------------------------------------------------------------------------------

COLUMNS = ["ags", "land", "jahr", "datum", "n"]


@pytest.mark.parametrize(
    ("predicate", "normalised"),
    [
        ("ags LIKE '05%'", "ags LIKE '05%'"),
        ("land = 'Bayern' AND jahr >= 2020", "land = 'Bayern' AND jahr >= 2020"),
        (
            "land IN ('Bayern', 'Hessen') OR NOT (n < 0)",
            "land IN ('Bayern', 'Hessen') OR NOT (n < 0)",
        ),
        ("jahr BETWEEN 2000 AND 2020", "jahr BETWEEN 2000 AND 2020"),
        ("land ILIKE 'bay%'", "land ILIKE 'bay%'"),
        ("ags IS NOT NULL", "NOT ags IS NULL"),
        ("n * 2 + 1 > 10 AND abs(n) % 2 = 0", "n * 2 + 1 > 10 AND ABS(n) % 2 = 0"),
        ("CAST(ags AS INTEGER) < 6000", "CAST(ags AS INT) < 6000"),
        ("substr(ags, 1, 2) = '05'", "SUBSTRING(ags, 1, 2) = '05'"),
        (
            "starts_with(ags, '05') OR prefix(ags, '06')",
            "STARTS_WITH(ags, '05') OR PREFIX(ags, '06')",
        ),
        ("year(datum) = 2020 AND month(datum) <= 6", "YEAR(datum) = 2020 AND MONTH(datum) <= 6"),
        ("lower(trim(land)) = 'bayern'", "LOWER(TRIM(land)) = 'bayern'"),
        ("coalesce(land, '') <> ''", "COALESCE(land, '') <> ''"),
        ("AGS like '05%'", "AGS LIKE '05%'"),
        ("ags = '05' -- only NRW", "ags = '05'"),
        ("ags = '05' /* */ OR ags = '06'", "ags = '05' OR ags = '06'"),
    ],
)
def test_row_filters_are_accepted_and_normalised(predicate: str, normalised: str) -> None:
    assert check_predicate(predicate, COLUMNS) == normalised


def test_normalised_row_filters_select_the_same_rows_in_duckdb() -> None:
    con = connect()
    con.execute(
        "CREATE TABLE t AS SELECT * FROM (VALUES "
        "('05111', 'NRW', 2019, DATE '2019-03-01', 5), ('09162', 'Bayern', 2021, DATE '2021-07-01', -2), "
        "(NULL, ' bayern ', 2020, DATE '2020-01-15', 8), ('06411', NULL, 2022, NULL, NULL)"
        ") v(ags, land, jahr, datum, n)"
    )
    predicates = [
        "ags IS NOT NULL AND land NOT LIKE 'N%'",
        "lower(trim(land)) = 'bayern' OR jahr NOT BETWEEN 2019 AND 2021",
        "coalesce(n, 0) * 2 >= 0 AND NOT starts_with(coalesce(ags, ''), '09')",
        "year(datum) = 2020 OR month(datum) = 7",
    ]
    for predicate in predicates:
        safe = check_predicate(predicate, COLUMNS)
        original = con.execute(f"SELECT * FROM t WHERE ({predicate}) ORDER BY jahr").fetchall()
        assert con.execute(f"SELECT * FROM t WHERE ({safe}) ORDER BY jahr").fetchall() == original
        assert original  # the filter selects something, so the comparison means something


def test_unknown_column_is_named_with_the_available_ones() -> None:
    with pytest.raises(BadInput) as info:
        check_predicate("kreis = 'x'", COLUMNS)
    assert info.value.column == "kreis"
    assert str(info.value) == (
        "column 'kreis': not a column of this dataset (available: ags, datum, jahr, land, n)"
    )


@pytest.mark.parametrize(
    ("predicate", "message"),
    [
        ("ags IN (SELECT ags FROM other)", "not allowed in a row filter"),
        ("EXISTS (SELECT 1)", "not allowed in a row filter"),
        ("n > (SELECT max(n) FROM other)", "not allowed in a row filter"),
        ("getenv('HOME') = 'x'", "function getenv() is not allowed in a row filter"),
        ("current_setting('threads') = '1'", "function current_setting() is not allowed"),
        ("strftime(datum, '%Y') = '2020'", "is not allowed in a row filter"),
        ("ags = '05'; DROP TABLE t", "';' is not allowed"),
        ("ags = '05')", "not a valid condition"),
        ("ags = '05') OR (1 = 1", "not a valid condition"),
        ("ags = '05' UNION SELECT 1", "not a valid condition"),
        ("t.ags = '05'", "plain column names"),
        ("ags = ?", "not allowed in a row filter"),
        ("ags = $1", "not allowed in a row filter"),
        ("ags = [1]", "not allowed in a row filter"),
        ("", "row filter is empty"),
        ("1", "must be a condition"),
        ("n + 1", "must be a condition"),
        ("ags = 'x", "not valid SQL"),
    ],
)
def test_row_filters_beyond_the_allowlist_are_rejected(predicate: str, message: str) -> None:
    with pytest.raises(BadInput, match=re.escape(message)):
        check_predicate(predicate, COLUMNS)


# --- run_limited -------------------------------------------------------------------------------

LONG_QUERY = "SELECT count(*) FROM range(100000000) a, range(100000000) b"


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect(threads=2)
    yield connection
    connection.close()


def test_result_is_cut_at_max_rows(con: duckdb.DuckDBPyConnection) -> None:
    result = run_limited(con, "SELECT * FROM range(100000)", max_rows=1000, timeout_s=10)
    assert result.truncated
    assert result.table.num_rows == 1000
    assert result.table.column("range").to_pylist() == list(range(1000))


def test_result_of_exactly_max_rows_is_not_truncated(con: duckdb.DuckDBPyConnection) -> None:
    result = run_limited(con, "SELECT * FROM range(1000)", max_rows=1000, timeout_s=10)
    assert not result.truncated
    assert result.table.num_rows == 1000
    assert result.elapsed_s >= 0


def test_empty_results_keep_their_columns(con: duckdb.DuckDBPyConnection) -> None:
    result = run_limited(con, "SELECT 1 AS a, 'x' AS b WHERE false", max_rows=10, timeout_s=10)
    assert (result.table.column_names, result.table.num_rows, result.truncated) == (
        ["a", "b"],
        0,
        False,
    )
    zero = run_limited(con, "SELECT * FROM range(5)", max_rows=0, timeout_s=10)
    assert (zero.table.num_rows, zero.truncated) == (0, True)


def test_huge_results_are_streamed_not_materialised(con: duckdb.DuckDBPyConnection) -> None:
    started = time.monotonic()
    result = run_limited(con, "SELECT * FROM range(10000000000)", max_rows=5, timeout_s=10)
    assert result.truncated and result.table.num_rows == 5
    assert time.monotonic() - started < 2


def test_parameters_are_bound(con: duckdb.DuckDBPyConnection) -> None:
    result = run_limited(con, "SELECT ?::INTEGER + 1 AS x", max_rows=5, timeout_s=10, params=[41])
    assert result.table.to_pylist() == [{"x": 42}]


def test_duckdb_errors_become_bad_input_with_their_first_line(
    con: duckdb.DuckDBPyConnection,
) -> None:
    with pytest.raises(BadInput) as info:
        run_limited(con, "SELECT * FROM missing_table", max_rows=5, timeout_s=10)
    assert str(info.value).startswith("query failed: Catalog Error: Table with name missing_table")
    assert "\n" not in str(info.value)


def test_pivot_runs_on_a_locked_connection(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE TABLE bev AS SELECT * FROM (VALUES ('BY', 1), ('NW', 2)) v(land, n)")
    con.execute("SET enable_external_access = false")
    sql = check_select("PIVOT bev ON land USING sum(n)").sql
    assert run_limited(con, sql, max_rows=5, timeout_s=10).table.to_pylist() == [{"BY": 1, "NW": 2}]


def test_long_query_stops_at_the_time_limit(con: duckdb.DuckDBPyConnection) -> None:
    started = time.monotonic()
    with pytest.raises(BadInput) as info:
        run_limited(con, LONG_QUERY, max_rows=10, timeout_s=0.5)
    assert time.monotonic() - started < 5
    assert str(info.value) == "query stopped: it ran longer than the time limit of 0.5 s"
    # The connection stays usable after the interrupt.
    assert run_limited(con, "SELECT 42 AS x", max_rows=1, timeout_s=5).table.to_pylist() == [
        {"x": 42}
    ]


def test_time_limit_also_stops_a_query_while_rows_are_streamed(
    con: duckdb.DuckDBPyConnection,
) -> None:
    # The filter reads both sides, so DuckDB cannot push it below the cross product: matches
    # trickle out of 10^11 combinations, far more than any machine gets through in 0.3 s.
    sql = (
        "SELECT a.range FROM range(100000000) a, range(1000) b"
        " WHERE (a.range * 1000 + b.range) % 1000000 = 0"
    )
    started = time.monotonic()
    with pytest.raises(BadInput, match=re.escape("time limit of 0.3 s")):
        run_limited(con, sql, max_rows=10**9, timeout_s=0.3)
    assert time.monotonic() - started < 5
    assert run_limited(con, "SELECT 1 AS x", max_rows=1, timeout_s=5).table.num_rows == 1


def test_a_tiny_time_limit_is_not_lost_before_the_query_starts(
    con: duckdb.DuckDBPyConnection,
) -> None:
    # DuckDB forgets an interrupt that arrives before a query starts; the runner repeats it.
    started = time.monotonic()
    with pytest.raises(BadInput, match="time limit"):
        run_limited(con, LONG_QUERY, max_rows=10, timeout_s=1e-6)
    assert time.monotonic() - started < 5


def test_queries_finishing_as_the_time_limit_fires_leave_the_connection_working(
    con: duckdb.DuckDBPyConnection,
) -> None:
    rng = random.Random(7)
    outcomes = set()
    for _ in range(150):
        try:
            result = run_limited(
                con,
                "SELECT sum(range) AS s FROM range(20000)",
                max_rows=1,
                timeout_s=rng.uniform(1e-4, 3e-3),
            )
        except BadInput as exc:
            assert "time limit" in str(exc)
            outcomes.add("stopped")
        else:
            assert result.table.to_pylist() == [{"s": 199990000}]
            outcomes.add("finished")
    for _ in range(3):  # no interrupt is left over for the next queries
        assert run_limited(con, "SELECT 7 AS x", max_rows=1, timeout_s=5).table.to_pylist() == [
            {"x": 7}
        ]


def test_invalid_limits_are_a_programming_error(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(ValueError):
        run_limited(con, "SELECT 1", max_rows=-1, timeout_s=1)
    with pytest.raises(ValueError):
        run_limited(con, "SELECT 1", max_rows=1, timeout_s=0)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM (TABLE _raw_0)",
        "WITH a AS (TABLE _cache_1) SELECT * FROM a",
        "WITH a AS (TABLE duckdb_settings) SELECT * FROM a",
        "SELECT * FROM bev, LATERAL (TABLE _raw_0)",
        "SELECT * FROM (WITH _raw_0 AS (SELECT 1) SELECT 1), (TABLE _raw_0)",
    ],
)
def test_constructs_sqlglot_misreads_are_checked_on_duckdbs_tree(sql: str) -> None:
    """DuckDB's `TABLE name` is no table to sqlglot; DuckDB's own parse tree catches it."""
    with pytest.raises(BadInput, match="table name"):
        check_select(sql)
