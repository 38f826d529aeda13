"""The JSON API: what each role may see and do, provenance, abuse, and every route walked."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

import datenlabor
from datenlabor.pool.catalog import DatasetMeta
from datenlabor.web.app import create_app

PW = "ein-sehr-geheimes-pw-1"
SECRET_VALUES = ("Frau Geheim", "Herr Geheim")  # values of the hidden column
OUTSIDE_ROWS = ("München", "Nürnberg")  # rows outside the NRW grant


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def env(tmp_path: Path, store_url: str | None):  # type: ignore[no-untyped-def]
    pool = datenlabor.open(
        tmp_path / "pool",
        database_url=store_url,
        user="setup",
        sql_timeout_s=1.5,
        max_upload_bytes=2_000_000,
    )
    app = create_app(pool)
    gate = app.state.gate
    acc = gate.accounts
    for slug, name in [("bmi", "BMI"), ("nrw", "Land NRW"), ("by", "Bayern")]:
        acc.add_org(slug, name)
    users = {
        "admin": ("bmi", "admin"),
        "steward": ("bmi", "steward"),
        "nrw": ("nrw", "analyst"),
        "by": ("by", "analyst"),
        "viewer": ("by", "viewer"),
    }
    for name, (org, role) in users.items():
        acc.add_user(name, org=org, role=role, password=PW)
    tokens = {name: acc.create_token(name, scope="write") for name in users}
    tokens["nrw-read"] = acc.create_token("nrw", scope="read")
    src = _write(
        tmp_path / "faelle.csv",
        "ags;ort;faelle;sachbearbeiter\n"
        "05111000;Düsseldorf;12,5;Frau Geheim-A\n"
        "05315000;Köln;7,25;Herr Geheim-B\n"
        "09162000;München;3,0;Frau Geheim-C\n"
        "09564000;Nürnberg;1,5;Herr Geheim-D\n",
    )
    pool.ingest(src, dataset="geheim", meta=DatasetMeta(publisher="bmi", visibility="restricted"))
    pool.ingest(src, dataset="intern", meta=DatasetMeta(publisher="bmi", visibility="internal"))
    pub = _write(tmp_path / "pub.csv", "jahr,wert\n2023,1\n2024,2\n")
    pool.ingest(pub, dataset="offen", meta=DatasetMeta(publisher="bmi", visibility="public"))
    from datenlabor.access.principal import Principal
    from datenlabor.service.grants import add_grant

    admin = Principal(username="setup", role="admin", via="local")
    add_grant(
        gate, admin, "geheim", org="nrw", hide_columns=["sachbearbeiter"], rows="ags LIKE '05%'"
    )
    client = TestClient(app)
    yield client, tokens, tmp_path
    client.close()
    pool.store.dispose()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_listing_follows_visibility(env) -> None:  # type: ignore[no-untyped-def]
    client, tokens, _ = env

    def slugs(headers: dict[str, str]) -> list[str]:
        r = client.get("/api/v1/datasets", headers=headers)
        assert r.status_code == 200
        return [d["slug"] for d in r.json()["datasets"]]

    assert slugs({}) == ["offen"]
    assert slugs(auth(tokens["by"])) == ["intern", "offen"]
    assert slugs(auth(tokens["nrw"])) == ["geheim", "intern", "offen"]
    assert slugs(auth(tokens["steward"])) == ["geheim", "intern", "offen"]
    r = client.get(
        "/api/v1/datasets",
        params={"visibility": "public", "q": "off"},
        headers=auth(tokens["admin"]),
    )
    body = r.json()
    assert [d["slug"] for d in body["datasets"]] == ["offen"]
    assert body["facets"]["visibility"] == {"public": 1}  # other filters apply, not its own
    assert body["facets"]["organisation"] == {"bmi": 1}


def test_rows_with_grant_filters_and_paging(env) -> None:  # type: ignore[no-untyped-def]
    client, tokens, _ = env
    r = client.get("/api/v1/datasets/geheim/rows?limit=1&sort=-faelle", headers=auth(tokens["nrw"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["rows"] == [{"ags": "05111000", "ort": "Düsseldorf", "faelle": 12.5}]
    assert body["provenance"]["datasets"] == [{"slug": "geheim", "version": 1, "partial": True}]
    r2 = client.get(
        "/api/v1/datasets/geheim/rows",
        params={"limit": 1, "sort": "-faelle", "after": body["next"]},
        headers=auth(tokens["nrw"]),
    )
    assert [x["ort"] for x in r2.json()["rows"]] == ["Köln"] and r2.json()["next"] is None
    r3 = client.get(
        "/api/v1/datasets/intern/rows?faelle__gte=5&ort__contains=ö", headers=auth(tokens["by"])
    )
    assert [x["ort"] for x in r3.json()["rows"]] == ["Köln"]
    bad = client.get("/api/v1/datasets/intern/rows?faelle__gte=viel", headers=auth(tokens["by"]))
    assert bad.status_code == 400 and "faelle" in bad.json()["error"]
    assert (
        client.get("/api/v1/datasets/intern/rows?nix=1", headers=auth(tokens["by"])).status_code
        == 400
    )
    assert client.get("/api/v1/datasets/geheim/rows", headers=auth(tokens["by"])).status_code == 404
    assert client.get("/api/v1/datasets/intern/rows").status_code == 404
    assert client.get("/api/v1/datasets/offen/rows?limit=1").json()["rows"] == [
        {"jahr": 2023, "wert": 1}
    ]


def test_sql_applies_grants_and_refuses_escapes(env) -> None:  # type: ignore[no-untyped-def]
    client, tokens, _ = env
    h = auth(tokens["nrw"])

    def sql(q: str, headers: dict[str, str] = h) -> Any:
        return client.post("/api/v1/sql", json={"sql": q}, headers=headers)

    r = sql("SELECT count(*) AS n, sum(faelle) AS s FROM geheim")
    assert r.status_code == 200 and r.json()["rows"] == [{"n": 2, "s": 19.75}]
    assert r.json()["provenance"]["datasets"][0]["slug"] == "geheim"
    assert sql("SELECT sachbearbeiter FROM geheim").status_code == 400
    assert sql('SELECT * FROM "geheim@1" JOIN intern USING (ags)').status_code == 200
    for attack in [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM '/etc/passwd'",
        "COPY (SELECT 1) TO '/tmp/x.csv'",
        "ATTACH '/tmp/x.db' AS x",
        "INSTALL httpfs",
        "LOAD httpfs",
        "PRAGMA database_list",
        "SET enable_external_access = true",
        "CREATE TABLE x AS SELECT 1",
        "DROP TABLE geheim",
        "SELECT 1; SELECT 2",
        "SELECT * FROM query_table('geheim')",
        "SELECT getenv('HOME')",
        "SELECT * FROM information_schema.tables",
        "SELECT * FROM duckdb_settings()",
    ]:
        r = sql(attack)
        assert r.status_code == 400, (attack, r.status_code, r.text)
        assert "root:" not in r.text
    slow = sql(
        "SELECT count(*) FROM range(1000000000) a, range(1000000000) b WHERE a.range + b.range = 7"
    )
    assert slow.status_code == 400 and "time limit" in slow.json()["error"]
    assert sql("SELECT * FROM geheim", auth(tokens["by"])).status_code == 404
    assert sql("SELECT 1 AS x", auth(tokens["viewer"])).status_code == 403
    assert sql("SELECT * FROM offen", {}).status_code == 401


def test_downloads_in_every_format(env) -> None:  # type: ignore[no-untyped-def]
    client, tokens, _ = env
    h = auth(tokens["nrw"])
    de = client.get("/api/v1/datasets/geheim/download?format=csv&dialect=de", headers=h)
    assert de.status_code == 200
    assert de.content.startswith(b"\xef\xbb\xbf")
    text = de.content.decode("utf-8-sig")
    assert text.splitlines() == ["ags;ort;faelle", "05111000;Düsseldorf;12,5", "05315000;Köln;7,25"]
    prov = json.loads(de.headers["x-datenlabor-provenance"])
    assert (
        prov["datasets"][0] == {"slug": "geheim", "version": 1, "partial": True}
        and prov["rows"] == 2
    )
    intl = client.get("/api/v1/datasets/intern/download?format=csv&dialect=intl", headers=h)
    assert intl.text.splitlines()[1] == "05111000,Düsseldorf,12.5,Frau Geheim-A"
    pqf = client.get("/api/v1/datasets/geheim/download?format=parquet", headers=h)
    table = pq.read_table(io.BytesIO(pqf.content))
    assert table.column_names == ["ags", "ort", "faelle"] and table.num_rows == 2
    js = client.get("/api/v1/datasets/geheim/download?format=json", headers=h)
    assert [r["ort"] for r in js.json()] == ["Düsseldorf", "Köln"]
    xl = client.get("/api/v1/datasets/geheim/download?format=xlsx", headers=h)
    assert xl.status_code == 200 and xl.content[:2] == b"PK"
    assert client.get("/api/v1/datasets/geheim/download?format=exe", headers=h).status_code == 400


def test_upload_new_versions_and_abuse(env) -> None:  # type: ignore[no-untyped-def]
    client, tokens, tmp_path = env
    files = {
        "file": ("Anträge 2024.csv", "ags;n\n05111000;3\n05315000;4\n".encode("cp1252"), "text/csv")
    }
    r = client.post(
        "/api/v1/datasets",
        headers=auth(tokens["steward"]),
        files=files,
        data={"dataset": "antraege", "title": "Anträge", "visibility": "internal"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["version"]["version"] == 1 and r.json()["version"]["rows"] == 2
    r = client.post(
        "/api/v1/datasets/antraege/versions",
        headers=auth(tokens["steward"]),
        files={"file": ("b.csv", b"ags;n\n05111000;5\n", "text/csv")},
        data={"mode": "append"},
    )
    assert r.status_code == 201 and r.json()["version"]["version"] == 2
    assert r.json()["version"]["source_name"] == "b.csv"  # the sender's name, not a temp file
    diff = client.get("/api/v1/datasets/antraege/diff?from=1&to=2", headers=auth(tokens["steward"]))
    assert diff.status_code == 200, diff.text
    assert diff.json()["diff"]["rows"]["added"] == 1
    assert diff.json()["provenance"]["datasets"] == [
        {"slug": "antraege", "version": 1},
        {"slug": "antraege", "version": 2},
    ]
    same = client.get("/api/v1/datasets/antraege/diff", headers=auth(tokens["steward"]))
    assert same.json()["diff"]["from"] == 1 and same.json()["diff"]["to"] == 2
    bad = client.get("/api/v1/datasets/antraege/diff?from=0", headers=auth(tokens["steward"]))
    assert bad.status_code == 400
    # others may not publish, read tokens may not write
    for who in ("nrw", "nrw-read", "viewer"):
        r = client.post(
            "/api/v1/datasets/antraege/versions",
            headers=auth(tokens[who]),
            files={"file": ("c.csv", b"ags;n\n1;1\n", "text/csv")},
        )
        assert r.status_code == 403, (who, r.text)
    assert (
        client.post(
            "/api/v1/datasets",
            files={"file": ("c.csv", b"a\n1\n", "text/csv")},
            data={"dataset": "x"},
        ).status_code
        == 401
    )
    # malformed and oversized uploads: clear 4xx, nothing left behind
    bad = client.post(
        "/api/v1/datasets",
        headers=auth(tokens["steward"]),
        files={
            "file": (
                "kaputt.xlsx",
                b"PK\x03\x04" + bytes(range(256)) * 4,
                "application/octet-stream",
            )
        },
        data={"dataset": "kaputt"},
    )
    assert bad.status_code == 400 and "kaputt.xlsx" in bad.json()["error"]
    big = client.post(
        "/api/v1/datasets",
        headers=auth(tokens["steward"]),
        files={"file": ("big.csv", b"a\n" + b"1\n" * 1_500_000, "text/csv")},
        data={"dataset": "big"},
    )
    assert big.status_code == 413
    nofile = client.post("/api/v1/datasets", headers=auth(tokens["steward"]), data={"dataset": "x"})
    assert nofile.status_code == 400
    leftovers = list((tmp_path / "pool" / "tmp").iterdir())
    assert leftovers == []
    assert client.get("/api/v1/datasets/kaputt", headers=auth(tokens["admin"])).status_code == 404


def test_audit_records_reads_and_is_scoped(env) -> None:  # type: ignore[no-untyped-def]
    client, tokens, _ = env
    client.post("/api/v1/sql", json={"sql": "SELECT ort FROM geheim"}, headers=auth(tokens["nrw"]))
    client.get("/api/v1/datasets/offen/rows")
    entries = client.get("/api/v1/audit?limit=50", headers=auth(tokens["admin"])).json()["entries"]
    q = next(e for e in entries if e["action"] == "query")
    assert (q["actor"], q["organisation"], q["rows"], q["datasets"]) == (
        "nrw",
        "nrw",
        2,
        {"geheim": 1},
    )
    assert q["query"] == "SELECT ort FROM geheim"
    assert any(e["actor"] == "anonymous" and e["datasets"] == {"offen": 1} for e in entries)
    # stewards see accesses to their organisation's datasets; analysts see none
    assert client.get("/api/v1/audit", headers=auth(tokens["steward"])).status_code == 200
    assert client.get("/api/v1/audit", headers=auth(tokens["nrw"])).status_code == 403
    export = client.get("/api/v1/audit/export?format=csv", headers=auth(tokens["admin"]))
    assert export.status_code == 200 and "SELECT ort FROM geheim" in export.text


def test_docs_and_health_work_offline(env) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = env
    assert client.get("/healthz").json() == {"status": "ok"}
    docs = client.get("/docs").text
    assert "cdn" not in docs.lower() and "/static/swagger/swagger-ui-bundle.js" in docs
    assert client.get("/static/swagger/swagger-ui-bundle.js").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/api/v1/sql" in spec["paths"]


def _example_path(path: str) -> str:
    return (
        path.replace("{slug}", "geheim")
        .replace("{number}", "1")
        .replace("{grant_id}", "1")
        .replace("{token_id}", "1")
        .replace("{username}", "by")
    )


BODIES: dict[str, Any] = {
    "/api/v1/sql": {"sql": "SELECT * FROM geheim"},
    "/api/v1/datasets/{slug}/grants": {"org": "by"},
    "/api/v1/orgs": {"slug": "neu", "name": "Neu"},
    "/api/v1/users": {"username": "mallory", "org": "by", "role": "admin", "password": PW},
    "/api/v1/users/{username}": {"role": "admin"},
    "/api/v1/tokens": {"scope": "write"},
    "/api/v1/datasets/{slug}": {"title": "übernommen"},
    "/api/v1/datasets/{slug}/disclosure": {"dims": ["ort"]},
}


@pytest.mark.parametrize("who", ["anonymous", "by", "viewer", "nrw", "nrw-read"])
def test_every_route_with_every_role_leaks_nothing(env, who: str) -> None:  # type: ignore[no-untyped-def]
    """Walk all API routes as a caller outside the grant (or inside, narrowed)."""
    client, tokens, _ = env
    headers = auth(tokens[who]) if who != "anonymous" else {}
    spec = client.get("/openapi.json").json()["paths"]
    routes = [(p, m.upper()) for p, ms in spec.items() if p.startswith("/api/") for m in ms]
    assert len(routes) > 20
    for route_path, method in routes:
        if True:
            path = _example_path(route_path)
            kwargs: dict[str, Any] = {"headers": headers}
            if method in ("POST", "PATCH", "PUT"):
                if route_path in BODIES:
                    kwargs["json"] = BODIES[route_path]
                else:
                    kwargs["files"] = {"file": ("x.csv", b"ags;ort\n09162000;X\n", "text/csv")}
                    kwargs["data"] = {"dataset": "geheim"}
            r = client.request(method, path, **kwargs)
            where = f"{who} {method} {path} -> {r.status_code}: {r.text[:200]}"
            assert r.status_code < 500, where
            body = r.text
            for secret in (*SECRET_VALUES, "sachbearbeiter"):
                assert secret not in body, where
            for row in OUTSIDE_ROWS:
                if "/geheim" in path or path.endswith("/sql"):
                    assert row not in body, where
            # routes that address the dataset (others name register entries, dashboards …)
            if who in ("anonymous", "by", "viewer") and "/datasets/geheim" in path:
                assert r.status_code in (401, 403, 404), where
            own_token = path == "/api/v1/tokens" and who != "nrw-read"  # users make their own
            if method != "GET" and path != "/api/v1/sql" and who != "anonymous" and not own_token:
                # nobody outside the publisher may change anything of it or of the accounts
                assert r.status_code in (400, 401, 403, 404), where
    # after the walk, the admin sees the dataset unchanged
    r = client.get("/api/v1/datasets/geheim", headers=auth(tokens["admin"]))
    assert r.status_code == 200 and r.json()["title"] == "geheim"
    users = client.get("/api/v1/users", headers=auth(tokens["admin"])).json()["users"]
    assert "mallory" not in [u["username"] for u in users]


def test_oversized_requests_get_413_not_500(env) -> None:  # type: ignore[no-untyped-def]
    client, tokens, _ = env
    h = auth(tokens["admin"])
    huge = "x" * (2 * 1024 * 1024)
    r = client.post("/api/v1/sql", json={"sql": huge}, headers=h)
    assert r.status_code == 413 and "larger" in r.json()["error"]
    r = client.patch("/api/v1/datasets/intern", content=huge.encode(), headers=h)
    assert r.status_code == 413

    def chunks():  # no Content-Length: counted while it arrives
        for _ in range(40):
            yield b"y" * 65536

    r = client.post(
        "/api/v1/sql", content=chunks(), headers={**h, "content-type": "application/json"}
    )
    assert r.status_code == 413
    # invalid JSON and wrong types are 400, not 500
    assert (
        client.post(
            "/api/v1/sql", content=b"{nope", headers={**h, "content-type": "application/json"}
        ).status_code
        == 400
    )
    assert client.post("/api/v1/sql", json={"sql": 5}, headers=h).status_code == 400
    assert (
        client.get("/api/v1/datasets/intern/rows?limit=99999999999", headers=h).status_code == 400
    )
    assert client.get("/api/v1/datasets/intern/rows?after=%%%", headers=h).status_code == 400
