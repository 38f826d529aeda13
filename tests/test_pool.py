"""Datasets and versions: modes, time travel, diff, formats, SQL, metadata (both stores)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datenlabor.demo import write_applications_csv, write_offices_xlsx, write_requests_ndjson
from datenlabor.errors import BadInput, NotFound
from datenlabor.pool.catalog import DatasetMeta

KEY = "Kreisschlüssel,Monat,Eingangskanal"


def _sum(pool, sql: str):  # type: ignore[no-untyped-def]
    return pool.query(sql).to_pylist()[0]


def test_versions_modes_time_travel_and_diff(pool, tmp_path: Path) -> None:
    v1 = pool.ingest(
        write_applications_csv(tmp_path / "a1.csv", months=2),
        dataset="antraege",
        key=KEY,
        meta=DatasetMeta(
            title="Anträge",
            publisher="bmas",
            licence="dl-de/by-2-0",
            keywords=["Anträge"],
            temporal_start=date(2024, 1, 1),
        ),
    )
    assert (v1.version, v1.rows, v1.mode) == (1, 2 * 12 * 4, "replace")
    assert v1.source_name == "a1.csv" and len(v1.source_sha256) == 64
    assert v1.created_by == "test@example.org"

    # append: more months, disjoint keys
    more = write_applications_csv(tmp_path / "a2.csv", months=3)
    with pytest.raises(BadInput, match="already exists"):
        pool.ingest(more, dataset="antraege", mode="append")  # months 1-2 collide with v1
    assert [v.version for v in pool.dataset("antraege").versions()] == [1]

    # upsert: a corrected delivery replaces rows by key and adds the third month
    v2 = pool.ingest(
        write_applications_csv(tmp_path / "a3.csv", months=3, revised=True),
        dataset="antraege",
        mode="upsert",
    )
    assert (v2.version, v2.rows, v2.mode) == (2, 3 * 48, "upsert")

    h = pool.dataset("antraege")
    assert [v.version for v in h.versions()] == [1, 2]
    assert h.read(version=1).num_rows == 96
    assert h.read().num_rows == 144
    assert h.info().current_version == 2 and h.info().licence == "dl-de/by-2-0"

    d = h.diff(1, 2)
    assert d["method"] == "key"
    assert d["rows"]["added"] == 48  # the third month
    assert d["rows"]["removed"] == 0
    assert d["rows"]["changed"] == 4  # Mannheim, January, four channels (+17 each)
    changed = d["changed"][0]
    assert changed["key"]["Kreisschlüssel"] == "08222"
    assert (
        int(changed["changes"]["Anträge"]["to"]) - int(changed["changes"]["Anträge"]["from"]) == 17
    )

    # SQL over current and pinned versions
    now = _sum(pool, "SELECT count(*) AS n FROM antraege")
    then = _sum(pool, 'SELECT count(*) AS n FROM "antraege@1"')
    assert (now["n"], then["n"]) == (144, 96)
    diff17 = _sum(
        pool,
        "SELECT (SELECT sum(\"Anträge\") FROM antraege WHERE Monat = DATE '2024-01-01') - "
        '(SELECT sum("Anträge") FROM "antraege@1" WHERE Monat = DATE \'2024-01-01\') AS d',
    )
    assert diff17["d"] == 4 * 17

    # replace with another schema: the diff reports the schema change
    other = tmp_path / "other.csv"
    other.write_text(
        "Kreisschlüssel;Monat;Eingangskanal;Neu\n08222;01.01.2024;Post;1\n", encoding="utf-8"
    )
    v3 = pool.ingest(other, dataset="antraege")
    assert v3.rows == 1
    sd = h.diff(2, 3)["schema"]
    assert [c["name"] for c in sd["added"]] == ["Neu"]
    assert "Anträge" in [c["name"] for c in sd["removed"]]
    assert h.read(version=2).num_rows == 144  # time travel still sees the old data


def test_diff_without_key_compares_whole_rows(pool, tmp_path: Path) -> None:
    a = tmp_path / "a.csv"
    a.write_text("x,y\n1,a\n2,b\n2,b\n", encoding="utf-8")
    b = tmp_path / "b.csv"
    b.write_text("x,y\n1,a\n2,b\n3,c\n", encoding="utf-8")
    pool.ingest(a, dataset="plain")
    pool.ingest(b, dataset="plain")
    d = pool.dataset("plain").diff(1, 2)
    assert d["method"] == "row"
    assert d["rows"] == {"added": 1, "removed": 1, "changed": None}
    assert d["added"] == [{"x": 3, "y": "c"}]
    assert d["removed"] == [{"x": 2, "y": "b"}]


def test_append_without_key_and_type_conformance(pool, tmp_path: Path) -> None:
    a = tmp_path / "a.csv"
    a.write_text("ort;wert\nA;1,5\n", encoding="utf-8")
    b = tmp_path / "b.csv"
    b.write_text(
        "ort;wert\nB;2\n", encoding="utf-8"
    )  # sniffed as integer; stored as the existing DOUBLE
    pool.ingest(a, dataset="werte")
    v2 = pool.ingest(b, dataset="werte", mode="append")
    assert v2.rows == 2 and v2.detection["rows_appended"] == 1
    assert pool.dataset("werte").read().column("wert").to_pylist() == [1.5, 2.0]
    with pytest.raises(BadInput, match="already loaded as version 2"):
        pool.ingest(b, dataset="werte", mode="append")  # would silently double the rows
    v3 = pool.ingest(b, dataset="werte", mode="append", allow_duplicate=True)
    assert v3.rows == 3
    c = tmp_path / "c.csv"
    c.write_text("ort;anders\nC;1\n", encoding="utf-8")
    with pytest.raises(BadInput, match="missing columns wert; unexpected columns anders"):
        pool.ingest(c, dataset="werte", mode="append")


def test_key_violations_are_rejected_with_line(pool, tmp_path: Path) -> None:
    f = tmp_path / "dup.csv"
    f.write_text("id;name\n1;a\n2;b\n1;c\n", encoding="utf-8")
    with pytest.raises(BadInput) as info:
        pool.ingest(f, dataset="dup", key="id")
    assert info.value.line == 4 and "duplicate key (1)" in str(info.value)
    g = tmp_path / "null.csv"
    g.write_text("id;name\n1;a\n;b\n", encoding="utf-8")
    with pytest.raises(BadInput) as info:
        pool.ingest(g, dataset="dup", key="id")
    assert info.value.line == 3
    with pytest.raises(BadInput, match="needs a key"):
        pool.ingest(g, dataset="nokey", mode="upsert")
    assert pool.datasets() == []


def test_xlsx_json_ndjson_parquet(pool, tmp_path: Path) -> None:
    x = pool.ingest(write_offices_xlsx(tmp_path / "d.xlsx"), dataset="dienststellen")
    assert x.format == "xlsx" and x.rows == 12 and x.detection["sheet"] == "Dienststellen"
    rows = pool.dataset("dienststellen").read().to_pylist()
    assert rows[0]["Kreisschlüssel"] == "01001"
    assert isinstance(rows[0]["Stellen (VZÄ)"], float)

    n = pool.ingest(
        write_requests_ndjson(tmp_path / "r.ndjson", n=50), dataset="anfragen", key="anfrage_id"
    )
    assert n.format == "json" and n.rows == 50 and n.detection["layout"] == "newline_delimited"

    arr = tmp_path / "r.json"
    arr.write_text(
        json.dumps([{"ags": "01001000", "wert": 1.5}, {"ags": "09162000", "wert": None}])
    )
    j = pool.ingest(arr, dataset="arr")
    assert j.detection["layout"] == "array"
    assert pool.dataset("arr").read().to_pylist() == [
        {"ags": "01001000", "wert": 1.5},
        {"ags": "09162000", "wert": None},
    ]

    pq.write_table(
        pa.table({"ags": ["01001000"], "n": pa.array([5], pa.uint32())}), tmp_path / "p.parquet"
    )
    p = pool.ingest(tmp_path / "p.parquet", dataset="pq")
    assert p.format == "parquet"
    assert pool.dataset("pq").read().to_pylist() == [{"ags": "01001000", "n": 5}]


def test_bad_files_are_rejected_and_leave_nothing(pool, tmp_path: Path) -> None:
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(BadInput, match=r"broken\.xlsx"):
        pool.ingest(broken, dataset="broken")
    bad_json = tmp_path / "bad.ndjson"
    bad_json.write_text('{"a": 1}\n{"a": \n', encoding="utf-8")
    with pytest.raises(BadInput, match=r"bad\.ndjson"):
        pool.ingest(bad_json, dataset="badjson")
    with pytest.raises(BadInput, match="file not found"):
        pool.ingest(tmp_path / "missing.csv", dataset="missing")
    with pytest.raises(BadInput, match="invalid dataset name"):
        pool.ingest(bad_json, dataset="Bad Name")
    assert pool.datasets() == []
    assert list((pool.root / "staging").iterdir()) == []


def test_failed_ingest_keeps_previous_version(pool, tmp_path: Path) -> None:
    good = tmp_path / "g.csv"
    good.write_text("a;b\n1;2\n", encoding="utf-8")
    pool.ingest(good, dataset="keep")
    bad = tmp_path / "b.csv"
    bad.write_text("a;b\n1;2\n3\n", encoding="utf-8")
    with pytest.raises(BadInput):
        pool.ingest(bad, dataset="keep")
    h = pool.dataset("keep")
    assert [v.version for v in h.versions()] == [1]
    assert h.read().to_pylist() == [{"a": 1, "b": 2}]


def test_sql_is_read_only_and_sandboxed(pool, tmp_path: Path) -> None:
    f = tmp_path / "s.csv"
    f.write_text("a\n1\n", encoding="utf-8")
    pool.ingest(f, dataset="s")
    for stmt, msg in [
        ("DROP TABLE s", "only read-only queries"),
        ("CREATE TABLE x AS SELECT 1", "only read-only queries"),
        ("SELECT 1; SELECT 2", "exactly one"),
        (f"SELECT * FROM read_csv('{f}')", "not allowed"),
        ("COPY s TO '/tmp/x.csv'", "only read-only queries"),
        ("SELECT * FROM nope", "query failed"),
        ("SELEC 1", "syntax error"),
        ("ATTACH '/tmp/x.db'", "only read-only queries"),
    ]:
        with pytest.raises(BadInput, match=msg):
            pool.query(stmt)
    assert pool.query("SELECT a FROM s").to_pylist() == [{"a": 1}]
    with pytest.raises(BadInput):
        pool.query('SELECT * FROM "s@7"')


def test_metadata_validation_and_update(pool, tmp_path: Path) -> None:
    f = tmp_path / "m.csv"
    f.write_text("a\n1\n", encoding="utf-8")
    with pytest.raises(BadInput, match="unknown licence"):
        pool.ingest(f, dataset="m", meta=DatasetMeta(licence="GPL"))
    with pytest.raises(BadInput, match="contact point"):
        pool.ingest(f, dataset="m", meta=DatasetMeta(contact_point="nobody"))
    with pytest.raises(BadInput, match="not a known AGS"):
        pool.ingest(f, dataset="m", meta=DatasetMeta(spatial=["99999"]))
    pool.ingest(
        f,
        dataset="m",
        meta=DatasetMeta(
            title="Messwerte",
            spatial=["08222", "01001000"],
            publisher="lfu-bw",
            publisher_name="Landesamt",
        ),
    )
    info = pool.update_metadata("m", DatasetMeta(description="Neu beschrieben", themes=["ENVI"]))
    assert info.title == "Messwerte" and info.description == "Neu beschrieben"
    assert info.spatial == ["08222", "01001000"] and info.themes == ["ENVI"]
    assert info.publisher == "lfu-bw" and info.publisher_name == "Landesamt"
    with pytest.raises(NotFound):
        pool.dataset("nichtda")
    with pytest.raises(NotFound, match="no version 9"):
        pool.dataset("m").read(version=9)


def test_export_formats_round_trip(pool, tmp_path: Path) -> None:
    pool.ingest(write_applications_csv(tmp_path / "a.csv", months=1), dataset="antraege", key=KEY)
    h = pool.dataset("antraege")
    original = h.read()
    for fmt in ("csv", "parquet", "xlsx"):
        out = h.export(tmp_path / f"out.{fmt}", version=1)
        assert out.exists() and not list(tmp_path.glob(".*.partial"))
        back = pool.ingest(out, dataset=f"back-{fmt}")
        assert back.rows == original.num_rows
    assert pool.dataset("back-parquet").read().equals(original)
    # CSV export is UTF-8 with ISO dates and keys keep their zeros
    text = (tmp_path / "out.csv").read_text(encoding="utf-8")
    assert text.splitlines()[1].startswith('01001,"Flensburg, Stadt",2024-01-01,')


def test_user_schema_sets_types_and_rejects_violations(pool, tmp_path: Path) -> None:
    schema = {
        "fields": [
            {"name": "plz", "type": "string", "constraints": {"pattern": "[0-9]{5}"}},
            {"name": "stichtag", "type": "date", "format": "%d.%m.%Y"},
            {
                "name": "betrag",
                "type": "number",
                "decimalChar": ",",
                "groupChar": ".",
                "constraints": {"minimum": 0},
            },
        ],
        "primaryKey": ["plz"],
    }
    good = tmp_path / "good.csv"
    # All-digit codes would be integers without the schema; the schema says text.
    good.write_text(
        "plz;stichtag;betrag\n10115;31.12.2023;1.234,5\n20095;01.01.2024;7\n", encoding="utf-8"
    )
    v = pool.ingest(good, dataset="zahlungen", schema=schema)
    assert v.detection["columns"] == {"plz": "VARCHAR", "stichtag": "DATE", "betrag": "DOUBLE"}
    assert pool.dataset("zahlungen").read().to_pylist() == [
        {"plz": "10115", "stichtag": date(2023, 12, 31), "betrag": 1234.5},
        {"plz": "20095", "stichtag": date(2024, 1, 1), "betrag": 7.0},
    ]
    assert pool.dataset("zahlungen").info().primary_key == ["plz"]
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "plz;stichtag;betrag\n10115;31.12.2023;1,0\n2009;01.01.2024;-3\n", encoding="utf-8"
    )
    with pytest.raises(BadInput) as info:
        pool.ingest(bad, dataset="zahlungen", schema=schema)
    assert info.value.line == 3 and "bad.csv" in str(info.value)
    assert [x.version for x in pool.dataset("zahlungen").versions()] == [1]


def test_origin_is_recorded_and_read_back(pool, tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text("a;b\n1;2\n", encoding="utf-8")
    pool.ingest(f, dataset="ds")
    assert pool.origin("ds") is None
    pool.set_origin("ds", {"kind": "dcat", "source": "http://x.invalid/c.ttl", "modified": "2024-01-01"})
    assert pool.origin("ds") == {
        "kind": "dcat",
        "source": "http://x.invalid/c.ttl",
        "modified": "2024-01-01",
    }
    with pytest.raises(NotFound):
        pool.origin("nope")
