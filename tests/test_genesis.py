"""GENESIS readers: classic table exports and flat ffcsv exports."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from conftest import SHARED, shared_file
from datenlabor.errors import BadInput
from datenlabor.pool.ingest.genesis import GenesisTable, read_ffcsv, read_genesis, sniff_genesis

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "genesis"
GENESIS_DIR = SHARED / "genesis"
FOOTER_WORDS = ("Stand", "©", "__________", "Quelle", "GENESIS-Tabelle", "Statistisches Bundesamt")


def shared(name: str) -> Path:
    """A real file from the shared data folder (skip locally, fail in CI when missing)."""
    return shared_file(f"genesis/{name}")


def rows_where(result: GenesisTable, **dims: str) -> list[dict]:
    return [row for row in result.table.to_pylist() if all(row[k] == v for k, v in dims.items())]


def one(result: GenesisTable, **dims: str) -> tuple[float | None, str | None]:
    rows = rows_where(result, **dims)
    assert len(rows) == 1, (dims, rows)
    return rows[0]["value"], rows[0]["status"]


def status_counts(result: GenesisTable) -> dict[str | None, int]:
    counts = pc.value_counts(result.table["status"]).to_pylist()
    return {c["values"]: c["counts"] for c in counts}


def assert_tidy(result: GenesisTable) -> None:
    """value/status last with the right types, text dimensions, no footer text as data."""
    table = result.table
    assert table.column_names[-2:] == ["value", "status"]
    assert table.schema.field("value").type == pa.float64()
    assert table.schema.field("status").type == pa.string()
    names = table.column_names
    assert len({n.casefold() for n in names}) == len(names)
    assert all(name.strip() for name in names)
    for name in names[:-2]:
        column = table[name]
        assert column.type == pa.string(), name
        for word in FOOTER_WORDS:
            hits = pc.sum(pc.match_substring(column, word)).as_py()
            assert not hits, (name, word)
    # A NULL value always comes with a status.
    unexplained = pc.and_(pc.is_null(table["value"]), pc.is_null(table["status"]))
    assert not pc.any(unexplained).as_py()


def raw_data_cells(path: Path, encoding: str, first_col_pattern: str) -> list[list[str]]:
    with path.open(encoding=encoding, newline="") as fh:
        rows = list(csv.reader(fh, delimiter=";"))
    return [r for r in rows if r and re.fullmatch(first_col_pattern, r[0])]


# --------------------------------------------------------------------------- own fixtures


def test_fixture_classic_cp1252_symbols_suffixes_and_codes():
    result = read_genesis(FIXTURES / "71231-0002_classic_cp1252.csv", encoding="cp1252")
    assert_tidy(result)
    table = result.table
    assert table.column_names == [
        "Kreise_code",
        "Kreise",
        "Jahre",
        "Steuerart",
        "measure",
        "unit",
        "value",
        "status",
    ]
    assert table.num_rows == 5 * 4
    assert set(table["Kreise_code"].to_pylist()) == {"08222", "09162", "DG"}
    assert set(table["unit"].to_pylist()) == {"Tsd. €"}
    assert set(table["measure"].to_pylist()) == {"Einnahmen"}
    assert "Zweitwohnungsteuer (€-Anteil)" in table["Steuerart"].to_pylist()
    assert "München, Landeshauptstadt" in table["Kreise"].to_pylist()
    m21 = {"Kreise_code": "08222", "Jahre": "2021"}
    assert one(result, **m21, Steuerart="Grundsteuer A") == (1234.5, "p")
    assert one(result, **m21, Steuerart="Grundsteuer B") == (45678.9, None)
    assert one(result, **m21, Steuerart="Gewerbesteuer") == (123.4, "()")
    assert one(result, **m21, Steuerart="Zweitwohnungsteuer (€-Anteil)") == (0.0, None)
    m22 = {"Kreise_code": "08222", "Jahre": "2022"}
    assert one(result, **m22, Steuerart="Grundsteuer A") == (1300.0, "r")
    assert one(result, **m22, Steuerart="Grundsteuer B") == (46000.0, "s")
    assert one(result, **m22, Steuerart="Gewerbesteuer") == (None, "...")
    assert one(result, **m22, Steuerart="Zweitwohnungsteuer (€-Anteil)") == (None, "-")
    mu21 = {"Kreise_code": "09162", "Jahre": "2021"}
    assert one(result, **mu21, Steuerart="Grundsteuer A") == (None, ".")
    assert one(result, **mu21, Steuerart="Grundsteuer B") == (1234567.8, None)
    assert one(result, **mu21, Steuerart="Gewerbesteuer") == (None, "x")
    assert one(result, **mu21, Steuerart="Zweitwohnungsteuer (€-Anteil)") == (None, "/")
    mu22 = {"Kreise_code": "09162", "Jahre": "2022"}
    assert one(result, **mu22, Steuerart="Grundsteuer A") == (-5.5, None)
    assert one(result, **mu22, Steuerart="Grundsteuer B") == (12.0, "()p")
    assert one(result, **mu22, Steuerart="Zweitwohnungsteuer (€-Anteil)") == (2345.0, None)
    assert one(result, Kreise_code="DG", Steuerart="Grundsteuer B") == (2000000.25, None)

    meta = result.metadata
    assert meta["kind"] == "genesis"
    assert meta["table_code"] == "71231-0002"
    assert meta["title"] == (
        "Realsteuereinnahmen (Gemeinden und Gemeindeverbände): Kreise, Jahre, Steuerart"
    )
    assert meta["source"] == "Statistische Ämter des Bundes und der Länder"
    assert meta["stand"] == "05.03.2024 / 10:11:12"
    assert meta["footnotes"] == [
        'Steuerart:\nGewerbesteuer einschließlich "Umlage";\nBeträge in €.',
        "Zweite Fußnote ohne Zeilenumbruch",
    ]
    assert meta["header_lines"] == 7
    assert meta["footer_lines"] == 8


def test_fixture_classic_measure_and_unit_rows_and_month_time():
    result = read_genesis(FIXTURES / "63111-9001_classic_units_utf8.csv", encoding="utf-8")
    assert_tidy(result)
    table = result.table
    assert table.column_names == [
        "Jahr",
        "Monat",
        "Gebrauchsgüter",
        "measure",
        "unit",
        "value",
        "status",
    ]
    assert table.num_rows == 6
    first = table.slice(0, 1).to_pylist()[0]
    assert first == {
        "Jahr": "2021",
        "Monat": "Januar",
        "Gebrauchsgüter": None,
        "measure": "Erfasste Haushalte",
        "unit": "Anzahl",
        "value": 7630.0,
        "status": None,
    }
    assert one(result, Monat="Januar", Gebrauchsgüter="Kühlschrank") == (99.9, None)
    assert one(result, Monat="Februar", Gebrauchsgüter="Fahrrad") == (None, "...")
    assert one(result, Monat="Februar", Gebrauchsgüter="Kühlschrank") == (None, ".")
    assert rows_where(result, Monat="Februar", Gebrauchsgüter="Fahrrad")[0]["unit"] == "Prozent"
    assert result.metadata["selection"] == ["Deutschland"]
    assert result.metadata["header_lines"] == 9
    assert result.metadata["footer_lines"] == 3


def test_fixture_ffcsv_2025_style_with_bom():
    for encoding in ("utf-8", "utf-8-sig"):
        result = read_ffcsv(FIXTURES / "12411-01-01-4_de_flat.csv", encoding=encoding)
        assert_tidy(result)
        table = result.table
        assert table.column_names == [
            "time",
            "kreise_code",
            "kreise_label",
            "ges_code",
            "ges_label",
            "measure_code",
            "measure_label",
            "unit",
            "value",
            "status",
        ]
        assert table["kreise_code"].to_pylist() == ["08222", "01001", "03152", "09162", "DG"]
        assert table["kreise_label"][1].as_py() == "Flensburg, kreisfreie Stadt"
        assert table["ges_code"].to_pylist() == ["GESW", None, "GESM", None, None]
        assert table["value"].to_pylist() == [158789.0, None, None, 1512491.0, 83577.1]
        assert table["status"].to_pylist() == [None, "-", ".", "p", "()"]
        meta = result.metadata
        assert meta["kind"] == "ffcsv"
        assert meta["header_style"] == "2025"
        assert meta["table_code"] == "12411-01-01-4"
        assert meta["statistic_code"] == "12411"
        assert meta["time_label"] == "Stichtag"
        assert meta["variables"][0]["label"] == "Kreise und kreisfreie Städte"


def test_fixture_ffcsv_legacy_style_two_measures():
    result = read_ffcsv(FIXTURES / "46181-0001_flat_legacy.csv", encoding="utf-8")
    assert_tidy(result)
    table = result.table
    assert table.column_names == [
        "time",
        "dland_code",
        "dland_label",
        "verat5_code",
        "verat5_label",
        "measure_code",
        "measure_label",
        "unit",
        "value",
        "status",
    ]
    # One row per record and measure, measures of a record next to each other.
    assert table["measure_code"].to_pylist() == ["VER013", "GUT004"] * 3
    assert table["unit"].to_pylist() == ["Anzahl", "Person-km"] * 3
    assert table["dland_code"].to_pylist() == ["08", "08", "01", "01", "08", "08"]
    assert table["dland_label"][2].as_py() == "Schleswig-Holstein"
    assert table["value"].to_pylist() == [2214225.0, 611.5, None, 1234.75, None, None]
    assert table["status"].to_pylist() == [None, None, "x", "r", "...", "/"]
    assert table["measure_label"][0].as_py() == "Befoerderte Personen"
    assert result.metadata["header_style"] == "legacy"
    assert result.metadata["table_code"] == "46181-0001"


def test_sniff():
    classic = (FIXTURES / "71231-0002_classic_cp1252.csv").read_bytes().decode("cp1252")
    assert sniff_genesis(classic) == "genesis"
    assert sniff_genesis("\ufeff" + classic) == "genesis"
    new = (FIXTURES / "12411-01-01-4_de_flat.csv").read_text(encoding="utf-8")
    assert sniff_genesis(new) == "ffcsv"
    old = (FIXTURES / "46181-0001_flat_legacy.csv").read_text(encoding="utf-8")
    assert sniff_genesis(old[:200]) == "ffcsv"
    assert sniff_genesis("a;b;c\n1;2;3\n") is None
    assert sniff_genesis("") is None


# --------------------------------------------------------------------------- bad input

CLASSIC_HEAD = (
    "GENESIS-Tabelle: 12612-0002\n"
    "Lebendgeborene: Deutschland, Monate, Geschlecht\n"
    "Statistik der Geburten\n"
    "Deutschland\n"
    "Lebendgeborene (Anzahl)\n"
    ";;männlich;weiblich;Insgesamt\n"
)
CLASSIC_FOOT = "__________\n© Statistisches Bundesamt (Destatis), 2022\nStand: 28.07.2022\n"


def write(tmp_path: Path, text: str, name: str = "t.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_bad_classic_row_with_missing_cell(tmp_path):
    body = "2022;Januar;1;2;3\n2022;Februar;1;2\n"
    path = write(tmp_path, CLASSIC_HEAD + body + CLASSIC_FOOT)
    with pytest.raises(BadInput) as err:
        read_genesis(path, encoding="utf-8")
    assert err.value.line == 8
    assert err.value.column == "Insgesamt"
    assert err.value.file == str(path)
    assert "line 8" in str(err.value)


def test_bad_classic_row_with_extra_cell(tmp_path):
    body = "2022;Januar;1;2;3;4\n"
    with pytest.raises(BadInput) as err:
        read_genesis(write(tmp_path, CLASSIC_HEAD + body + CLASSIC_FOOT), encoding="utf-8")
    assert err.value.line == 7
    assert err.value.column == "cell 6"


def test_bad_classic_cell(tmp_path):
    body = "2022;Januar;1;2;3\n2022;Februar;1;12a;3\n2022;März;1;2;3\n"
    with pytest.raises(BadInput) as err:
        read_genesis(write(tmp_path, CLASSIC_HEAD + body + CLASSIC_FOOT), encoding="utf-8")
    assert (err.value.line, err.value.column) == (8, "weiblich")
    assert "'12a'" in err.value.reason


@pytest.mark.parametrize("cell", ["", "1.5", "1,2,3", "(12", "12q", "–", "n.a."])
def test_bad_classic_cell_values(tmp_path, cell):
    body = f"2022;Januar;1;2;{cell}\n"
    with pytest.raises(BadInput) as err:
        read_genesis(write(tmp_path, CLASSIC_HEAD + body + CLASSIC_FOOT), encoding="utf-8")
    assert (err.value.line, err.value.column) == (7, "Insgesamt")


def test_bad_classic_footer_text_without_separator_is_not_data(tmp_path):
    body = "2022;Januar;1;2;3\nBis 1989: Früheres Bundesgebiet\n"
    with pytest.raises(BadInput) as err:
        read_genesis(write(tmp_path, CLASSIC_HEAD + body + CLASSIC_FOOT), encoding="utf-8")
    assert err.value.line == 8


def test_bad_classic_no_data_rows(tmp_path):
    with pytest.raises(BadInput) as err:
        read_genesis(write(tmp_path, CLASSIC_HEAD + CLASSIC_FOOT), encoding="utf-8")
    assert err.value.line == 7
    assert "no data rows" in err.value.reason


def test_bad_classic_not_genesis(tmp_path):
    with pytest.raises(BadInput) as err:
        read_genesis(write(tmp_path, "a;b\n1;2\n"), encoding="utf-8")
    assert err.value.line == 1


def test_bad_classic_encoding(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(CLASSIC_HEAD.encode("utf-8") + "2022;März;1;2;3\n".encode("cp1252"))
    with pytest.raises(BadInput) as err:
        read_genesis(path, encoding="utf-8")
    assert err.value.line == 7


def test_bad_bom_with_single_byte_encoding():
    with pytest.raises(BadInput) as err:
        read_ffcsv(FIXTURES / "12411-01-01-4_de_flat.csv", encoding="cp1252")
    assert err.value.line == 1
    assert "byte-order mark" in err.value.reason


FLAT_HEAD = (
    "statistics_code;statistics_label;time_code;time_label;time;1_variable_code;"
    "1_variable_label;1_variable_attribute_code;1_variable_attribute_label;value;value_unit\n"
)
FLAT_ROW = "12411;Bev;STAG;Stichtag;2024-12-31;KREISE;Kreise;{code};Ort;{value};Anzahl\n"


def test_bad_ffcsv_row_with_wrong_cell_count(tmp_path):
    text = FLAT_HEAD + FLAT_ROW.format(code="08222", value="1") + "12411;Bev;STAG;Stichtag\n"
    with pytest.raises(BadInput) as err:
        read_ffcsv(write(tmp_path, text), encoding="utf-8")
    assert err.value.line == 3
    assert err.value.column == "time"


def test_bad_ffcsv_value(tmp_path):
    rows = [FLAT_ROW.format(code=f"0{k}", value=str(k)) for k in range(1, 4)]
    rows.insert(2, "\n")  # a blank line is skipped but still counted
    rows.append(FLAT_ROW.format(code="09", value="abc"))
    with pytest.raises(BadInput) as err:
        read_ffcsv(write(tmp_path, FLAT_HEAD + "".join(rows)), encoding="utf-8")
    assert (err.value.line, err.value.column) == (6, "value")
    assert "'abc'" in err.value.reason


def test_bad_ffcsv_empty_value_and_no_rows(tmp_path):
    with pytest.raises(BadInput) as err:
        read_ffcsv(
            write(tmp_path, FLAT_HEAD + FLAT_ROW.format(code="01", value="")), encoding="utf-8"
        )
    assert (err.value.line, err.value.column) == (2, "value")
    with pytest.raises(BadInput) as err:
        read_ffcsv(write(tmp_path, FLAT_HEAD, name="empty.csv"), encoding="utf-8")
    assert err.value.line == 2


def test_bad_ffcsv_header(tmp_path):
    with pytest.raises(BadInput) as err:
        read_ffcsv(write(tmp_path, "a;b\n1;2\n"), encoding="utf-8")
    assert err.value.line == 1


def test_bad_ffcsv_encoding(tmp_path):
    row = FLAT_ROW.format(code="01", value="1").replace("Ort", "Zweibrücken")
    path = tmp_path / "t.csv"
    path.write_bytes(
        (FLAT_HEAD + FLAT_ROW.format(code="02", value="2")).encode() + row.encode("cp1252")
    )
    with pytest.raises(BadInput) as err:
        read_ffcsv(path, encoding="utf-8")
    assert err.value.line == 3


def test_ffcsv_cp1252(tmp_path):
    row = FLAT_ROW.format(code="07340", value="1.234,5").replace("Ort", "Zweibrücken")
    path = write(tmp_path, FLAT_HEAD + row, encoding="cp1252")
    result = read_ffcsv(path, encoding="cp1252")
    assert result.table.to_pylist()[0]["kreise_label"] == "Zweibrücken"
    assert result.table.to_pylist()[0]["kreise_code"] == "07340"
    assert result.table.to_pylist()[0]["value"] == 1234.5


# --------------------------------------------------------------------------- real files


def test_real_12411_0006_population_by_age():
    path = shared("12411-0006.csv")
    result = read_genesis(path, encoding="cp1252")
    assert_tidy(result)
    table = result.table
    assert table.column_names == [
        "Stichtag",
        "Altersjahre",
        "Geschlecht",
        "measure",
        "unit",
        "value",
        "status",
    ]
    # 4,437 data rows (51 dates x 87 age rows) times 3 sexes.
    assert table.num_rows == 4437 * 3
    assert len(set(table["Stichtag"].to_pylist())) == 51
    assert len(set(table["Altersjahre"].to_pylist())) == 87
    assert set(table["Geschlecht"].to_pylist()) == {"männlich", "weiblich", "Insgesamt"}
    baby = {"Stichtag": "31.12.1970", "Altersjahre": "unter 1 Jahr", "Geschlecht": "männlich"}
    assert one(result, **baby) == (401679.0, None)
    total = {"Stichtag": "31.12.2020", "Altersjahre": "Insgesamt", "Geschlecht": "Insgesamt"}
    assert one(result, **total) == (83155031.0, None)
    old = {"Stichtag": "31.12.2020", "Altersjahre": "85 Jahre und mehr", "Geschlecht": "weiblich"}
    assert one(result, **old) == (1655055.0, None)
    assert table["status"].null_count == table.num_rows
    assert set(table["measure"].to_pylist()) == {"Bevölkerungsstand"}
    assert set(table["unit"].to_pylist()) == {"Anzahl"}
    meta = result.metadata
    assert meta["table_code"] == "12411-0006"
    assert meta["title"] == (
        "Bevölkerung: Deutschland, Stichtag, Altersjahre, Nationalität/Geschlecht/Familienstand"
    )
    assert meta["stand"] == "12.10.2021 / 23:58:34"
    assert meta["source"] == "© Statistisches Bundesamt (Destatis), 2021"
    assert len(meta["footnotes"]) == 1 and "Zensus 2011" in meta["footnotes"][0]
    assert (meta["header_lines"], meta["footer_lines"]) == (8, 6)
    assert meta["header_lines"] + 4437 + meta["footer_lines"] == 4451


def test_real_12612_0002_births_later_months_not_yet_available():
    path = shared("12612-0002.csv")
    result = read_genesis(path, encoding="utf-8")
    assert_tidy(result)
    table = result.table
    assert table.column_names[:3] == ["Jahr", "Monat", "Geschlecht"]
    assert table.num_rows == 876 * 3
    assert one(result, Jahr="2022", Monat="Mai", Geschlecht="Insgesamt") == (None, "...")
    assert one(result, Jahr="2022", Monat="Dezember", Geschlecht="männlich") == (None, "...")
    assert one(result, Jahr="2022", Monat="April", Geschlecht="Insgesamt") == (55994.0, None)
    assert one(result, Jahr="1950", Monat="März", Geschlecht="männlich") == (53604.0, None)
    # May-December 2022, three columns each; every other cell is a plain number.
    assert status_counts(result) == {None: 876 * 3 - 24, "...": 24}
    assert result.metadata["stand"] == "28.07.2022 / 20:34:46"
    assert (result.metadata["header_lines"], result.metadata["footer_lines"]) == (6, 3)


def test_real_23211_0002_deaths_multiline_footnote():
    result = read_genesis(shared("23211-0002.csv"), encoding="cp1252")
    assert_tidy(result)
    table = result.table
    assert table.column_names[:3] == ["Jahre", "Todesursachen", "Geschlecht"]
    assert table.num_rows == 41 * 3
    assert set(table["Todesursachen"].to_pylist()) == {"Vorsätzliche Selbstbeschädigung"}
    assert one(result, Jahre="2020", Geschlecht="Insgesamt") == (9206.0, None)
    assert one(result, Jahre="1980", Geschlecht="weiblich") == (6662.0, None)
    (footnote,) = result.metadata["footnotes"]
    assert footnote.startswith("Todesursachen:\nDie ausgewählten")
    assert '"Insgesamt" enthält' in footnote
    assert result.metadata["header_lines"] + 41 + result.metadata["footer_lines"] == 57


def test_real_63111_0001_household_equipment_symbols():
    path = shared("63111-0001.csv")
    result = read_genesis(path, encoding="cp1252")
    assert_tidy(result)
    table = result.table
    assert table.column_names == [
        "Stichtag",
        "Gebrauchsgüter",
        "measure",
        "unit",
        "value",
        "status",
    ]
    assert table.num_rows == 19 * 72
    raw = raw_data_cells(path, "cp1252", r"\d\d\.\d\d\.\d{4}")
    assert len(raw) == 19
    raw_dash = sum(cell == "-" for row in raw for cell in row[1:])
    raw_dot = sum(cell == "." for row in raw for cell in row[1:])
    assert (raw_dash, raw_dot) == (512, 75)
    counts = status_counts(result)
    assert counts["-"] == raw_dash
    assert counts["."] == raw_dot
    assert set(counts) == {None, "-", "."}
    assert pc.sum(pc.is_null(table["value"])).as_py() == raw_dash + raw_dot
    first = {"Stichtag": "01.01.2000"}
    assert rows_where(result, **first, measure="Erfasste Haushalte")[0]["value"] == 5827.0
    hh = rows_where(result, **first, measure="Hochgerechnete Haushalte")[0]
    assert (hh["value"], hh["unit"], hh["Gebrauchsgüter"]) == (34390.0, "1000", None)
    car = {"Stichtag": "01.01.2021", "Gebrauchsgüter": "Personenkraftwagen"}
    assert one(result, **car) == (77.0, None)
    assert rows_where(result, **car)[0]["measure"] == "Ausstattungsgrad je 100 Haushalte"
    assert rows_where(result, **car)[0]["unit"] == "Prozent"
    ev = "Pkw fabrikneu gekauft, Elektroauto, Plug-in-Hybrid"
    assert one(result, Stichtag="01.01.2021", Gebrauchsgüter=ev) == (1.2, None)
    assert one(result, Stichtag="01.01.2020", Gebrauchsgüter=ev) == (None, "-")
    assert len(set(pc.drop_null(table["Gebrauchsgüter"]).to_pylist())) == 70
    assert "Private Haushalte" in result.metadata["footnotes"][0]
    assert (result.metadata["header_lines"], result.metadata["footer_lines"]) == (10, 7)


def test_real_ffcsv_11111_municipality_counts_by_kreis():
    result = read_ffcsv(shared("ffcsv/11111-02-01-4_flat_2024.csv"), encoding="utf-8")
    assert_tidy(result)
    table = result.table
    assert table.num_rows == 538
    assert table.column_names[:3] == ["time", "kreise_code", "kreise_label"]
    codes = table["kreise_code"].to_pylist()
    assert codes[:3] == ["DG", "01", "01001"]
    assert "08222" in codes and len(set(codes)) == 538
    assert one(result, kreise_code="DG") == (10786.0, None)
    assert one(result, kreise_code="01") == (1106.0, None)
    assert one(result, kreise_code="01001") == (1.0, None)
    assert one(result, kreise_code="03152") == (None, "-")
    assert one(result, kreise_code="11001001") == (None, ".")
    assert status_counts(result) == {None: 538 - 79 - 15, "-": 79, ".": 15}
    assert rows_where(result, kreise_code="01")[0]["kreise_label"] == "Schleswig-Holstein"
    assert set(table["unit"].to_pylist()) == {"Anzahl"}
    assert set(table["measure_label"].to_pylist()) == {"Zahl der Gemeinden"}
    assert set(table["time"].to_pylist()) == {"31.12.2022"}


def test_real_ffcsv_12211_microcensus_2025_style():
    result = read_ffcsv(shared("ffcsv/12211-0001_de_flat.csv"), encoding="utf-8-sig")
    assert_tidy(result)
    table = result.table
    assert table.num_rows == 225
    assert table.column_names == [
        "time",
        "dinsg_code",
        "dinsg_label",
        "ges_code",
        "ges_label",
        "alt068_code",
        "alt068_label",
        "measure_code",
        "measure_label",
        "unit",
        "value",
        "status",
    ]
    assert status_counts(result) == {None: 225 - 15, "x": 9, "/": 6}
    first = table.slice(0, 1).to_pylist()[0]
    assert first["ges_code"] is None and first["ges_label"] == "Insgesamt"
    assert (first["alt068_code"], first["measure_code"], first["value"]) == (
        "ALT030B35",
        "ERW041",
        4543.0,
    )
    assert set(table["unit"].to_pylist()) == {"1000"}
    assert result.metadata["header_style"] == "2025"
    assert result.metadata["statistic"] == "Mikrozensus"


def test_real_ffcsv_12411_population_by_kreis():
    result = read_ffcsv(shared("ffcsv/12411-01-01-4_de_flat.csv"), encoding="utf-8-sig")
    assert_tidy(result)
    table = result.table
    assert table.num_rows == 1467
    assert len(set(table["kreise_code"].to_pylist())) == 489
    assert one(result, kreise_code="08222", ges_code="GESW") == (158789.0, None)
    assert one(result, kreise_code="08236", ges_code="GESM") == (99097.0, None)
    essen = rows_where(result, kreise_code="05113", ges_label="Insgesamt")
    assert [(r["value"], r["status"]) for r in essen] == [(574682.0, None)]
    assert status_counts(result)["-"] == 222
    # Kreis keys (5 digits) plus 8-digit keys for Hannover, Aachen, Saarbrücken, Berlin's districts.
    codes = table["kreise_code"].to_pylist()
    assert all(code.isdigit() and len(code) in (5, 8) for code in codes)
    assert sum(len(code) == 8 for code in codes) == 15 * 3
    assert sum(code.startswith("0") for code in codes) > 0
    assert rows_where(result, kreise_code="11001001")[0]["kreise_label"] == "Berlin-Mitte"
    assert set(table["time"].to_pylist()) == {"2024-12-31"}
    assert result.metadata["table_code"] == "12411-01-01-4"


def test_real_ffcsv_13111_employees_legacy_style():
    result = read_ffcsv(shared("ffcsv/13111-0005_flat_2024.csv"), encoding="utf-8")
    assert_tidy(result)
    table = result.table
    assert table.num_rows == 384
    assert table.column_names[:5] == ["time", "dland_code", "dland_label", "ges_code", "ges_label"]
    first = {"time": "30.09.2021", "dland_code": "08"}
    assert one(result, **first, ges_code="GESM") == (2647865.0, None)
    assert one(result, **first, ges_label="Insgesamt") == (4841475.0, None)
    assert one(result, time="30.06.2023", dland_code="16", ges_code="GESW") == (382579.0, None)
    assert sorted(set(table["dland_code"].to_pylist()))[:3] == ["01", "02", "03"]
    assert set(table["measure_code"].to_pylist()) == {"ERW065"}
    assert table["status"].null_count == 384


def test_real_ffcsv_46181_two_measures():
    result = read_ffcsv(shared("ffcsv/46181-0001_flat_2024.csv"), encoding="utf-8")
    assert_tidy(result)
    table = result.table
    assert table.num_rows == 8 * 2
    assert table["measure_code"].to_pylist() == ["VER013", "GUT004"] * 8
    assert set(table["unit"].to_pylist()) == {"Anzahl", "Person-km"}
    key = {"time": "2021", "verat5_code": "VERLINFERNOBUS", "vervz4_code": "HAUPTVKBIN01"}
    assert one(result, **key, measure_code="VER013") == (2214225.0, None)
    assert one(result, **key, measure_code="GUT004") == (611399836.0, None)
    assert "Grenzüberschreitender-,Transit- u. Auslandsverkehr" in table["vervz4_label"].to_pylist()


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("12411-0006.csv", "genesis"),
        ("12612-0002.csv", "genesis"),
        ("23211-0002.csv", "genesis"),
        ("63111-0001.csv", "genesis"),
        ("ffcsv/11111-02-01-4_flat_2024.csv", "ffcsv"),
        ("ffcsv/12211-0001_de_flat.csv", "ffcsv"),
        ("ffcsv/12411-01-01-4_de_flat.csv", "ffcsv"),
        ("ffcsv/13111-0005_flat_2024.csv", "ffcsv"),
        ("ffcsv/46181-0001_flat_2024.csv", "ffcsv"),
    ],
)
def test_real_files_sniff_and_parse(name, kind):
    path = shared(name)
    raw = path.read_bytes()
    encoding = "utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "utf-8"
    try:
        raw.decode(encoding)
    except UnicodeDecodeError:
        encoding = "cp1252"
    assert sniff_genesis(raw[:65536].decode(encoding, errors="replace")) == kind
    reader = read_genesis if kind == "genesis" else read_ffcsv
    result = reader(path, encoding=encoding)
    assert_tidy(result)
    assert result.metadata["kind"] == kind
    assert result.table.num_rows > 0


def test_all_real_files_are_covered():
    shared_file("genesis")
    found = {p.relative_to(GENESIS_DIR).as_posix() for p in GENESIS_DIR.rglob("*.csv")}
    covered = {
        "12411-0006.csv",
        "12612-0002.csv",
        "23211-0002.csv",
        "63111-0001.csv",
        "ffcsv/11111-02-01-4_flat_2024.csv",
        "ffcsv/12211-0001_de_flat.csv",
        "ffcsv/12411-01-01-4_de_flat.csv",
        "ffcsv/13111-0005_flat_2024.csv",
        "ffcsv/46181-0001_flat_2024.csv",
    }
    assert found == covered
