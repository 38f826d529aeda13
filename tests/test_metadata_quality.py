"""Metadata quality score (MQA dimensions): bare vs. complete records, API, page, CLI."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from datenlabor.errors import NotFound
from datenlabor.pool import metadata_quality as mq
from datenlabor.pool.catalog import DatasetMeta
from datenlabor.web.app import create_app

PW = "Mqa-Test-Passwort-7"
COMPLETE = DatasetMeta(
    title="Einwohner nach Kreisen",
    description="Einwohnerzahlen der kreisfreien Städte in Niedersachsen zum Jahresende.",
    publisher="lsn",
    publisher_name="Landesamt für Statistik Niedersachsen",
    licence="dl-de/by-2-0",
    keywords=["Bevölkerung", "Kreise"],
    themes=["SOCI"],
    spatial=["03"],
    temporal_start=date(2023, 1, 1),
    temporal_end=date(2023, 12, 31),
    contact_point="daten@statistik.niedersachsen.de",
    visibility="public",
)


def _csv(path: Path) -> Path:
    path.write_text("kreis;einwohner\n03101;251804\n03102;104548\n", encoding="utf-8")
    return path


def _assess(pool: Any, slug: str) -> dict[str, Any]:
    with pool.store.session() as s:
        [d] = mq.load(s, slug)
        return mq.assess(d, root=pool.root)


def _dim(result: dict[str, Any], key: str) -> dict[str, Any]:
    return next(d for d in result["dimensions"] if d["id"] == key)


def _met(result: dict[str, Any]) -> dict[str, bool]:
    return {i["id"]: i["met"] for d in result["dimensions"] for i in d["indicators"]}


def test_bare_and_complete_dataset(pool: Any, tmp_path: Path) -> None:
    src = _csv(tmp_path / "kreise.csv")
    pool.ingest(src, dataset="bare")
    pool.ingest(src, dataset="complete", meta=COMPLETE)
    bare, complete = _assess(pool, "bare"), _assess(pool, "complete")

    assert complete["score"] == complete["max"] == mq.MAX_POINTS == 405
    assert complete["rating"] == "excellent" and complete["improvements"] == []
    assert all(_met(complete).values())

    # Nothing a publisher states: no findability, no licence, contact or publisher.
    met = _met(bare)
    assert not any(met[k] for k in ("keywords", "themes", "spatial", "temporal"))
    assert not any(met[k] for k in ("licence", "contact_point", "publisher", "dcat_ap"))
    # What the pool knows by hosting the data is met anyway.
    assert all(met[k] for k in ("access_url", "download_url_reachable", "format", "byte_size"))
    assert _dim(bare, "findability")["score"] == 0 and _dim(bare, "findability")["max"] == 100
    assert _dim(bare, "accessibility")["score"] == 100
    assert bare["score"] == sum(d["score"] for d in bare["dimensions"])
    assert bare["score"] == 405 - sum(i["points"] for i in bare["improvements"])
    assert bare["rating"] == mq.rating(bare["score"]) == "sufficient"
    texts = {i["en"] for i in bare["improvements"]}
    assert (
        "Add at least one theme from the EU data theme vocabulary (e.g. SOCI, ECON, REGI)." in texts
    )
    assert any("Schlagwort" in i["de"] for i in bare["improvements"])
    # Largest gains first.
    gains = [i["points"] for i in bare["improvements"]]
    assert gains == sorted(gains, reverse=True)


def test_improvements_go_away_one_by_one(sqlite_pool: Any, tmp_path: Path) -> None:
    pool = sqlite_pool
    pool.ingest(_csv(tmp_path / "k.csv"), dataset="k")
    before = _assess(pool, "k")
    pool.update_metadata("k", DatasetMeta(themes=["Bevölkerung"]))  # not an EU theme code
    assert not _met(_assess(pool, "k"))["themes"]
    pool.update_metadata("k", DatasetMeta(themes=["SOCI"]))
    after = _assess(pool, "k")
    assert _met(after)["themes"] and after["score"] == before["score"] + 30
    assert not any(i["indicator"] == "themes" for i in after["improvements"])
    # A description equal to the title does not count for DCAT-AP.de.
    pool.update_metadata(
        "k", DatasetMeta(title="K", description="K", publisher="lsn", licence="CC-BY-4.0")
    )
    assert not _met(_assess(pool, "k"))["dcat_ap"]
    pool.update_metadata("k", DatasetMeta(description="Kreiszahlen 2023"))
    assert _met(_assess(pool, "k"))["dcat_ap"]


def test_missing_files_are_not_downloadable(sqlite_pool: Any, tmp_path: Path) -> None:
    pool = sqlite_pool
    pool.ingest(_csv(tmp_path / "k.csv"), dataset="k")
    shutil.rmtree(pool.table_dir("k") / "_delta_log")
    met = _met(_assess(pool, "k"))
    assert not met["access_url"] and not met["download_url_reachable"]
    assert met["download_url"]  # the URL is still published


# -- API and page -------------------------------------------------------------------------
@pytest.fixture
def client(pool: Any, tmp_path: Path) -> TestClient:
    src = _csv(tmp_path / "k.csv")
    pool.ingest(src, dataset="offen", meta=COMPLETE)
    pool.ingest(src, dataset="geheimprojekt", meta=DatasetMeta(visibility="internal"))
    app = create_app(pool)
    accounts = app.state.gate.accounts
    accounts.add_org("lsn", "Landesamt für Statistik Niedersachsen")
    accounts.add_user("leser", org="lsn", role="viewer", password=PW)
    token = accounts.create_token("leser")
    c = TestClient(app)
    c.headers["X-Test-Token"] = token  # kept for the tests, not sent as auth
    return c


def _auth(c: TestClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {c.headers['X-Test-Token']}"}


def test_api_respects_visibility(client: TestClient) -> None:
    r = client.get("/api/v1/datasets/offen/metadata-quality")
    assert r.status_code == 200 and r.json()["score"] == 405
    hidden = client.get("/api/v1/datasets/geheimprojekt/metadata-quality")
    assert hidden.status_code == 404
    assert client.get("/api/v1/datasets/gibtsnicht/metadata-quality").status_code == 404
    summary = client.get("/api/v1/metadata-quality")
    assert summary.status_code == 200
    assert "geheimprojekt" not in summary.text  # anonymous callers learn nothing about it
    body = summary.json()
    assert body["datasets"] == 1 and [r["dataset"] for r in body["per_dataset"]] == ["offen"]
    assert body["score"] == 405 and body["ratings"]["excellent"] == 1

    inside = client.get("/api/v1/metadata-quality", headers=_auth(client)).json()
    assert inside["datasets"] == 2
    scores = {r["dataset"]: r["score"] for r in inside["per_dataset"]}
    assert inside["score"] == round((scores["offen"] + scores["geheimprojekt"]) / 2, 1)
    themes = next(
        i
        for d in inside["dimensions"]
        if d["id"] == "findability"
        for i in d["indicators"]
        if i["id"] == "themes"
    )
    assert (themes["datasets_meeting"], themes["share"]) == (1, 0.5)
    r = client.get("/api/v1/datasets/geheimprojekt/metadata-quality", headers=_auth(client))
    assert r.status_code == 200 and r.json()["rating"] == mq.rating(r.json()["score"])


def test_dataset_page_shows_score_and_improvements(client: TestClient) -> None:
    page = client.get("/datasets/geheimprojekt", headers=_auth(client))
    assert page.status_code == 200
    html = page.text
    assert 'id="metadatenqualitaet"' in html and '<h2 id="h-mqa">Metadatenqualität</h2>' in html
    assert 'href="#metadatenqualitaet"' in html
    assert "Mindestens ein Thema aus dem EU-Vokabular" in html
    assert '<caption id="mqa-dim-caption">Punkte je Dimension</caption>' in html
    assert "Auffindbarkeit" in html and "<td>nein</td>" in html
    en = client.get("/datasets/geheimprojekt?lang=en", headers=_auth(client)).text
    assert "Add at least one theme from the EU data theme vocabulary" in en
    assert "Findability" in en
    full = client.get("/datasets/offen?lang=de").text
    assert "Keine Verbesserungen nötig" in full and "405 / 405" in full


# -- CLI ----------------------------------------------------------------------------------
def test_cli_quality(sqlite_pool: Any, tmp_path: Path) -> None:
    from datenlabor.cli import app

    pool = sqlite_pool
    src = _csv(tmp_path / "k.csv")
    pool.ingest(src, dataset="bare")
    pool.ingest(src, dataset="complete", meta=COMPLETE)
    runner = CliRunner()
    args = ["--pool", str(pool.root), "catalog", "quality"]
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    assert body["datasets"] == 2 and body["per_dataset"][-1]["dataset"] == "complete"
    res = runner.invoke(app, [*args, "bare", "--lang", "en"])
    assert res.exit_code == 0, res.output
    assert "bare:" in res.stdout and "Add at least one keyword." in res.stdout
    assert "Findability: 0 / 100" in res.stdout
    res = runner.invoke(app, [*args, "bare"])
    assert "Mindestens ein Schlagwort angeben." in res.stdout
    res = runner.invoke(app, [*args, "nichtda"])
    assert isinstance(res.exception, NotFound)
