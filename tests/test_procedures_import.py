"""Importing event logs: CSV (German dialects too), XES (plain and gzip), Parquet, pool
datasets; bad input is refused with file and line named, and nothing is lost."""

from __future__ import annotations

import gzip
import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import FIXTURES
from datenlabor.errors import BadInput, NotFound
from datenlabor.procedures import Filters, Mapping, import_dataset, import_log, open_log
from datenlabor.procedures.simulate import Simulation, simulate, write_log

DIR = FIXTURES / "procedures"
MAPPING = Mapping(activity="Schritt", resource="Bearbeitung")


def events(pool, slug: str) -> list[tuple[str, str, datetime, str | None]]:  # type: ignore[no-untyped-def]
    t = pool.dataset(slug).read()
    rows = t.select(["seq", "case_id", "activity", "timestamp", "resource"]).to_pylist()
    rows.sort(key=lambda r: r["seq"])
    return [(r["case_id"], r["activity"], r["timestamp"], r["resource"]) for r in rows]


def test_csv_import_is_canonical_and_sorted(pool) -> None:  # type: ignore[no-untyped-def]
    info = import_log(pool, DIR / "antraege.csv", dataset="antraege", mapping=MAPPING)
    assert info.version == 1 and info.rows == 12
    table = pool.dataset("antraege").read()
    assert table.column_names[:8] == [
        "seq", "case_no", "case_id", "activity", "timestamp", "resource", "lifecycle",
        "activity_no",
    ]  # fmt: skip
    assert set(table.column_names[8:]) == {"Kanal", "Kreis"}
    assert str(table.schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
    rows = sorted(table.to_pylist(), key=lambda r: r["seq"])
    assert [r["seq"] for r in rows] == list(range(12))
    assert [r["case_no"] for r in rows] == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 3]
    assert rows[0]["timestamp"] == datetime(2024, 1, 1, 10, tzinfo=UTC)
    assert rows[3]["Kreis"] == "05315"  # keys stay text with their leading zero
    origin = pool.origin("antraege")
    assert origin["kind"] == "eventlog" and origin["mapping"]["activity"] == "Schritt"
    assert (origin["events"], origin["cases"], origin["activities"]) == (12, 4, 3)
    csv_bytes = (DIR / "antraege.csv").read_bytes()
    assert origin["source_sha256"] == hashlib.sha256(csv_bytes).hexdigest()
    assert (origin["source"], origin["source_bytes"]) == ("antraege.csv", len(csv_bytes))


def test_german_csv_and_xes_give_the_same_log(pool) -> None:  # type: ignore[no-untyped-def]
    import_log(pool, DIR / "antraege.csv", dataset="iso", mapping=MAPPING)
    import_log(pool, DIR / "antraege_de.csv", dataset="de", mapping=MAPPING)
    import_log(pool, DIR / "antraege.xes", dataset="xes")
    import_log(pool, DIR / "antraege.xes.gz", dataset="xesgz")
    reference = events(pool, "iso")
    assert events(pool, "de") == reference  # cp1252, ';', local times, shuffled rows
    assert events(pool, "xes") == reference
    assert events(pool, "xesgz") == reference
    assert "Prüfung" in {e[1] for e in reference}
    assert pool.origin("de")["format"] == "csv"
    assert pool.origin("xesgz")["xes"] == {"traces": 4, "version": "1849-2016"}


def test_xes_attributes_keep_their_types(pool) -> None:  # type: ignore[no-untyped-def]
    import_log(pool, DIR / "antraege.xes", dataset="xes")
    t = pool.dataset("xes").read()
    types = {f.name: str(f.type) for f in t.schema}
    assert types["case:Kanal"] == "string" and types["case:Kreis"] == "string"
    assert types["case:Prioritaet"] == "int64"
    assert types["Kosten"] == "double" and types["Eilig"] == "bool"
    assert "Anlagen" not in types and "Anlage" not in types  # nested list skipped
    first = min(t.to_pylist(), key=lambda r: r["seq"])
    assert (first["case:Prioritaet"], first["Kosten"], first["Eilig"]) == (3, 1.5, True)
    assert first["lifecycle"] == "complete" and first["resource"] == "Anna"


def test_naive_times_are_read_in_the_given_zone(sqlite_pool, tmp_path) -> None:  # type: ignore[no-untyped-def]
    csv = tmp_path / "naiv.csv"
    csv.write_text("case_id;activity;timestamp\nA;x;01.07.2024 12:00\n", encoding="utf-8")
    import_log(sqlite_pool, csv, dataset="berlin")
    import_log(sqlite_pool, csv, dataset="utc", timezone="UTC")
    assert events(sqlite_pool, "berlin")[0][2] == datetime(2024, 7, 1, 10, tzinfo=UTC)
    assert events(sqlite_pool, "utc")[0][2] == datetime(2024, 7, 1, 12, tzinfo=UTC)


def test_parquet_and_pool_dataset_sources(pool, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sim = write_log(simulate(Simulation(cases=50, seed=3)), tmp_path / "sim.parquet")
    info = import_log(pool, sim, dataset="sim")
    assert info.rows == pool.dataset("sim").read().num_rows > 50
    # A plain dataset with other column names becomes a log by mapping its columns.
    pool.ingest(DIR / "antraege_de.csv", dataset="rohdaten")
    new = import_dataset(
        pool, "rohdaten", dataset="aus-pool", mapping=Mapping(activity="Schritt", resource="Bearbeitung")
    )
    assert new.rows == 12
    origin = pool.origin("aus-pool")
    assert (origin["source_dataset"], origin["source_version"]) == ("rohdaten", 1)
    with open_log(pool, "aus-pool") as log:
        assert log.summary()["variants"] == 3
    with pytest.raises(NotFound):
        import_dataset(pool, "fehlt", dataset="x")


def test_lifecycle_filter(sqlite_pool) -> None:  # type: ignore[no-untyped-def]
    import_log(sqlite_pool, DIR / "lifecycle.xes", dataset="lc")
    with open_log(sqlite_pool, "lc") as log:  # default: every event, as pm4py
        assert log.summary()["events"] == 4
        assert ("Prüfung", "Prüfung") in {(e["from"], e["to"]) for e in log.dfg().rows()}
    with open_log(sqlite_pool, "lc", filters=Filters(lifecycle=["complete"])) as log:
        s = log.summary()
        assert s["events"] == 3
        assert [(e["from"], e["to"]) for e in s["dfg"]] == [
            ("Eingang", "Prüfung"),
            ("Prüfung", "Bescheid"),
        ]


# -- bad input ---------------------------------------------------------------------------------
def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


def test_csv_errors_name_line_and_column(sqlite_pool, tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad_time = write(
        tmp_path / "zeit.csv",
        "case_id,activity,timestamp\nA,x,2024-01-01 10:00\nA,y,2024-01-02 10:00\nB,x,gestern\n",
    )
    with pytest.raises(BadInput) as err:
        import_log(sqlite_pool, bad_time, dataset="z")
    assert (err.value.line, err.value.column) == (4, "timestamp") and "gestern" in str(err.value)
    empty_case = write(tmp_path / "fall.csv", "case_id,activity,timestamp\nA,x,2024-01-01\n,y,2024-01-02\n")
    with pytest.raises(BadInput) as err:
        import_log(sqlite_pool, empty_case, dataset="z")
    assert (err.value.line, err.value.column, err.value.reason) == (3, "case_id", "empty case id")
    with pytest.raises(BadInput, match="no activity column found") as err:
        import_log(sqlite_pool, DIR / "antraege.csv", dataset="z")
    assert "Schritt" in str(err.value)  # the columns are listed
    with pytest.raises(BadInput, match="'Aktivitaet' not in the data"):
        import_log(sqlite_pool, DIR / "antraege.csv", dataset="z", mapping=Mapping(activity="Aktivitaet"))
    with pytest.raises(BadInput, match="file not found"):
        import_log(sqlite_pool, tmp_path / "fehlt.csv", dataset="z")
    fmt = write(tmp_path / "fmt.csv", "case_id,activity,timestamp\nA,x,2024/01/01\n")
    with pytest.raises(BadInput, match="with format"):
        import_log(sqlite_pool, fmt, dataset="z", mapping=Mapping(timestamp_format="%d.%m.%Y"))


XES_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<log xes.version="1.0">\n'
EVENT = (
    '<event><string key="concept:name" value="{a}"/>'
    '<date key="time:timestamp" value="{t}"/></event>\n'
)


def test_xes_errors_name_the_element_line(sqlite_pool, tmp_path) -> None:  # type: ignore[no-untyped-def]
    broken = write(tmp_path / "kaputt.xes", XES_HEAD + '<trace>\n<string key="concept:name" value="A"/>\n<event>\n</trace>\n</log>\n')
    with pytest.raises(BadInput, match="invalid XML") as err:
        import_log(sqlite_pool, broken, dataset="z")
    assert err.value.line == 6
    no_case = write(
        tmp_path / "ohne.xes",
        XES_HEAD + "<trace>\n" + EVENT.format(a="x", t="2024-01-01T10:00:00+01:00") + "</trace>\n</log>\n",
    )
    with pytest.raises(BadInput, match="trace without concept:name") as err:
        import_log(sqlite_pool, no_case, dataset="z")
    assert err.value.line == 3
    bad_date = write(
        tmp_path / "datum.xes",
        XES_HEAD
        + '<trace><string key="concept:name" value="A"/>\n'
        + EVENT.format(a="x", t="2024-01-01T10:00:00+01:00")
        + EVENT.format(a="y", t="morgen")
        + "</trace>\n</log>\n",
    )
    with pytest.raises(BadInput, match="morgen") as err:
        import_log(sqlite_pool, bad_date, dataset="z")
    assert (err.value.line, err.value.column) == (5, "time:timestamp")
    no_time = write(
        tmp_path / "ohnezeit.xes",
        XES_HEAD + '<trace><string key="concept:name" value="A"/>\n'
        '<event><string key="concept:name" value="x"/></event>\n</trace>\n</log>\n',
    )
    with pytest.raises(BadInput, match="empty timestamp") as err:
        import_log(sqlite_pool, no_time, dataset="z")
    assert err.value.line == 4
    not_xes = write(tmp_path / "html.xes", "<html><body/></html>\n")
    with pytest.raises(BadInput, match="not an XES log"):
        import_log(sqlite_pool, not_xes, dataset="z")


def test_xes_entities_are_refused(sqlite_pool, tmp_path) -> None:  # type: ignore[no-untyped-def]
    laughs = (
        '<?xml version="1.0"?>\n<!DOCTYPE log [\n<!ENTITY a "lol">\n'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">\n<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">\n]>\n'
        '<log><trace><string key="concept:name" value="&c;"/></trace></log>\n'
    )
    with pytest.raises(BadInput, match="DOCTYPE") as err:
        import_log(sqlite_pool, write(tmp_path / "lol.xes", laughs), dataset="z")
    assert err.value.line == 2
    external = (
        '<?xml version="1.0"?>\n<!DOCTYPE log SYSTEM "file:///etc/passwd">\n<log></log>\n'
    )
    gz = tmp_path / "ext.xes.gz"
    gz.write_bytes(gzip.compress(external.encode()))
    with pytest.raises(BadInput, match="DOCTYPE"):
        import_log(sqlite_pool, gz, dataset="z")


def test_failed_import_keeps_the_previous_version(pool, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import_log(pool, DIR / "antraege.csv", dataset="antraege", mapping=MAPPING)
    before = events(pool, "antraege")
    bad = write(tmp_path / "bad.csv", "Vorgang,Schritt,Zeitpunkt\nA,x,nie\n")
    with pytest.raises(BadInput):
        import_log(pool, bad, dataset="antraege", mapping=MAPPING)
    assert [v.version for v in pool.dataset("antraege").versions()] == [1]
    assert events(pool, "antraege") == before
    assert not list((pool.root / "tmp").glob("*eventlog-*"))  # work folders removed
    import_log(pool, DIR / "antraege.xes", dataset="antraege")  # a new version replaces
    assert [v.version for v in pool.dataset("antraege").versions()] == [1, 2]
    with open_log(pool, "antraege", version=1) as log:
        assert log.summary()["provenance"]["version"] == 1


def test_xes_is_streamed_in_chunks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import duckdb

    from datenlabor.procedures.xes import read_xes

    parsed = read_xes(DIR / "antraege.xes.gz", tmp_path, chunk_events=5)
    assert len(parsed.files) == 3 and (parsed.traces, parsed.events) == (4, 12)
    assert parsed.casts()["Kosten"] == "DOUBLE" and parsed.casts()["case:Prioritaet"] == "BIGINT"
    con = duckdb.connect()
    rows = con.execute(
        f'SELECT __pos, __line, "case:concept:name", "concept:name" FROM {parsed.relation()} '
        "ORDER BY __pos"
    ).fetchall()
    con.close()
    assert [r[0] for r in rows] == list(range(12))
    assert rows[0][1:] == (15, "2024-001", "Eingang")  # line of the first <event>


def test_numbering_across_batches(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Cases spanning batch boundaries keep one case_no; seq runs on."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from datenlabor.procedures.eventlog import number_events

    ids = ["A", "A", "A", "B", "C", "C", "D"]
    pq.write_table(pa.table({"case_id": ids, "__pos": list(range(7))}), tmp_path / "s.parquet")
    number_events(tmp_path / "s.parquet", tmp_path / "t.parquet", batch_rows=2)
    t = pq.read_table(tmp_path / "t.parquet")
    assert t.column_names == ["seq", "case_no", "case_id"]
    assert t.column("seq").to_pylist() == list(range(7))
    assert t.column("case_no").to_pylist() == [0, 0, 0, 1, 2, 2, 3]
