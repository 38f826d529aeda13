"""CSV detection and parsing with German conventions, on generated and real files."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datenlabor.errors import BadInput
from datenlabor.pool.ingest import CsvOptions


def _write(path: Path, text: str, encoding: str) -> Path:
    path.write_bytes(text.encode(encoding))
    return path


GERMAN = (
    "AGS;Gemeinde;Stichtag;Einwohner;Fläche km²;Haushalt €\r\n"
    "01001000;Flensburg;31.12.2023;92.550;56,73;1.234.567,89\r\n"
    "09162000;München;31.12.2023;1.510.378;310,70;-12,5\r\n"
    "08222000;Mannheim;30.06.2024;316.877;144,96;\r\n"
    "16051000;Erfurt – Stadt;01.01.2024;215.675;269,91;0,01\r\n"
)


@pytest.mark.parametrize("encoding", ["cp1252", "utf-8", "utf-8-sig"])
def test_german_csv_types_and_values(sqlite_pool, tmp_path: Path, encoding: str) -> None:
    src = _write(tmp_path / "gemeinden.csv", GERMAN, encoding)
    v = sqlite_pool.ingest(src, dataset="gemeinden")
    assert v.detection["encoding"] == encoding
    assert v.detection["delimiter"] == ";"
    assert v.detection["decimal"] == ","
    cols = v.detection["columns"]
    assert cols["AGS"] == "VARCHAR"  # leading zeros kept
    assert cols["Einwohner"] == "BIGINT"
    assert cols["Fläche km²"] == "DOUBLE"
    assert cols["Stichtag"] == "DATE"
    rows = sqlite_pool.dataset("gemeinden").read().to_pylist()
    assert rows[0]["AGS"] == "01001000"
    assert rows[0]["Einwohner"] == 92550
    assert rows[1]["Einwohner"] == 1510378
    assert rows[0]["Haushalt €"] == pytest.approx(1234567.89)
    assert rows[1]["Haushalt €"] == pytest.approx(-12.5)
    assert rows[2]["Haushalt €"] is None
    assert rows[2]["Stichtag"] == date(2024, 6, 30)
    assert rows[3]["Gemeinde"] == "Erfurt – Stadt"  # cp1252's en dash survives
    assert rows[1]["Gemeinde"] == "München"


def test_cp1252_detection_uses_whole_file(sqlite_pool, tmp_path: Path) -> None:
    # The only cp1252-specific byte (€ = 0x80) sits far beyond any sample.
    body = "".join(f"{i:05d};Zeile {i}\n" for i in range(400_000))
    text = "Nr;Text\n" + body + "E0001;Preis 5 €\n"
    v = sqlite_pool.ingest(_write(tmp_path / "late.csv", text, "cp1252"), dataset="late")
    assert v.detection["encoding"] == "cp1252"
    last = sqlite_pool.query("SELECT Text FROM late WHERE Nr = 'E0001'").to_pylist()
    assert last == [{"Text": "Preis 5 €"}]


def test_latin1_uses_fast_path(sqlite_pool, tmp_path: Path) -> None:
    v = sqlite_pool.ingest(
        _write(tmp_path / "l.csv", "Ort;Wert\nGößnitz;1,5\nÖhringen;2\n", "latin-1"), dataset="l"
    )
    assert v.detection["encoding"] == "cp1252"  # identical bytes; reported as the Windows codepage
    assert "transcoded" not in v.detection
    assert sqlite_pool.dataset("l").read().column("Ort").to_pylist() == ["Gößnitz", "Öhringen"]


def test_widens_column_when_late_rows_contradict_sample(tmp_path: Path, sqlite_pool) -> None:
    lines = ["id,betrag"] + [f"{i},{i}" for i in range(5000)] + ["5000,12.5", "5001,n/a"]
    src = _write(tmp_path / "w.csv", "\n".join(lines) + "\n", "utf-8")
    sqlite_pool.settings.csv_sample_bytes = 1024  # force a small sample
    v = sqlite_pool.ingest(src, dataset="w")
    assert v.detection["columns"]["betrag"] == "VARCHAR"
    widened = v.detection["widened"]
    assert widened[0]["column"] == "betrag" and widened[0]["from"] == "BIGINT"
    assert v.rows == 5002


def test_wrong_field_count_names_line(sqlite_pool, tmp_path: Path) -> None:
    src = _write(tmp_path / "bad.csv", "a;b;c\n1;2;3\n4;5;6\n7;8\n", "utf-8")
    with pytest.raises(BadInput) as info:
        sqlite_pool.ingest(src, dataset="bad")
    assert info.value.line == 4
    assert "bad.csv" in str(info.value) and "line 4" in str(info.value)
    assert sqlite_pool.datasets() == []  # nothing of the failed ingest is visible


def test_forced_type_error_names_line_and_column(sqlite_pool, tmp_path: Path) -> None:
    src = _write(tmp_path / "t.csv", "a;b\n1;x\n2;y\n", "utf-8")
    with pytest.raises(BadInput) as info:
        sqlite_pool.ingest(src, dataset="t", csv=CsvOptions(types={"b": "INTEGER"}))
    assert info.value.column == "b" and info.value.line == 2


def test_options_override_detection(sqlite_pool, tmp_path: Path) -> None:
    src = _write(tmp_path / "o.csv", "1|2,5\n3|4,0\n", "utf-8")
    v = sqlite_pool.ingest(
        src, dataset="o", csv=CsvOptions(delimiter="|", header=False, decimal=",")
    )
    assert v.detection["header"] is False
    assert sqlite_pool.dataset("o").read().to_pylist() == [
        {"column1": 1, "column2": 2.5},
        {"column1": 3, "column2": 4.0},
    ]


def test_empty_and_unknown_encoding_are_clear(sqlite_pool, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="empty"):
        sqlite_pool.ingest(_write(tmp_path / "e.csv", "", "utf-8"), dataset="e")
    with pytest.raises(BadInput, match="unknown encoding"):
        sqlite_pool.ingest(
            _write(tmp_path / "u.csv", "a\n1\n", "utf-8"),
            dataset="u",
            csv=CsvOptions(encoding="klingon"),
        )


# Text cells that exercise quoting: separators, quotes, newlines, umlauts and cp1252 signs.
_cell = st.text(
    alphabet=st.sampled_from(list("abcXYZ äöüßÄÖÜ€–\"';,|\t\n 0123456789.")), max_size=12
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.tuples(_cell, _cell), min_size=1, max_size=30),
    delimiter=st.sampled_from([";", ",", "\t", "|"]),
    encoding=st.sampled_from(["utf-8", "cp1252", "utf-8-sig"]),
    lineterminator=st.sampled_from(["\n", "\r\n"]),
)
def test_dialect_round_trip(tmp_path_factory, rows, delimiter, encoding, lineterminator) -> None:
    """Whatever a spreadsheet program writes with csv quoting, we read back unchanged."""
    import datenlabor

    tmp = tmp_path_factory.mktemp("rt")
    buf = io.StringIO()
    writer = csv.writer(
        buf, delimiter=delimiter, lineterminator=lineterminator, quoting=csv.QUOTE_ALL
    )
    writer.writerow(["Spalte A", "Spalte B"])
    writer.writerows(rows)
    src = _write(tmp / "rt.csv", buf.getvalue(), encoding)
    pool = datenlabor.open(tmp / "pool")
    try:
        opts = CsvOptions(types={"Spalte A": "VARCHAR", "Spalte B": "VARCHAR"})
        pool.ingest(src, dataset="rt", csv=opts)
        got = [(r["Spalte A"], r["Spalte B"]) for r in pool.dataset("rt").read().to_pylist()]
    finally:
        pool.store.dispose()
    assert got == [(a, b) for a, b in rows]
