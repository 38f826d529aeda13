"""Dashboards over HTTP (API and pages), the PDF export and the CLI."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from datenlabor.errors import BadInput
from datenlabor.pool.catalog import DatasetMeta
from datenlabor.procedures import import_log, open_log
from datenlabor.procedures.simulate import Simulation, simulate, write_log
from datenlabor.web.app import create_app

PASSWORD = "Dashboard-Web-Test-42"
SPEC = """\
title: {de: Wohngeld, en: Housing benefit}
visibility: public
sources:
  log: {log: wohngeld-log}
  geheim: {log: geheim-log}
filters:
  - {id: period, type: period, default: {start: 2024-01-01, end: 2024-03-01}}
  - {id: land, type: region, column: region, level: land}
  - {id: channel, type: select, column: channel, label: {de: Kanal, en: Channel}}
tiles:
  - {id: cases, type: kpi, title: {de: Fälle, en: Cases}, measure: cases}
  - {id: map, type: map, title: Länder, value: cases, level: land, key: region}
  - {id: volume, type: bar, title: Eingänge, metric: cases_over_time, freq: week}
  - {id: process, type: process_map, title: Prozess}
  - {id: secret, type: kpi, title: Geheim, source: geheim, measure: cases}
"""


def _login(c: TestClient, user: str) -> str:
    page = c.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', page.text)
    assert token
    r = c.post(
        "/login",
        data={"username": user, "password": PASSWORD, "login_token": token[1], "next": "/"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', c.get("/dashboards").text)
    assert csrf
    return csrf[1]


@pytest.fixture
def client(sqlite_pool: Any, tmp_path: Path) -> TestClient:
    app = create_app(sqlite_pool)
    accounts = app.state.gate.accounts
    accounts.add_org("statamt", "Statistisches Landesamt")
    accounts.add_user("steward", org="statamt", role="steward", password=PASSWORD)
    accounts.add_user("analyst", org="statamt", role="analyst", password=PASSWORD)
    sim = Simulation(cases=800, seed=2, laender=("05", "09", "14"), arrivals_per_day=30)
    path = write_log(simulate(sim), tmp_path / "sim.parquet")
    meta = DatasetMeta(publisher="statamt", visibility="public", title="Wohngeld")
    import_log(sqlite_pool, path, dataset="wohngeld-log", meta=meta)
    secret = DatasetMeta(publisher="statamt", visibility="restricted", title="Geheim")
    import_log(sqlite_pool, path, dataset="geheim-log", meta=secret)
    c = TestClient(app)
    csrf = _login(c, "steward")
    r = c.put("/api/v1/dashboards/wohngeld", content=SPEC.encode(), headers={"x-csrf-token": csrf})
    assert r.status_code == 201, r.text
    c.post("/logout", data={"csrf_token": csrf})
    c.cookies.clear()
    return c


def test_api_list_spec_and_new_versions(client: TestClient) -> None:
    listed = client.get("/api/v1/dashboards").json()["dashboards"]
    assert [(d["slug"], d["version"], d["title"]) for d in listed] == [("wohngeld", 1, "Wohngeld")]
    spec = client.get("/api/v1/dashboards/wohngeld?lang=en").json()
    assert spec["title"] == "Housing benefit" and spec["yaml"] == SPEC and spec["versions"] == [1]
    # Anonymous and analysts may not save; a bad spec names its line; nothing changes.
    assert client.put("/api/v1/dashboards/wohngeld", content=SPEC.encode()).status_code == 401
    csrf = _login(client, "analyst")
    r = client.put(
        "/api/v1/dashboards/wohngeld", content=SPEC.encode(), headers={"x-csrf-token": csrf}
    )
    assert r.status_code == 403
    client.cookies.clear()
    csrf = _login(client, "steward")
    bad = SPEC.replace("measure: cases}", "measure: faelle}", 1)
    r = client.put(
        "/api/v1/dashboards/wohngeld", content=bad.encode(), headers={"x-csrf-token": csrf}
    )
    assert r.status_code == 400 and "line 11" in r.text and "tiles.0.measure" in r.text
    r = client.put("/api/v1/dashboards/wohngeld", content=SPEC.encode())  # no CSRF token
    assert r.status_code == 403
    r = client.put(
        "/api/v1/dashboards/wohngeld",
        content=SPEC.replace("Wohngeld", "Wohngeld 2").encode(),
        headers={"x-csrf-token": csrf},
    )
    assert r.status_code == 201 and r.json()["version"] == 2
    assert client.get("/api/v1/dashboards/wohngeld?version=1").json()["title"] == "Wohngeld"


def test_api_tile_data_filters_and_csv(client: TestClient, sqlite_pool: Any) -> None:
    from datenlabor.procedures import Filters

    _login(client, "analyst")  # the publisher's own figures (no disclosure control)
    r = client.get("/api/v1/dashboards/wohngeld/tiles/cases", params={"land": "05"})
    body = r.json()
    assert body["status"] == "ok" and body["filters"]["land"] == ["05"]
    assert body["provenance"]["datasets"] == [
        {"slug": "wohngeld-log", "version": 1, "partial": False}
    ]
    assert body["provenance"]["dashboard"] == {"slug": "wohngeld", "version": 1}
    with open_log(sqlite_pool, "wohngeld-log") as log:
        kreise = [
            r[0]
            for r in log.con.execute("SELECT DISTINCT CAST(region AS VARCHAR) FROM src").fetchall()
        ]
    nrw = Filters.from_dict(
        {
            "start": "2024-01-01",
            "end": "2024-03-01",
            "attributes": {"region": [k for k in kreise if k.startswith("05")]},
        }
    )
    with open_log(sqlite_pool, "wohngeld-log", filters=nrw) as log:
        assert body["kpi"]["value"] == log.summary()["cases"] > 0
    # The map as JSON: keys and values without the drawing.
    m = client.get("/api/v1/dashboards/wohngeld/tiles/map").json()
    assert {r["key"] for r in m["rows"]} == {"05", "09", "14"}
    assert "path" not in m["graph"]["regions"][0]
    # A restricted source: "no access" for anonymous callers, never its numbers.
    anonymous = TestClient(client.app)
    secret = anonymous.get("/api/v1/dashboards/wohngeld/tiles/secret").json()
    assert secret["status"] == "no_access" and secret["kpi"] is None
    r = client.get("/api/v1/dashboards/wohngeld/tiles/volume/csv", params={"land": "09"})
    assert r.status_code == 200 and r.content.startswith(b"\xef\xbb\xbf")
    assert 'filename="wohngeld-v1-volume.csv"' in r.headers["content-disposition"]
    lines = r.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "period;started;completed;open_at_end"
    weeks = client.get("/api/v1/dashboards/wohngeld/tiles/volume", params={"land": "09"}).json()
    assert len(lines) - 1 == len(weeks["rows"])
    assert sum(int(x.split(";")[1]) for x in lines[1:]) == sum(w["started"] for w in weeks["rows"])
    client.cookies.clear()  # anonymous: restricted source
    assert client.get("/api/v1/dashboards/wohngeld/tiles/secret/csv").status_code == 400
    assert client.get("/api/v1/dashboards/wohngeld/tiles/nope").status_code == 404
    assert client.get("/api/v1/dashboards/wohngeld/tiles/cases?period_from=1.1.").status_code == 400


def test_api_cases_behind_an_edge(client: TestClient, sqlite_pool: Any) -> None:
    # Anonymous readers of the public dashboard have no microdata access: no single cases.
    r = client.get("/api/v1/dashboards/wohngeld/cases", params={"tile": "process"})
    assert r.status_code == 403 and "disclosure control" in r.text
    _login(client, "analyst")
    tile = client.get("/api/v1/dashboards/wohngeld/tiles/process").json()
    edge = tile["rows"][0]
    r = client.get(
        "/api/v1/dashboards/wohngeld/cases",
        params={"tile": "process", "d_from": edge["from"], "d_to": edge["to"], "limit": 5},
    )
    body = r.json()
    from datenlabor.procedures import Filters

    period = Filters.from_dict({"start": "2024-01-01", "end": "2024-03-01"})
    with open_log(sqlite_pool, "wohngeld-log", filters=period) as log:
        expected = log.cases(edge=(edge["from"], edge["to"]), limit=5)
    assert body["total"] == expected.totals["cases"] and body["shown"] == 5
    assert [c["case_id"] for c in body["cases"]] == [c["case_id"] for c in expected.rows()]
    client.cookies.clear()
    assert client.get("/api/v1/dashboards/wohngeld/cases?tile=secret").status_code == 404


def test_pages_in_german_and_english(client: TestClient) -> None:
    anonymous = client.get("/dashboards/wohngeld").text
    assert "Fälle anzeigen" not in anonymous and "/cases?" not in anonymous
    assert "Geheimhaltung: Mindestfallzahl 3" in anonymous
    _login(client, "analyst")  # the publisher's own people drill down to the cases
    page = client.get("/dashboards")
    assert page.status_code == 200 and 'href="/dashboards/wohngeld"' in page.text
    page = client.get("/dashboards/wohngeld")
    assert page.status_code == 200
    html = page.text
    assert "<h1>Wohngeld</h1>" in html and 'lang="de"' in html
    assert "Geheimhaltung" not in html
    assert 'id="chart-volume"' in html and 'id="chart-volume-data"' in html
    assert html.count('class="map-svg"') == 1 and 'class="process-svg"' in html
    assert "Daten als Tabelle" in html and "Fälle anzeigen" in html
    assert 'name="period_from" value="2024-01-01"' in html  # the default period
    assert 'name="period_to" value="2024-02-29"' in html  # shown inclusive
    assert "<script>" not in html  # CSP: no inline scripts
    assert "Content-Security-Policy" in page.headers
    # a drill link of the map leads to a cases page
    href = re.search(r'<a href="(/dashboards/wohngeld/cases\?[^"]+)" aria-label="Nordrhein', html)
    assert href
    cases = client.get(href[1].replace("&amp;", "&"))
    assert cases.status_code == 200 and "Fälle: Länder" in cases.text
    assert re.search(r"\d+ Fälle, davon \d+ angezeigt", cases.text)
    client.cookies.clear()
    assert "Kein Zugriff" in client.get("/dashboards/wohngeld").text  # the restricted tile
    en = client.get("/dashboards/wohngeld?lang=en&f=1&channel=online")
    assert "<h1>Housing benefit</h1>" in en.text and "Apply filters" in en.text
    assert "No access" in en.text and "Channel: online" in en.text


def test_pdf_export(client: TestClient) -> None:
    if shutil.which("chromium") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium missing in CI (scripts/setup-browser.sh installs it)")
        pytest.skip("chromium not installed")
    r = client.get("/dashboards/wohngeld/export.pdf", params={"land": "05"})
    assert r.status_code == 200, r.text[:500]
    assert r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF-") and len(r.content) > 10_000


def test_pdf_without_chromium_is_a_clear_error(client: TestClient, monkeypatch: Any) -> None:
    monkeypatch.setenv("DATENLABOR_CHROMIUM", "/nonexistent/chromium")
    r = client.get("/api/v1/dashboards")  # the app is fine ...
    assert r.status_code == 200
    r = client.get("/dashboards/wohngeld/export.pdf", headers={"accept": "application/json"})
    assert r.status_code == 503 and "chromium" in r.text


def test_cli_put_list_render(sqlite_pool: Any, tmp_path: Path) -> None:
    from datenlabor.cli import app

    sim = write_log(simulate(Simulation(cases=300, seed=4)), tmp_path / "s.parquet")
    import_log(sqlite_pool, sim, dataset="wohngeld-log")
    import_log(sqlite_pool, sim, dataset="geheim-log")
    spec = tmp_path / "Wohngeld.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    runner = CliRunner()
    base = ["--pool", str(sqlite_pool.root)]
    r = runner.invoke(app, [*base, "dashboards", "put", str(spec)])
    assert r.exit_code == 0, r.output
    assert "wohngeld: version 1 (5 tiles)" in r.output
    r = runner.invoke(app, [*base, "dashboards", "list"])
    assert r.output.startswith("wohngeld\tv1\t5 tiles")
    r = runner.invoke(
        app, [*base, "dashboards", "render", "wohngeld", "--tile", "cases", "--json",
              "--filter", "period_from=2024-01-01", "--filter", "period_to=2024-12-31"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    import json

    assert json.loads(r.output)["kpi"]["value"] == 300
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC.replace("type: map", "type: karte"), encoding="utf-8")
    r = runner.invoke(app, [*base, "dashboards", "put", str(bad)])
    assert isinstance(r.exception, BadInput)  # main() prints it and exits with code 2
    assert r.exception.line == 12 and r.exception.column == "tiles.1.type"
    assert runner.invoke(app, [*base, "dashboards", "list"]).output.count("wohngeld") == 1
