"""The authorisation matrix: every route x every role x dataset visibility x grant.

A small world is built once per module: a publishing organisation ``pub`` and another
authority ``oth`` that holds the grants, one dataset per (visibility, grant) case, a
knowledge base with a restricted document, a dashboard with tiles on restricted data,
governance entries, an assist inbox. Every secret is a marker string (``GEHEIM_…``)
placed in the metadata, the rows outside a grant's row filter, the hidden column, the
microdata of a confidential dataset and the restricted document. Who may see which marker
is derived from a declarative policy table (``CASES`` x ``ROLES``, :func:`secrets_for`),
written from docs/service.md and docs/confidential.md independently of the policy code.

Then every route the application has (enumerated from ``app.routes``, so a new route
without an entry in ``PROBES`` fails :func:`test_every_route_is_in_the_matrix`) is called
with every role on every case, and

* no marker the caller may not see appears in any answer (JSON, HTML, CSV, XLSX, Parquet,
  PDF, Turtle, headers),
* a dataset the caller may not see answers exactly like one that does not exist (same
  status, same body once the name is swapped),
* counts (row totals, facet counts, search totals, ``count(*)``) count only what the
  caller sees,
* and, as positive controls, callers who may see a marker do see it on the rows API, so
  the probes are not vacuous.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient

PW = "matrix-passwort-123"
TOTAL_ROWS, VISIBLE_ROWS = 5, 2  # rows of each case dataset; rows inside the row grant
MISSING = "fehlt-ganz"  # a dataset that never existed (same length class as the others)


def marker(kind: str, name: str) -> str:
    return f"GEHEIM_{kind}_{name}_X"


# -- the policy, declared ---------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    visibility: str  # public | internal | restricted
    grant: str | None = None  # grant to organisation oth: full | hide | rows | micro
    confidential: bool = False  # disclosure-control rules: others see the protected table


CASES: dict[str, Case] = {
    "offen": Case("public"),
    "intern": Case("internal"),
    "gesperrt": Case("restricted"),  # no grant
    "voll": Case("restricted", "full"),
    "spalten": Case("restricted", "hide"),  # column person hidden
    "zeilen": Case("restricted", "rows"),  # rows with ags LIKE '05%' only
    "vertraulich": Case("internal", confidential=True),  # protected table for others
    "vertr-offen": Case("public", confidential=True),
    "mikro": Case("restricted", "micro", confidential=True),  # microdata grant to oth
}


@dataclass(frozen=True)
class Role:
    org: str | None  # None: anonymous
    role: str | None


ROLES: dict[str, Role] = {
    "anonymous": Role(None, None),
    "viewer": Role("oth", "viewer"),
    "analyst": Role("oth", "analyst"),
    "steward-pub": Role("pub", "steward"),
    "steward-oth": Role("oth", "steward"),
    "admin": Role("adm", "admin"),
}
META, ROW, COL = "META", "ROW", "COL"


def secrets_for(role: str, case: str) -> set[str]:
    """Which markers of ``case`` the caller ``role`` must never receive.

    META: the dataset's existence (title, description); ROW: rows outside the row filter;
    COL: the person column (hidden by a grant, or microdata of a confidential dataset).
    """
    r, c = ROLES[role], CASES[case]
    if r.role == "admin" or (r.org == "pub" and r.role in ("steward", "analyst")):
        return set()
    signed_in = r.role is not None
    granted = c.grant is not None and r.org == "oth"
    if c.confidential:
        if c.grant == "micro" and granted:
            return set()
        seen = c.visibility == "public" or (c.visibility == "internal" and signed_in) or granted
        return {ROW, COL} if seen else {META, ROW, COL}
    if c.visibility == "public" or (c.visibility == "internal" and signed_in):
        return set()
    if not granted:
        return {META, ROW, COL}
    return {"full": set(), "hide": {COL}, "rows": {ROW}}[c.grant or "full"]


def visible_cases(role: str) -> list[str]:
    return [c for c in CASES if META not in secrets_for(role, c)]


# Knowledge base: a restricted partition of pub (no grants) and a public one.
KB = "default"
KB_SECRET = "GEHEIMWEISUNG4711"  # no underscores: Markdown would read them as emphasis
# Governance: an entry that is not public (signed-in callers only).
GOV_SECRET = marker("GOV", "intern")
DASHBOARD = "matrix-board"


def kb_secret_for(role: str) -> bool:
    r = ROLES[role]
    return not (r.role == "admin" or (r.org == "pub" and r.role in ("steward", "analyst")))


# -- the world ----------------------------------------------------------------------------
@dataclass
class World:
    client: TestClient
    app: Any
    tokens: dict[str, str]
    ids: dict[str, Any] = field(default_factory=dict)  # grant ids, request ids, …

    def headers(self, role: str) -> dict[str, str]:
        token = self.tokens.get(role)
        return {"Authorization": f"Bearer {token}"} if token else {}


def _case_csv(path: Path, name: str) -> Path:
    lines = ["ags;ort;wert;person"]
    lines.append(f"05111000;Düsseldorf;12;{marker(COL, name)}1")
    lines.append(f"05315000;Köln;7;{marker(COL, name)}2")
    for i, ags in enumerate(("09162000", "09564000", "08111000")):
        lines.append(f"{ags};{marker(ROW, name)}{i};{3 + i};{marker(COL, name)}{3 + i}")
    assert len(lines) - 1 == TOTAL_ROWS
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _microdata_csv(path: Path, name: str) -> Path:
    """Benefit cases: Kreis, Monat, Leistung, Betrag and the person (the microdata marker)."""
    import random

    rng = random.Random(5)
    lines = ["Kreis;Monat;Leistung;Betrag;Person"]
    for i in range(60):
        kreis = rng.choice(["05111", "05315", "09162"])
        lines.append(
            f"{kreis};2024-{rng.randint(1, 3):02d};{rng.choice(['Wohngeld', 'BAföG'])};"
            f"{rng.randint(100, 900)},50;{marker(COL, name)}{i}"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# A time hierarchy would make the protected table take seconds to compute; Kreis x Leistung
# is enough to have suppressed cells.
RULES = {"dims": [{"name": "Kreis", "hierarchy": "ags"}, "Leistung"], "measures": ["Betrag"]}


def build_world(tmp: Path) -> World:
    """The world both the matrix and the schemathesis run use (SQLite store)."""
    import datenlabor
    from datenlabor.access.principal import local_admin
    from datenlabor.assist import inbox
    from datenlabor.assist import kb as kbmod
    from datenlabor.dashboards import versions
    from datenlabor.governance import marketplace, register
    from datenlabor.pool.catalog import DatasetMeta
    from datenlabor.service.confidential import set_rules
    from datenlabor.service.grants import add_grant
    from datenlabor.web.app import create_app

    pool = datenlabor.open(tmp / "pool", user="setup", sql_timeout_s=5)
    app = create_app(pool)
    gate = app.state.gate
    acc = gate.accounts
    for org, name in [("pub", "Publizierendes Amt"), ("oth", "Andere Behörde"), ("adm", "IT")]:
        acc.add_org(org, name)
    tokens: dict[str, str] = {}
    for role, r in ROLES.items():
        if r.role is None:
            continue
        acc.add_user(role, org=r.org, role=r.role, password=PW)
        tokens[role] = acc.create_token(role, scope="write")
    setup = local_admin("setup")
    ids: dict[str, Any] = {"grants": {}}
    for name, case in CASES.items():
        src = (_microdata_csv if case.confidential else _case_csv)(tmp / f"{name}.csv", name)
        meta = DatasetMeta(
            title=f"Fälle {name} {marker(META, name)}",
            description=f"Beschreibung {marker(META, name)}",
            publisher="pub",
            visibility=case.visibility,
            keywords=["Matrix", marker(META, name)],
            licence="dl-de/by-2-0",
            themes=["SOCI"],
        )
        pool.ingest(src, dataset=name, meta=meta)
        if case.confidential:
            set_rules(gate, setup, name, RULES)
        kwargs: dict[str, Any] = {  # type: ignore[assignment]
            "full": {},
            "hide": {"hide_columns": ["person"]},
            "rows": {"rows": "ags LIKE '05%'"},
            "micro": {"microdata": True},
        }.get(case.grant or "", {})
        if case.grant is not None:
            ids["grants"][name] = add_grant(gate, setup, name, org="oth", **kwargs).id
    # knowledge base: the restricted document of pub and a public one on the same topic
    kbmod.add_documents(
        gate,
        setup,
        [
            (
                "dienstanweisung.md",
                (
                    "# Dienstanweisung Wohngeld\n\nDie Frist für den Wohngeldantrag beträgt intern "
                    f"sechs Wochen. Vertrauliche Weisung: {KB_SECRET} gilt für alle Anträge.\n"
                ).encode(),
            )
        ],
        kb=KB,
        visibility="restricted",
        org="pub",
    )
    kbmod.add_documents(
        gate,
        setup,
        [
            (
                "merkblatt.md",
                (
                    "# Merkblatt Wohngeld\n\nDen Wohngeldantrag stellen Sie bei der Wohngeldbehörde. "
                    "Die Frist für den Antrag beginnt mit dem Monat der Antragstellung.\n"
                ).encode(),
            )
        ],
        kb=KB,
        visibility="public",
        org="pub",
    )
    # assist inbox of oth, with one request; an admin-made answer draft is seen by oth
    added = inbox.add(
        gate,
        setup,
        [
            inbox.from_record(
                {
                    "text": "Wie lange ist die Frist für den Wohngeldantrag?",
                    "subject": "Frist Wohngeld",
                },
                channel="api",
                source="api",
                line=1,
            )
        ],
        org="oth",
        triage=False,
    )
    ids["request"] = added.ids[0]
    # an admin drafts the answer: it may cite the restricted document, but oth's caseworkers
    # read the request and its suggestions afterwards
    from datenlabor.web.assist_routes import make_answer

    make_answer(gate, setup, ids["request"])
    # dashboards: tiles on every case (dataset and SQL sources)
    sources = {f"s{i}": {"dataset": name} for i, name in enumerate(CASES)} | {
        "q": {"sql": "SELECT ort, sum(wert) AS wert FROM zeilen GROUP BY ort"}
    }
    tiles = [{"id": f"t{i}", "type": "table", "source": f"s{i}"} for i, _ in enumerate(CASES)] + [
        {"id": "tq", "type": "table", "source": "q"}
    ]
    spec = {"title": "Matrix", "visibility": "public", "sources": sources, "tiles": tiles}
    versions.put(pool, setup, DASHBOARD, json.dumps(spec))
    ids["tiles"] = [t["id"] for t in tiles]
    # governance: a register entry that is not public, and a public use case
    entry = register.create(
        pool.store,
        setup,
        {
            "name": "Vorprüfung intern",
            "short_description": f"Interner Eintrag {GOV_SECRET}",
            "status": "development",
            "contact": "ki@pub.example",
        },
        organisation="pub",
    )
    ids["register"] = entry.slug
    usecase = marketplace.create(
        pool.store,
        setup,
        {
            "title": "Offener Anwendungsfall",
            "problem": "Lange Bearbeitungszeiten.",
            "authority": "Publizierendes Amt",
            "status": "idea",
            "level": "federal",
        },
        organisation="pub",
    )
    ids["usecase"] = usecase.slug
    client = TestClient(app, raise_server_exceptions=False)
    return World(client, app, tokens, ids)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = build_world(tmp_path_factory.mktemp("authz"))
    yield w
    w.client.close()
    w.app.state.pool.store.dispose()


# -- reading every kind of answer as text ---------------------------------------------------
def text_of(resp: Any) -> str:
    """Everything a caller receives, decoded: headers and the body in its format."""
    head = " ".join(f"{k}: {v}" for k, v in resp.headers.items())
    ctype = resp.headers.get("content-type", "")
    body = resp.content
    if body[:2] == b"PK":  # XLSX (a zip of XML parts)
        import openpyxl

        book = openpyxl.load_workbook(io.BytesIO(body), read_only=True)
        cells = [
            str(c) for ws in book.worksheets for row in ws.iter_rows(values_only=True) for c in row
        ]
        return head + "\n" + "\n".join(cells)
    if body[:4] == b"PAR1":
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(body))
        return head + "\n" + str(table.schema) + "\n" + json.dumps(table.to_pylist(), default=str)
    if body[:5] == b"%PDF-":
        from pypdf import PdfReader

        reader = PdfReader(io.BytesIO(body))
        return head + "\n" + "\n".join(page.extract_text() or "" for page in reader.pages)
    if "json" in ctype:  # also what JSON escapes (umlauts, slashes)
        try:
            return head + "\n" + json.dumps(resp.json(), ensure_ascii=False)
        except ValueError:
            pass
    return head + "\n" + body.decode("utf-8", "replace")


def forbidden_markers(role: str) -> list[str]:
    out = [marker(kind, case) for case in CASES for kind in sorted(secrets_for(role, case))]
    if kb_secret_for(role):
        out.append(KB_SECRET)
    if ROLES[role].role is None:
        out.append(GOV_SECRET)
    return out


# -- the probes: how each route is called -------------------------------------------------
Req = tuple[str, str, dict[str, Any]]  # method, url, keyword arguments of client.request


@dataclass(frozen=True)
class Probe:
    make: Callable[[World, str], list[Req]]  # (world, case or "") -> requests
    per_case: bool = True  # called for every case (dataset slug), else once per role
    write: bool = False  # changes things: only called by roles that must be refused
    creates: bool = False  # creates a dataset of that name when it is missing (see below)
    # ``per_case`` probes of a write route are skipped for roles that may write there


def _get(*urls: str) -> Callable[[World, str], list[Req]]:
    return lambda w, c: [("GET", u.format(c=c, **_fill(w, c)), {}) for u in urls]


def _req(method: str, url: str, **kw: Any) -> Callable[[World, str], list[Req]]:
    return lambda w, c: [(method, url.format(c=c, **_fill(w, c)), kw)]


def _fill(w: World, c: str) -> dict[str, Any]:
    return {
        "grant": w.ids["grants"].get(c, 999_999),
        "request": w.ids["request"],
        "register": w.ids["register"],
        "usecase": w.ids["usecase"],
        "kb": KB,
        "board": DASHBOARD,
    }


def _sql(body_of: Callable[[str], str]) -> Callable[[World, str], list[Req]]:
    return lambda w, c: [("POST", "/api/v1/sql", {"json": {"sql": body_of(c)}})]


def _csv_file(c: str) -> dict[str, Any]:
    return {"files": {"file": ("neu.csv", b"ags;ort;wert;person\n05111000;X;1;Y\n", "text/csv")}}


DOWNLOADS = [
    f"/api/v1/datasets/{{c}}/download?format={f}" for f in ("csv", "parquet", "xlsx", "json")
] + ["/api/v1/datasets/{c}/download?format=csv&dialect=intl&version=1"]
SQLS = [
    lambda c: f'SELECT * FROM "{c}"',
    lambda c: f'SELECT count(*) AS n FROM "{c}"',
    lambda c: f'SELECT * FROM (SELECT * FROM "{c}") t WHERE 1 = 1',
    lambda c: f'SELECT a.* FROM "{c}" a JOIN "{c}" b ON true',
    lambda c: f'SELECT * FROM "{c}@1"',
    lambda c: f'WITH x AS (SELECT * FROM "{c}") SELECT * FROM x',
]


def _sqls(w: World, c: str) -> list[Req]:
    return [("POST", "/api/v1/sql", {"json": {"sql": s(c)}}) for s in SQLS]


def _ckan(path: str) -> Callable[[World, str], list[Req]]:
    return lambda w, c: (
        [
            ("GET", f"{path}/package_show?id={c}", {}),
            ("GET", f"{path}/resource_show?id={c}", {}),
            ("GET", f"{path}/datastore_search?resource_id={c}&limit=100", {}),
            ("GET", f"{path}/datastore_search?resource_id={c}&q=GEHEIM", {}),
            ("GET", f"{path}/datastore_search_sql?sql=" + f'SELECT * FROM "{c}"', {}),
            ("GET", f'{path}/package_search?q={c}&facet.field=["organization"]&rows=100', {}),
        ]
        + (
            []
            if c not in ("", "offen")
            else [  # actions without a dataset: once per role
                ("GET", f"{path}/package_list", {}),
                ("GET", f"{path}/organization_show?id=pub&include_datasets=true", {}),
                ("GET", f"{path}/tag_list", {}),
                ("GET", f"{path}/group_list?all_fields=true", {}),
                ("GET", f"{path}/status_show", {}),
                ("POST", f"{path}/package_search", {"json": {"q": "GEHEIM", "rows": 100}}),
            ]
        )
    )


def _tiles(w: World, c: str) -> list[Req]:
    out: list[Req] = []
    for t in w.ids["tiles"]:
        out.append(("GET", f"/api/v1/dashboards/{DASHBOARD}/tiles/{t}", {}))
        out.append(("GET", f"/api/v1/dashboards/{DASHBOARD}/tiles/{t}/csv", {}))
    return out


GLOBAL = {"per_case": False}
ASK = {"question": "Welche Frist gilt für den Wohngeldantrag?", "llm": False, "k": 10}

PROBES: dict[str, Probe] = {
    # the JSON API over datasets
    "GET /api/v1/datasets": Probe(
        _get("/api/v1/datasets", "/api/v1/datasets?q=GEHEIM", "/api/v1/datasets?organisation=pub"),
        **GLOBAL,
    ),
    "POST /api/v1/datasets": Probe(
        lambda w, c: [
            ("POST", "/api/v1/datasets", {"data": {"dataset": c, "org": "pub"}, **_csv_file(c)})
        ],
        write=True,
    ),
    "POST /api/v1/datasets/{slug}/versions": Probe(
        lambda w, c: [("POST", f"/api/v1/datasets/{c}/versions", _csv_file(c))],
        write=True,
        creates=True,
    ),
    "GET /api/v1/datasets/{slug}": Probe(_get("/api/v1/datasets/{c}")),
    "PATCH /api/v1/datasets/{slug}": Probe(
        _req("PATCH", "/api/v1/datasets/{c}", json={"description": "geändert"}), write=True
    ),
    "DELETE /api/v1/datasets/{slug}": Probe(_req("DELETE", "/api/v1/datasets/{c}"), write=True),
    "GET /api/v1/datasets/{slug}/versions": Probe(_get("/api/v1/datasets/{c}/versions")),
    "GET /api/v1/datasets/{slug}/versions/{number}": Probe(
        _get("/api/v1/datasets/{c}/versions/1", "/api/v1/datasets/{c}/versions/7")
    ),
    "GET /api/v1/datasets/{slug}/schema": Probe(_get("/api/v1/datasets/{c}/schema?version=1")),
    "GET /api/v1/datasets/{slug}/quality": Probe(_get("/api/v1/datasets/{c}/quality")),
    "GET /api/v1/datasets/{slug}/diff": Probe(_get("/api/v1/datasets/{c}/diff?from=1&to=1")),
    "GET /api/v1/datasets/{slug}/rows": Probe(
        _get(
            "/api/v1/datasets/{c}/rows?limit=100",
            "/api/v1/datasets/{c}/rows?ort__contains=GEHEIM",
            "/api/v1/datasets/{c}/rows?person__contains=GEHEIM&columns=ags",
            "/api/v1/datasets/{c}/rows?sort=-person&columns=person",
            "/api/v1/datasets/{c}/rows?Person__contains=GEHEIM",
        )
    ),
    "GET /api/v1/datasets/{slug}/download": Probe(_get(*DOWNLOADS)),
    "GET /api/v1/datasets/{slug}/grants": Probe(_get("/api/v1/datasets/{c}/grants")),
    "POST /api/v1/datasets/{slug}/grants": Probe(
        _req("POST", "/api/v1/datasets/{c}/grants", json={"org": "oth"}), write=True
    ),
    "DELETE /api/v1/datasets/{slug}/grants/{grant_id}": Probe(
        _req("DELETE", "/api/v1/datasets/{c}/grants/{grant}"), write=True
    ),
    "POST /api/v1/sql": Probe(_sqls),
    "GET /api/v1/me": Probe(_get("/api/v1/me"), **GLOBAL),
    "GET /api/v1/orgs": Probe(_get("/api/v1/orgs"), **GLOBAL),
    "POST /api/v1/orgs": Probe(
        _req("POST", "/api/v1/orgs", json={"slug": "neu", "name": "N"}), write=True, **GLOBAL
    ),
    "GET /api/v1/users": Probe(_get("/api/v1/users"), **GLOBAL),
    "POST /api/v1/users": Probe(
        _req(
            "POST",
            "/api/v1/users",
            json={"username": "neu", "org": "pub", "role": "admin", "password": PW},
        ),
        write=True,
        **GLOBAL,
    ),
    "PATCH /api/v1/users/{username}": Probe(
        _req("PATCH", "/api/v1/users/steward-pub", json={"role": "viewer"}), write=True, **GLOBAL
    ),
    "GET /api/v1/tokens": Probe(_get("/api/v1/tokens"), **GLOBAL),
    "POST /api/v1/tokens": Probe(_req("POST", "/api/v1/tokens", json={"scope": "read"}), **GLOBAL),
    "DELETE /api/v1/tokens/{token_id}": Probe(
        _req("DELETE", "/api/v1/tokens/5"), write=True, **GLOBAL
    ),
    "GET /api/v1/audit": Probe(_get("/api/v1/audit?limit=1000"), **GLOBAL),
    "GET /api/v1/audit/export": Probe(
        _get("/api/v1/audit/export?format=csv", "/api/v1/audit/export?format=jsonl"), **GLOBAL
    ),
    # disclosure rules, metadata quality, DCAT, CKAN
    "GET /api/v1/datasets/{slug}/disclosure": Probe(_get("/api/v1/datasets/{c}/disclosure")),
    "PUT /api/v1/datasets/{slug}/disclosure": Probe(
        _req("PUT", "/api/v1/datasets/{c}/disclosure", json=RULES), write=True
    ),
    "DELETE /api/v1/datasets/{slug}/disclosure": Probe(
        _req("DELETE", "/api/v1/datasets/{c}/disclosure"), write=True
    ),
    "GET /api/v1/datasets/{slug}/metadata-quality": Probe(
        _get("/api/v1/datasets/{c}/metadata-quality")
    ),
    "GET /api/v1/metadata-quality": Probe(_get("/api/v1/metadata-quality"), **GLOBAL),
    "GET /catalog.{fmt}": Probe(_get("/catalog.ttl", "/catalog.jsonld", "/catalog.rdf"), **GLOBAL),
    "GET /datasets/{slug}.{fmt}": Probe(_get("/datasets/{c}.ttl", "/datasets/{c}.jsonld")),
    "GET /api/3/action/{action}": Probe(_ckan("/api/3/action")),
    "POST /api/3/action/{action}": Probe(_ckan("/api/3/action"), **GLOBAL),
    "GET /api/action/{action}": Probe(_ckan("/api/action")),
    "POST /api/action/{action}": Probe(_ckan("/api/action"), **GLOBAL),
    # assistance: inbox, review, answer drafts, knowledge base
    "POST /api/v1/assist/requests": Probe(
        _req(
            "POST",
            "/api/v1/assist/requests",
            json={"requests": [{"text": "Frist?"}], "org": "pub", "triage": False},
        ),
        write=True,
        **GLOBAL,
    ),
    "POST /api/v1/assist/requests/upload": Probe(
        _req(
            "POST",
            "/api/v1/assist/requests/upload",
            data={"org": "pub"},
            files={"file": ("a.csv", b"text\nFrist?\n", "text/csv")},
        ),
        write=True,
        **GLOBAL,
    ),
    "POST /api/v1/assist/triage": Probe(
        _req("POST", "/api/v1/assist/triage", json={"text": "Frist Wohngeld"}), **GLOBAL
    ),
    "GET /api/v1/assist/queue": Probe(_get("/api/v1/assist/queue?status=all"), **GLOBAL),
    "GET /api/v1/assist/requests/{request_id}": Probe(
        _get("/api/v1/assist/requests/{request}"), **GLOBAL
    ),
    "POST /api/v1/assist/requests/{request_id}/answer": Probe(
        _req("POST", "/api/v1/assist/requests/{request}/answer"), **GLOBAL
    ),
    "POST /api/v1/assist/suggestions/{suggestion_id}/decision": Probe(
        _req("POST", "/api/v1/assist/suggestions/999999/decision", json={"decision": "accepted"}),
        write=True,
        **GLOBAL,
    ),
    "GET /api/v1/assist/decisions": Probe(_get("/api/v1/assist/decisions"), **GLOBAL),
    "GET /api/v1/assist/models": Probe(_get("/api/v1/assist/models"), **GLOBAL),
    "GET /api/v1/assist/kb": Probe(_get("/api/v1/assist/kb"), **GLOBAL),
    "GET /api/v1/assist/kb/{kb}/documents": Probe(
        _get("/api/v1/assist/kb/{kb}/documents"), **GLOBAL
    ),
    "POST /api/v1/assist/kb/{kb}/documents": Probe(
        _req(
            "POST",
            "/api/v1/assist/kb/{kb}/documents",
            data={"visibility": "public", "org": "pub"},
            files={"file": ("x.md", b"# X\n\nText.\n", "text/markdown")},
        ),
        write=True,
        **GLOBAL,
    ),
    "POST /api/v1/assist/kb/{kb}/ask": Probe(
        _req("POST", "/api/v1/assist/kb/{kb}/ask", json=ASK), **GLOBAL
    ),
    # governance
    "GET /api/v1/governance/register": Probe(
        _get("/api/v1/governance/register", "/api/v1/governance/register?format=csv"), **GLOBAL
    ),
    "POST /api/v1/governance/register": Probe(
        _req(
            "POST",
            "/api/v1/governance/register",
            json={"values": {"name": "X"}, "organisation": "pub"},
        ),
        write=True,
        **GLOBAL,
    ),
    "POST /api/v1/governance/register/refresh": Probe(
        _req("POST", "/api/v1/governance/register/refresh"), write=True, **GLOBAL
    ),
    "GET /api/v1/governance/register/{slug}": Probe(
        _get("/api/v1/governance/register/{register}"), **GLOBAL
    ),
    "PATCH /api/v1/governance/register/{slug}": Probe(
        _req(
            "PATCH",
            "/api/v1/governance/register/{register}",
            json={"values": {"contact": "x@y.de"}},
        ),
        write=True,
        **GLOBAL,
    ),
    "GET /api/v1/governance/register/{slug}/history": Probe(
        _get("/api/v1/governance/register/{register}/history"), **GLOBAL
    ),
    "GET /api/v1/governance/register/{slug}/diff": Probe(
        _get("/api/v1/governance/register/{register}/diff?a=1&b=1"), **GLOBAL
    ),
    "GET /api/v1/governance/register/{slug}/annex-viii": Probe(
        _get("/api/v1/governance/register/{register}/annex-viii"), **GLOBAL
    ),
    "GET /api/v1/governance/questionnaire": Probe(
        _get("/api/v1/governance/questionnaire"), **GLOBAL
    ),
    "POST /api/v1/governance/register/{slug}/assessments": Probe(
        _req("POST", "/api/v1/governance/register/{register}/assessments", json={"answers": {}}),
        write=True,
        **GLOBAL,
    ),
    "GET /api/v1/governance/register/{slug}/assessments": Probe(
        _get("/api/v1/governance/register/{register}/assessments"), **GLOBAL
    ),
    "GET /api/v1/governance/activation/{model_name}": Probe(
        _get("/api/v1/governance/activation/triage"), **GLOBAL
    ),
    "POST /api/v1/governance/register/{slug}/audits": Probe(
        lambda w, c: [
            (
                "POST",
                f"/api/v1/governance/register/{w.ids['register']}/audits",
                {"json": {"dataset": c, "prediction": "ort", "groups": ["ags"]}},
            )
        ],
        write=True,
    ),
    "GET /api/v1/governance/register/{slug}/audits": Probe(
        _get("/api/v1/governance/register/{register}/audits"), **GLOBAL
    ),
    "GET /api/v1/governance/audits/{audit_id}": Probe(
        _get("/api/v1/governance/audits/1"), **GLOBAL
    ),
    "GET /api/v1/governance/audits/{audit_id}/report.pdf": Probe(
        _get("/api/v1/governance/audits/1/report.pdf"), **GLOBAL
    ),
    "GET /api/v1/governance/usecases": Probe(
        _get("/api/v1/governance/usecases?q=GEHEIM", "/api/v1/governance/usecases"), **GLOBAL
    ),
    "POST /api/v1/governance/usecases": Probe(
        _req(
            "POST",
            "/api/v1/governance/usecases",
            json={"values": {"title": "X"}, "organisation": "pub"},
        ),
        write=True,
        **GLOBAL,
    ),
    "POST /api/v1/governance/usecases/import": Probe(
        _req(
            "POST",
            "/api/v1/governance/usecases/import?format=json",
            content=b"[]",
            headers={"content-type": "application/json"},
        ),
        write=True,
        **GLOBAL,
    ),
    "POST /api/v1/governance/usecases/from-register/{register_slug}": Probe(
        _req(
            "POST",
            "/api/v1/governance/usecases/from-register/{register}",
            json={"level": "federal"},
        ),
        write=True,
        **GLOBAL,
    ),
    "GET /api/v1/governance/usecases/{slug}": Probe(
        _get("/api/v1/governance/usecases/{usecase}"), **GLOBAL
    ),
    "PATCH /api/v1/governance/usecases/{slug}": Probe(
        _req("PATCH", "/api/v1/governance/usecases/{usecase}", json={"values": {"title": "Y"}}),
        write=True,
        **GLOBAL,
    ),
    "POST /api/v1/governance/usecases/{slug}/reactions": Probe(
        _req("POST", "/api/v1/governance/usecases/{usecase}/reactions", json={"kind": "bogus"}),
        write=True,
        **GLOBAL,
    ),
    # dashboards
    "GET /api/v1/dashboards": Probe(_get("/api/v1/dashboards"), **GLOBAL),
    "GET /api/v1/dashboards/{slug}": Probe(_get("/api/v1/dashboards/{board}"), **GLOBAL),
    "PUT /api/v1/dashboards/{slug}": Probe(
        _req(
            "PUT",
            "/api/v1/dashboards/{board}",
            content=b"title: X\n",
            headers={"content-type": "application/yaml"},
        ),
        write=True,
        **GLOBAL,
    ),
    "GET /api/v1/dashboards/{slug}/tiles/{tile}": Probe(_tiles, **GLOBAL),
    "GET /api/v1/dashboards/{slug}/tiles/{tile}/csv": Probe(_tiles, **GLOBAL),
    "GET /api/v1/dashboards/{slug}/cases": Probe(
        _get("/api/v1/dashboards/{board}/cases?tile=t5"), **GLOBAL
    ),
    # the web UI (bearer tokens work there too; forms without the CSRF of a session)
    "GET /": Probe(_get("/", "/?q=GEHEIM", "/?visibility=restricted"), **GLOBAL),
    "GET /login": Probe(_get("/login"), **GLOBAL),
    "POST /login": Probe(
        _req("POST", "/login", data={"username": "steward-pub", "password": "falsch-falsch-1"}),
        **GLOBAL,
    ),
    "POST /logout": Probe(_req("POST", "/logout"), write=True, **GLOBAL),
    "GET /datasets/{slug}": Probe(_get("/datasets/{c}", "/datasets/{c}?person__contains=G")),
    "GET /datasets/{slug}/diff": Probe(_get("/datasets/{c}/diff?from=1&to=1")),
    "POST /datasets/{slug}/metadata": Probe(
        _req("POST", "/datasets/{c}/metadata", data={"title": "neu"}), write=True
    ),
    "POST /datasets/{slug}/grants": Probe(
        _req("POST", "/datasets/{c}/grants", data={"target": "org", "org": "oth"}), write=True
    ),
    "POST /datasets/{slug}/grants/{grant_id}/revoke": Probe(
        _req("POST", "/datasets/{c}/grants/{grant}/revoke"), write=True
    ),
    "POST /datasets/{slug}/delete": Probe(
        lambda w, c: [("POST", f"/datasets/{c}/delete", {"data": {"confirm": c}})], write=True
    ),
    "GET /sql": Probe(_get("/sql"), **GLOBAL),
    "POST /sql": Probe(
        lambda w, c: [("POST", "/sql", {"data": {"sql": s(c)}}) for s in (SQLS[0], SQLS[3])]
    ),
    "GET /upload": Probe(_get("/upload"), **GLOBAL),
    "POST /upload": Probe(
        lambda w, c: [("POST", "/upload", {"data": {"dataset": c, "org": "pub"}, **_csv_file(c)})],
        write=True,
    ),
    "GET /admin": Probe(_get("/admin"), **GLOBAL),
    "POST /admin/orgs": Probe(
        _req("POST", "/admin/orgs", data={"slug": "x", "name": "X"}), write=True, **GLOBAL
    ),
    "POST /admin/users": Probe(
        _req(
            "POST",
            "/admin/users",
            data={"username": "x", "org": "pub", "role": "admin", "password": PW},
        ),
        write=True,
        **GLOBAL,
    ),
    "POST /admin/users/{username}": Probe(
        _req("POST", "/admin/users/steward-pub", data={"role": "viewer"}), write=True, **GLOBAL
    ),
    "POST /admin/tokens": Probe(_req("POST", "/admin/tokens", data={"scope": "read"}), **GLOBAL),
    "POST /admin/tokens/{token_id}/revoke": Probe(
        _req("POST", "/admin/tokens/5/revoke"), write=True, **GLOBAL
    ),
    "GET /audit": Probe(_get("/audit"), **GLOBAL),
    "GET /assist": Probe(_get("/assist"), **GLOBAL),
    "GET /assist/requests/{request_id}": Probe(_get("/assist/requests/{request}"), **GLOBAL),
    "POST /assist/suggestions/{suggestion_id}/decision": Probe(
        _req("POST", "/assist/suggestions/999999/decision", data={"decision": "accepted"}),
        write=True,
        **GLOBAL,
    ),
    "POST /assist/requests/{request_id}/answer": Probe(
        _req("POST", "/assist/requests/{request}/answer"), **GLOBAL
    ),
    "GET /assist/kb": Probe(_get("/assist/kb"), **GLOBAL),
    "POST /assist/kb": Probe(
        _req("POST", "/assist/kb", data={"kb": KB, "question": ASK["question"]}), **GLOBAL
    ),
    "GET /governance": Probe(_get("/governance"), **GLOBAL),
    "GET /governance/static/fairness.js": Probe(_get("/governance/static/fairness.js"), **GLOBAL),
    "GET /governance/register/{slug}": Probe(_get("/governance/register/{register}"), **GLOBAL),
    "POST /governance/register/{slug}/edit": Probe(
        _req("POST", "/governance/register/{register}/edit", data={"contact": "x@y.de"}),
        write=True,
        **GLOBAL,
    ),
    "GET /governance/register/{slug}/history": Probe(
        _get("/governance/register/{register}/history"), **GLOBAL
    ),
    "GET /governance/register/{slug}/assess": Probe(
        _get("/governance/register/{register}/assess"), **GLOBAL
    ),
    "POST /governance/register/{slug}/assess": Probe(
        _req("POST", "/governance/register/{register}/assess", data={}), write=True, **GLOBAL
    ),
    "GET /governance/audits/{audit_id}": Probe(_get("/governance/audits/1"), **GLOBAL),
    "GET /governance/marktplatz": Probe(_get("/governance/marktplatz?q=GEHEIM"), **GLOBAL),
    "GET /governance/marktplatz/neu": Probe(_get("/governance/marktplatz/neu"), **GLOBAL),
    "POST /governance/marktplatz/neu": Probe(
        _req("POST", "/governance/marktplatz/neu", data={"title": "X"}), write=True, **GLOBAL
    ),
    "GET /governance/marktplatz/{slug}": Probe(_get("/governance/marktplatz/{usecase}"), **GLOBAL),
    "POST /governance/marktplatz/{slug}/reaktion": Probe(
        _req("POST", "/governance/marktplatz/{usecase}/reaktion", data={"kind": "bogus"}),
        write=True,
        **GLOBAL,
    ),
    "GET /dashboards": Probe(_get("/dashboards"), **GLOBAL),
    "GET /dashboards/{slug}": Probe(_get("/dashboards/{board}"), **GLOBAL),
    "GET /dashboards/{slug}/cases": Probe(_get("/dashboards/{board}/cases?tile=t5"), **GLOBAL),
    "GET /dashboards/{slug}/export.pdf": Probe(_get("/dashboards/{board}/export.pdf"), **GLOBAL),
    # infrastructure: no data, still walked (a leak would show)
    "GET /openapi.json": Probe(_get("/openapi.json"), **GLOBAL),
    "HEAD /openapi.json": Probe(_req("HEAD", "/openapi.json"), **GLOBAL),
    "GET /docs": Probe(_get("/docs"), **GLOBAL),
    "GET /healthz": Probe(_get("/healthz"), **GLOBAL),
    "GET /static/plotly/plotly.min.js": Probe(_get("/static/plotly/plotly.min.js"), **GLOBAL),
    "MOUNT /static/ui": Probe(_get("/static/ui/app.css"), **GLOBAL),
    "MOUNT /static/swagger": Probe(_get("/static/swagger/swagger-ui.css"), **GLOBAL),
}


# -- the tests ------------------------------------------------------------------------------
def route_keys(app: Any) -> set[str]:
    """Every route of the application as ``METHOD path`` (mounts as ``MOUNT path``)."""
    from fastapi.routing import iter_route_contexts

    keys = set()
    for rc in iter_route_contexts(app.routes):
        if rc.methods:
            keys |= {f"{m} {rc.path}" for m in rc.methods}
        else:
            keys.add(f"MOUNT {rc.path}")
    return keys


def test_every_route_is_in_the_matrix(world: World) -> None:
    routes = route_keys(world.app)
    missing = sorted(routes - set(PROBES))
    stale = sorted(set(PROBES) - routes)
    assert not missing, f"routes without an authorisation probe (add them to PROBES): {missing}"
    assert not stale, f"probes for routes that no longer exist: {stale}"


def call(w: World, role: str, method: str, url: str, kw: dict[str, Any]) -> Any:
    headers = {**w.headers(role), **kw.get("headers", {})}
    return w.client.request(method, url, **{**kw, "headers": headers})


def _normalised(text: str, name: str) -> str:
    text = unquote(text)  # links repeat the request path percent-encoded (?next=…)
    return re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", MISSING, text)


def _body(resp: Any) -> str:
    text = unquote(resp.content.decode("utf-8", "replace"))
    return re.sub(r"/grants/\d+", "/grants/N", text)  # the twin names a grant id that is not


# What a role that has secrets may nonetheless change (its own things).
ALLOWED_WRITES = {
    ("steward-oth", "POST /api/v1/governance/register/refresh"),  # recomputes platform fields
    # oth's caseworkers add requests to their own inbox (the inbox belongs to oth)
    ("analyst", "POST /api/v1/assist/requests"),
    ("steward-oth", "POST /api/v1/assist/requests"),
    ("analyst", "POST /api/v1/assist/requests/upload"),
    ("steward-oth", "POST /api/v1/assist/requests/upload"),
    # every signed-in author may propose use cases; the probe imports an empty list
    ("analyst", "POST /api/v1/governance/usecases/import"),
    ("steward-oth", "POST /api/v1/governance/usecases/import"),
    ("viewer", "POST /api/v1/governance/usecases/import"),
}


@pytest.mark.parametrize("route", sorted(PROBES))
def test_nothing_leaks(world: World, route: str) -> None:
    probe = PROBES[route]
    failures: list[str] = []
    for role in ROLES:
        forbidden = forbidden_markers(role)
        if probe.write and not forbidden:
            continue  # admins and the publisher's stewards may change it: nothing to leak
        for case in list(CASES) if probe.per_case else [""]:
            requests = probe.make(world, case)
            twins = probe.make(world, MISSING) if probe.per_case else []
            for i, (method, url, kw) in enumerate(requests):
                resp = call(world, role, method, url, kw)
                where = f"{role} {method} {url} -> {resp.status_code}"
                text = text_of(resp)
                if leaked := [m for m in forbidden if m in text]:
                    failures.append(f"{where}: leaks {leaked}")
                if resp.status_code >= 500:
                    failures.append(f"{where}: server error {_body(resp)[:200]}")
                # (the UI answers a refused form with the page and its message, status 200)
                if (
                    probe.write
                    and resp.status_code < 400
                    and url.startswith("/api/")
                    and (role, route) not in ALLOWED_WRITES
                ):
                    failures.append(f"{where}: a write by {role} was accepted")
                # A caller who may create a dataset of a missing name would create the twin;
                # for them a taken name answers 409 (see service/publishing.py).
                creator = probe.creates and ROLES[role].role == "steward"
                if case and META in secrets_for(role, case) and not creator:
                    tm, turl, tkw = twins[i]
                    twin = call(world, role, tm, turl, tkw)
                    same = (resp.status_code, _normalised(_body(resp), case)) == (
                        twin.status_code,
                        _body(twin),
                    )
                    if not same:
                        failures.append(
                            f"{where}: answers unlike a missing dataset ({twin.status_code}): "
                            f"{_body(resp)[:160]!r} vs {_body(twin)[:160]!r}"
                        )
    assert not failures, f"{len(failures)} problems:\n" + "\n".join(failures[:40])


@pytest.mark.parametrize("role", sorted(ROLES))
def test_what_may_be_seen_is_seen_and_counted_right(world: World, role: str) -> None:
    """Positive controls (the probes above are not vacuous) and counts that count only what
    the caller sees: rows, totals, facets, search totals, ``count(*)``."""
    h = world.headers(role)
    may_sql = ROLES[role].role in ("analyst", "steward", "admin")
    for case, c in CASES.items():
        secrets = secrets_for(role, case)
        rows = world.client.get(f"/api/v1/datasets/{case}/rows?limit=100", headers=h)
        if META in secrets:
            assert rows.status_code == 404, (role, case)
            continue
        assert rows.status_code == 200, (role, case, rows.text[:200])
        text = text_of(rows)
        info = world.client.get(f"/api/v1/datasets/{case}", headers=h).json()
        assert marker(META, case) in info["title"]
        versions = world.client.get(f"/api/v1/datasets/{case}/versions", headers=h).json()
        if c.confidential:
            microdata = COL not in secrets
            assert (marker(COL, case) in text) == microdata, (role, case)
            assert info["partial"] is not microdata
            if not microdata:  # the protected table: no total that counts records
                assert info.get("rows") is None, (role, case, info.get("rows"))
            continue
        for kind in (ROW, COL):
            assert (marker(kind, case) in text) == (kind not in secrets), (role, case, kind)
        n = VISIBLE_ROWS if ROW in secrets else TOTAL_ROWS
        assert len(rows.json()["rows"]) == n, (role, case)
        assert info.get("rows") in ((None, n) if ROW in secrets else (n,)), (role, case, info)
        for v in versions if isinstance(versions, list) else versions.get("versions", []):
            assert v.get("rows") in (None, -1, n), (role, case, v)  # -1: withheld
            fields = [f["name"] for f in (v.get("schema") or {}).get("fields", [])]
            assert ("person" in fields) == (COL not in secrets) or not fields, (role, case, v)
        if may_sql:
            for sql in (
                f'SELECT count(*) AS n FROM "{case}"',
                f'SELECT count(*) AS n FROM (SELECT * FROM "{case}@1") t',
                f'SELECT count(*) AS n FROM "{case}" a JOIN offen b ON true',
            ):
                answer = world.client.post("/api/v1/sql", json={"sql": sql}, headers=h)
                assert answer.status_code == 200, (role, sql, answer.text[:200])
                expected = n * (TOTAL_ROWS if "JOIN" in sql else 1)  # offen: all rows
                assert answer.json()["rows"][0]["n"] == expected, (role, sql)
    # the catalogue: exactly the visible cases, facet counts over them only
    listed = world.client.get("/api/v1/datasets", headers=h).json()
    slugs = {d["slug"] for d in listed["datasets"]}
    assert slugs & set(CASES) == set(visible_cases(role))
    for name, counts in listed["facets"].items():
        if name == "organisation":
            assert sum(counts.values()) == len(listed["datasets"]), (role, counts)
        assert all(v <= len(listed["datasets"]) for v in counts.values()), (role, name, counts)
    found = world.client.get("/api/v1/datasets?q=Matrix", headers=h).json()
    assert {d["slug"] for d in found["datasets"]} == set(visible_cases(role))
    ckan = world.client.get(
        '/api/3/action/package_search?q=Matrix&rows=100&facet.field=["organization"]', headers=h
    ).json()["result"]
    assert ckan["count"] == len(visible_cases(role)), (role, ckan["count"])
    assert sum(ckan["facets"]["organization"].values()) == ckan["count"]


@pytest.mark.parametrize("role", sorted(ROLES))
def test_answer_drafts_cite_only_readable_documents(world: World, role: str) -> None:
    """A KB answer draft cites and quotes the restricted instruction only for who may read it;
    the draft an admin made for oth's request does not show it to oth's caseworkers."""
    h = world.headers(role)
    ask = world.client.post(f"/api/v1/assist/kb/{KB}/ask", json=ASK, headers=h)
    assert ask.status_code == 200, (role, ask.text[:300])
    cited = {c.get("document") for c in ask.json().get("citations", [])}
    text = json.dumps(ask.json(), ensure_ascii=False)
    if kb_secret_for(role):
        assert KB_SECRET not in text and "dienstanweisung.md" not in cited, (role, cited)
    else:
        assert KB_SECRET in text or "dienstanweisung.md" in cited, (role, text[:400])
    view = world.client.get(f"/api/v1/assist/requests/{world.ids['request']}", headers=h)
    if view.status_code == 200 and kb_secret_for(role):
        assert KB_SECRET not in text_of(view), role
        assert "dienstanweisung" not in text_of(view), role
