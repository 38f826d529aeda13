"""Harvesting into a pool, end to end, against local servers serving the real snapshots.

The DCAT catalogue is three Hydra pages built from the official DCAT-AP.de examples (Turtle,
RDF/XML, JSON-LD); the CKAN portal answers ``package_search`` from real GovData packages plus
generated ones. Download URLs in the snapshots are rewritten to the local server in the test
(see ``fixtures/harvest/catalogues.py``); the files behind them are small generated CSVs.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import shared_file
from datenlabor.access.audit import AuditLog
from datenlabor.interop.harvest import Harvester, Options, source_id
from datenlabor.interop.harvest_fetch import Limits
from datenlabor.interop.harvest_record import slug_for
from datenlabor.pool.catalog import DatasetMeta
from fixtures.harvest.catalogue_server import CatalogueServer, Route, running
from fixtures.harvest.catalogues import (
    BADE_CSV,
    BADE_ID,
    BADE_V11_ID,
    HAUSHALT_CSV,
    HAUSHALT_ID,
    DcatCatalogue,
    zip_of,
)

FAST = Limits(
    connect_timeout_s=1.0,
    read_timeout_s=0.5,
    page_timeout_s=3.0,
    download_timeout_s=2.0,
    retries=1,
    backoff_s=0.01,
)


@pytest.fixture
def srv() -> Iterator[CatalogueServer]:
    with running() as s:
        yield s


def _by_id(report: Any) -> dict[str, dict[str, Any]]:
    return {r["identifier"]: r for r in report.records}


# -- DCAT ------------------------------------------------------------------------------------
def test_dcat_catalogue_over_three_pages_then_incremental(pool: Any, srv: CatalogueServer) -> None:
    cat = DcatCatalogue(srv)
    h = Harvester(pool)
    first = h.run(cat.url, Options(limits=FAST))
    assert first.kind == "dcat" and first.complete and first.exit_code == 0
    assert first.counts() == {
        "created": 3,
        "updated": 0,
        "metadata": 0,
        "unchanged": 0,
        "skipped": 2,
        "collision": 0,
        "failed": 0,
    }
    recs = _by_id(first)
    assert recs[BADE_ID]["outcome"] == "created" and recs[BADE_ID]["rows"] == 3
    assert recs[HAUSHALT_ID]["notes"] == [
        "spatial http://dcat-ap.de/def/politicalGeocoding/stateKey/17 is not a known AGS/ARS "
        "key; dropped"
    ]
    skipped = [r for r in first.records if r["outcome"] == "skipped"]
    assert sorted(r["reason"] for r in skipped) == [
        "no tabular distribution (formats: GML)",
        "no tabular distribution (formats: XML)",
    ]
    assert srv.hits["/catalog/page1.ttl"] == srv.hits["/catalog/page2.rdf"] == 1

    # the zipped CSV became a dataset with the record's metadata and its German text intact
    bade = pool.dataset(slug_for(BADE_ID))
    info = bade.info()
    assert info.title == "Badegewässer in Hamburg"
    assert info.publisher == "behoerde-fuer-umwelt-und-energie-bue-amt-fuer-umweltschutz"
    assert info.publisher_name == "Behörde für Umwelt und Energie (BUE), Amt für Umweltschutz"
    assert (info.licence, info.themes, info.spatial) == ("dl-de/by-2-0", ["ENVI"], ["02"])
    assert info.contact_point == "thomas.meister@example.com"
    rows = bade.read().to_pylist()
    assert [r["Badestelle"] for r in rows] == ["Allermöhe", "Eichbaumsee", "Öjendorfer See"]
    assert rows[2]["Sichttiefe (m)"] == pytest.approx(1.5)
    origin = pool.origin(slug_for(BADE_ID))
    assert origin["kind"] == "dcat" and origin["source"] == cat.url
    assert origin["identifier"] == BADE_ID
    assert origin["distribution_url"] == srv.url + "/files/bade.zip"
    assert origin["sha256"] == hashlib.sha256(zip_of("messwerte.csv", BADE_CSV)).hexdigest()
    assert origin["modified"] == "2018-09-04T19:39:09"
    haushalt = pool.dataset(slug_for(HAUSHALT_ID)).info()
    assert haushalt.licence == "officialWork" and haushalt.publisher == "finanzministerium"
    # every new version is audited as an upload by the local administrator
    uploads = AuditLog(pool.store).entries(action="upload")
    assert sorted(json.dumps(e.datasets) for e in uploads) == sorted(
        json.dumps({slug_for(i): 1}) for i in (BADE_ID, BADE_V11_ID, HAUSHALT_ID)
    )

    # second run: nothing changed, nothing downloaded
    downloads = cat.file_hits()
    second = h.run(cat.url, Options(limits=FAST))
    assert second.counts()["unchanged"] == 3 and second.counts()["skipped"] == 2
    assert cat.file_hits() == downloads
    assert second.run_id != first.run_id and not second.resumed

    # new modification date, same file: metadata refreshed, no new version
    cat.page2(modified="2024-05-01T08:00:00", title="Haushaltsplan 2021")
    third = h.run(cat.url, Options(limits=FAST))
    assert _by_id(third)[HAUSHALT_ID]["outcome"] == "metadata"
    hh = pool.dataset(slug_for(HAUSHALT_ID))
    assert hh.info().title == "Haushaltsplan 2021" and hh.info().current_version == 1
    assert pool.origin(slug_for(HAUSHALT_ID))["modified"] == "2024-05-01T08:00:00"

    # new date and new content: a new version
    cat.haushalt(HAUSHALT_CSV + b"0102,52601,Sachverstaendige,12000.00\n")
    cat.page2(modified="2024-06-01T08:00:00", title="Haushaltsplan 2021")
    fourth = h.run(cat.url, Options(limits=FAST))
    assert _by_id(fourth)[HAUSHALT_ID]["outcome"] == "updated"
    assert hh.info().current_version == 2 and hh.info().rows == 3
    assert fourth.counts()["unchanged"] == 2
    assert fourth.gone == []

    # the portal drops its last page: the datasets stay, the report names them
    cat.page2(modified="2024-06-01T08:00:00", title="Haushaltsplan 2021", last=True)
    fifth = h.run(cat.url, Options(limits=FAST))
    assert fifth.complete and len(fifth.records) == 3
    assert fifth.gone == [{"slug": slug_for(BADE_V11_ID), "identifier": BADE_V11_ID}]
    assert pool.dataset(slug_for(BADE_V11_ID)).info().current_version == 1


def test_limit_stops_and_the_next_run_continues(sqlite_pool: Any, srv: CatalogueServer) -> None:
    cat = DcatCatalogue(srv)
    h = Harvester(sqlite_pool)
    part = h.run(cat.url, Options(limits=FAST, limit=3))
    assert part.stopped_at_limit and not part.complete and len(part.records) == 3
    assert part.gone is None  # not every record was seen: nothing can be said
    rest = h.run(cat.url, Options(limits=FAST))
    assert rest.resumed and rest.complete and rest.run_id == part.run_id
    assert len(rest.records) == 5  # the report of a resumed run covers the whole run
    assert srv.hits["/catalog/page1.ttl"] == 1  # page 1 was finished: not read again


def test_garbage_page_stops_the_run_and_the_next_run_resumes_there(
    sqlite_pool: Any, srv: CatalogueServer
) -> None:
    cat = DcatCatalogue(srv)
    srv.add("/catalog/page2.rdf", b"<rdf:RDF><unclosed>", "application/rdf+xml")
    h = Harvester(sqlite_pool)
    broken = h.run(cat.url, Options(limits=FAST))
    assert broken.exit_code == 8 and not broken.complete
    assert broken.source_error is not None
    assert broken.source_error["url"].endswith("/catalog/page2.rdf")
    assert "not readable as xml RDF" in broken.source_error["error"]
    assert broken.counts()["created"] == 1  # page 1 was harvested
    state = json.loads(
        (sqlite_pool.root / "harvest" / source_id(f"dcat:{cat.url}") / "state.json").read_text()
    )
    assert state["cursor"].endswith("/catalog/page2.rdf") and state["page"] == 2

    cat.page2()  # repaired
    fixed = h.run(cat.url, Options(limits=FAST))
    assert fixed.resumed and fixed.complete and fixed.exit_code == 0
    assert srv.hits["/catalog/page1.ttl"] == 1
    assert fixed.counts()["created"] == 3


def test_two_runs_of_one_source_do_not_interleave(sqlite_pool: Any, srv: CatalogueServer) -> None:
    from datenlabor.errors import Conflict
    from datenlabor.interop.harvest_state import Checkpoint

    cat = DcatCatalogue(srv)
    checkpoint = Checkpoint(sqlite_pool.root / "harvest" / source_id(f"dcat:{cat.url}"))
    with checkpoint.locked(), pytest.raises(Conflict, match="another harvest"):
        Harvester(sqlite_pool).run(cat.url, Options(kind="dcat", limits=FAST))
    assert Harvester(sqlite_pool).run(cat.url, Options(kind="dcat", limits=FAST)).complete


def test_silent_catalogue_server_does_not_stall_the_harvest(
    sqlite_pool: Any, srv: CatalogueServer
) -> None:
    url = srv.add("/catalog.ttl", b"", "text/turtle", behaviour="hang")
    started = time.monotonic()
    report = Harvester(sqlite_pool).run(url, Options(limits=FAST))
    assert time.monotonic() - started < FAST.page_timeout_s + FAST.read_timeout_s + 1
    assert report.exit_code == 8 and report.source_error is not None
    assert "timed out" in report.source_error["error"]


def test_remote_catalogue_cannot_make_the_harvester_read_local_files(
    sqlite_pool: Any, srv: CatalogueServer
) -> None:
    ttl = (
        "@prefix hydra: <http://www.w3.org/ns/hydra/core#> .\n"
        "<catalog.ttl> a hydra:PartialCollectionView ; hydra:next <file:///etc/passwd> .\n"
    )
    url = srv.add("/catalog.ttl", ttl.encode(), "text/turtle")
    report = Harvester(sqlite_pool).run(url, Options(limits=FAST))
    assert report.exit_code == 8 and report.source_error is not None
    assert "links to the local page file:///etc/passwd" in report.source_error["error"]
    assert "root:" not in json.dumps(report.to_dict())


def test_interrupted_run_resumes_without_redoing_finished_records(
    sqlite_pool: Any, srv: CatalogueServer
) -> None:
    cat = DcatCatalogue(srv)
    seen: list[str] = []

    def interrupt(n: int, _total: int | None, entry: dict[str, Any]) -> None:
        seen.append(entry["identifier"])
        if n == 2:
            raise KeyboardInterrupt  # as if the process were stopped here

    with pytest.raises(KeyboardInterrupt):
        Harvester(sqlite_pool, on_record=interrupt).run(cat.url, Options(limits=FAST))
    assert len(seen) == 2
    assert not list((sqlite_pool.root / "staging").iterdir())  # no download left behind
    downloads = dict(srv.hits)

    done = Harvester(sqlite_pool).run(cat.url, Options(limits=FAST))
    assert done.resumed and done.complete
    assert len(done.records) == 5 and done.counts()["created"] == 3
    # the two finished records of page 1 were neither listed nor downloaded again
    assert srv.hits["/files/bade.zip"] == downloads["/files/bade.zip"] == 1
    assert srv.hits["/catalog/page1.ttl"] == 2  # page 1 itself is read again to continue it


def test_kill_between_ingest_and_origin_is_adopted_not_a_collision(
    sqlite_pool: Any, srv: CatalogueServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    cat = DcatCatalogue(srv)
    real = sqlite_pool.set_origin

    def dies(slug: str, origin: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(sqlite_pool, "set_origin", dies)
    with pytest.raises(KeyboardInterrupt):
        Harvester(sqlite_pool).run(cat.url, Options(limits=FAST))
    monkeypatch.setattr(sqlite_pool, "set_origin", real)
    slug = slug_for(BADE_ID)
    assert sqlite_pool.origin(slug) is None  # ingested, origin not yet written

    again = Harvester(sqlite_pool).run(cat.url, Options(limits=FAST))
    assert _by_id(again)[BADE_ID]["outcome"] == "metadata"
    assert sqlite_pool.origin(slug)["identifier"] == BADE_ID
    assert sqlite_pool.dataset(slug).info().current_version == 1


def test_slug_collisions_are_reported_never_overwritten(
    pool: Any, srv: CatalogueServer, tmp_path: Path
) -> None:
    cat = DcatCatalogue(srv)
    mine = tmp_path / "eigene.csv"
    mine.write_text("a,b\n1,2\n", encoding="utf-8")
    slug = slug_for(HAUSHALT_ID)
    pool.ingest(mine, dataset=slug, meta=DatasetMeta(title="Eigene Daten"))
    report = Harvester(pool).run(cat.url, Options(limits=FAST))
    entry = _by_id(report)[HAUSHALT_ID]
    assert entry["outcome"] == "collision"
    assert "not harvested" in entry["reason"]
    assert report.exit_code == 1
    assert report.failures() == [{"identifier": HAUSHALT_ID, "url": None, "error": entry["reason"]}]
    info = pool.dataset(slug).info()
    assert info.title == "Eigene Daten" and info.current_version == 1
    assert pool.dataset(slug).read().num_rows == 1
    assert srv.hits["/files/haushalt_2021.csv"] == 0

    # the same record offered by another source is not taken over either
    other = srv.add("/other/catalog.ttl", srv.routes["/catalog/page1.ttl"].body, "text/turtle")
    report2 = Harvester(pool).run(other, Options(limits=FAST))
    bade = _by_id(report2)[BADE_ID]
    assert bade["outcome"] == "collision" and cat.url in bade["reason"]


def test_broken_downloads_are_reported_and_the_rest_goes_on(
    sqlite_pool: Any, srv: CatalogueServer
) -> None:
    cat = DcatCatalogue(srv)
    srv.add("/files/bade.zip", b"", status=500)
    srv.add("/files/bade-v11.zip", b"<html><body>Wartung</body></html>", "text/html")
    srv.add("/files/haushalt_2021.csv", HAUSHALT_CSV, behaviour="hang")
    report = Harvester(sqlite_pool).run(cat.url, Options(limits=FAST))
    assert report.complete and report.exit_code == 1
    failures = {f["identifier"]: f for f in report.failures()}
    assert set(failures) == {BADE_ID, BADE_V11_ID, HAUSHALT_ID}
    assert "HTTP 500" in failures[BADE_ID]["error"]
    assert failures[BADE_ID]["url"] == srv.url + "/files/bade.zip"
    assert "HTML page" in failures[BADE_V11_ID]["error"]
    assert "timed out" in failures[HAUSHALT_ID]["error"]
    assert sqlite_pool.datasets() == []
    assert not list((sqlite_pool.root / "staging").iterdir())


def test_unreadable_table_fails_its_record_only(sqlite_pool: Any, srv: CatalogueServer) -> None:
    cat = DcatCatalogue(srv)
    srv.add("/files/bade.zip", zip_of("a.csv", BADE_CSV)[:40], "application/zip")
    cat.haushalt(b"")  # an empty file: the ingest refuses it, naming the file
    report = Harvester(sqlite_pool).run(cat.url, Options(limits=FAST))
    outcomes = _by_id(report)
    assert outcomes[BADE_ID]["outcome"] == "failed" and "ZIP" in outcomes[BADE_ID]["reason"]
    assert outcomes[HAUSHALT_ID]["outcome"] == "failed"
    assert "haushalt_2021.csv" in outcomes[HAUSHALT_ID]["reason"]
    assert report.counts()["created"] == 1
    assert [d.slug for d in sqlite_pool.datasets()] == [slug_for(BADE_V11_ID)]
    state = json.loads(
        (sqlite_pool.root / "harvest" / source_id(f"dcat:{cat.url}") / "state.json").read_text()
    )
    assert state["pending"] is None


def test_local_catalogue_file_whose_next_link_goes_round(sqlite_pool: Any, tmp_path: Path) -> None:
    ttl = shared_file("dcat/v2.0/dcat_ap_de-RefImp_TTL_SIMPLE.ttl").read_text("utf-8")
    ttl += (
        "\n@prefix hydra: <http://www.w3.org/ns/hydra/core#> .\n"
        "<catalog.ttl> a hydra:PartialCollectionView ; hydra:next <catalog.ttl> .\n"
    )
    path = tmp_path / "catalog.ttl"
    path.write_text(ttl, encoding="utf-8")
    report = Harvester(sqlite_pool).run(str(path))
    assert report.complete and report.kind == "dcat" and len(report.records) == 1
    (entry,) = report.records
    assert entry["outcome"] == "skipped"  # its one distribution is a ZIP of unstated content


def test_xlsx_parquet_and_json_distributions_without_suffix(
    sqlite_pool: Any, srv: CatalogueServer, tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import xlsxwriter

    rows = [{"kreis": "08128", "name": "Main-Tauber-Kreis", "einwohner": 132321}]
    xlsx = tmp_path / "k.xlsx"
    book = xlsxwriter.Workbook(str(xlsx))
    sheet = book.add_worksheet("Kreise")
    sheet.write_row(0, 0, list(rows[0]))
    sheet.write_row(1, 0, list(rows[0].values()))
    book.close()
    parquet = tmp_path / "k.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    files = {
        "XLSX": xlsx.read_bytes(),
        "PARQUET": parquet.read_bytes(),
        "JSON": json.dumps(rows).encode(),
    }
    packages = []
    for fmt, body in files.items():
        # download URLs without a file suffix: the stated format decides
        url = srv.add(f"/download/{fmt.lower()}", body, "application/octet-stream")
        packages.append(
            {
                "id": f"kreise-{fmt.lower()}",
                "title": f"Kreise ({fmt})",
                "resources": [{"format": fmt, "url": url}],
            }
        )
    answer = tmp_path / "answer.json"
    answer.write_text(json.dumps({"success": True, "result": {"count": 3, "results": packages}}))
    report = Harvester(sqlite_pool).run(str(answer), Options(limits=FAST))
    assert report.counts()["created"] == 3, report.records
    for fmt in ("xlsx", "parquet", "json"):
        handle = sqlite_pool.dataset(slug_for(f"kreise-{fmt}"))
        assert handle.version().format == fmt
        got = handle.read().to_pylist()
        assert [(r["kreis"], r["name"], r["einwohner"]) for r in got] == [
            ("08128", "Main-Tauber-Kreis", 132321)
        ]


# -- CKAN ------------------------------------------------------------------------------------
def _generated_package(i: int, url: str) -> dict[str, Any]:
    return {
        "id": f"00000000-0000-4000-8000-00000000000{i}",
        "name": f"schulen-{i}",
        "title": f"Schulen im Kreis {i}",
        "notes": "Allgemeinbildende Schulen",
        "metadata_modified": f"2024-0{i}-01T00:00:00",
        "license_id": "http://dcat-ap.de/def/licenses/dl-zero-de/2.0",
        "organization": {"name": "kultus", "title": "Kultusministerium"},
        "groups": [{"name": "educ"}],
        "tags": [{"name": "Schule", "display_name": "Schule"}],
        "extras": [
            {
                "key": "politicalGeocodingURI",
                "value": '["http://dcat-ap.de/def/politicalGeocoding/districtKey/08128"]',
            },
        ],
        "resources": [
            {"format": "PDF", "url": url + "/files/doc.pdf", "position": 0},
            {"format": "CSV", "url": url + f"/files/schulen-{i}.csv", "position": 1},
        ],
    }


@pytest.fixture
def ckan(srv: CatalogueServer) -> list[dict[str, Any]]:
    show = json.loads(shared_file("ckan/package_show_response.json").read_text("utf-8"))
    dcatap = json.loads(shared_file("ckan/dcatap-dataset.json").read_text("utf-8"))
    search = json.loads(shared_file("ckan/v2016/package_search_response.json").read_text("utf-8"))
    zipped = dcatap["resources"][1]
    srv.add("/files/naturraeume.zip", zip_of("naturraeume.csv", BADE_CSV), "application/zip")
    zipped["download_url"] = srv.url + "/files/naturraeume.zip"
    zipped["format"] = "CSV"  # the real record leaves it empty; the archive holds a CSV
    packages = [show["result"], dcatap, *search["result"]["results"]]
    for i in (1, 2, 3):
        srv.add(f"/files/schulen-{i}.csv", f"schule;kreis\nGymnasium {i};08128\n".encode())
        packages.append(_generated_package(i, srv.url))
    genesis = _generated_package(4, srv.url)  # a real GENESIS export as the distribution
    genesis.update(id="23211-0002", title="Gestorbene: Deutschland, Jahre, Todesursachen")
    genesis["resources"][1]["url"] = srv.add(
        "/files/23211-0002.csv", shared_file("genesis/23211-0002.csv").read_bytes(), "text/csv"
    )
    packages.append(genesis)

    def package_search(q: dict[str, list[str]]) -> tuple[int, str, bytes]:
        rows, start = int(q.get("rows", ["10"])[0]), int(q.get("start", ["0"])[0])
        body = {
            "help": srv.url + "/api/3/action/help_show?name=package_search",
            "success": True,
            "result": {"count": len(packages), "results": packages[start : start + rows]},
        }
        return 200, "application/json", json.dumps(body).encode()

    srv.routes["/api/3/action/package_search"] = Route(dynamic=package_search)
    return packages


def test_ckan_portal_paged_with_rows_and_start(
    pool: Any, srv: CatalogueServer, ckan: list[dict[str, Any]]
) -> None:
    report = Harvester(pool).run(srv.url + "/", Options(limits=FAST, page_size=4))
    assert report.kind == "ckan" and report.complete and report.exit_code == 0
    assert len(report.records) == len(ckan) == 16
    # 4 pages of 4 plus the detection probe
    assert srv.hits["/api/3/action/package_search"] == 4 + 1
    assert report.counts() == {
        "created": 5,
        "updated": 0,
        "metadata": 0,
        "unchanged": 0,
        "skipped": 11,
        "collision": 0,
        "failed": 0,
    }
    reasons = [r["reason"] for r in report.records if r["outcome"] == "skipped"]
    assert reasons.count("a CKAN harvest source, not a dataset") == 10
    assert "no tabular distribution (formats: HTML, Kartenviewer, WMS)" in reasons

    natur = pool.dataset(slug_for("c9e92d9b-5437-47bb-9f64-b3f9400d8e53")).info()
    assert natur.publisher_name == "Behörde für Umwelt und Energie (BUE), Amt für Umweltschutz"
    assert natur.spatial == ["020000000000", "02"] and natur.themes == ["ENVI"]
    assert natur.licence == "dl-de/by-2-0"
    origin = pool.origin(natur.slug)
    assert origin["kind"] == "ckan" and origin["source"] == srv.url
    assert origin["landing_page"].startswith("https://www.govdata.de/")
    schule = pool.dataset(slug_for("00000000-0000-4000-8000-000000000002"))
    assert schule.info().publisher == "kultusministerium"
    assert schule.info().licence == "dl-de/zero-2-0"
    assert schule.read().to_pylist() == [{"schule": "Gymnasium 2", "kreis": "08128"}]

    gestorbene = pool.dataset(slug_for("23211-0002")).version()
    assert gestorbene.format == "genesis" and gestorbene.rows > 0

    again = Harvester(pool).run(
        srv.url + "/api/3/action/package_search", Options(limits=FAST, page_size=4)
    )
    assert again.counts()["unchanged"] == 5


def test_ckan_answer_file_with_org_and_visibility(
    sqlite_pool: Any, srv: CatalogueServer, ckan: list[dict[str, Any]], tmp_path: Path
) -> None:
    from datenlabor.access.accounts import Accounts

    Accounts(sqlite_pool.store).add_org("datenlabor", "Datenlabor")
    answer = {"success": True, "result": {"count": 3, "results": ckan[-3:]}}
    path = tmp_path / "package_search.json"
    path.write_text(json.dumps(answer), encoding="utf-8")
    report = Harvester(sqlite_pool).run(str(path), Options(org="datenlabor", visibility="public"))
    assert report.kind == "ckan" and report.counts()["created"] == 3
    infos = {d.slug: d for d in sqlite_pool.datasets()}
    assert {d.publisher for d in infos.values()} == {"datenlabor"}
    assert {d.visibility for d in infos.values()} == {"public"}
