"""The rows route's shortcuts (token and catalogue caches, result cache, fast route, batched
audit writes) never change who sees what, and every request stays on record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

import datenlabor
from datenlabor.access.audit import Event
from datenlabor.access.principal import Principal
from datenlabor.pool.catalog import DatasetMeta
from datenlabor.service.grants import add_grant
from datenlabor.store.models import AuditEntry, AuditRef
from datenlabor.web.app import create_app

PW = "ein-sehr-geheimes-pw-1"
ADMIN = Principal(username="setup", role="admin", via="local")


@pytest.fixture
def env(tmp_path: Path, store_url: str | None):  # type: ignore[no-untyped-def]
    pool = datenlabor.open(tmp_path / "pool", database_url=store_url, user="setup")
    app = create_app(pool)
    gate = app.state.gate
    acc = gate.accounts
    for slug, name in [("bmi", "BMI"), ("nrw", "Land NRW"), ("by", "Bayern")]:
        acc.add_org(slug, name)
    for name, org in [("steward", "bmi"), ("nrw", "nrw"), ("by", "by")]:
        acc.add_user(name, org=org, role="steward" if org == "bmi" else "analyst", password=PW)
    tokens = {name: acc.create_token(name, scope="write") for name in ("steward", "nrw", "by")}
    src = tmp_path / "faelle.csv"
    src.write_text(
        "ags;ort;faelle;eingang\n"
        "05111000;Düsseldorf;12,5;31.01.2024\n"
        "05315000;Köln;7,25;01.02.2024\n"
        "09162000;München;3,0;02.02.2024\n"
        "09564000;Nürnberg;1,5;03.02.2024\n",
        encoding="utf-8",
    )
    pool.ingest(src, dataset="geheim", meta=DatasetMeta(publisher="bmi", visibility="restricted"))
    client = TestClient(app)
    yield app, client, tokens
    client.close()
    pool.store.dispose()


def rows(client: TestClient, token: str, query: str = "") -> Any:
    return client.get(
        f"/api/v1/datasets/geheim/rows{query}", headers={"Authorization": f"Bearer {token}"}
    )


def audit_count(app: Any) -> int:
    with app.state.gate.pool.store.session() as s:
        return int(s.scalar(select(func.count()).select_from(AuditEntry)) or 0)


def test_same_request_different_grants_never_share_an_answer(env: Any) -> None:
    app, client, tokens = env
    gate = app.state.gate
    add_grant(gate, ADMIN, "geheim", org="nrw", rows="ags LIKE '05%'", hide_columns=["faelle"])
    add_grant(gate, ADMIN, "geheim", org="by", rows="ags LIKE '09%'")
    query = "?sort=ags&limit=10"
    for _ in range(3):  # repeated: the second and third answers come from the cache
        nrw, by = rows(client, tokens["nrw"], query), rows(client, tokens["by"], query)
        steward = rows(client, tokens["steward"], query)
        assert nrw.status_code == by.status_code == steward.status_code == 200
        assert [r["ort"] for r in nrw.json()["rows"]] == ["Düsseldorf", "Köln"]
        assert nrw.json()["columns"] == ["ags", "ort", "eingang"]
        assert all("faelle" not in r for r in nrw.json()["rows"])
        assert [r["ort"] for r in by.json()["rows"]] == ["München", "Nürnberg"]
        assert [r["faelle"] for r in by.json()["rows"]] == [3.0, 1.5]
        assert len(steward.json()["rows"]) == 4
        assert steward.json()["rows"][0]["eingang"] == "2024-01-31"  # dates as ISO text
    assert gate.engine.results.hits >= 6


def test_cache_hits_are_audited_like_any_read(env: Any) -> None:
    app, client, tokens = env
    before = audit_count(app)
    for _ in range(5):
        assert rows(client, tokens["steward"], "?ort=Köln").status_code == 200
    assert audit_count(app) == before + 5
    last = app.state.gate.audit.entries(action="read", limit=5)
    assert {e.actor for e in last} == {"steward"}
    assert all(e.rows == 1 and e.datasets == {"geheim": 1} for e in last)
    assert app.state.gate.audit.verify().ok


def test_revoking_a_grant_applies_to_the_next_request(env: Any) -> None:
    app, client, tokens = env
    grant = add_grant(app.state.gate, ADMIN, "geheim", org="nrw", rows="ags LIKE '05%'")
    assert len(rows(client, tokens["nrw"]).json()["rows"]) == 2
    resp = client.delete(
        f"/api/v1/datasets/geheim/grants/{grant.id}",
        headers={"Authorization": f"Bearer {tokens['steward']}"},
    )
    assert resp.status_code == 200, resp.text
    gone = rows(client, tokens["nrw"])
    assert gone.status_code == 404  # the cached page must not outlive the grant
    assert "geheim" in gone.json()["error"]


def test_revoking_a_token_applies_to_the_next_request(env: Any) -> None:
    _app, client, tokens = env
    headers = {"Authorization": f"Bearer {tokens['steward']}"}
    assert rows(client, tokens["steward"]).status_code == 200
    listed = client.get("/api/v1/tokens", headers=headers).json()["tokens"]
    resp = client.delete(f"/api/v1/tokens/{listed[-1]['id']}", headers=headers)
    assert resp.status_code == 200, resp.text
    refused = rows(client, tokens["steward"])
    assert refused.status_code == 401
    assert "revoked" in refused.json()["error"]


def test_deactivating_a_user_applies_to_the_next_request(env: Any) -> None:
    app, client, tokens = env
    assert rows(client, tokens["steward"]).status_code == 200
    app.state.gate.accounts.update_user("steward", active=False)
    assert rows(client, tokens["steward"]).status_code == 401


def test_fast_route_answers_errors_like_the_rest_of_the_api(env: Any) -> None:
    _app, client, tokens = env
    bad = rows(client, tokens["steward"], "?faelle__gte=viel")
    assert bad.status_code == 400
    assert "faelle" in bad.text
    assert client.get("/api/v1/datasets/geheim/rows").status_code == 404  # anonymous
    assert rows(client, "dl_not-a-token").status_code == 401
    head = client.head(
        "/api/v1/datasets/geheim/rows", headers={"Authorization": f"Bearer {tokens['steward']}"}
    )
    assert head.status_code == 405
    ok = rows(client, tokens["steward"])
    assert ok.headers["content-type"] == "application/json"
    assert ok.headers["x-content-type-options"] == "nosniff"  # security headers still added
    doc = client.get("/openapi.json").json()
    assert "/api/v1/datasets/{slug}/rows" in doc["paths"]


def test_a_failed_audit_batch_leaves_no_trace_and_fails_the_request(
    env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, client, tokens = env
    log = app.state.gate.audit
    before = audit_count(app)
    from datenlabor.access import audit as audit_mod

    real_insert = audit_mod.insert

    def failing_insert(table: Any) -> Any:
        if table.name == "audit_refs":  # after the entries of the batch were inserted
            raise RuntimeError("disk full while writing the audit log")
        return real_insert(table)

    monkeypatch.setattr(audit_mod, "insert", failing_insert)
    with pytest.raises(RuntimeError, match="disk full"):
        log.record(Event(action="read", actor="x", datasets={"geheim": 1}))
    with pytest.raises(RuntimeError, match="disk full"):
        rows(client, tokens["steward"])  # no answer leaves without its audit entry
    assert audit_count(app) == before
    monkeypatch.setattr(audit_mod, "insert", real_insert)
    assert rows(client, tokens["steward"]).status_code == 200
    assert audit_count(app) == before + 1
    assert log.verify().ok


def test_batched_entries_keep_chain_order_and_dataset_index(env: Any) -> None:
    app, _client, _tokens = env
    log = app.state.gate.audit
    futures = [
        log.submit(
            Event(
                action="query",
                actor=f"u{i}",
                datasets={"a": 1, "b": 2} if i % 2 else {},
                publishers={"a": "bmi", "b": "nrw"},
            )
        )
        for i in range(40)
    ]
    for f in futures:
        f.result(timeout=30)
    result = log.verify()
    assert result.ok and result.entries == audit_count(app)
    entries = log.entries(actor=None, action="query", limit=40)
    assert sorted(int(e.actor[1:]) for e in entries) == list(range(40))
    with app.state.gate.pool.store.session() as s:
        refs = s.execute(select(AuditRef.dataset, AuditRef.publisher)).all()
    assert sorted(refs) == sorted([("a", "bmi"), ("b", "nrw")] * 20)
    nrw_entries = log.entries(publisher="nrw", limit=100)
    assert len(nrw_entries) == 20


def test_result_cache_keeps_to_its_byte_budget() -> None:
    from datenlabor.service.engine import ResultCache

    cache = ResultCache(max_bytes=100)
    cache.put("a", "A", 40)
    cache.put("b", "B", 40)
    assert cache.get("a") == "A"  # a is now the most recently used
    cache.put("c", "C", 40)  # over budget: b, the least recently used, goes
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == ("A", "C")
    cache.put("huge", "H", 101)  # larger than the whole budget: not kept, nothing evicted
    assert cache.get("huge") is None and cache.get("a") == "A"
    off = ResultCache(max_bytes=0)
    off.put("a", "A", 1)
    assert off.get("a") is None
