"""Quality facts from Parquet footers equal the same facts computed over the rows.

The report takes null counts, min/max and distinct-count bounds from the footers of the files
a version reads (``quality_report(..., files=...)``); these tests compute the same report
without the files (everything aggregated) and compare, on real GENESIS exports ingested into a
pool and on DuckDB-written files with NULLs, NaN, all-NULL row groups and several files.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import shared_file
from datenlabor.pool.quality import quality_report as report_of
from datenlabor.pool.quality import read_footers, render_text
from datenlabor.pool.schema import infer_table_schema

TODAY = dt.date(2025, 6, 30)


def view(con: duckdb.DuckDBPyConnection, files: list[str] | list[Path]) -> None:
    listed = ", ".join(f"'{f}'" for f in files)
    con.execute(f"CREATE OR REPLACE TEMP VIEW rows_v AS SELECT * FROM read_parquet([{listed}])")


def both(con, files, **kw) -> tuple[dict, dict]:
    """The report with footers and the report computed over the rows only."""
    schema = infer_table_schema(con, "rows_v")
    with_files = report_of(con, "rows_v", schema=schema, today=TODAY, files=files, **kw)
    direct = report_of(con, "rows_v", schema=schema, today=TODAY, **kw)
    return with_files, direct


def direct_facts(con, name: str) -> tuple[int, object, object]:
    c = '"' + name.replace('"', '""') + '"'
    row = con.execute(f"SELECT count(*) - count({c}), min({c}), max({c}) FROM rows_v").fetchone()
    assert row is not None
    return row


def write(con, select: str, path: Path, row_group_size: int = 2048) -> Path:
    """DuckDB cuts row groups at multiples of 2048 rows."""
    con.execute(f"COPY ({select}) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE {row_group_size})")
    return path


@pytest.mark.parametrize(
    "name", ["genesis/63111-0001.csv", "genesis/ffcsv/12411-01-01-4_de_flat.csv"]
)
def test_real_genesis_version_footers_equal_direct_computation(sqlite_pool, name):
    src = shared_file(name)
    sqlite_pool.ingest(src, dataset="real")
    files, _ = sqlite_pool.dataset("real").files()
    con = duckdb.connect()
    view(con, files)
    names = [r[0] for r in con.execute("DESCRIBE rows_v").fetchall()]
    rows = con.execute("SELECT count(*) FROM rows_v").fetchone()[0]  # type: ignore[index]
    footers = read_footers(files, names, rows)
    assert footers is not None and footers.rows == rows
    assert footers.nulls, "DuckDB writes null counts for every column"
    for col in names:
        nulls, low, high = direct_facts(con, col)
        if col in footers.nulls:
            assert footers.nulls[col] == nulls, col
        if col in footers.ranges:
            assert footers.ranges[col] == (low, high), col
    with_files, direct = both(con, files)
    assert with_files == direct  # exact distinct counts below a million rows: all equal
    assert any(c["null"] for c in direct["columns"])  # the value column has NULLs (symbols)


def test_nulls_nan_and_all_null_row_groups(tmp_path):
    con = duckdb.connect()
    select = """
        SELECT
            range AS id,
            CASE WHEN range % 7 = 0 THEN NULL ELSE range % 50 - 25 END AS small,
            CASE WHEN range < 2500 THEN NULL ELSE (range % 1000) / 8.0 END AS half,
            CASE WHEN range = 777 THEN 'nan'::DOUBLE WHEN range % 5 = 0 THEN NULL
                 ELSE -range / 3.0 END AS with_nan,
            CASE WHEN range % 3 = 0 THEN -0.0::DOUBLE ELSE 0.0 END AS zeros,
            CASE WHEN range % 4 = 0 THEN NULL ELSE DATE '2020-02-29' + (range % 400)::INTEGER END
                AS day,
            TIMESTAMP '2024-01-01 12:00:00' + to_seconds(range) AS ts,
            CASE WHEN range % 11 = 0 THEN NULL ELSE 'Straße ' || (range % 13) END AS text,
            NULL::INTEGER AS empty,
            (range % 9)::FLOAT / 4 AS f32,
            (range % 3)::TINYINT AS tiny,
            range % 2 = 0 AS flag
        FROM range(10000)
    """
    files = [write(con, select, tmp_path / "a.parquet")]
    files.append(write(con, select.replace("range(10000)", "range(5, 10)"), tmp_path / "b.parquet"))
    assert pq.read_metadata(files[0]).num_row_groups >= 4  # the first one without any "half"
    view(con, files)
    names = [r[0] for r in con.execute("DESCRIBE rows_v").fetchall()]
    footers = read_footers(files, names, 10005)
    assert footers is not None
    # Every column has null counts; NaN leaves with_nan without footer min/max.
    assert set(footers.nulls) == set(names)
    assert "with_nan" not in footers.ranges and "half" in footers.ranges
    assert footers.ranges["empty"] == (None, None)
    for col in names:
        nulls, low, high = direct_facts(con, col)
        assert footers.nulls[col] == nulls, col
        if col in footers.ranges:
            assert footers.ranges[col] == (low, high), col

    with_files, direct = both(con, files)
    assert with_files == direct
    nan_col = next(c for c in direct["columns"] if c["name"] == "with_nan")
    assert nan_col["range"]["max"] == "nan"  # aggregated, not taken from a footer

    # Approximate mode: counts and ranges are the same; columns with a small footer bound
    # are counted exactly (and say so), the others stay approximate.
    approx_files, approx = both(con, files, exact_distinct=False)
    exact = {c["name"]: c["distinct"] for c in direct["columns"]}
    for a, b in zip(approx_files["columns"], approx["columns"], strict=True):
        for key in ("non_null", "null", "completeness", "range", "conformance", "dates"):
            assert a[key] == b[key], (a["name"], key)
        if a["distinct_exact"]:
            assert a["distinct"] == exact[a["name"]], a["name"]
    by_name = {c["name"]: c for c in approx_files["columns"]}
    assert by_name["small"]["distinct_exact"] and by_name["small"]["distinct"] == 50
    assert by_name["day"]["distinct_exact"]  # the date range bounds it to 400 days
    assert by_name["text"]["distinct_exact"]
    assert approx_files["distinct_method"] == "approximate"
    assert "~" not in render_text(approx_files).split("small")[1].splitlines()[0]


def test_footers_of_other_rows_or_writers_are_not_used(tmp_path):
    con = duckdb.connect()
    path = write(con, "SELECT range AS n, range % 3 AS k FROM range(500)", tmp_path / "x.parquet")
    # The relation is a filtered view: the row count does not match, the footers are ignored.
    con.execute(f"CREATE TEMP VIEW rows_v AS SELECT * FROM read_parquet('{path}') WHERE n > 10")
    assert read_footers([path], ["n", "k"], 489) is None
    with_files, direct = both(con, [path])
    assert with_files == direct
    n = next(c for c in with_files["columns"] if c["name"] == "n")
    assert n["range"] == {"min": 11, "max": 499} and n["non_null"] == 489
    # A file written by another library is not trusted (its float statistics skip NaN).
    other = tmp_path / "arrow.parquet"
    pq.write_table(pa.table({"v": [1.0, math.nan, None]}), other)
    assert read_footers([other], ["v"]) is None
    view(con, [other])
    with_files, direct = both(con, [other])
    assert with_files == direct


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.none() | st.integers(-(2**40), 2**40),
            st.none() | st.floats(allow_infinity=True, allow_nan=True, width=64),
            st.none() | st.dates(dt.date(1800, 1, 1), dt.date(2200, 1, 1)),
            st.none() | st.text(alphabet="ab,.0123 ", max_size=4),
        ),
        max_size=40,
    ),
    st.integers(1, 15),
)
def test_footers_match_for_any_rows(tmp_path_factory, rows, group):
    tmp = tmp_path_factory.mktemp("footers")
    con = duckdb.connect()
    con.execute("CREATE TABLE t (i BIGINT, f DOUBLE, d DATE, s VARCHAR)")
    if rows:
        con.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows)
    # One file per `group` rows (DuckDB's row groups have at least 2048 rows).
    files = []
    for start in range(0, max(len(rows), 1), group):
        select = f"SELECT * FROM t ORDER BY rowid LIMIT {group} OFFSET {start}"
        files.append(write(con, select, tmp / f"t{start}.parquet"))
    view(con, files)
    with_files, direct = both(con, files)
    assert with_files == direct


@pytest.mark.parametrize("width", [3, 30])
def test_constant_number_of_queries_with_footers(tmp_path, width):
    from test_quality import CountingConnection

    con = duckdb.connect()
    cols = ", ".join(f"'{i}' || (range % 7) AS c{i}, range * {i} AS n{i}" for i in range(width))
    path = write(con, f"SELECT range AS id, {cols} FROM range(5000)", tmp_path / "w.parquet")
    view(con, [path])
    counting = CountingConnection(con)
    schema = infer_table_schema(con, "rows_v")
    report = report_of(counting, "rows_v", schema=schema, primary_key=["id"], files=[path])
    # describe + row count + aggregate + values of the text columns + detail + primary key
    assert counting.queries == 6
    assert report == report_of(con, "rows_v", schema=schema, primary_key=["id"])


def test_date_plausibility_at_the_bounds(tmp_path):
    """Typed dates and timestamps whose range shows nothing implausible skip the counts; at the
    bounds themselves the counts must still be right (the limit is today + 1 year)."""
    con = duckdb.connect()
    limit = "2026-06-30"  # TODAY + 1 year
    cases = {
        "inside": ("DATE '1900-01-01'", f"DATE '{limit}'", 0, 0),
        "day_after": ("DATE '1900-01-01'", f"DATE '{limit}' + 1", 0, 1),
        "ts_inside": ("TIMESTAMP '1900-01-01 00:00:00'", f"TIMESTAMP '{limit} 00:00:00'", 0, 0),
        "ts_second_after": (
            "TIMESTAMP '1899-12-31 23:59:59'",
            f"TIMESTAMP '{limit} 00:00:01'",
            1,
            1,
        ),
    }
    for name, (low, high, old, new) in cases.items():
        select = f"SELECT CASE WHEN range = 0 THEN {low} WHEN range = 1 THEN {high} END AS d "
        path = write(con, select + "FROM range(3)", tmp_path / f"{name}.parquet")
        view(con, [path])
        with_files, direct = both(con, [path])
        assert with_files == direct, name
        dates = direct["columns"][0]["dates"]
        assert (dates["before_1900"], dates["after_limit"]) == (old, new), name
        assert dates["limit"] == limit
        assert len(dates["examples"]) == old + new, name
