"""Table Schema inference, loading user schemas and checking staged data against them."""

from __future__ import annotations

import json

import duckdb
import pytest
from frictionless import Schema

from datenlabor.errors import BadInput
from datenlabor.pool.schema import (
    SEMANTIC,
    check_against_schema,
    infer_table_schema,
    load_schema,
)

ALL_TYPES = """
CREATE TABLE t AS SELECT
  1::TINYINT AS ti, 2::SMALLINT AS si, 3::INTEGER AS i, 4::BIGINT AS bi, 5::HUGEINT AS hi,
  6::UTINYINT AS uti, 7::UBIGINT AS ubi, 8::VARINT AS vi,
  1.5::FLOAT AS f, 2.5::DOUBLE AS d, 3.25::DECIMAL(10, 2) AS dec,
  true AS b, 'x'::VARCHAR AS s, 'a'::ENUM('a', 'b') AS e, gen_random_uuid() AS u,
  'ab'::BLOB AS bl, '101'::BIT AS bits, '{}'::JSON AS j,
  DATE '2024-01-31' AS dt, TIMESTAMP '2024-01-31 10:00' AS ts,
  TIMESTAMP_NS '2024-01-31 10:00' AS tsn, TIMESTAMPTZ '2024-01-31 10:00:00+00' AS tstz,
  TIME '10:00' AS tm, INTERVAL 1 DAY AS iv,
  [1, 2] AS l, [1, 2]::INTEGER[2] AS arr, {'x': 1} AS st, MAP {'a': 1} AS m,
  union_value(k := 1)::UNION(k INTEGER, s VARCHAR) AS un
"""
EXPECTED = {
    **dict.fromkeys(["ti", "si", "i", "bi", "hi", "uti", "ubi", "vi"], "integer"),
    **dict.fromkeys(["f", "d", "dec"], "number"),
    **dict.fromkeys(["s", "e", "u", "bl", "bits"], "string"),
    **dict.fromkeys(["ts", "tsn", "tstz"], "datetime"),
    **dict.fromkeys(["l", "arr"], "array"),
    **dict.fromkeys(["st", "m"], "object"),
    **{"b": "boolean", "dt": "date", "tm": "time", "iv": "duration", "j": "any", "un": "any"},
}


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


def table(con, sql_values: str, columns: str) -> None:
    con.sql(f"CREATE OR REPLACE TABLE t AS SELECT * FROM (VALUES {sql_values}) v({columns})")


def test_infer_maps_every_duckdb_type(con):
    con.sql(ALL_TYPES)
    schema = infer_table_schema(con, "t")
    types = {f["name"]: f["type"] for f in schema["fields"]}
    assert types == EXPECTED
    fields = {f["name"]: f for f in schema["fields"]}
    assert fields["u"]["format"] == "uuid"
    assert fields["bl"]["format"] == "binary"
    assert fields["dec"]["datenlabor:duckdbType"] == "DECIMAL(10,2)"
    assert [f["name"] for f in schema["fields"]][:3] == ["ti", "si", "i"]  # column order kept
    assert schema["missingValues"] == [""]
    assert "primaryKey" not in schema
    assert not any("constraints" in f for f in schema["fields"])  # facts go to the report
    assert Schema.validate_descriptor(schema).valid
    assert len(Schema.from_descriptor(schema).fields) == len(EXPECTED)


def test_infer_primary_key(con):
    table(con, "(1, 'a')", "id, name")
    schema = infer_table_schema(con, "t", primary_key=["id"])
    assert schema["primaryKey"] == ["id"]
    assert Schema.validate_descriptor(schema).valid
    with pytest.raises(BadInput, match="'nope'"):
        infer_table_schema(con, "t", primary_key=["nope"])


def test_infer_semantic_regional_keys(con):
    rows = ", ".join(
        f"('{ags}', '{ars}', '{kreis}', '{ags}', 'Flensburg', '{ags}', '{status}')"
        for ags, ars, kreis, status in [
            ("01001000", "010010000000", "01001", "p"),
            ("09162000", "091620000000", "09162", "."),
            ("08222000", "082220000000", "08222", "-"),
            ("03241001", "032410001001", "03241", "..."),
        ]
    )
    table(con, rows, "ags, ars, kreis_schluessel, code, gemeinde_name, Kreis, status")
    con.sql("INSERT INTO t VALUES (NULL, NULL, NULL, NULL, NULL, NULL, NULL)")
    schema = infer_table_schema(con, "t")
    semantic = {f["name"]: f.get(SEMANTIC) for f in schema["fields"]}
    assert semantic == {
        "ags": "ags",
        "ars": "ars",
        "kreis_schluessel": "ags",
        "code": None,  # looks like a key, but the name does not say so
        "gemeinde_name": None,
        "Kreis": "ags",
        "status": "status",
    }
    assert Schema.validate_descriptor(schema).valid


def test_semantic_needs_enough_keys(con):
    rows = [("01001000", "01001000", "01001", "open")] * 18 + [("x", "x", "x", "closed")] * 2
    table(con, ", ".join(str(r) for r in rows), "ags, ags2, kreis, status")
    fields = {f["name"]: f.get(SEMANTIC) for f in infer_table_schema(con, "t")["fields"]}
    # 90% keys: enough for an unambiguous name, not for "kreis" (95%); a procedure status is
    # not a GENESIS status column
    assert fields == {"ags": "ags", "ags2": "ags", "kreis": None, "status": None}
    table(con, ", ".join(str(r) for r in rows[:1] + rows[-2:]), "ags, ags2, kreis, status")
    assert all(SEMANTIC not in f for f in infer_table_schema(con, "t")["fields"])


def test_semantic_genesis_flat_code_column(con):
    table(
        con,
        "('KREISE', '01001', 'GES', 'GESM'), ('KREISE', '16056', 'GES', 'GESW'), "
        "('KREISE', 'DG', 'GES', NULL)",
        '"1_variable_code", "1_variable_attribute_code", "2_variable_code", '
        '"2_variable_attribute_code"',
    )
    fields = {f["name"]: f for f in infer_table_schema(con, "t")["fields"]}
    assert fields["1_variable_attribute_code"][SEMANTIC] == "ags"
    assert SEMANTIC not in fields["2_variable_attribute_code"]


def test_integer_keys_get_no_semantic(con):
    table(con, "(1001000), (9162000)", "ags")
    assert SEMANTIC not in infer_table_schema(con, "t")["fields"][0]


# -- load_schema ------------------------------------------------------------------------------


def test_load_schema_from_dict_json_yaml_and_text(tmp_path):
    descriptor = {"fields": [{"name": "a", "type": "integer"}], "primaryKey": "a"}
    assert load_schema(descriptor)["primaryKey"] == ["a"]
    assert descriptor["primaryKey"] == "a"  # the caller's dict is not changed
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(descriptor), encoding="utf-8")
    assert load_schema(path)["fields"][0]["name"] == "a"
    assert load_schema(str(path))["fields"][0]["type"] == "integer"
    yml = tmp_path / "schema.yaml"
    yml.write_text("fields:\n  - name: ags\n    type: string\n", encoding="utf-8")
    assert load_schema(yml)["fields"][0]["name"] == "ags"
    assert load_schema(json.dumps(descriptor))["primaryKey"] == ["a"]


def test_load_schema_names_the_problem(tmp_path):
    with pytest.raises(BadInput, match="not found"):
        load_schema(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "fields": [\n    {"name": "a",}\n  ]\n}', encoding="utf-8")
    with pytest.raises(BadInput) as err:
        load_schema(broken)
    assert err.value.line == 3 and err.value.file == str(broken)
    with pytest.raises(BadInput, match="intger"):
        load_schema({"fields": [{"name": "a", "type": "intger"}]})
    with pytest.raises(BadInput, match="primary key"):
        load_schema({"fields": [{"name": "a"}], "primaryKey": ["b"]})
    listing = tmp_path / "list.json"
    listing.write_text("[1]", encoding="utf-8")
    with pytest.raises(BadInput, match="object"):
        load_schema(listing)


# -- check_against_schema ---------------------------------------------------------------------

GOOD = [
    ("1", "01001000", "1.234,5", "31.12.2023", "offen", "a@b.de"),
    ("2", "09162000", "17,25", "01.01.2024", "erledigt", "x@y.org"),
    ("3", "08222000", "0,5", "29.02.2024", "offen", None),
]
USER_SCHEMA = {
    "fields": [
        {"name": "id", "type": "integer", "constraints": {"minimum": 1, "maximum": 100}},
        {
            "name": "ags",
            "type": "string",
            "constraints": {
                "required": True,
                "pattern": "[0-9]{8}",
                "minLength": 8,
                "maxLength": 8,
                "unique": True,
            },
        },
        {
            "name": "betrag",
            "type": "number",
            "decimalChar": ",",
            "groupChar": ".",
            "constraints": {"minimum": "0,1"},
        },
        {"name": "datum", "type": "date", "format": "%d.%m.%Y"},
        {"name": "stand", "type": "string", "constraints": {"enum": ["offen", "erledigt"]}},
        {"name": "mail", "type": "string", "format": "email"},
    ],
    "primaryKey": ["id"],
}


def staged(con, rows) -> None:
    """Stage rows as text, the way a CSV with all_varchar=true arrives."""
    con.sql(
        "CREATE OR REPLACE TABLE t (id VARCHAR, ags VARCHAR, betrag VARCHAR, "
        "datum VARCHAR, stand VARCHAR, mail VARCHAR)"
    )
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)", rows)


def test_conforming_data_passes(con):
    staged(con, GOOD)
    check_against_schema(con, "t", USER_SCHEMA, file="daten.csv")


def test_typed_staging_passes(con):
    con.sql("CREATE TABLE t AS SELECT 1::BIGINT AS id, 2.5::DOUBLE AS x, DATE '2024-01-01' AS d")
    schema = {
        "fields": [
            {"name": "id", "type": "integer", "constraints": {"minimum": 1}},
            {"name": "x", "type": "number", "constraints": {"maximum": 3}},
            {"name": "d", "type": "date", "constraints": {"minimum": "2000-01-01"}},
        ]
    }
    check_against_schema(con, "t", schema)
    con.sql("INSERT INTO t VALUES (2, 1.5, DATE '1999-12-31')")
    with pytest.raises(BadInput, match="below the minimum") as err:
        check_against_schema(con, "t", schema)
    assert (err.value.line, err.value.column) == (3, "d")


def test_integer_field_on_double_storage(con):
    con.sql("CREATE TABLE t AS SELECT * FROM (VALUES (1.0), (2.5)) v(x)")
    with pytest.raises(BadInput, match=r"'2\.5' is not a valid integer") as err:
        check_against_schema(con, "t", {"fields": [{"name": "x", "type": "integer"}]})
    assert err.value.line == 3


@pytest.mark.parametrize(
    ("row", "value", "column", "fragment"),
    [
        (1, "x1", "id", "'x1' is not a valid integer"),
        (1, "1.5", "id", "'1.5' is not a valid integer"),
        (1, "0", "id", "below the minimum 1"),
        (1, "101", "id", "above the maximum 100"),
        (1, None, "ags", "missing but the field is required"),
        (2, "01001000", "ags", "unique value '01001000' occurs more than once (first on line 2)"),
        (1, "0100100", "ags", "does not match the pattern"),
        (1, "010010001", "ags", "longer than the maxLength 8"),
        (2, "1.234.5", "betrag", "'1.234.5' is not a valid number"),
        (2, "1.5", "betrag", "'1.5' is not a valid number"),
        (2, "0,05", "betrag", "below the minimum '0,1'"),
        (1, "2023-12-31", "datum", "not a valid date (format %d.%m.%Y)"),
        (2, "30.02.2024", "datum", "not a valid date"),
        (2, "Offen", "stand", "not one of the allowed values 'offen', 'erledigt'"),
        (1, "kein-mail", "mail", "not a valid string (format email)"),
    ],
)
def test_each_violation_kind_has_line_and_column(con, row, value, column, fragment):
    rows = [list(r) for r in GOOD]
    rows[row][[f["name"] for f in USER_SCHEMA["fields"]].index(column)] = value
    staged(con, rows)
    with pytest.raises(BadInput) as err:
        check_against_schema(con, "t", USER_SCHEMA, file="daten.csv", line_offset=1)
    assert err.value.file == "daten.csv"
    assert err.value.line == row + 2  # header line + 1-based row
    assert err.value.column == column
    assert fragment in err.value.reason
    assert str(err.value).startswith(f"daten.csv, line {row + 2}, column '{column}': ")


def test_min_length_and_primary_key(con):
    schema = {
        "fields": [
            {"name": "k1", "type": "string", "constraints": {"minLength": 2}},
            {"name": "k2", "type": "integer"},
        ],
        "primaryKey": ["k1", "k2"],
    }
    table(con, "('ab', '1'), ('ab', '2'), ('cd', '1'), ('ab', '2')", "k1, k2")
    with pytest.raises(BadInput, match=r"primary key value 'ab, 2' .* \(first on line 3\)") as e:
        check_against_schema(con, "t", schema)
    assert (e.value.line, e.value.column) == (5, "k1")
    table(con, "('ab', '1'), ('a', NULL)", "k1, k2")
    with pytest.raises(BadInput) as e:
        check_against_schema(con, "t", schema, line_offset=10)
    assert e.value.line == 12
    assert "2 problems in all" in e.value.reason
    assert "shorter than the minLength 2" in e.value.reason
    assert "missing but the field is part of the primary key" in e.value.reason


def test_missing_values_and_boolean(con):
    schema = {
        "fields": [
            {"name": "n", "type": "integer", "constraints": {"required": True}},
            {"name": "b", "type": "boolean", "trueValues": ["ja"], "falseValues": ["nein"]},
        ],
        "missingValues": ["", "."],
    }
    table(con, "('1', 'ja'), ('2', 'nein')", "n, b")
    check_against_schema(con, "t", schema)
    table(con, "('1', 'ja'), ('.', 'vielleicht')", "n, b")
    with pytest.raises(BadInput) as err:
        check_against_schema(con, "t", schema)
    assert err.value.column == "b" and "'vielleicht' is not a valid boolean" in err.value.reason
    assert "column 'n': value is missing" in err.value.reason


def test_missing_and_extra_fields(con):
    staged(con, GOOD)
    schema = json.loads(json.dumps(USER_SCHEMA))
    schema["fields"][3]["name"] = "Datum"
    with pytest.raises(BadInput) as err:
        check_against_schema(con, "t", schema, file="d.csv")
    assert err.value.column == "Datum" and err.value.line == 1
    assert "no column for the schema field(s) 'Datum' (did you mean 'datum'?)" in err.value.reason
    assert "'datum' are not in the schema" in err.value.reason


def test_counts_all_and_lists_at_most_five(con):
    table(con, ", ".join(f"('x{i}')" for i in range(50)), "n")
    with pytest.raises(BadInput) as err:
        check_against_schema(con, "t", {"fields": [{"name": "n", "type": "integer"}]})
    assert "50 problems in all" in err.value.reason
    assert err.value.line == 2


def test_invalid_constraint_values(con):
    table(con, "('1')", "n")
    bad = {"fields": [{"name": "n", "type": "integer", "constraints": {"minimum": "eins"}}]}
    with pytest.raises(BadInput, match="constraint value 'eins' is not a valid integer"):
        check_against_schema(con, "t", bad)
    bad = {"fields": [{"name": "n", "type": "string", "constraints": {"pattern": "(["}}]}
    with pytest.raises(BadInput, match="invalid pattern"):
        check_against_schema(con, "t", bad)


def test_relation_with_odd_name(con):
    con.sql('CREATE TABLE "staged v1" AS SELECT 1 AS "a b"')
    schema = infer_table_schema(con, "staged v1")
    check_against_schema(con, "staged v1", schema)
    with pytest.raises(BadInput, match="cannot be read"):
        infer_table_schema(con, "does_not_exist")


def test_missing_values_are_exempt_from_constraints(con):
    schema = {
        "fields": [
            {
                "name": "code",
                "type": "string",
                "constraints": {"unique": True, "enum": ["a", "b"], "minLength": 1},
            }
        ],
        "missingValues": ["", "."],
    }
    table(con, "('a'), ('.'), ('b'), ('.')", "code")
    check_against_schema(con, "t", schema)
    table(con, "('a'), ('.'), ('a')", "code")
    with pytest.raises(BadInput, match="unique value 'a'") as err:
        check_against_schema(con, "t", schema)
    assert err.value.line == 4
