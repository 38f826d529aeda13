"""Rows endpoint queries: parameter parsing, filters, keyset paging on real DuckDB."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datenlabor.errors import BadInput
from datenlabor.query.connection import connect
from datenlabor.query.rows import (
    MAX_LIMIT,
    Cursor,
    Filter,
    count_sql,
    next_cursor,
    page,
    parse_rows_request,
    rows_sql,
)

SCHEMA = {
    "id": pa.int64(),
    "jahr": pa.int64(),
    "name": pa.string(),
    "betrag": pa.float64(),
    "preis": pa.decimal128(10, 2),
    "datum": pa.date32(),
    "zeit": pa.timestamp("us"),
    "aktiv": pa.bool_(),
    "tags": pa.list_(pa.string()),
    "limit": pa.int64(),
    'Bezirk "Mitte"': pa.string(),
}
# id, jahr, name, betrag, preis, datum, zeit, aktiv, tags, limit, Bezirk "Mitte"
DATA = [
    (
        1,
        2020,
        "München",
        -1.5,
        "10.50",
        date(2020, 1, 31),
        datetime(2020, 1, 31, 8),
        True,
        ["a"],
        5,
        "x",
    ),
    (
        2,
        2021,
        "Köln",
        2.25,
        "-3.00",
        date(2021, 6, 1),
        datetime(2021, 6, 1, 12),
        False,
        None,
        1,
        None,
    ),
    (3, None, "köln", None, None, None, None, None, [], None, "y"),
    (
        4,
        2020,
        "Straße",
        0.0,
        "0.00",
        date(2020, 1, 31),
        datetime(2020, 1, 31, 9, 30),
        True,
        None,
        7,
        "x",
    ),
    (
        5,
        2022,
        "a,b",
        -100.0,
        "99.99",
        date(2022, 12, 24),
        datetime(2022, 12, 24, 18),
        None,
        ["b"],
        2,
        None,
    ),
    (6, -5, "O'Brien", 1.5, "1.50", date(1999, 2, 28), datetime(1999, 2, 28), False, None, 5, "z"),
    (
        7,
        2021,
        None,
        1.5,
        "1.50",
        date(2021, 6, 1),
        datetime(2021, 6, 1, 12),
        True,
        None,
        None,
        None,
    ),
    (8, 2020, "Düsseldorf", None, "10.50", date(2020, 1, 31), None, True, ["c"], 3, "x"),
]


def _table(rows: list[tuple], schema: dict[str, pa.DataType], row_ids: list[int]) -> pa.Table:
    columns = {name: [r[i] for r in rows] for i, name in enumerate(schema)}
    if "preis" in columns:
        columns["preis"] = [None if v is None else Decimal(v) for v in columns["preis"]]
    arrays = [pa.array(columns[n], type=t) for n, t in schema.items()]
    arrays.append(pa.array(row_ids, pa.int64()))
    return pa.Table.from_arrays(arrays, names=[*schema, "__row"])


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect()
    # __row differs from id and from the insertion order, so the natural order is __row's.
    connection.register("data", _table(DATA, SCHEMA, [r[0] * 10 % 17 for r in DATA]))
    yield connection
    connection.close()


def ids(con: duckdb.DuckDBPyConnection, params: list[tuple[str, str]]) -> list[int]:
    req = parse_rows_request([*params, ("limit", str(MAX_LIMIT))], SCHEMA)
    return page(con, "data", req).table.column("id").to_pylist()


def fails(params: list[tuple[str, str]], *words: str, schema: Any = SCHEMA) -> BadInput:
    with pytest.raises(BadInput) as info:
        parse_rows_request(params, schema)
    for word in words:
        assert word in str(info.value)
    return info.value


def test_natural_order_is_row(con: duckdb.DuckDBPyConnection) -> None:
    expected = [r[0] for r in sorted(DATA, key=lambda r: r[0] * 10 % 17)]
    assert ids(con, []) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([("jahr", "2020")], {1, 4, 8}),
        ([("jahr__eq", "+2020")], {1, 4, 8}),
        ([("jahr__ne", "2020")], {2, 5, 6, 7}),  # NULL matches no comparison
        ([("jahr__lt", "2021")], {1, 4, 6, 8}),
        ([("jahr__lte", "2021")], {1, 2, 4, 6, 7, 8}),
        ([("jahr__gt", "-5")], {1, 2, 4, 5, 7, 8}),
        ([("jahr__gte", "-5"), ("jahr__lt", "2020")], {6}),
        ([("jahr__in", "2021,-5")], {2, 6, 7}),
        ([("jahr__notin", "2020,2021")], {5, 6}),
        ([("name__in", "a\\,b,Köln")], {2, 5}),
        ([("name__in", "a,b")], set()),
        ([("name__contains", "KÖ")], {2, 3}),
        ([("name__contains", "ü")], {1, 8}),
        ([("name__startswith", "d")], {8}),
        ([("name", "O'Brien")], {6}),
        ([("name__isnull", "true")], {7}),
        ([("name__isnull", "nein")], {1, 2, 3, 4, 5, 6, 8}),
        ([("tags__isnull", "1")], {2, 4, 6, 7}),
        ([("betrag__lt", "0")], {1, 5}),
        ([("betrag", "1,5")], {6, 7}),
        ([("betrag__gte", "-1.5"), ("betrag__lte", "1.5e0")], {1, 4, 6, 7}),
        ([("preis", "10.5")], {1, 8}),
        ([("preis__lt", "0")], {2}),
        ([("preis__in", "1\\,5,99.99")], {5, 6, 7}),
        ([("datum", "31.01.2020")], {1, 4, 8}),
        ([("datum__gt", "2021-06-01")], {5}),
        ([("datum__lt", "1.3.1999")], {6}),
        ([("zeit__gte", "2020-01-31T09:00")], {2, 4, 5, 7}),
        ([("zeit", "31.01.2020 08:00")], {1}),
        ([("zeit__lt", "2000-01-01")], {6}),
        ([("aktiv", "ja")], {1, 4, 7, 8}),
        ([("aktiv", "FALSE")], {2, 6}),
        ([("limit__eq", "5")], {1, 6}),
        ([("limit__gt", "4"), ("version", "3")], {1, 4, 6}),
        ([('Bezirk "Mitte"', "x")], {1, 4, 8}),
        ([('Bezirk "Mitte"__ne', "x")], {3, 6}),
    ],
)
def test_filters(
    con: duckdb.DuckDBPyConnection, params: list[tuple[str, str]], expected: set[int]
) -> None:
    assert set(ids(con, params)) == expected
    req = parse_rows_request(params, SCHEMA)
    sql, values = count_sql("data", req)
    assert con.execute(sql, values).fetchone() == (len(expected),)


def test_values_are_parameters_not_sql() -> None:
    req = parse_rows_request([("name", "x'; DROP TABLE data; --"), ("jahr__in", "1,2")], SCHEMA)
    sql, values = rows_sql("data", req)
    assert "DROP" not in sql
    assert sql.count("?") == len(values) == 4
    assert values == ["x'; DROP TABLE data; --", 1, 2, 101]
    assert req.filters == [
        Filter("name", "eq", "x'; DROP TABLE data; --"),
        Filter("jahr", "in", (1, 2)),
    ]


def test_converted_values() -> None:
    req = parse_rows_request(
        [
            ("preis__gt", "1,5"),
            ("betrag__in", "1\\,5,-2,.5"),
            ("zeit", "2024-01-31T14:30:00+01:00"),
            ("datum", "2024-01-31"),
            ("aktiv__isnull", "false"),
            ("name__in", "a\\\\b\\,c,\\x"),
        ],
        SCHEMA,
    )
    assert [f.value for f in req.filters] == [
        Decimal("1.50"),
        (1.5, -2.0, 0.5),
        datetime(2024, 1, 31, 13, 30),  # to UTC: the column has no time zone
        date(2024, 1, 31),
        False,
        ("a\\b,c", "\\x"),
    ]


@pytest.mark.parametrize(
    ("params", "words"),
    [
        (
            [("jahr__gte", "20x4")],
            ["filter 'jahr__gte': '20x4' is not an integer (column jahr is int64)"],
        ),
        ([("jahr", "1.5")], ["'1.5' is not an integer"]),
        ([("jahr", "1_000")], ["is not an integer"]),
        ([("jahr", "99999999999999999999999")], ["64-bit"]),
        ([("jahr__in", "1,x")], ["jahr__in", "'x' is not an integer"]),
        ([("betrag", "1.234,5")], ["'1.234,5' is not a number"]),
        ([("betrag", "nan")], ["is not a number"]),
        ([("preis", "1.005")], ["2 after the point", "decimal128(10, 2)"]),
        ([("preis", "123456789")], ["8 digits before"]),
        ([("preis", "1e400")], ["'1e400'"]),
        ([("datum", "31.02.2024")], ["'31.02.2024' is not a date"]),
        ([("datum", "2024-1-5")], ["is not a date"]),
        ([("zeit", "gestern")], ["'gestern' is not a timestamp"]),
        ([("aktiv", "vielleicht")], ["is not a boolean (true/false/1/0/ja/nein)"]),
        ([("name__isnull", "x")], ["name__isnull", "is not a boolean"]),
        ([("nme", "x")], ["unknown column 'nme'", "available columns: id, jahr, name"]),
        ([("nme__gt", "x")], ["unknown column 'nme'"]),
        ([("__row", "1")], ["unknown column '__row'"]),
        ([("name__like", "x")], ["unknown operator 'like'", "operators: eq, ne", "isnull"]),
        ([("jahr__contains", "2")], ["__contains needs a text column (column jahr is int64)"]),
        ([("datum__startswith", "2")], ["needs a text column"]),
        ([("tags", "a")], ["only supports __isnull"]),
        ([("limit", "5"), ("limit", "6")], ["'limit' given more than once"]),
        ([("limit", str(MAX_LIMIT + 1))], ["above the maximum 10000"]),
        ([("limit", "0")], ["'limit'", "integer >= 1"]),
        ([("limit", "-3")], ["integer >= 1"]),
        ([("limit", "zehn")], ["'zehn' is not an integer"]),
        ([("version", "v2")], ["'version'"]),
        ([("columns", "name,nix")], ["unknown column 'nix'", "available columns"]),
        ([("columns", "name,name")], ["named twice"]),
        ([("columns", "")], ["unknown column ''"]),
        ([("sort", "jahr,-jahr")], ["column jahr is named twice"]),
        ([("sort", "tags")], ["cannot sort", "list<item: string>"]),
        ([("sort", "-nix")], ["unknown column 'nix'"]),
        ([("sort", "jahr,")], ["unknown column ''"]),
    ],
)
def test_errors_name_parameter_column_value_and_expectation(
    params: list[tuple[str, str]], words: list[str]
) -> None:
    error = fails(params, *words)
    assert error.column == params[-1][0]


def test_limit_and_version() -> None:
    assert parse_rows_request([], SCHEMA).limit == 100
    assert parse_rows_request([("limit", str(MAX_LIMIT))], SCHEMA).limit == MAX_LIMIT
    assert parse_rows_request([], SCHEMA).version is None
    assert (
        parse_rows_request([("version", "7"), ("format", "csv"), ("lang", "de")], SCHEMA).version
        == 7
    )
    sql, values = rows_sql("data", parse_rows_request([("limit", "5")], SCHEMA))
    assert sql.endswith("LIMIT ?") and values == [6]


def test_columns_select_and_order(con: duckdb.DuckDBPyConnection) -> None:
    params = [("columns", 'name,Bezirk "Mitte",id'), ("sort", "-jahr"), ("limit", "3")]
    result = page(con, "data", parse_rows_request(params, SCHEMA))
    assert result.table.column_names == ["name", 'Bezirk "Mitte"', "id"]
    assert result.table.column("id").to_pylist() == [5, 7, 2]  # ties in natural (__row) order
    assert result.next is not None
    rest = page(con, "data", parse_rows_request([*params, ("after", result.next)], SCHEMA))
    assert rest.table.column("id").to_pylist() == [4, 1, 8]
    assert parse_rows_request([], SCHEMA).columns == list(SCHEMA)


def walk(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    params: list,
    schema: Any,
    *,
    scan_in_row_order: bool = False,
) -> list[list]:
    """All pages of a request, following the cursor."""
    pages, after = [], None
    for _ in range(1000):
        req = parse_rows_request([*params, *([("after", after)] if after else [])], schema)
        result = page(con, relation, req, scan_in_row_order=scan_in_row_order)
        assert result.table.num_rows <= req.limit
        pages.append(result.table.column("id").to_pylist())
        after = result.next
        if after is None:
            return pages
        assert result.table.num_rows == req.limit
    raise AssertionError("paging does not end")


@pytest.mark.parametrize(
    "sort", ["jahr", "-jahr", "name,-betrag", "-aktiv,datum,-preis", "+zeit,-limit"]
)
@pytest.mark.parametrize("size", ["1", "2", "3", "8"])
def test_paging_fixture(con: duckdb.DuckDBPyConnection, sort: str, size: str) -> None:
    single = ids(con, [("sort", sort)])
    pages = walk(con, "data", [("sort", sort), ("limit", size)], SCHEMA)
    assert [i for p in pages for i in p] == single
    assert len(single) == len(DATA)


def test_explicit_nulls_last_in_both_directions(con: duckdb.DuckDBPyConnection) -> None:
    assert ids(con, [("sort", "jahr")])[-1] == 3
    assert ids(con, [("sort", "-jahr")])[-1] == 3
    sql, _ = rows_sql("data", parse_rows_request([("sort", "jahr,-name")], SCHEMA))
    assert '"jahr" ASC NULLS LAST, "name" DESC NULLS LAST, "__row" ASC' in sql


def first_cursor(con: duckdb.DuckDBPyConnection, params: list[tuple[str, str]]) -> str:
    result = page(con, "data", parse_rows_request([*params, ("limit", "2")], SCHEMA))
    assert result.next is not None
    return result.next


def test_cursor_reuse_with_other_sort_filter_or_version(con: duckdb.DuckDBPyConnection) -> None:
    params = [("sort", "jahr,-name"), ("jahr__gte", "2000")]
    cursor = first_cursor(con, params)
    ok = parse_rows_request([*params, ("columns", "id"), ("after", cursor)], SCHEMA)
    assert isinstance(ok.after, Cursor) and len(ok.after.keys) == 2
    others = [
        [("sort", "jahr,name"), ("jahr__gte", "2000")],
        [("sort", "jahr"), ("jahr__gte", "2000")],
        [("sort", "jahr,-name"), ("jahr__gte", "2001")],
        [("sort", "jahr,-name")],
        [*params, ("aktiv", "true")],
        [*params, ("version", "2")],
    ]
    for other in others:
        fails([*other, ("after", cursor)], "'after'", "another sort, filter or version")
    # filters in another order are the same filters
    swapped = [("jahr__gte", "2000"), ("sort", "jahr,-name"), ("after", cursor)]
    assert parse_rows_request(swapped, SCHEMA).after == ok.after


def _token(body: Any) -> str:
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _signed(keys: Any, row: Any, fingerprint: str) -> str:
    body = [keys, row, fingerprint]
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return _token([*body, hashlib.sha256(text.encode()).hexdigest()[:12]])


def test_damaged_cursors_are_bad_input(con: duckdb.DuckDBPyConnection) -> None:
    params = [("sort", "-datum,preis,name")]
    cursor = first_cursor(con, params)
    original = parse_rows_request([*params, ("after", cursor)], SCHEMA).after
    assert original is not None
    for i in range(len(cursor) - 1):  # the last character may hold only padding bits
        for char in "A_9-":
            changed = cursor[:i] + char + cursor[i + 1 :]
            if changed != cursor:
                fails([*params, ("after", changed)], "'after'", "damaged")
    fingerprint = json.loads(base64.urlsafe_b64decode(cursor + "==="))[2]
    bad = [
        "",
        "x",
        "!!!!",
        "a b",
        "ä",
        "=" * 8,
        "A" * 70_000,
        _token("not a list"),
        _token([1, 2]),
        _token([[], 1, fingerprint, "0" * 12]),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        base64.urlsafe_b64encode(b"[" * 30_000).decode().rstrip("="),
        _signed([], 1, fingerprint),
        _signed(["1.50", "2020-01-31", "x"], 1, fingerprint),  # keys in the wrong order
        _signed([None, "1.505", "x"], 1, fingerprint),  # more places than the column
        _signed([None, "1E+400", "x"], 1, fingerprint),
        _signed([None, "NaN", "x"], 1, fingerprint),
        _signed([None, 1.5, "x"], 1, fingerprint),
        _signed([None, None, 3], 1, fingerprint),
        _signed([None, None, None], "1", fingerprint),
        _signed([None, None, None], True, fingerprint),
        _signed(["31.01.2020", None, None], 1, fingerprint),
        _signed({"a": 1}, 1, fingerprint),
    ]
    for token in bad:
        fails([*params, ("after", token)], "'after'")
    ok = parse_rows_request(
        [*params, ("after", _signed(["2020-01-31", None, "x"], 4, fingerprint))], SCHEMA
    )
    assert ok.after == Cursor((date(2020, 1, 31), None, "x"), 4)


def test_sort_column_outside_selection_and_typed_keys(con: duckdb.DuckDBPyConnection) -> None:
    params = [("columns", "id"), ("sort", "-preis,zeit,betrag")]
    pages = walk(con, "data", [*params, ("limit", "3")], SCHEMA)
    assert [i for p in pages for i in p] == ids(con, params)
    req = parse_rows_request(params, SCHEMA)
    row = {
        "preis": Decimal("1.50"),
        "zeit": datetime(2020, 1, 1, 1),
        "betrag": math.inf,
        "__row": 3,
    }
    back = parse_rows_request([*params, ("after", next_cursor(req, row))], SCHEMA).after
    assert back == Cursor((Decimal("1.50"), datetime(2020, 1, 1, 1), math.inf), 3)


def test_nanosecond_and_zoned_timestamps_page_exactly() -> None:
    schema = {
        "id": pa.int64(),
        "ts": pa.timestamp("ns"),
        "t": pa.time64("ns"),
        "tz": pa.timestamp("us", tz="Europe/Berlin"),
    }
    base = 1_700_000_000_000_000_000
    rows = [
        (i, base + (i % 4), 1_000_000_000 + (i % 3), base // 1000 + i % 5 * 3_600_000_000)
        for i in range(12)
    ]
    con = connect()
    con.register("ns", _table(rows, schema, list(range(12))))
    for sort in ["ts", "-ts,t", "t,-id", "-tz,ts"]:
        pages = walk(con, "ns", [("sort", sort), ("limit", "2")], schema)
        single = page(con, "ns", parse_rows_request([("sort", sort)], schema)).table
        assert [i for p in pages for i in p] == single.column("id").to_pylist()
    exact = parse_rows_request([("ts", "2023-11-14 22:13:20.000000")], schema)
    assert page(con, "ns", exact).table.column("id").to_pylist() == [0, 4, 8]
    # 22:13:20 UTC is 23:13:20 in Berlin; a value without a zone is taken as UTC
    for value in ["2023-11-14T23:13:20+01:00", "2023-11-14 22:13:20", "14.11.2023 22:13:20"]:
        zoned = parse_rows_request([("tz", value)], schema)
        assert page(con, "ns", zoned).table.column("id").to_pylist() == [0, 5, 10]
    con.close()


# -- property: walking all pages returns every matching row once, in the reference order --

PROP_SCHEMA = {
    "id": pa.int64(),
    "i": pa.int32(),
    "f": pa.float64(),
    "s": pa.string(),
    "d": pa.date32(),
    "b": pa.bool_(),
}
SORTABLE = ["i", "f", "s", "d", "b"]
FILTERS: dict[str, Any] = {
    "": lambda r: True,
    "i__gte=0": lambda r: r["i"] is not None and r["i"] >= 0,
    "s__contains=Ä": lambda r: r["s"] is not None and "ä" in r["s"].lower(),
    "f__isnull=false": lambda r: r["f"] is not None,
    "b=nein": lambda r: r["b"] is False,
}

rows_strategy = st.lists(
    st.tuples(
        st.none() | st.integers(-3, 3),
        st.none() | st.sampled_from([-2.5, -0.0, 0.0, 1.0, math.inf, math.nan]),
        st.none() | st.text(alphabet="aAäÄzß ", max_size=3),
        st.none() | st.dates(date(1999, 12, 30), date(2000, 1, 3)),
        st.none() | st.booleans(),
    ),
    max_size=30,
)
sort_strategy = st.lists(
    st.tuples(st.sampled_from(SORTABLE), st.booleans()),
    min_size=1,
    max_size=3,
    unique_by=lambda x: x[0],
)


def _compare_values(x: Any, y: Any) -> int:
    if isinstance(x, float):  # NaN is the largest float and equals NaN
        x, y = (
            (math.isnan(x), 0.0 if math.isnan(x) else x),
            (math.isnan(y), 0.0 if math.isnan(y) else y),
        )
    return (x > y) - (x < y)


def reference(rows: list[dict], sort: list[tuple[str, bool]]) -> list[int]:
    def compare(a: dict, b: dict) -> int:
        for name, descending in sort:
            x, y = a[name], b[name]
            if x is None or y is None:  # NULLs last in both directions
                result = (x is None) - (y is None)
            else:
                result = -_compare_values(x, y) if descending else _compare_values(x, y)
            if result:
                return result
        return a["__row"] - b["__row"]

    return [r["id"] for r in sorted(rows, key=functools.cmp_to_key(compare))]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=rows_strategy,
    sort=sort_strategy,
    size=st.integers(1, 7),
    filter_key=st.sampled_from(list(FILTERS)),
    seed=st.randoms(use_true_random=False),
)
def test_paging_property(
    con: duckdb.DuckDBPyConnection,
    data: list[tuple],
    sort: list[tuple[str, bool]],
    size: int,
    filter_key: str,
    seed: Any,
) -> None:
    row_ids = [i * 3 - 40 for i in range(len(data))]
    seed.shuffle(row_ids)
    rows = [(n, *values) for n, values in enumerate(data)]
    con.register("prop", _table(rows, PROP_SCHEMA, row_ids))
    dicts = [
        dict(zip([*PROP_SCHEMA, "__row"], [*r, row_ids[n]], strict=True))
        for n, r in enumerate(rows)
    ]
    expected = reference([r for r in dicts if FILTERS[filter_key](r)], sort)

    spec = ",".join(("-" if d else "") + name for name, d in sort)
    params = [("sort", spec), *([tuple(filter_key.split("="))] if filter_key else [])]
    pages = walk(con, "prop", [*params, ("limit", str(size))], PROP_SCHEMA)
    walked = [i for p in pages for i in p]
    assert walked == expected
    assert len(pages) == max(1, math.ceil(len(expected) / size))
    req = parse_rows_request(params, PROP_SCHEMA)
    sql, values = rows_sql("prop", req)
    assert [r[0] for r in con.execute(sql, values).fetchall()] == expected
    sql, values = count_sql("prop", req)
    assert con.execute(sql, values).fetchone() == (len(expected),)


@pytest.mark.parametrize("size", ["1", "3", "7", "50"])
@pytest.mark.parametrize("filters", [[], [("jahr__gte", "2020")], [("aktiv", "true")]])
def test_unsorted_pages_of_parquet_files_need_no_order_by(
    tmp_path: Any, size: str, filters: list[tuple[str, str]]
) -> None:
    """The service's relation over several Parquet files pages in __row order without a sort."""
    import pyarrow.parquet as pq

    from datenlabor.access.policy import DatasetView
    from datenlabor.service.gate import Source

    table = _table(DATA, SCHEMA, list(range(len(DATA)))).drop(["__row"])
    files = []
    for i, (start, stop) in enumerate([(0, 3), (3, 4), (4, len(DATA))]):
        path = tmp_path / f"part-{i}.parquet"
        pq.write_table(table.slice(start, stop - start), path, row_group_size=2)
        files.append(str(path))
    src = Source("t", 1, None, DatasetView("t"), files, table.schema, table.schema)
    relation = f"({src.select_sql(src.parquet_with_row_id(), row_id=True)})"
    con = connect()
    try:
        fast = walk(con, relation, [*filters, ("limit", size)], SCHEMA, scan_in_row_order=True)
        sorted_pages = walk(con, relation, [*filters, ("limit", size)], SCHEMA)
    finally:
        con.close()
    assert fast == sorted_pages
    expected = [r[0] for r in DATA if ids_match(r, filters)]
    assert [i for p in fast for i in p] == expected


def ids_match(row: tuple, filters: list[tuple[str, str]]) -> bool:
    values = dict(zip(SCHEMA, row, strict=True))
    for name, value in filters:
        if name == "jahr__gte" and not (
            values["jahr"] is not None and values["jahr"] >= int(value)
        ):
            return False
        if name == "aktiv" and values["aktiv"] is not True:
            return False
    return True
