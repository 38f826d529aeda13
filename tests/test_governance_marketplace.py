"""Marketplace of AI use cases on SQLite and PostgreSQL: profiles from register entries with
live metrics, search and filters, interest and comments, public value, import and export,
and the API with its permissions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from datenlabor.access.principal import ANONYMOUS, Principal
from datenlabor.errors import BadInput, Conflict, Forbidden
from datenlabor.governance import assessment, marketplace, register
from datenlabor.store.models import AssistModel
from datenlabor.web.app import create_app

PW = "marketplace-test-pw-1"


@pytest.fixture
def env(pool: Any) -> Any:
    app = create_app(pool)
    gate = app.state.gate
    gate.accounts.add_org("stadt", "Stadt Musterstadt")
    gate.accounts.add_org("land", "Landesamt")
    people = {}
    for name, org, role in [("stew", "stadt", "steward"), ("nachbar", "land", "analyst"),
                            ("gast", "land", "viewer"), ("admin", "stadt", "admin")]:  # fmt: skip
        gate.accounts.add_user(name, org=org, role=role, password=PW)
        people[name] = gate.accounts.authenticate(name, PW)
    with pool.store.session() as s, s.begin():
        s.add(AssistModel(name="triage", version=1, kind="sklearn", dataset="anfragen",
                          dataset_version=3, params={}, metrics={"holdout": {"accuracy": 0.9}},
                          active=True, created_by="t"))  # fmt: skip
    client = TestClient(app)
    yield gate, people, client
    client.close()


def _usecase(**kw: Any) -> dict[str, Any]:
    return {"title": "Chatbot Bürgerservice", "problem": "Viele gleiche Fragen am Telefon.",
            "authority": "Stadt Musterstadt", "status": "idea", "level": "municipal",
            "policy_area": "administration", "technique": "llm", **kw}  # fmt: skip


def test_profiles_search_filters_and_live_metrics(env: Any) -> None:
    gate, who, _client = env
    store = gate.pool.store
    reg = register.create(store, who["stew"], {"name": "Zuordnung von Anfragen",
                          "short_description": "Schlägt die Stelle vor.", "status": "in_use",
                          "theme": "social"}, model_name="triage", public=True)  # fmt: skip
    assessment.assess(gate, who["stew"], reg.slug, {
        "decision_effect": "prepares", "affected_rights": "moderate", "reversibility": "reversible",
        "personal_data": "personal", "opacity": "interpretable", "scale": "many"})  # fmt: skip
    own = marketplace.from_register(store, who["stew"], reg.slug, level="municipal")
    marketplace.create(store, who["stew"], _usecase())
    marketplace.create(store, who["stew"], _usecase(title="Prognose Wohngeldanträge",
                       status="pilot", level="land", technique="forecasting",
                       policy_area="housing"))  # fmt: skip
    prof = marketplace.profile(store, ANONYMOUS, own.slug)
    assert prof["status"] == "in_use" and prof["register_entry"] == reg.slug
    assert prof["live"]["model_version"] == "triage@1" and prof["risk_class"] == "minimal"
    assert prof["live"]["level"] == 2  # 8 of 26 points: up to 50 %
    titles = lambda rows: sorted(r["title"] for r in rows)  # noqa: E731
    assert titles(marketplace.search(store, ANONYMOUS, "chatbot")) == ["Chatbot Bürgerservice"]
    assert titles(marketplace.search(store, ANONYMOUS, level="land")) == ["Prognose Wohngeldanträge"]
    assert titles(marketplace.search(store, ANONYMOUS, status="in_use")) == ["Zuordnung von Anfragen"]
    assert titles(marketplace.search(store, ANONYMOUS, risk_class="minimal")) == [
        "Zuordnung von Anfragen"]  # fmt: skip
    assert marketplace.search(store, ANONYMOUS, "chatbot", technique="forecasting") == []
    with pytest.raises(BadInput):
        marketplace.search(store, ANONYMOUS, colour="red")
    with pytest.raises(BadInput) as err:
        marketplace.create(store, who["stew"], _usecase(level="galaxy"))
    assert err.value.column == "level"


def test_interest_comments_and_who_sees_them(env: Any) -> None:
    gate, who, _client = env
    store = gate.pool.store
    uc = marketplace.create(store, who["stew"], _usecase())
    with pytest.raises(Forbidden):
        marketplace.create(store, who["nachbar"], _usecase(title="x"))  # analysts do not publish
    marketplace.react(store, who["nachbar"], uc.slug, "reuse")
    with pytest.raises(Conflict):
        marketplace.react(store, who["nachbar"], uc.slug, "reuse")  # once per authority
    marketplace.react(store, who["gast"], uc.slug, "comment", "Bitte auch in leichter Sprache.")
    with pytest.raises(BadInput):
        marketplace.react(store, who["gast"], uc.slug, "comment", "  ")
    with pytest.raises(Exception):  # anonymous callers must sign in  # noqa: B017
        marketplace.react(store, ANONYMOUS, uc.slug, "comment", "anonym")
    owners = marketplace.reactions(store, who["stew"], uc.slug)
    assert [i["organisation"] for i in owners["interests"]] == ["Landesamt"]
    assert owners["comments"][0]["text"] == "Bitte auch in leichter Sprache."
    public = marketplace.reactions(store, ANONYMOUS, uc.slug)
    assert public["interests"] == [] and public["interest_counts"] == {"reuse": 1, "cooperation": 0}
    assert len(public["comments"]) == 1
    other = Principal("x", "analyst", organisation_id=None)
    with pytest.raises(BadInput):
        marketplace.react(store, other, uc.slug, "cooperation")


def test_public_value_and_import_export(env: Any) -> None:
    gate, who, _client = env
    store = gate.pool.store
    assert marketplace.public_value({}) is None
    assert marketplace.public_value({"value_citizens": 3, "value_affected_reach": 3,
                                     "value_data_availability": 2, "value_risks": 1}) == {
        "value": 0.833, "advice": "pursue"}  # fmt: skip
    assert marketplace.public_value({"value_citizens": 0, "value_affected_reach": 1,
                                     "value_data_availability": 1, "value_risks": 3})["advice"] == "defer"  # fmt: skip
    rows = [_usecase(), _usecase(title="Bilderkennung Sperrmüll", technique="computer_vision",
                                 value_citizens="2", value_affected_reach="1",
                                 value_data_availability="3", value_risks="1")]  # fmt: skip
    done = marketplace.import_(store, who["stew"], json.dumps(rows), "json", name="in.json")
    assert sorted(done["created"]) == ["bilderkennung-sperrmuell", "chatbot-buergerservice"]
    csv_text = marketplace.export(store, who["stew"], "csv")
    assert csv_text.splitlines()[0].startswith("slug,organisation,public,title")
    # Round trip: importing the export changes nothing; a bad row imports nothing at all.
    again = marketplace.import_(store, who["stew"], csv_text, "csv", name="out.csv")
    assert again == {"created": [], "updated": []}
    broken = csv_text.replace("municipal", "kosmisch", 1) + "neu,stadt,true,Neu,P,A,idea,land" + "\r\n"
    with pytest.raises(BadInput) as err:
        marketplace.import_(store, who["stew"], broken, "csv", name="bad.csv")
    assert err.value.line == 2 and err.value.column == "level" and err.value.file == "bad.csv"
    assert len(marketplace.search(store, ANONYMOUS)) == 2
    prof = marketplace.profile(store, ANONYMOUS, "bilderkennung-sperrmuell")
    assert prof["public_value"] == {"value": 0.667, "advice": "pursue"}  # (2+1+3+(3-1))/12
    with pytest.raises(BadInput) as err:
        marketplace.import_(store, who["stew"], "[{\"title\": 1", "json", name="x.json")
    assert err.value.file == "x.json"


def test_api_permissions(env: Any) -> None:
    gate, _who, client = env
    tokens = {n: gate.accounts.create_token(n, scope="write") for n in ("stew", "nachbar")}
    read = gate.accounts.create_token("stew", scope="read")
    h = lambda n: {"Authorization": f"Bearer {tokens[n]}"}  # noqa: E731
    body = {"values": {"name": "Vorprüfung", "short_description": "Prüft vor.",
                       "status": "development"}, "public": True}  # fmt: skip
    assert client.post("/api/v1/governance/register", json=body).status_code == 401
    assert client.post("/api/v1/governance/register", json=body,
                       headers={"Authorization": f"Bearer {read}"}).status_code == 403  # fmt: skip
    assert client.post("/api/v1/governance/register", json=body, headers=h("nachbar")).status_code == 403
    r = client.post("/api/v1/governance/register", json=body, headers=h("stew"))
    assert r.status_code == 201, r.text
    slug = r.json()["slug"]
    assert client.get(f"/api/v1/governance/register/{slug}").json()["name"] == "Vorprüfung"
    r = client.patch(f"/api/v1/governance/register/{slug}", json={"values": {"category": "Q"}},
                     headers=h("stew"))  # fmt: skip
    assert r.status_code == 400 and "category" in r.text
    r = client.patch(f"/api/v1/governance/register/{slug}", json={"values": {"category": "C"}},
                     headers=h("stew"))  # fmt: skip
    assert r.status_code == 200 and r.json()["register_version"] == 2
    diff = client.get(f"/api/v1/governance/register/{slug}/diff?a=1&b=2").json()
    assert diff == [{"field": "category", "before": None, "after": "C"}]
    assert "slug,register_version" in client.get("/api/v1/governance/register?format=csv").text
    r = client.post(f"/api/v1/governance/register/{slug}/assessments", headers=h("stew"), json={
        "answers": {"decision_effect": "decides", "affected_rights": "high",
                    "reversibility": "irreversible", "personal_data": "special",
                    "opacity": "opaque", "scale": "mass", "annex_iii": ["5a"]}})  # fmt: skip
    assert r.status_code == 201 and r.json()["level"] == 4 and r.json()["risk_class"] == "high"
    uc = client.post("/api/v1/governance/usecases", headers=h("stew"), json={"values": _usecase()})
    assert uc.status_code == 201, uc.text
    r = client.post(f"/api/v1/governance/usecases/{uc.json()['slug']}/reactions",
                    headers=h("nachbar"), json={"kind": "cooperation"})  # fmt: skip
    assert r.status_code == 201
    listed = client.get("/api/v1/governance/usecases?status=idea").json()
    assert [u["title"] for u in listed] == ["Chatbot Bürgerservice"]


def test_pages_public_and_forms(env: Any) -> None:
    """The HTML pages: public without login, forms for signed-in users with the CSRF token."""
    gate, who, client = env
    store = gate.pool.store
    reg = register.create(store, who["stew"], {"name": "Zuordnung", "short_description":
                          "Schlägt die Stelle vor.", "status": "in_use"}, model_name="triage",
                          public=True)  # fmt: skip
    hidden = register.create(store, who["stew"], {"name": "Intern", "short_description": "x",
                             "status": "development"})  # fmt: skip
    uc = marketplace.create(store, who["stew"], _usecase())
    page = client.get("/governance")
    assert page.status_code == 200 and "Zuordnung" in page.text and "Intern" not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get(f"/governance/register/{hidden.slug}").status_code == 404
    entry = client.get(f"/governance/register/{reg.slug}")
    assert "triage@1" in entry.text and "Bearbeiten" not in entry.text  # anonymous: no form
    assert client.get(f"/governance/register/{reg.slug}/history").status_code == 200
    assert "Chatbot" in client.get("/governance/marktplatz?level=municipal").text
    assert "Chatbot" not in client.get("/governance/marktplatz?level=federal").text
    assert client.get(f"/governance/marktplatz/{uc.slug}").status_code == 200
    login = client.get("/login")
    token = login.cookies.get("dl_login") or client.cookies.get("dl_login")
    r = client.post("/login", data={"username": "stew", "password": PW, "login_token": token,
                                    "next": "/"}, follow_redirects=False)  # fmt: skip
    assert r.status_code in (302, 303)
    entry = client.get(f"/governance/register/{reg.slug}?lang=en")
    assert "Edit" in entry.text
    csrf = entry.text.split('name="csrf-token" content="')[1].split('"')[0]
    r = client.post(f"/governance/register/{reg.slug}/edit", data={"csrf_token": csrf,
                    "name": "Zuordnung", "short_description": "Schlägt die Stelle vor.",
                    "status": "in_use", "contact": "ki@stadt.de", "public": "1"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    assert register.entry_dict(entries_get(store, reg.slug))["contact"] == "ki@stadt.de"
    r = client.post(f"/governance/marktplatz/{uc.slug}/reaktion",
                    data={"csrf_token": csrf, "kind": "comment", "text": "Gute Idee"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    assert "Gute Idee" in client.get(f"/governance/marktplatz/{uc.slug}").text
    r = client.post(f"/governance/register/{reg.slug}/assess", data={
        "csrf_token": csrf, "decision_effect": "prepares", "affected_rights": "little",
        "reversibility": "reversible", "personal_data": "personal", "opacity": "interpretable",
        "scale": "few", "annex_iii": ["5a"], "human_review": "1"}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    assert "high risk" in client.get(f"/governance/register/{reg.slug}").text  # lang cookie: en


def entries_get(store: Any, slug: str) -> Any:
    from datenlabor.governance import entries

    return entries.get(store, Principal("root", "admin"), slug, "register")
