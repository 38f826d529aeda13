"""CKAN Action API, driven with the real ckanapi client against a real uvicorn server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import ckanapi
import httpx
import pytest
import uvicorn

import datenlabor
from datenlabor.access.principal import Principal
from datenlabor.pool.catalog import DatasetMeta
from datenlabor.service import grants
from datenlabor.service.gate import Gate
from datenlabor.web.app import create_app

PW = "ein-sehr-geheimes-pw-1"

BEV = (
    "ags,name,einwohner\n"
    "05111000,Düsseldorf,620523\n"
    "05113000,Essen,582415\n"
    "05315000,Köln,1084831\n"
    "09162000,München,1512491\n"
    "09564000,Nürnberg,523026\n"
)
GEHEIM = (
    "region,kreis,wert,secret\n"
    "Nord,Kiel,1,s1\n"
    "Nord,Lübeck,2,s2\n"
    "Süd,München,3,s3\n"
    "Süd,Augsburg,4,s4\n"
)


@dataclass
class World:
    url: str
    gate: Gate
    tokens: dict[str, str]

    def ck(self, user: str | None = None, **kw: Any) -> ckanapi.RemoteCKAN:
        apikey = self.tokens[user] if user else None
        return ckanapi.RemoteCKAN(self.url, apikey=apikey, **kw)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("ckan")
    pool = datenlabor.open(tmp / "pool", user="t")
    common: dict[str, Any] = dict(
        publisher="bmi",
        publisher_name="Bundesministerium des Innern",
        licence="dl-de/by-2-0",
        themes=["SOCI"],
        keywords=["Bevölkerung"],
    )
    pool.ingest(
        _write(tmp / "bev.csv", BEV),
        dataset="bevoelkerung",
        meta=DatasetMeta(
            title="Bevölkerung der Großstädte",
            description="Einwohner ausgewählter Städte",
            visibility="public",
            spatial=["05111000"],
            temporal_start=date(2023, 1, 1),
            temporal_end=date(2023, 12, 31),
            **common,
        ),
    )
    pool.ingest(
        _write(tmp / "intern.csv", BEV),
        dataset="intern",
        meta=DatasetMeta(
            title="Interne Zahlen",
            visibility="internal",
            publisher="land",
            publisher_name="Ein Land",
            licence="CC-BY-4.0",
            themes=["ECON"],
            keywords=["Haushalt"],
        ),
    )
    pool.ingest(
        _write(tmp / "geheim.csv", GEHEIM),
        dataset="geheim",
        meta=DatasetMeta(title="Geheime Werte", visibility="restricted", **common),
    )
    app = create_app(pool)
    gate: Gate = app.state.gate
    acc = gate.accounts
    acc.add_org("land", "Ein Land")
    acc.add_org("andere", "Andere Stelle")
    acc.add_user("analyst", org="land", role="analyst", password=PW)
    acc.add_user("leser", org="land", role="viewer", password=PW)
    acc.add_user("fremd", org="andere", role="analyst", password=PW)
    setup = Principal(username="setup", role="admin", via="local")
    grants.add_grant(
        gate, setup, "geheim", org="land", hide_columns=["secret"], rows="region = 'Nord'"
    )
    tokens = {u: acc.create_token(u) for u in ("analyst", "leser", "fremd")}

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield World(f"http://127.0.0.1:{port}", gate, tokens)
    finally:
        srv.should_exit = True
        thread.join(10)


# -- catalogue ---------------------------------------------------------------------------
def test_package_list_follows_visibility(world: World) -> None:
    assert world.ck().action.package_list() == ["bevoelkerung"]
    assert world.ck("analyst").action.package_list() == ["bevoelkerung", "geheim", "intern"]
    assert world.ck("fremd").action.package_list() == ["bevoelkerung", "intern"]


def test_package_show_shape(world: World) -> None:
    pkg = world.ck().action.package_show(id="bevoelkerung")
    assert pkg["name"] == pkg["id"] == "bevoelkerung"
    assert pkg["title"] == "Bevölkerung der Großstädte"
    assert pkg["notes"] == "Einwohner ausgewählter Städte"
    assert pkg["organization"]["name"] == "bmi"
    assert pkg["organization"]["title"] == "Bundesministerium des Innern"
    assert pkg["license_id"] == "dl-de/by-2-0"
    assert [t["name"] for t in pkg["tags"]] == ["Bevölkerung"]
    assert [g["name"] for g in pkg["groups"]] == ["soci"]
    assert pkg["private"] is False
    assert pkg["metadata_created"] and pkg["metadata_modified"]
    assert [r["id"] for r in pkg["resources"]] == [
        "bevoelkerung-csv",
        "bevoelkerung-parquet",
        "bevoelkerung-xlsx",
        "bevoelkerung-json",
    ]
    csv = pkg["resources"][0]
    assert csv["format"] == "CSV" and csv["package_id"] == "bevoelkerung"
    assert csv["url"].endswith("/api/v1/datasets/bevoelkerung/download?format=csv")
    extras = {e["key"]: e["value"] for e in pkg["extras"]}
    assert extras["temporal_start"] == "2023-01-01"
    assert extras["temporal_end"] == "2023-12-31"
    assert "05111000" in extras["politicalGeocodingURI"]


def test_package_show_not_found(world: World) -> None:
    with pytest.raises(ckanapi.NotFound):
        world.ck().action.package_show(id="gibt-es-nicht")
    with pytest.raises(ckanapi.NotFound):  # exists, but not for anonymous callers
        world.ck().action.package_show(id="intern")
    with pytest.raises(ckanapi.NotFound):  # restricted without a grant
        world.ck("fremd").action.package_show(id="geheim")
    assert world.ck("analyst").action.package_show(id="geheim")["private"] is True


def test_package_search(world: World) -> None:
    anon = world.ck().action.package_search(q="Bevölkerung")
    assert anon["count"] == 1 and anon["results"][0]["name"] == "bevoelkerung"
    ck = world.ck("analyst")
    r = ck.action.package_search(fq="organization:bmi", sort="name asc")
    assert [p["name"] for p in r["results"]] == ["bevoelkerung", "geheim"]
    r = ck.action.package_search(fq="tags:Haushalt")
    assert [p["name"] for p in r["results"]] == ["intern"]
    r = ck.action.package_search(fq="groups:soci res_format:CSV", sort="title_string asc")
    assert [p["name"] for p in r["results"]] == ["bevoelkerung", "geheim"]
    r = ck.action.package_search(rows=1, start=1, sort="name asc")
    assert r["count"] == 3 and [p["name"] for p in r["results"]] == ["geheim"]
    r = ck.call_action(
        "package_search", {"facet.field": ["organization", "groups"], "sort": "name desc"}
    )
    assert [p["name"] for p in r["results"]] == ["intern", "geheim", "bevoelkerung"]
    orgs = r["search_facets"]["organization"]
    assert orgs["title"] == "organization"
    assert {(i["name"], i["count"]) for i in orgs["items"]} == {("bmi", 2), ("land", 1)}
    assert r["facets"]["groups"] == {"soci": 2, "econ": 1}
    assert {i["display_name"] for i in orgs["items"]} == {
        "Bundesministerium des Innern",
        "Ein Land",
    }
    r = ck.action.package_search(facet_field=["license_id"], sort="metadata_modified desc")
    assert r["facets"]["license_id"] == {"dl-de/by-2-0": 2, "CC-BY-4.0": 1}
    with pytest.raises(ckanapi.ValidationError):
        ck.action.package_search(fq="author:x")
    with pytest.raises(ckanapi.ValidationError):
        ck.action.package_search(sort="secret asc")


def test_organizations_groups_tags_resources(world: World) -> None:
    assert world.ck().action.organization_list() == ["bmi"]  # only publishers of public data
    orgs = world.ck("analyst").action.organization_list(all_fields=True)
    assert {o["name"]: o["package_count"] for o in orgs} == {"andere": 0, "bmi": 2, "land": 1}
    org = world.ck().action.organization_show(id="bmi")
    assert org["title"] == "Bundesministerium des Innern" and org["package_count"] == 1
    with pytest.raises(ckanapi.NotFound):
        world.ck().action.organization_show(id="land")
    assert world.ck().action.group_list() == ["soci"]
    groups = world.ck("analyst").action.group_list(all_fields=True)
    assert {g["name"]: g["package_count"] for g in groups} == {"econ": 1, "soci": 2}
    assert world.ck().action.tag_list() == ["Bevölkerung"]
    assert world.ck("analyst").action.tag_list() == ["Bevölkerung", "Haushalt"]
    res = world.ck().action.resource_show(id="bevoelkerung-parquet")
    assert res["format"] == "PARQUET" and res["package_id"] == "bevoelkerung"
    with pytest.raises(ckanapi.NotFound):
        world.ck().action.resource_show(id="intern-csv")


# -- DataStore ---------------------------------------------------------------------------
def test_datastore_search_basics(world: World) -> None:
    ck = world.ck()
    r = ck.action.datastore_search(resource_id="bevoelkerung-csv", limit=2, sort="einwohner desc")
    assert r["total"] == 5
    assert [f["id"] for f in r["fields"]] == ["ags", "name", "einwohner"]
    types = {f["id"]: f["type"] for f in r["fields"]}
    assert types["name"] == "text" and types["einwohner"].startswith("int")
    assert [x["name"] for x in r["records"]] == ["München", "Köln"]
    assert "offset=2" in r["_links"]["next"]
    r = ck.action.datastore_search(
        resource_id="bevoelkerung", limit=2, offset=2, sort="einwohner desc"
    )
    assert [x["name"] for x in r["records"]] == ["Düsseldorf", "Essen"]
    r = ck.action.datastore_search(resource_id="bevoelkerung", filters={"name": "Essen"})
    assert r["total"] == 1 and r["records"][0]["einwohner"] == 582415
    r = ck.action.datastore_search(resource_id="bevoelkerung", filters={"name": ["Essen", "Köln"]})
    assert r["total"] == 2
    r = ck.action.datastore_search(resource_id="bevoelkerung", q="ÜRN")  # case-insensitive
    assert [x["name"] for x in r["records"]] == ["Nürnberg"]
    r = ck.action.datastore_search(resource_id="bevoelkerung", fields=["name"], limit=1)
    assert list(r["records"][0]) == ["name"] and r["records"][0]["name"] == "Düsseldorf"
    with pytest.raises(ckanapi.ValidationError):
        ck.action.datastore_search(resource_id="bevoelkerung", filters={"nix": 1})
    with pytest.raises(ckanapi.ValidationError):
        ck.action.datastore_search(resource_id="bevoelkerung", limit=10_001)
    with pytest.raises(ckanapi.ValidationError):
        ck.action.datastore_search(resource_id="bevoelkerung", filters={"einwohner": "viele"})
    with pytest.raises(ckanapi.NotFound):
        ck.action.datastore_search(resource_id="intern-csv")


def test_datastore_search_applies_grants(world: World) -> None:
    ck = world.ck("analyst")
    r = ck.action.datastore_search(resource_id="geheim-csv")
    assert [f["id"] for f in r["fields"]] == ["region", "kreis", "wert"]
    assert r["total"] == 2
    assert {x["kreis"] for x in r["records"]} == {"Kiel", "Lübeck"}
    assert all("secret" not in x for x in r["records"])
    # Hidden rows stay hidden whatever is asked for.
    r = ck.action.datastore_search(resource_id="geheim", filters={"region": "Süd"})
    assert r["total"] == 0 and r["records"] == []
    r = ck.action.datastore_search(resource_id="geheim", q="s3")
    assert r["records"] == []
    for bad in ({"filters": {"secret": "s1"}}, {"fields": ["secret"]}, {"sort": "secret"}):
        with pytest.raises(ckanapi.ValidationError):
            ck.action.datastore_search(resource_id="geheim", **bad)
    with pytest.raises(ckanapi.NotFound):
        world.ck("fremd").action.datastore_search(resource_id="geheim")
    reads = world.gate.audit.entries(actor="analyst", action="read", dataset="geheim", limit=50)
    assert any("datastore_search" in (e.query or "") for e in reads)


def test_datastore_search_sql(world: World) -> None:
    ck = world.ck("analyst")
    r = ck.action.datastore_search_sql(sql="SELECT * FROM geheim ORDER BY wert")
    assert [f["id"] for f in r["fields"]] == ["region", "kreis", "wert"]
    assert [x["kreis"] for x in r["records"]] == ["Kiel", "Lübeck"]
    r = ck.action.datastore_search_sql(sql="SELECT count(*) AS n FROM geheim")
    assert r["records"] == [{"n": 2}]
    with pytest.raises(ckanapi.ValidationError):
        ck.action.datastore_search_sql(sql="SELECT secret FROM geheim")
    with pytest.raises(ckanapi.ValidationError):
        ck.action.datastore_search_sql(sql="DROP TABLE geheim")
    with pytest.raises(ckanapi.ValidationError):
        ck.action.datastore_search_sql(sql="SELEC nonsense")
    with pytest.raises(ckanapi.NotFound):
        world.ck("fremd").action.datastore_search_sql(sql="SELECT * FROM geheim")
    with pytest.raises(ckanapi.NotAuthorized):  # SQL needs a role that may run SQL
        world.ck("leser").action.datastore_search_sql(sql="SELECT * FROM bevoelkerung")
    with pytest.raises(ckanapi.NotAuthorized):
        world.ck().action.datastore_search_sql(sql="SELECT * FROM bevoelkerung")


# -- HTTP details ------------------------------------------------------------------------
def test_get_requests_and_both_prefixes(world: World) -> None:
    ck = world.ck("analyst", get_only=True)
    assert ck.action.package_list() == ["bevoelkerung", "geheim", "intern"]
    r = ck.call_action("package_search", {"fq": "organization:land", "facet.field": '["groups"]'})
    assert r["count"] == 1 and r["facets"]["groups"] == {"econ": 1}
    r = ck.action.datastore_search(resource_id="geheim", filters='{"kreis": "Kiel"}')
    assert r["total"] == 1
    with httpx.Client(base_url=world.url) as http:
        a = http.get("/api/action/package_list").json()
        b = http.get("/api/3/action/package_list").json()
        assert a["success"] and a["result"] == b["result"] == ["bevoelkerung"]
        assert b["help"].endswith("/api/3/action/help_show?name=package_list")


def test_credentials_and_error_envelope(world: World) -> None:
    token = world.tokens["analyst"]
    with httpx.Client(base_url=world.url) as http:
        for headers in (
            {"Authorization": token},
            {"Authorization": f"Bearer {token}"},
            {"X-CKAN-API-Key": token},
        ):
            r = http.get("/api/3/action/package_list", headers=headers)
            assert r.json()["result"] == ["bevoelkerung", "geheim", "intern"], headers
        r = http.get("/api/3/action/package_list", headers={"Authorization": "dl_falsch"})
        assert r.status_code == 403
        assert r.json()["error"]["__type"] == "Authorization Error"
        r = http.get("/api/3/action/package_show", params={"id": "intern"})
        assert r.status_code == 404 and r.json()["success"] is False
        assert r.json()["error"]["__type"] == "Not Found Error"
        r = http.post(
            "/api/3/action/datastore_search", json={"resource_id": "bevoelkerung", "limit": "x"}
        )
        assert r.status_code == 409 and r.json()["error"]["__type"] == "Validation Error"
        r = http.post("/api/action/package_show", data={"id": "bevoelkerung"})  # form body
        assert r.status_code == 200 and r.json()["result"]["name"] == "bevoelkerung"
        r = http.post(
            "/api/3/action/datastore_search",
            json={"resource_id": "bevoelkerung", "q": {"name": "essen"}},
        )
        assert [x["name"] for x in r.json()["result"]["records"]] == ["Essen"]
        r = http.post("/api/3/action/package_create", json={"name": "x"})
        assert r.status_code == 400 and r.json()["success"] is False
    with pytest.raises(ckanapi.NotAuthorized):
        ckanapi.RemoteCKAN(world.url, apikey="dl_falsch").action.package_list()
