"""The official AGS/ARS key list and the checks against it, on real facts."""

from __future__ import annotations

import csv
import importlib.util
import json
from collections import Counter
from importlib import resources
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from conftest import REPO, shared_file
from datenlabor.pool import ags


def _keys(level: str) -> dict[str, str]:
    t = ags.key_table()
    return {
        k: n
        for k, lv, n in zip(*(t.column(c).to_pylist() for c in t.column_names), strict=True)
        if lv == level
    }


# --- the list -----------------------------------------------------------------------------


def test_key_table_schema_and_order() -> None:
    t = ags.key_table()
    assert t.schema == pa.schema(
        [("key", pa.string()), ("level", pa.string()), ("name", pa.string())]
    )
    keys = t.column("key").to_pylist()
    assert keys == sorted(keys)
    assert len(keys) == len(set(keys))
    assert set(t.column("level").to_pylist()) == {"land", "regierungsbezirk", "kreis", "gemeinde"}
    assert ags.key_table() is t  # cached


def test_package_data_is_shipped_with_the_package() -> None:
    data = resources.files("datenlabor").joinpath("data")
    names = {p.name for p in data.iterdir()}
    assert "ags_keys.csv" in names or "ags_keys.csv.gz" in names
    assert "SOURCES.md" in names


def test_real_gemeinden() -> None:
    gemeinden = _keys("gemeinde")
    assert gemeinden["09162000"] == "München"
    assert gemeinden["08222000"] == "Mannheim"
    assert gemeinden["11000000"] == "Berlin"
    assert gemeinden["02000000"] == "Hamburg"
    assert gemeinden["04011000"] == "Bremen"
    assert gemeinden["01001000"] == "Flensburg"
    for key in ("09162000", "08222000", "11000000", "01001000"):
        assert ags.is_known(key)


def test_sixteen_laender_match_the_constant() -> None:
    laender = _keys("land")
    assert laender == ags.LAENDER
    assert list(ags.LAENDER) == [f"{i:02d}" for i in range(1, 17)]
    assert ags.LAENDER["01"] == "Schleswig-Holstein" and ags.LAENDER["16"] == "Thüringen"


def test_regierungsbezirke() -> None:
    rb = _keys("regierungsbezirk")
    assert rb["091"] == "Oberbayern"
    assert rb["082"] == "Reg.-Bez. Karlsruhe"  # Mannheim's
    assert rb["055"] == "Reg.-Bez. Münster"
    # the 19 existing ones plus the statistical/former ones the GV100AD still carries
    assert sum(1 for k in rb if k[:2] in ("05", "06", "08", "09")) == 19
    assert len(rb) == 29


def test_hierarchy_is_consistent() -> None:
    laender, kreise, gemeinden = _keys("land"), _keys("kreis"), _keys("gemeinde")
    assert all(k[:2] in laender for k in kreise)
    assert all(k[:5] in kreise for k in gemeinden)
    # every Kreis has at least one Gemeinde (kreisfreie Städte: themselves, e.g. 09162 -> 09162000)
    assert {k[:5] for k in gemeinden} == set(kreise)


def test_kreise_match_vg5000_2021() -> None:
    """401 Kreise, exactly the ARS of BKG VG5000 (Stand 01.01.2021).

    Same Gebietsstand as the list's Gemeinden (25.01.2021): no Kreis changed in between. Later
    counts differ: Eisenach (16056) joined the Wartburgkreis (16063) on 01.07.2021, so Destatis
    counts 400 Kreise from then on; 16056 is still in this list (see test_gemeinden_vs_destatis).
    """
    path = shared_file("geo/vg5000_kreise.geojson")
    features = json.loads(path.read_text(encoding="utf-8"))["features"]
    geo = {f["properties"]["ARS"]: f["properties"]["GEN"] for f in features}
    kreise = _keys("kreis")
    assert len(kreise) == len(geo) == 401
    assert set(kreise) == set(geo)
    assert kreise["08222"].startswith(geo["08222"]) and geo["08222"] == "Mannheim"
    assert "16056" in kreise


def test_laender_match_vg5000() -> None:
    path = shared_file("geo/vg5000_laender.geojson")
    features = json.loads(path.read_text(encoding="utf-8"))["features"]
    assert len(features) == 25  # land and water parts: "Bayern", "Bayern (Bodensee)", ...
    geo = {
        f["properties"]["ARS"]: f["properties"]["GEN"].removesuffix(" (Bodensee)") for f in features
    }
    assert geo == ags.LAENDER


def test_counts_per_level() -> None:
    counts = Counter(ags.key_table().column("level").to_pylist())
    assert counts == {"land": 16, "regierungsbezirk": 29, "kreis": 401, "gemeinde": 10823}
    per_land = Counter(k[:2] for k in _keys("gemeinde"))
    assert per_land["09"] == 2056  # Bayern
    assert per_land["08"] == 1101  # Baden-Württemberg
    assert per_land["16"] == 632  # Thüringen, 25.01.2021
    assert per_land["02"] == per_land["11"] == 1


def test_thueringen_is_after_the_2019_reform() -> None:
    """Thüringen comes from the amended Anlage: merged Gemeinden gone, new ones present."""
    assert ags.is_known("16064076")  # Unstrut-Hainich, formed 2019
    assert ags.is_known("16063103")  # Werra-Suhl-Tal
    assert ags.is_known("16061118")  # Dingelstädt (new key after the merger)
    assert not ags.is_known("16066035")  # Kaltensundheim, merged into Kaltennordheim
    assert not ags.is_known("16061025")  # Dingelstädt's old key


# Kreise whose number of Gemeinden differs from Destatis 31.12.2022 (SOURCES.md explains them).
EXPECTED_DEVIATIONS = {
    "03153": (10, 7),  # Goslar
    "03358": (24, 23),  # Heidekreis
    "06633": (29, 28),  # Landkreis Kassel
    "07132": (119, 118),  # Altenkirchen (Westerwald)
    "07339": (66, 64),  # Mainz-Bingen
    "12073": (34, 30),  # Uckermark
    "13071": (156, 148),  # Mecklenburg-Vorpommern: taken from the original Anlage, not amended
    "13072": (116, 112),
    "13073": (103, 101),
    "13074": (86, 83),
    "13075": (140, 138),
    "13076": (147, 142),
    "16056": (1, 0),  # Eisenach: kreisfrei until 30.06.2021 ...
    "16063": (31, 32),  # ... then part of the Wartburgkreis
    "16071": (40, 39),  # Weimarer Land: changed after 25.01.2021
}


def test_gemeinden_vs_destatis() -> None:
    """Destatis 11111-02-01-4 (Gemeinden per Kreis, 31.12.2022) agrees for all other Kreise."""
    path = shared_file("genesis/ffcsv/11111-02-01-4_flat_2024.csv")
    ref = {}
    with path.open(encoding="utf-8", newline="") as fh:
        for rec in csv.reader(fh, delimiter=";"):
            if len(rec[7]) == 5 and rec[7].isdigit():
                ref[rec[7]] = 0 if rec[9] == "-" else int(rec[9])
    ours = Counter(k[:5] for k in _keys("gemeinde"))
    ours.pop("02000"), ours.pop("11000")  # Stadtstaaten: no Kreis row in that table
    diffs = {k: (n, ref.get(k, 0)) for k, n in ours.items() if n != ref.get(k, 0)}
    assert diffs == EXPECTED_DEVIATIONS
    assert sum(ref.get(k, 0) for k in ours) == 10784


def test_package_data_is_rebuilt_from_the_raw_sources() -> None:
    """scripts/build_ags_keys.py turns data-sources/ags/ into exactly the shipped list."""
    spec = importlib.util.spec_from_file_location(
        "build_ags_keys", REPO / "scripts" / "build_ags_keys.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shared = Path(module.__file__).resolve().parents[2] / "shared" / "data"
    rows = module.build(shared if shared.exists() else None)
    t = ags.key_table()
    assert rows == list(zip(*(t.column(c).to_pylist() for c in t.column_names), strict=True))


# --- single keys --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "level"),
    [
        ("09", "land"),
        ("091", "regierungsbezirk"),
        ("09162", "kreis"),
        ("09162000", "gemeinde"),
        ("091620000", "gemeindeverband"),
        ("091620000000", "gemeinde"),
        ("1234567", None),
        ("9162000", None),
        ("0916200000", None),
        ("", None),
        ("0916200a", None),
        (" 09162000", None),
        ("09162000 ", None),
        ("０９", None),  # full-width digits are digits to str.isdigit, not here
        ("²³", None),
    ],
)
def test_level_of(key: str, level: str | None) -> None:
    assert ags.level_of(key) == level


def test_level_of_non_strings() -> None:
    assert ags.level_of(9162000) is None  # type: ignore[arg-type]
    assert ags.level_of(None) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("01", True),
        ("16", True),
        ("00", False),
        ("17", False),
        ("99999999", False),
        ("1234567", False),
    ],
)
def test_is_valid_format(key: str, valid: bool) -> None:
    assert ags.is_valid_format(key) is valid


@pytest.mark.parametrize(
    ("key", "known"),
    [
        ("09", True),
        ("091", True),
        ("09162", True),
        ("09162000", True),
        ("091620000000", True),  # ARS München -> AGS 09162000
        ("082220000000", True),  # ARS Mannheim
        ("010515163003", True),  # ARS Averlak (Amt Burg-St. Michaelisdonn) -> AGS 01051003
        ("99999999", False),  # Land 99 does not exist
        ("1234567", False),  # 7 digits: an AGS that lost its leading zero
        ("01999999", False),  # well-formed, but no such Gemeinde
        ("09999", False),  # no such Kreis
        ("090", False),  # Bayern has no Regierungsbezirk 0
        ("010515163", False),  # Gemeindeverband: not in the list
        ("011", False),
        ("", False),
    ],
)
def test_is_known(key: str, known: bool) -> None:
    assert ags.is_known(key) is known


# --- vectorized checks in DuckDB --------------------------------------------------------------

MIXED = [
    "09162000",  # known Gemeinde
    "08222000",  # known Gemeinde
    "11000000",  # known Gemeinde
    "091620000000",  # known ARS
    "09162",  # known Kreis
    "091",  # known Regierungsbezirk
    "16",  # known Land
    "01999999",  # format ok, unknown
    "010515163",  # format ok (Gemeindeverband), unknown
    "99999999",  # invalid: Land 99
    "1234567",  # invalid: 7 digits
    "abc",  # invalid
    "",  # invalid
    " 09162000",  # invalid (not trimmed)
    None,
    None,
]


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.execute("CREATE TABLE t (id INTEGER, gemeinde VARCHAR)")
    c.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(MIXED)))
    return c


def test_register_makes_the_list_queryable(con: duckdb.DuckDBPyConnection) -> None:
    ags.register(con)
    assert con.sql("SELECT name FROM ags_keys WHERE key = '08222000'").fetchone() == ("Mannheim",)
    assert con.sql("SELECT count(*) FROM ags_keys WHERE level = 'land'").fetchone() == (16,)
    row = con.sql("SELECT count(*) FROM t JOIN ags_keys k ON t.gemeinde = k.key").fetchone()
    assert row == (6,)
    ags.register(con, "other_name")
    ags.register(con, "other_name")  # idempotent
    assert con.sql("SELECT count(*) FROM other_name").fetchone() == (ags.key_table().num_rows,)


def test_column_check_sql(con: duckdb.DuckDBPyConnection) -> None:
    ags.register(con)
    fragment = ags.column_check_sql('"gemeinde"')
    rel = con.sql(f"SELECT {fragment} FROM t")
    assert rel.columns == ["n_rows", "n_null", "n_format_ok", "n_invalid", "n_known", "n_unknown"]
    assert rel.fetchone() == (16, 2, 9, 5, 7, 2)


def test_column_check_agrees_with_single_key_functions(con: duckdb.DuckDBPyConnection) -> None:
    result = ags.column_check(con, "t", "gemeinde", keys_table="k")
    values = [v for v in MIXED if v is not None]
    assert result == {
        "n_rows": len(MIXED),
        "n_null": len(MIXED) - len(values),
        "n_format_ok": sum(ags.is_valid_format(v) for v in values),
        "n_invalid": sum(not ags.is_valid_format(v) for v in values),
        "n_known": sum(ags.is_known(v) for v in values),
        "n_unknown": sum(ags.is_valid_format(v) and not ags.is_known(v) for v in values),
    }
    # the per-row predicates, as used for listing offending values
    ags.register(con)
    rows = con.sql(
        f"SELECT gemeinde, {ags.format_ok_sql('gemeinde')}, {ags.known_sql('gemeinde')} "
        "FROM t WHERE gemeinde IS NOT NULL ORDER BY id"
    ).fetchall()
    assert [(v, ok, kn) for v, ok, kn in rows] == [
        (v, ags.is_valid_format(v), ags.is_known(v)) for v in values
    ]


def test_column_check_on_an_expression_and_on_numbers(con: duckdb.DuckDBPyConnection) -> None:
    trimmed = ags.column_check(con, "t", "trim(gemeinde)")
    assert trimmed["n_known"] == 8  # ' 09162000' is known once trimmed
    con.execute("CREATE TABLE n AS SELECT * FROM (VALUES (9162000), (8222000), (NULL)) v(ags)")
    numbers = ags.column_check(con, "n", "ags")
    assert numbers == {
        "n_rows": 3,
        "n_null": 1,
        "n_format_ok": 0,
        "n_invalid": 2,
        "n_known": 0,
        "n_unknown": 0,
    }
    padded = ags.column_check(con, "n", "lpad(CAST(ags AS VARCHAR), 8, '0')")
    assert padded["n_known"] == 2


def test_column_check_is_one_vectorized_query() -> None:
    """A million rows are checked in one query, fast (no Python loop over rows)."""
    c = duckdb.connect()
    c.execute(
        "CREATE TABLE big AS SELECT CASE i % 4 WHEN 0 THEN '09162000' WHEN 1 THEN '08222000' "
        "WHEN 2 THEN '01999999' ELSE NULL END AS g FROM range(1000000) r(i)"
    )
    result = ags.column_check(c, "big", "g")
    assert result == {
        "n_rows": 1_000_000,
        "n_null": 250_000,
        "n_format_ok": 750_000,
        "n_invalid": 0,
        "n_known": 500_000,
        "n_unknown": 250_000,
    }
