"""Confidential datasets through the service: microdata never leave, every route answers
from the one protected table, and only stewards set the rules."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import datenlabor
from datenlabor.access.principal import Principal
from datenlabor.pool.catalog import DatasetMeta
from datenlabor.service import confidential
from datenlabor.service.grants import add_grant
from datenlabor.web.app import create_app

PW = "ein-sehr-geheimes-pw-1"
# A frequency table (n counts applications) ...
RULES: dict[str, Any] = {
    "dims": [{"name": "kreis", "hierarchy": "ags"}, {"name": "art", "hierarchy": "flat"}],
}
# ... and a magnitude table (amounts by firm: n counts firms, dominance applies).
MAGNITUDE: dict[str, Any] = dict(RULES, measures=["betrag"], contributor="firma")
KREISE = ["05111", "05112", "05113", "05315", "05334", "09162", "09564", "09761"]


def _microdata(path: Path, seed: int = 7, rows: int = 400) -> Path:
    """Applications with a skewed spread: big Kreise have many, some have one or two."""
    rnd = random.Random(seed)
    weights = [40, 25, 2, 30, 1, 35, 20, 3]
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter=";")
        w.writerow(["kreis", "art", "betrag", "firma", "name"])
        for i in range(rows):
            kreis = rnd.choices(KREISE, weights)[0]
            art = rnd.choice(["A", "B", "C"])
            w.writerow([kreis, art, str(rnd.randint(100, 5000)), f"F{rnd.randint(1, 60)}", f"P{i}"])
    return path


@pytest.fixture
def env(tmp_path: Path, store_url: str | None):  # type: ignore[no-untyped-def]
    pool = datenlabor.open(tmp_path / "pool", database_url=store_url, user="setup")
    app = create_app(pool)
    gate = app.state.gate
    acc = gate.accounts
    acc.add_org("bmas", "BMAS")
    acc.add_org("uni", "Forschungsinstitut")
    for name, org, role in [
        ("steward", "bmas", "steward"),
        ("analyst", "uni", "analyst"),
        ("forscher", "uni", "analyst"),
        ("fremd", "uni", "steward"),
    ]:
        acc.add_user(name, org=org, role=role, password=PW)
    tokens = {n: acc.create_token(n, scope="write") for n in ("steward", "analyst", "forscher", "fremd")}
    pool.ingest(
        _microdata(tmp_path / "antraege.csv"),
        dataset="antraege",
        meta=DatasetMeta(publisher="bmas", visibility="internal"),
    )
    client = TestClient(app)
    yield client, tokens, gate, tmp_path
    client.close()
    pool.store.dispose()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _confidential(
    client: TestClient, tokens: dict[str, str], rules: dict[str, Any] = RULES
) -> dict[str, Any]:
    r = client.put("/api/v1/datasets/antraege/disclosure", json=rules, headers=auth(tokens["steward"]))
    assert r.status_code == 200, r.text
    return r.json()


def _cells(client: TestClient, token: str | None) -> list[dict[str, Any]]:
    headers = auth(token) if token else {}
    r = client.get("/api/v1/datasets/antraege/rows?limit=1000", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["rows"]


def test_only_stewards_of_the_publisher_set_rules_and_bad_rules_change_nothing(env) -> None:  # type: ignore[no-untyped-def]
    client, tokens, _gate, _ = env
    for who in ("analyst", "fremd"):
        r = client.put("/api/v1/datasets/antraege/disclosure", json=RULES, headers=auth(tokens[who]))
        assert r.status_code == 403, r.text
    bad = dict(MAGNITUDE, measures=["gibtsnicht"])
    r = client.put("/api/v1/datasets/antraege/disclosure", json=bad, headers=auth(tokens["steward"]))
    assert r.status_code == 400 and "gibtsnicht" in r.json()["error"]
    r = client.put(
        "/api/v1/datasets/antraege/disclosure",
        json=dict(RULES, min_frequency="drei"),
        headers=auth(tokens["steward"]),
    )
    assert r.status_code == 400 and "min_frequency" in r.text
    r = client.get("/api/v1/datasets/antraege/disclosure", headers=auth(tokens["analyst"]))
    assert r.json() == {"dataset": "antraege", "rules": None, "protected": False}
    # still microdata for the analyst: nothing changed
    assert "name" in _cells(client, tokens["analyst"])[0]


def test_rows_download_and_listing_give_the_protected_table_only(env) -> None:  # type: ignore[no-untyped-def]
    client, tokens, _gate, _ = env
    _confidential(client, tokens)
    cells = _cells(client, tokens["analyst"])
    assert set(cells[0]) == {"kreis", "art", "n", "status"}
    assert not any("name" in c or "firma" in c for c in cells)
    by_key = {(c["kreis"], c["art"]): c for c in cells}
    total = by_key[("Insgesamt", "Insgesamt")]
    assert total["n"] == 400 and total["status"] == ""
    assert ("05", "Insgesamt") in by_key  # the Land NRW from the AGS hierarchy
    suppressed = [c for c in cells if c["status"] in ("primary", "secondary")]
    assert any(c["status"] == "primary" for c in suppressed)
    assert all(c["n"] is None for c in suppressed)
    # whoever sees the microdata sees no suppression at all
    assert "name" in _cells(client, tokens["steward"])[0]
    r = client.get(
        "/api/v1/datasets/antraege/download?format=csv&dialect=intl", headers=auth(tokens["analyst"])
    )
    assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == len(cells) and set(rows[0]) == {"kreis", "art", "n", "status"}
    prov = json.loads(r.headers["X-Datenlabor-Provenance"])
    assert prov["datasets"][0]["disclosure"]["method"] == "fast"
    info = client.get("/api/v1/datasets/antraege", headers=auth(tokens["analyst"])).json()
    assert info["rows"] is None  # the record count is a cell, published (or not) there
    schema = client.get("/api/v1/datasets/antraege/versions/1", headers=auth(tokens["analyst"]))
    assert [f["name"] for f in schema.json()["schema"]["fields"]] == ["kreis", "art", "n", "status"]


def test_sql_aggregates_are_answered_from_the_cells(env) -> None:  # type: ignore[no-untyped-def]
    client, tokens, _gate, _ = env
    _confidential(client, tokens)
    cells = {(c["kreis"], c["art"]): c for c in _cells(client, tokens["analyst"])}
    r = client.post(
        "/api/v1/sql",
        json={"sql": "SELECT kreis, count(*) AS faelle FROM antraege GROUP BY kreis"},
        headers=auth(tokens["analyst"]),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["columns"] == ["kreis", "faelle", "status"]
    got = {row["kreis"]: (row["faelle"], row["status"]) for row in body["rows"]}
    assert set(got) == set(KREISE)
    for kreis, (n, status) in got.items():
        assert (n, status) == (cells[(kreis, "Insgesamt")]["n"], cells[(kreis, "Insgesamt")]["status"])
    assert body["provenance"]["datasets"][0]["disclosure"]["rules"]["min_frequency"] == 3
    # microdata cannot be asked for
    r = client.post(
        "/api/v1/sql",
        json={"sql": "SELECT avg(betrag) FROM antraege"},
        headers=auth(tokens["analyst"]),
    )
    assert r.status_code == 400 and "confidential" in r.json()["error"]
    r = client.post(
        "/api/v1/sql", json={"sql": "SELECT * FROM antraege"}, headers=auth(tokens["analyst"])
    )
    assert set(r.json()["columns"]) == {"kreis", "art", "n", "status"}
    r = client.post(
        "/api/v1/sql",
        json={"sql": "SELECT name FROM antraege"},
        headers=auth(tokens["analyst"]),
    )
    assert r.status_code == 400


def test_magnitude_tables_answer_sums_and_suppress_dominated_cells(env) -> None:  # type: ignore[no-untyped-def]
    client, tokens, _gate, _ = env
    _confidential(client, tokens, MAGNITUDE)
    cells = _cells(client, tokens["analyst"])
    assert set(cells[0]) == {"kreis", "art", "n", "betrag", "status"}
    for c in cells:
        if c["status"]:
            assert c["betrag"] is None
    r = client.post(
        "/api/v1/sql",
        json={"sql": "SELECT art, count(*) AS faelle, sum(betrag) FROM antraege GROUP BY art"},
        headers=auth(tokens["analyst"]),
    )
    assert r.status_code == 200, r.text
    assert r.json()["columns"] == ["art", "faelle", "sum(betrag)", "status"]
    by_art = {(c["kreis"], c["art"]): c for c in cells}
    for row in r.json()["rows"]:
        assert row["sum(betrag)"] == by_art[("Insgesamt", row["art"])]["betrag"]
        assert row["faelle"] == by_art[("Insgesamt", row["art"])]["n"]
    r = client.post(
        "/api/v1/sql",
        json={"sql": "SELECT art, count(DISTINCT firma) FROM antraege GROUP BY art"},
        headers=auth(tokens["analyst"]),
    )
    assert r.status_code == 400 and "COUNT(*)" in r.json()["error"]


def test_microdata_grant_and_what_grants_may_not_do(env) -> None:  # type: ignore[no-untyped-def]
    client, tokens, gate, _ = env
    _confidential(client, tokens)
    admin = Principal(username="setup", role="admin", via="local")
    with pytest.raises(datenlabor.errors.BadInput, match="cannot be narrowed"):
        add_grant(gate, admin, "antraege", org="uni", hide_columns=["name"])
    add_grant(gate, admin, "antraege", user="forscher", microdata=True, hide_columns=["name"])
    rows = _cells(client, tokens["forscher"])
    assert set(rows[0]) == {"kreis", "art", "betrag", "firma"} and len(rows) == 400
    assert "status" in _cells(client, tokens["analyst"])[0]  # the colleague without the grant


def test_new_versions_and_anonymous_readers_of_public_data(env) -> None:  # type: ignore[no-untyped-def]
    client, tokens, gate, tmp_path = env
    _confidential(client, tokens)
    assert client.get("/api/v1/datasets/antraege/rows").status_code == 404  # internal
    gate.pool.update_metadata("antraege", DatasetMeta(visibility="public"))
    gate.forget()
    anon = _cells(client, None)
    assert "status" in anon[0]
    gate.pool.ingest(_microdata(tmp_path / "v2.csv", seed=8, rows=500), dataset="antraege")
    gate.forget()
    total = [c for c in _cells(client, None) if c["kreis"] == c["art"] == "Insgesamt"]
    assert total[0]["n"] == 500
    old = client.get("/api/v1/datasets/antraege/rows?version=1&limit=1000").json()["rows"]
    assert [c["n"] for c in old if c["kreis"] == c["art"] == "Insgesamt"] == [400]


def test_ckan_datastore_sees_cells_only(env) -> None:  # type: ignore[no-untyped-def]
    client, tokens, _gate, _ = env
    _confidential(client, tokens)
    r = client.get(
        "/api/3/action/datastore_search",
        params={"resource_id": "antraege", "limit": 1000},
        headers=auth(tokens["analyst"]),
    )
    assert r.status_code == 200, r.text
    records = r.json()["result"]["records"]
    assert records and all("name" not in rec for rec in records)
    assert {"n", "status"} <= set(records[0])
    r = client.get(
        "/api/3/action/datastore_search_sql",
        params={"sql": "SELECT art, count(*) AS c FROM antraege GROUP BY art"},
        headers=auth(tokens["analyst"]),
    )
    assert r.status_code == 200, r.text
    result = r.json()["result"]["records"]
    assert sorted(x["art"] for x in result) == ["A", "B", "C"]
    assert all("status" in x for x in result)


def test_rules_are_audited(env) -> None:  # type: ignore[no-untyped-def]
    client, tokens, gate, _ = env
    _confidential(client, tokens)
    entries = [e for e in gate.audit.entries(limit=50) if e.action == "disclosure"]
    assert entries and entries[0].detail["rules"]["dims"][0]["name"] == "kreis"
    confidential.set_rules(gate, Principal(username="setup", role="admin", via="local"), "antraege", None)
    assert "name" in _cells(client, tokens["analyst"])[0]


def test_cli_sets_shows_and_clears_rules(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from datenlabor.cli import app

    pool_dir = tmp_path / "pool"
    pool = datenlabor.open(pool_dir, user="setup")
    pool.ingest(_microdata(tmp_path / "a.csv"), dataset="antraege")
    pool.store.dispose()
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(RULES), encoding="utf-8")
    runner = CliRunner()
    r = runner.invoke(app, ["--pool", str(pool_dir), "sdc", "rules", "set", "antraege", str(rules)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["--pool", str(pool_dir), "sdc", "rules", "show", "antraege"])
    assert json.loads(r.stdout)["dims"][0] == {"name": "kreis", "hierarchy": "ags"}
    broken = tmp_path / "broken.json"
    broken.write_text('{"dims": [\n  "kreis",\n]', encoding="utf-8")
    r = runner.invoke(app, ["--pool", str(pool_dir), "sdc", "rules", "set", "antraege", str(broken)])
    assert r.exit_code != 0 and "line 3" in str(r.exception)
    r = runner.invoke(app, ["--pool", str(pool_dir), "sdc", "rules", "clear", "antraege"])
    assert r.exit_code == 0
    r = runner.invoke(app, ["--pool", str(pool_dir), "sdc", "rules", "show", "antraege"])
    assert r.stdout.strip() == "null"


def test_cleanup_removes_protected_tables_once_rules_are_lifted(env) -> None:  # type: ignore[no-untyped-def]
    client, tokens, gate, _ = env
    _confidential(client, tokens)
    _cells(client, tokens["analyst"])
    folder = gate.pool.root / "disclosure" / "antraege"
    assert any(folder.glob("*.parquet"))
    assert gate.pool.cleanup().orphan_files == []  # still confidential: kept
    confidential.set_rules(gate, Principal(username="setup", role="admin", via="local"), "antraege", None)
    report = gate.pool.cleanup()
    assert not folder.exists() and any(f.endswith(".parquet") for f in report.orphan_files)
