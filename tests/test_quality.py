"""The quality report: known defects, text rendering, a property test and a real GENESIS file."""

from __future__ import annotations

import csv
import datetime as dt
import json

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import shared_file
from datenlabor.pool import ags
from datenlabor.pool.quality import quality_report, render_text
from datenlabor.pool.schema import SEMANTIC, infer_table_schema

TODAY = dt.date(2025, 6, 30)
FLAT_NAME = "genesis/ffcsv/12411-01-01-4_de_flat.csv"

DEFECTS = [
    # id, ags, datum, betrag, art
    (1, "01001000", "2020-01-01", "1.234,56", "A"),  # Flensburg: leading zero, valid
    (2, "09162000", "2021-05-01", "17,5", "B"),
    (2, "091620000000", "1850-01-01", "3", "A"),  # duplicate id; ARS of München; too old
    (3, "1001000", "2099-12-31", "12.000", "B"),  # leading zero lost; too far ahead
    (4, "17001000", "2022-01-01", "0,25", "A"),  # no Land 17
    (5, "AB001000", None, "1.000.000,5", "C"),
    (6, "01999999", "2023-03-03", None, "A"),  # well-formed, unknown
    (None, None, "2024-04-04", "-1,5", "A"),
    (7, "01001000", "2024-02-29", "8", "B"),
    (7, "DG", "2024-02-29", "8", "B"),  # duplicate id; DG (Germany) is valid
]


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


@pytest.fixture
def defects(con) -> dict:
    con.sql("CREATE TABLE t (id INTEGER, ags VARCHAR, datum DATE, betrag VARCHAR, art VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", DEFECTS)
    schema = infer_table_schema(con, "t", primary_key=["id"])
    assert next(f for f in schema["fields"] if f["name"] == "ags")[SEMANTIC] == "ags"
    return quality_report(con, "t", schema=schema, today=TODAY)


def column(report: dict, name: str) -> dict:
    return next(c for c in report["columns"] if c["name"] == name)


def issues(report: dict, kind: str) -> list[dict]:
    return [i for i in report["issues"] if i["type"] == kind]


def test_report_counts_and_completeness(defects):
    assert defects["row_count"] == 10 and defects["column_count"] == 5
    assert defects["distinct_method"] == "exact"
    ids = column(defects, "id")
    assert (ids["non_null"], ids["null"], ids["completeness"]) == (9, 1, 0.9)
    assert ids["distinct"] == 7 and ids["distinct_exact"]
    assert ids["range"] == {"min": 1, "max": 7}
    assert ids["conformance"]["method"] == "storage-type" and ids["conformance"]["share"] == 1.0
    assert column(defects, "ags")["range"] == {"min_length": 2, "max_length": 12}
    missing = {i["column"]: i for i in issues(defects, "missing-values")}
    assert missing["id"]["severity"] == "error"  # part of the primary key
    assert missing["betrag"]["severity"] == "warning" and missing["betrag"]["count"] == 1
    assert json.loads(json.dumps(defects)) == defects


def test_report_duplicate_keys(defects):
    pk = defects["primary_key"]
    assert pk["fields"] == ["id"] and pk["null_rows"] == 1
    assert pk["duplicate_keys"] == 2 and pk["duplicate_rows"] == 4
    assert {tuple(e["key"]) for e in pk["examples"]} == {("2",), ("7",)}
    (dup,) = issues(defects, "duplicate-key")
    assert dup["severity"] == "error" and dup["column"] == "id" and dup["count"] == 4


def test_report_ags_keys(defects):
    keys = column(defects, "ags")["ags"]
    assert keys["distinct_keys"] == 8
    assert keys["invalid_format"] == {
        "rows": 3,
        "distinct": 3,
        "examples": ["1001000", "17001000", "AB001000"],
    }
    assert keys["unknown"] == {"rows": 1, "distinct": 1, "examples": ["01999999"]}
    assert keys["levels"]["gemeinde"] == {"distinct": 4, "known": 3}  # 01001000 is known
    assert keys["levels"]["germany"] == {"distinct": 1, "known": 1}
    (invalid,) = issues(defects, "ags-invalid-format")
    assert invalid["severity"] == "error" and invalid["count"] == 3
    assert "'1001000'" in invalid["message"] and "01001000" not in invalid["message"]
    (unknown,) = issues(defects, "ags-unknown-key")
    assert unknown["severity"] == "warning" and "'01999999'" in unknown["message"]
    assert "01001000" not in unknown["message"]


def test_report_dates_and_hints(defects):
    dates = column(defects, "datum")["dates"]
    assert dates["before_1900"] == 1 and dates["after_limit"] == 1
    assert dates["limit"] == "2026-06-30"
    assert set(dates["examples"]) == {"1850-01-01", "2099-12-31"}
    (plausible,) = issues(defects, "implausible-date")
    assert plausible["count"] == 2 and plausible["severity"] == "warning"
    betrag = column(defects, "betrag")["conformance"]
    assert betrag["method"] == "hint" and betrag["best"] == "number_de"
    assert betrag["hints"]["number_de"] == 1.0 and betrag["hints"]["integer"] == pytest.approx(
        3 / 9
    )
    assert betrag["suggestion"] == {"type": "number", "decimalChar": ",", "groupChar": "."}
    (hint,) = issues(defects, "type-hint")
    assert hint["column"] == "betrag" and hint["severity"] == "info"
    art = column(defects, "art")
    assert art["top_values"] == [
        {"value": "A", "count": 5},
        {"value": "B", "count": 4},
        {"value": "C", "count": 1},
    ]
    summary = defects["summary"]
    assert (summary["errors"], summary["warnings"], summary["infos"]) == (3, 5, 1)
    assert 0 < summary["score"] < 100


def test_render_text_shows_the_findings(defects):
    text = render_text(defects)
    assert "10 rows, 5 columns" in text
    for needle in [
        "ERROR",
        "duplicate-key",
        "ags-invalid-format",
        "'1001000'",
        "ags-unknown-key",
        "'01999999'",
        "implausible-date",
        "1850-01-01",
        "type-hint",
        "Primary key (id)",
        "art: A (5), B (4), C (1)",
    ]:
        assert needle in text, needle
    assert text.index("ERROR") < text.index("WARNING") < text.index("INFO")
    assert max(len(line) for line in text.splitlines()) <= 140


def test_text_dates_declared_and_hinted(con):
    con.sql(
        "CREATE TABLE t AS SELECT * FROM (VALUES ('31.12.2023', '2023-12-31'), "
        "('01.01.1800', '2023-01-01'), ('31.02.2023', 'x')) v(de, iso)"
    )
    schema = infer_table_schema(con, "t")
    schema["fields"][0] |= {"type": "date", "format": "%d.%m.%Y"}  # a user's declaration
    report = quality_report(con, "t", schema=schema, today=TODAY)
    de = column(report, "de")
    assert de["conformance"] == {
        "method": "declared-type",
        "type": "date",
        "conforming": 2,
        "share": pytest.approx(2 / 3, abs=1e-6),
        "examples": ["31.02.2023"],
    }
    assert de["dates"]["before_1900"] == 1 and de["dates"]["examples"] == ["01.01.1800"]
    (error,) = issues(report, "type-error")
    assert error["column"] == "de" and "'31.02.2023'" in error["message"]
    iso = column(report, "iso")["conformance"]
    assert iso["best"] is None and iso["hints"]["date_iso"] == pytest.approx(2 / 3, abs=1e-6)


def test_hint_examples_and_leading_zeros(con):
    values = ", ".join([f"('{i}', '0{i}')" for i in range(100, 140)] + ["('.', '01'), ('0', '01')"])
    con.sql(f"CREATE TABLE t AS SELECT * FROM (VALUES {values}) v(wert, code)")
    report = quality_report(con, "t", schema=infer_table_schema(con, "t"), today=TODAY)
    wert = column(report, "wert")["conformance"]
    assert wert["best"] == "integer" and wert["examples"] == ["."]  # "0" is no leading zero
    assert "the others are e.g. '.'" in issues(report, "type-hint")[0]["message"]
    assert column(report, "code")["conformance"]["suggestion"] is None  # keep codes as text


def test_integer_keys_and_approximate_distinct(con):
    con.sql("CREATE TABLE t AS SELECT range AS ags, range % 3 AS k FROM range(1000)")
    report = quality_report(
        con, "t", schema=infer_table_schema(con, "t"), today=TODAY, exact_distinct=False
    )
    assert report["distinct_method"] == "approximate"
    assert not column(report, "ags")["distinct_exact"]
    assert column(report, "ags")["distinct"] > 0  # HyperLogLog: off by up to ~25% here
    (warning,) = issues(report, "ags-as-number")
    assert warning["column"] == "ags"


def test_empty_relation(con):
    con.sql("CREATE TABLE t (id INTEGER, ags VARCHAR, d DATE, de VARCHAR)")
    schema = infer_table_schema(con, "t", primary_key=["id"])
    schema["fields"][1][SEMANTIC] = "ags"
    schema["fields"][3] |= {"type": "date", "format": "%d.%m.%Y"}
    report = quality_report(con, "t", schema=schema, today=TODAY)
    assert report["row_count"] == 0 and report["issues"] == []
    assert column(report, "ags")["completeness"] is None
    assert column(report, "ags")["ags"]["distinct_keys"] == 0
    assert column(report, "d")["dates"]["before_1900"] == 0
    assert column(report, "de")["conformance"]["conforming"] == 0
    assert report["primary_key"]["null_rows"] == 0
    assert report["summary"]["score"] == 100.0
    assert "0 rows" in render_text(report)


class CountingConnection:
    """Counts the queries the report runs (everything else passes through)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con, self.queries = con, 0

    def sql(self, query: str):
        self.queries += 1
        return self.con.sql(query)

    def __getattr__(self, name: str):
        return getattr(self.con, name)


@pytest.mark.parametrize("width", [3, 30])
def test_constant_number_of_queries(con, width):
    cols = ", ".join(f"'{i}' || (range % 7) AS c{i}, range * {i} AS n{i}" for i in range(width))
    con.sql(f"CREATE TABLE t AS SELECT range AS id, {cols} FROM range(2000)")
    counting = CountingConnection(con)
    quality_report(counting, "t", schema=infer_table_schema(con, "t"), primary_key=["id"])
    # describe + row count + one aggregate + one detail aggregate + primary key
    assert counting.queries == 5


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.none() | st.integers(-5, 5),
            st.none() | st.text(alphabet="ab,.0123 ", max_size=4),
            st.none() | st.floats(allow_nan=False, allow_infinity=False, width=32),
            st.none() | st.dates(dt.date(1800, 1, 1), dt.date(2200, 1, 1)),
        ),
        max_size=60,
    )
)
def test_completeness_matches_pandas(rows):
    frame = pd.DataFrame(rows, columns=["i", "s", "f", "d"]).astype(
        {"i": "Int64", "s": "string", "f": "Float64", "d": "object"}
    )
    frame["d"] = pd.to_datetime(frame["d"]).dt.date if len(frame) else frame["d"]
    con = duckdb.connect()
    con.register("frame", frame)
    con.sql("CREATE TABLE t AS SELECT i, s, f, CAST(d AS DATE) AS d FROM frame")
    report = quality_report(con, "t", schema=infer_table_schema(con, "t"), today=TODAY)
    assert report["row_count"] == len(frame)
    for name in frame.columns:
        col = column(report, name)
        assert col["non_null"] == int(frame[name].notna().sum()), name
        assert col["null"] == int(frame[name].isna().sum()), name
        assert col["distinct"] == frame[name].nunique(), name
        expected = frame[name].notna().mean() if len(frame) else None
        assert col["completeness"] == pytest.approx(expected, abs=1e-6), name


def test_real_genesis_flat_export_with_kreis_keys(con):
    FLAT = shared_file(FLAT_NAME)
    con.sql(
        f"CREATE VIEW flat AS SELECT * FROM read_csv('{FLAT}', all_varchar = true, delim = ';', "
        "header = true, encoding = 'utf-8')"
    )
    schema = infer_table_schema(con, "flat")
    key = "1_variable_attribute_code"
    assert next(f for f in schema["fields"] if f["name"] == key)[SEMANTIC] == "ags"
    report = quality_report(con, "flat", schema=schema, today=TODAY)

    # Independent count with the csv module.
    with FLAT.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter=";"))
    kreise = {r[key] for r in rows if len(r[key]) == 5}
    with_data = {r[key] for r in rows if len(r[key]) == 5 and r["value"] != "-"}
    assert report["row_count"] == len(rows) == 1467
    assert len(kreise) == 474 and len(with_data) == 400  # 400 Kreise on 31.12.2024

    keys = column(report, key)["ags"]
    assert not issues(report, "ags-invalid-format")
    assert keys["invalid_format"]["rows"] == 0
    assert keys["distinct_keys"] == column(report, key)["distinct"] == len({r[key] for r in rows})
    assert keys["levels"]["kreis"]["distinct"] == len(kreise)
    # every Kreis with data is in the official list; the others are former Kreise (and Eisenach,
    # merged in July 2021, is still in the list of 2021)
    assert all(ags.is_known(k) for k in with_data)
    assert keys["levels"]["kreis"]["known"] == sum(ags.is_known(k) for k in kreise) == 401
    assert "03152" in keys["unknown"]["examples"]  # Göttingen, Landkreis (until 2016)


def test_ars_keys_and_levels(con):
    keys = ["010010000000", "091620000000", "01001", "01", "091", "010010000", "019990000999"]
    values = ", ".join(f"('{k}')" for k in keys)
    con.sql(f"CREATE TABLE t AS SELECT * FROM (VALUES {values}) v(ars)")
    schema = infer_table_schema(con, "t")
    assert schema["fields"][0][SEMANTIC] == "ars"
    result = column(quality_report(con, "t", schema=schema, today=TODAY), "ars")["ags"]
    assert result["invalid_format"]["rows"] == 0
    assert result["unknown"] == {"rows": 1, "distinct": 1, "examples": ["019990000999"]}
    assert result["levels"] == {
        "land": {"distinct": 1, "known": 1},
        "regierungsbezirk": {"distinct": 1, "known": 1},  # Oberbayern
        "kreis": {"distinct": 1, "known": 1},
        "gemeindeverband": {"distinct": 1, "known": None},  # not in the key list
        "gemeinde": {"distinct": 3, "known": 2},
    }
