"""GENESIS exports go through the whole ingest: tidy versions with status symbols, queryable."""

from __future__ import annotations

from pathlib import Path

from conftest import FIXTURES, shared_file


def test_real_genesis_export_becomes_tidy_version(sqlite_pool) -> None:
    src = shared_file("genesis/63111-0001.csv")
    v = sqlite_pool.ingest(src, dataset="haushalte")
    assert v.format == "genesis"
    assert v.detection["encoding"] == "cp1252"
    assert v.detection["genesis"]["table_code"] == "63111-0001"
    assert v.rows == 1368
    counts = dict(
        tuple(r.values())
        for r in sqlite_pool.query(
            "SELECT status, count(*) AS n FROM haushalte WHERE status IS NOT NULL GROUP BY 1"
        ).to_pylist()
    )
    assert counts == {"-": 512, ".": 75}
    # A symbol never carries a value; header and footer text never became rows.
    bad = sqlite_pool.query(
        "SELECT count(*) AS n FROM haushalte WHERE (status IN ('-', '.') AND value IS NOT NULL) "
        "OR contains(Stichtag, 'Stand') OR contains(Stichtag, '©') OR contains(Stichtag, '___')"
    ).to_pylist()
    assert bad == [{"n": 0}]


def test_real_flat_export_keeps_kreis_keys(sqlite_pool) -> None:
    src = shared_file("genesis/ffcsv/12411-01-01-4_de_flat.csv")
    v = sqlite_pool.ingest(src, dataset="kreise")
    assert v.format == "ffcsv" and v.rows == 1467
    row = sqlite_pool.query(
        "SELECT kreise_code, kreise_label FROM kreise WHERE kreise_code = '08222' LIMIT 1"
    ).to_pylist()
    assert row and row[0]["kreise_label"].startswith("Mannheim")
    assert (
        sqlite_pool.query("SELECT min(kreise_code) AS k FROM kreise")
        .to_pylist()[0]["k"]
        .startswith("0")
    )


def test_all_real_genesis_files_ingest(sqlite_pool) -> None:
    folder = shared_file("genesis")
    files = sorted(folder.glob("*.csv")) + sorted((folder / "ffcsv").glob("*.csv"))
    assert len(files) == 9
    for i, f in enumerate(files):
        v = sqlite_pool.ingest(f, dataset=f"g{i}")
        assert v.format in ("genesis", "ffcsv"), f
        assert v.rows > 0
        names = [fl["name"] for fl in v.schema["fields"]]
        assert names[-2:] == ["value", "status"], f


def test_own_fixture_without_shared_data(sqlite_pool) -> None:
    src = FIXTURES / "genesis" / "71231-0002_classic_cp1252.csv"
    v = sqlite_pool.ingest(src, dataset="fixture", format="genesis")
    assert v.format == "genesis" and v.detection["encoding"] == "cp1252"
    statuses = {
        r["status"] for r in sqlite_pool.query("SELECT DISTINCT status FROM fixture").to_pylist()
    }
    assert {"p", "()"} <= statuses


def test_genesis_format_forced_on_plain_csv_is_rejected(sqlite_pool, tmp_path: Path) -> None:
    import pytest

    from datenlabor.errors import BadInput

    f = tmp_path / "plain.csv"
    f.write_text("a;b\n1;2\n", encoding="utf-8")
    with pytest.raises(BadInput, match="not a GENESIS export"):
        sqlite_pool.ingest(f, dataset="plain", format="genesis")
