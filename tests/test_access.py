"""Accounts, tokens, sessions, visibility and grants, and the hash-chained audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from datenlabor.access.accounts import Accounts
from datenlabor.access.audit import AuditLog, Event
from datenlabor.access.principal import Principal
from datenlabor.errors import BadInput, Conflict, Forbidden, NotFound, Unauthenticated
from datenlabor.pool.catalog import DatasetMeta
from datenlabor.service import grants, publishing
from datenlabor.service.gate import Gate
from datenlabor.store.models import ApiToken, AuditEntry

PW = "ein-sehr-geheimes-pw-1"


@pytest.fixture
def gate(pool):  # type: ignore[no-untyped-def]
    return Gate(pool)


def _people(acc: Accounts) -> None:
    acc.add_org("bmi", "Bundesministerium des Innern")
    acc.add_org("nrw", "Land Nordrhein-Westfalen")
    acc.add_org("by", "Freistaat Bayern")
    acc.add_user("admin", org="bmi", role="admin", password=PW)
    acc.add_user("steward", org="bmi", role="steward", password=PW)
    acc.add_user("nrw-analyst", org="nrw", role="analyst", password=PW)
    acc.add_user("by-analyst", org="by", role="analyst", password=PW)


def _csv(tmp_path: Path) -> Path:
    f = tmp_path / "gemeinden.csv"
    f.write_text(
        "ags;name;einwohner;sachbearbeiter\n"
        "05111000;Düsseldorf;620523;Frau A\n"
        "05315000;Köln;1084831;Herr B\n"
        "09162000;München;1488202;Frau C\n",
        encoding="utf-8",
    )
    return f


def test_passwords_tokens_and_sessions(gate: Gate) -> None:
    acc = gate.accounts
    _people(acc)
    assert acc.authenticate("steward", PW).role == "steward"
    with pytest.raises(Unauthenticated) as wrong:
        acc.authenticate("steward", PW + "x")
    with pytest.raises(Unauthenticated) as unknown:
        acc.authenticate("nobody", PW)
    assert str(wrong.value) == str(unknown.value)  # no hint which accounts exist
    with pytest.raises(BadInput, match="at least 12"):
        acc.add_user("kurz", org="bmi", role="viewer", password="kurz")
    with pytest.raises(Conflict):
        acc.add_user("steward", org="bmi", role="viewer", password=PW)
    with pytest.raises(BadInput, match="unknown role"):
        acc.add_user("x", org="bmi", role="chef", password=PW)

    token = acc.create_token("nrw-analyst", scope="read")
    p = acc.resolve_token(token)
    assert (p.username, p.organisation, p.via, p.can_write) == ("nrw-analyst", "nrw", "read", False)
    with pytest.raises(Unauthenticated):
        acc.resolve_token(token + "x")
    # only the hash is stored
    with gate.pool.store.session() as s:
        stored = [t.token_hash for t in s.query(ApiToken)]
    assert token not in stored and all(len(h) == 64 for h in stored)
    # expiry and revocation
    with gate.pool.store.session() as s, s.begin():
        s.execute(update(ApiToken).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    acc.forget_tokens()  # as after TOKEN_CACHE_SECONDS: the change came from outside
    with pytest.raises(Unauthenticated, match="expired"):
        acc.resolve_token(token)
    t2 = acc.create_token("nrw-analyst", scope="write", days=1)
    acc.revoke_token("nrw-analyst", acc.tokens("nrw-analyst")[-1].id)
    with pytest.raises(Unauthenticated, match="revoked"):
        acc.resolve_token(t2)

    sid, csrf = acc.start_session("by-analyst")
    found = acc.resolve_session(sid)
    assert found is not None and found[0].username == "by-analyst" and found[1] == csrf
    acc.update_user("by-analyst", active=False)  # deactivation ends sessions at once
    assert acc.resolve_session(sid) is None
    with pytest.raises(Unauthenticated):
        acc.authenticate("by-analyst", PW)


def test_visibility_and_grants(gate: Gate, tmp_path: Path) -> None:
    _people(gate.accounts)
    steward = gate.accounts.authenticate("steward", PW)
    nrw = gate.accounts.authenticate("nrw-analyst", PW)
    by = gate.accounts.authenticate("by-analyst", PW)
    anon = Principal(username=None)
    publishing.ingest(
        gate,
        steward,
        _csv(tmp_path),
        dataset="gemeinden",
        meta=DatasetMeta(visibility="restricted"),
    )
    # restricted: publisher org sees it whole, others not at all
    assert gate.dataset(steward, "gemeinden")[1].whole
    for p in (nrw, by, anon):
        with pytest.raises(NotFound):
            gate.dataset(p, "gemeinden")
        assert [d.slug for d, _ in gate.visible(p)] == []
    # a Land sees only its own rows, without the caseworker column
    grants.add_grant(
        gate,
        steward,
        "gemeinden",
        org="nrw",
        hide_columns=["sachbearbeiter"],
        rows="ags LIKE '05%'",
    )
    rows = gate.rows(nrw, "gemeinden", [("sort", "ags")])
    assert rows.table.column_names == ["ags", "name", "einwohner"]
    assert rows.table.column("name").to_pylist() == ["Düsseldorf", "Köln"]
    res = gate.sql(nrw, "SELECT count(*) AS n, sum(einwohner) AS e FROM gemeinden")
    assert res.table.to_pylist() == [{"n": 2, "e": 620523 + 1084831}]
    with pytest.raises(BadInput, match="sachbearbeiter"):
        gate.sql(nrw, "SELECT sachbearbeiter FROM gemeinden")
    path, _src, n = gate.download(nrw, "gemeinden", fmt="csv", dialect="intl")
    text = path.read_text(encoding="utf-8")
    path.unlink()
    assert n == 2 and "München" not in text and "Frau" not in text
    # versions and schema don't reveal hidden columns or the total row count
    (v,) = gate.versions(nrw, "gemeinden")
    assert [f["name"] for f in v.schema["fields"]] == ["ags", "name", "einwohner"]
    assert v.rows == -1
    q = gate.quality(nrw, "gemeinden")
    assert "sachbearbeiter" not in str(q) and "München" not in str(q)
    # Bavaria still sees nothing; a second grant to one user widens only for that user
    with pytest.raises(NotFound):
        gate.rows(by, "gemeinden", [])
    grants.add_grant(gate, steward, "gemeinden", user="by-analyst", rows="ags LIKE '09%'")
    assert gate.rows(by, "gemeinden", []).table.column("name").to_pylist() == ["München"]
    assert "sachbearbeiter" in gate.rows(by, "gemeinden", []).table.column_names


def test_grant_validation_and_permissions(gate: Gate, tmp_path: Path) -> None:
    _people(gate.accounts)
    steward = gate.accounts.authenticate("steward", PW)
    nrw = gate.accounts.authenticate("nrw-analyst", PW)
    publishing.ingest(
        gate, steward, _csv(tmp_path), dataset="offen", meta=DatasetMeta(visibility="internal")
    )
    with pytest.raises(BadInput, match="restricted first"):
        grants.add_grant(gate, steward, "offen", org="nrw", hide_columns=["name"])
    gate.pool.update_metadata("offen", DatasetMeta(visibility="restricted"))
    with pytest.raises(BadInput, match="no column 'gibtsnicht'"):
        grants.add_grant(gate, steward, "offen", org="nrw", hide_columns=["gibtsnicht"])
    with pytest.raises(BadInput):
        grants.add_grant(gate, steward, "offen", org="nrw", rows="ags IN (SELECT 1)")
    with pytest.raises(BadInput):
        grants.add_grant(gate, steward, "offen", org="nrw", rows="1=1; DROP TABLE x")
    with pytest.raises(NotFound):  # nor does an outsider learn that it exists
        grants.add_grant(gate, nrw, "offen", org="nrw")
    # analysts of another org cannot publish new versions or delete
    with pytest.raises(Forbidden):
        publishing.ingest(gate, nrw, _csv(tmp_path), dataset="offen")
    with pytest.raises(Forbidden):
        publishing.ingest(
            gate, nrw, _csv(tmp_path), dataset="neu", meta=DatasetMeta(publisher="bmi")
        )
    with pytest.raises(NotFound):  # invisible to nrw: answered like a missing dataset
        publishing.delete(gate, nrw, "offen")
    # soft delete hides at once and blocks re-creation until restored
    publishing.delete(gate, steward, "offen")
    with pytest.raises(NotFound):
        gate.dataset(steward, "offen")
    with pytest.raises(Conflict, match="restore it"):
        publishing.ingest(gate, steward, _csv(tmp_path), dataset="offen")
    gate.pool.restore("offen")
    assert gate.dataset(steward, "offen")[0].slug == "offen"


def test_audit_chain_detects_tampering(gate: Gate, tmp_path: Path) -> None:
    _people(gate.accounts)
    steward = gate.accounts.authenticate("steward", PW)
    publishing.ingest(
        gate, steward, _csv(tmp_path), dataset="gemeinden", meta=DatasetMeta(visibility="internal")
    )
    nrw = gate.accounts.authenticate("nrw-analyst", PW)
    gate.sql(nrw, "SELECT name FROM gemeinden WHERE einwohner > 1000000")
    log = AuditLog(gate.pool.store)
    result = log.verify()
    assert result.ok and result.entries >= 2
    entries = log.entries(dataset="gemeinden")
    query = next(e for e in entries if e.action == "query")
    assert (query.actor, query.rows, query.datasets) == ("nrw-analyst", 2, {"gemeinden": 1})
    assert "einwohner > 1000000" in (query.query or "")
    # stewards see accesses to their organisation's datasets
    assert query.id in [e.id for e in log.entries(publisher="bmi")]
    assert query.id not in [e.id for e in log.entries(publisher="nrw")]
    # editing one entry breaks the chain exactly there
    with gate.pool.store.session() as s, s.begin():
        s.execute(update(AuditEntry).where(AuditEntry.id == query.id).values(rows=0))
    bad = log.verify()
    assert not bad.ok and bad.first_bad == query.id and "changed" in (bad.reason or "")


def test_audit_group_commit_keeps_one_chain(gate: Gate) -> None:
    """Many threads logging at once still give one unbroken chain."""
    from concurrent.futures import ThreadPoolExecutor

    log = gate.audit
    with ThreadPoolExecutor(16) as ex:
        list(ex.map(lambda i: log.record(Event(action="read", actor=f"u{i}")), range(200)))
    result = log.verify()
    assert result.ok and result.entries == 200
    assert {e.actor for e in log.entries(limit=500)} == {f"u{i}" for i in range(200)}


def test_versions_too_large_for_the_cache_are_read_from_parquet(tmp_path: Path) -> None:
    """With no room in the engine's cache, rows and SQL read the files and grants still hold."""
    import datenlabor

    pool = datenlabor.open(tmp_path / "pool", user="t", cache_bytes=1)
    try:
        gate = Gate(pool)
        _people(gate.accounts)
        steward = gate.accounts.authenticate("steward", PW)
        nrw = gate.accounts.authenticate("nrw-analyst", PW)
        publishing.ingest(
            gate,
            steward,
            _csv(tmp_path),
            dataset="gemeinden",
            meta=DatasetMeta(visibility="restricted"),
        )
        grants.add_grant(
            gate,
            steward,
            "gemeinden",
            org="nrw",
            hide_columns=["sachbearbeiter"],
            rows="ags LIKE '05%'",
        )
        page1 = gate.rows(nrw, "gemeinden", [("limit", "1")])
        assert page1.table.to_pylist() == [
            {"ags": "05111000", "name": "Düsseldorf", "einwohner": 620523}
        ]
        page2 = gate.rows(nrw, "gemeinden", [("limit", "1"), ("after", page1.next or "")])
        assert page2.table.column("name").to_pylist() == ["Köln"] and page2.next is None
        res = gate.sql(nrw, "SELECT string_agg(name, ',' ORDER BY name) AS n FROM gemeinden")
        assert res.table.to_pylist() == [{"n": "Düsseldorf,Köln"}]
        assert gate.engine.cached_table(page1.source.files, page1.source.raw_schema) is None
    finally:
        pool.store.dispose()
