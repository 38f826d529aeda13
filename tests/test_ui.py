"""The HTML interface over plain HTTP: roles, visibility, sign-in, CSRF, grants, language."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from datenlabor.pool.catalog import DatasetMeta
from datenlabor.web import i18n
from datenlabor.web.app import create_app

PASSWORD = "Ui-Test-Passwort-42"
TEMPLATES = Path(__file__).resolve().parents[1] / "src" / "datenlabor" / "web" / "templates"
SECRET_COLUMN = "steuer_id"
SECRET_VALUE = "ZZ-SECRET-0001"


def _csv(path: Path) -> Path:
    rows = ["id;kreis;einwohner;" + SECRET_COLUMN]
    for i in range(1, 61):
        rows.append(f"{i};{'05315' if i % 2 else '05111'};{1000 + i};ZZ-SECRET-{i:04d}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _seed(pool: Any, tmp_path: Path) -> TestClient:
    app = create_app(pool)
    accounts = app.state.gate.accounts
    accounts.add_org("statamt", "Statistisches Landesamt")
    accounts.add_org("stadt", "Stadt Köln")
    users = {
        "admin": ("statamt", "admin"),
        "steward": ("statamt", "steward"),
        "kollege": ("statamt", "viewer"),
        "viewer": ("stadt", "viewer"),
        "analyst": ("stadt", "analyst"),
    }
    for name, (org, role) in users.items():
        accounts.add_user(name, org=org, role=role, password=PASSWORD)
    data = _csv(tmp_path / "kreise.csv")
    pool.ingest(
        data,
        dataset="offen",
        meta=DatasetMeta(publisher="statamt", visibility="public", title="Offene Kreiszahlen"),
    )
    pool.ingest(
        data,
        dataset="vertraulich",
        key="id",
        meta=DatasetMeta(publisher="statamt", visibility="restricted", title="Vertrauliche Liste"),
    )
    return TestClient(app)


@pytest.fixture
def client(pool: Any, tmp_path: Path) -> TestClient:
    """Over SQLite and PostgreSQL (the ``pool`` fixture is parametrised)."""
    return _seed(pool, tmp_path)


@pytest.fixture
def lite(sqlite_pool: Any, tmp_path: Path) -> TestClient:
    return _seed(sqlite_pool, tmp_path)


def login(c: TestClient, user: str, password: str = PASSWORD, next_: str = "/") -> Any:
    page = c.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', page.text)
    assert token, page.text
    return c.post(
        "/login",
        data={"username": user, "password": password, "login_token": token[1], "next": next_},
        follow_redirects=False,
    )


def csrf(c: TestClient) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', c.get("/").text)
    assert found, "not signed in"
    return found[1]


def as_user(c: TestClient, user: str) -> TestClient:
    c.cookies.clear()
    assert login(c, user).status_code == 303
    return c


def audit_actions(c: TestClient) -> list[str]:
    return [e.action for e in c.app.state.gate.audit.entries(limit=1000)]  # type: ignore[attr-defined]


# -- roles and visibility -------------------------------------------------------------------
def test_pages_for_each_role(client: TestClient) -> None:
    c = client
    for path in ("/", "/datasets/offen", "/datasets/offen/diff", "/login"):
        r = c.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("text/html")
    for path in ("/sql", "/upload", "/admin", "/audit"):
        r = c.get(path, follow_redirects=False)
        assert r.status_code == 303, path
        assert r.headers["location"] == "/login?next=" + path.replace("/", "%2F")

    expected = {
        "viewer": {"/sql": 200, "/upload": 200, "/admin": 200, "/audit": 403},
        "analyst": {"/sql": 200, "/upload": 200, "/admin": 200, "/audit": 403},
        "steward": {"/sql": 200, "/upload": 200, "/admin": 200, "/audit": 200},
        "admin": {"/sql": 200, "/upload": 200, "/admin": 200, "/audit": 200},
    }
    for user, pages in expected.items():
        as_user(c, user)
        for path, status in pages.items():
            r = c.get(path)
            assert r.status_code == status, (user, path)
        home = c.get("/").text
        assert ('href="/audit"' in home) == (user in ("steward", "admin"))
        assert ('href="/upload"' in home) == (user in ("steward", "admin"))
    as_user(c, "viewer")
    assert "keine SQL-Abfragen" in c.get("/sql").text
    assert "Hochladen dürfen nur" in c.get("/upload").text


def test_restricted_dataset_only_for_those_allowed(client: TestClient) -> None:
    c = client
    assert "Vertrauliche Liste" not in c.get("/").text
    assert c.get("/datasets/vertraulich").status_code == 404
    for user, sees in (("viewer", False), ("analyst", False), ("kollege", True), ("admin", True)):
        as_user(c, user)
        assert ("Vertrauliche Liste" in c.get("/").text) == sees, user
        assert c.get("/datasets/vertraulich").status_code == (200 if sees else 404), user
        assert c.get("/?visibility=restricted").text.count('class="card"') == (1 if sees else 0)


def test_catalogue_search_and_facets(lite: TestClient) -> None:
    c = as_user(lite, "admin")
    page = c.get("/", params={"visibility": "public"}).text
    assert "Offene Kreiszahlen" in page and "Vertrauliche Liste" not in page
    assert re.search(r'value="public" checked', page)
    page = c.get("/", params={"q": "vertrauliche"}).text
    assert "Vertrauliche Liste" in page and "Offene Kreiszahlen" not in page
    assert "1 Datensatz" in page


# -- signing in and out ---------------------------------------------------------------------
def test_login_failure_does_not_tell_which_part_was_wrong(lite: TestClient) -> None:
    c = lite
    unknown = login(c, "niemand", "irgendein-passwort-1")
    wrong = login(c, "admin", "falsches-passwort-123")
    assert unknown.status_code == wrong.status_code == 401
    assert 'role="alert"' in unknown.text

    def alert(html: str) -> str:
        return re.search(r'role="alert">([^<]*)<', html)[1]  # type: ignore[index]

    assert alert(unknown.text) == alert(wrong.text)
    assert "dl_session" not in c.cookies
    assert audit_actions(c).count("login-failed") == 2


def test_login_logout_and_next(lite: TestClient) -> None:
    c = lite
    r = login(c, "steward", next_="/datasets/offen?sort=id")
    assert r.status_code == 303 and r.headers["location"] == "/datasets/offen?sort=id"
    assert "login" in audit_actions(c)
    assert "Angemeldet als" in c.get("/").text
    assert c.post("/logout", data={}).status_code == 403  # no CSRF token
    r = c.post("/logout", data={"csrf_token": csrf(c)}, follow_redirects=False)
    assert r.status_code == 303
    assert c.get("/admin", follow_redirects=False).status_code == 303
    assert "logout" in audit_actions(c)
    for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"):
        c.cookies.clear()
        r = login(c, "steward", next_=evil)
        assert r.headers["location"] == "/", evil


def test_login_form_needs_its_own_token(lite: TestClient) -> None:
    r = lite.post(
        "/login",
        data={"username": "admin", "password": PASSWORD, "login_token": "guess"},
        follow_redirects=False,
    )
    assert r.status_code == 403
    assert "dl_session" not in lite.cookies


def test_oidc_button_only_when_configured(tmp_path: Path) -> None:
    import datenlabor

    plain = datenlabor.open(tmp_path / "a")
    assert "/auth/oidc/login" not in TestClient(create_app(plain)).get("/login").text
    sso = datenlabor.open(
        tmp_path / "b", oidc_issuer="https://id.example.org", oidc_client_id="datenlabor"
    )
    page = TestClient(create_app(sso)).get("/login?next=/sql").text
    assert 'href="/auth/oidc/login?next=%2Fsql"' in page
    assert "Mit Dienstkonto anmelden" in page
    plain.store.dispose()
    sso.store.dispose()


# -- CSRF -----------------------------------------------------------------------------------
def test_forms_without_csrf_token_are_refused(lite: TestClient) -> None:
    c = as_user(lite, "admin")
    posts = {
        "/datasets/offen/metadata": {"title": "Gekapert"},
        "/datasets/vertraulich/grants": {"target": "org", "org": "stadt"},
        "/datasets/offen/delete": {"confirm": "offen"},
        "/admin/orgs": {"slug": "boese", "name": "Böse"},
        "/admin/users": {"username": "x1", "org": "stadt", "role": "admin"},
        "/admin/tokens": {"scope": "write"},
        "/sql": {"sql": "SELECT 1"},
    }
    for path, data in posts.items():
        r = c.post(path, data=data)
        assert r.status_code == 403, path
        r = c.post(path, data={**data, "csrf_token": "wrong"})
        assert r.status_code == 403, path
    assert "Offene Kreiszahlen" in c.get("/datasets/offen").text
    assert "Böse" not in c.get("/admin").text
    r = c.post(
        "/upload",
        data={"dataset": "neu"},
        files={"file": ("a.csv", b"a;b\n1;2\n", "text/csv")},
    )
    assert r.status_code == 403
    assert c.get("/datasets/neu").status_code == 404


# -- grants and hidden columns --------------------------------------------------------------
def test_hidden_columns_never_reach_the_grantee(client: TestClient) -> None:
    c = as_user(client, "steward")
    token = csrf(c)
    r = c.post(
        "/datasets/vertraulich/grants",
        data={"csrf_token": token, "target": "org", "org": "stadt", "hide": SECRET_COLUMN},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert SECRET_COLUMN in c.get("/datasets/vertraulich").text  # the steward sees it all

    as_user(c, "analyst")
    pages = [
        c.get("/datasets/vertraulich"),
        c.get("/datasets/vertraulich", params={"sort": "-einwohner", "limit": "100"}),
        c.get("/datasets/vertraulich", params={"kreis": "05315"}),
        c.get("/datasets/vertraulich/diff"),
        c.post("/sql", data={"csrf_token": csrf(c), "sql": "SELECT * FROM vertraulich"}),
    ]
    for r in pages:
        assert r.status_code == 200, r.text
        assert SECRET_COLUMN not in r.text and "ZZ-SECRET" not in r.text
    assert "Teilansicht" in pages[0].text
    assert "einwohner" in pages[0].text
    assert 'id="verwaltung"' not in pages[0].text  # grantees do not manage

    as_user(c, "steward")
    page = c.get("/datasets/vertraulich").text
    grant_id = re.search(r"/datasets/vertraulich/grants/(\d+)/revoke", page)[1]  # type: ignore[index]
    r = c.post(
        f"/datasets/vertraulich/grants/{grant_id}/revoke",
        data={"csrf_token": csrf(c)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    as_user(c, "analyst")
    assert c.get("/datasets/vertraulich").status_code == 404


def test_grant_errors_are_shown_on_the_page(lite: TestClient) -> None:
    c = as_user(lite, "steward")
    r = c.post(
        "/datasets/offen/grants",
        data={"csrf_token": csrf(c), "target": "org", "org": "stadt"},
    )
    assert r.status_code == 400
    assert 'role="alert"' in r.text and "restricted" in r.text
    as_user(c, "analyst")
    r = c.post(
        "/datasets/offen/grants",
        data={"csrf_token": csrf(c), "target": "org", "org": "stadt"},
    )
    assert r.status_code == 403


# -- preview, diff, downloads ---------------------------------------------------------------
def test_preview_filter_form_and_paging(lite: TestClient) -> None:
    c = lite
    r = c.get(
        "/datasets/offen",
        params={"add_col": "einwohner", "add_op": "gte", "add_val": "1050", "sort": "-id"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/datasets/offen?sort=-id&einwohner__gte=1050#vorschau"
    page = c.get("/datasets/offen?sort=-id&einwohner__gte=1050").text
    body = page.split('id="vorschau"')[1].split("</section>")[0]
    cells = re.findall(r'<td class="num">([\d.]+)</td>', body)
    assert "1.060" in cells and "1.049" not in cells
    page = c.get("/datasets/offen?kreis=05315").text
    assert "Weiter" in page  # 30 rows, 25 per page
    nxt = re.search(r'href="(/datasets/offen\?[^"]*after=[^"]+)"', page)[1]  # type: ignore[index]
    second = c.get(nxt.replace("&amp;", "&"))
    assert second.status_code == 200 and "Zum Anfang" in second.text
    bad = c.get("/datasets/offen?nope=1")
    assert bad.status_code == 200 and 'role="alert"' in bad.text


def test_diff_and_download_links(lite: TestClient, tmp_path: Path) -> None:
    c = as_user(lite, "steward")
    changed = tmp_path / "neu.csv"
    changed.write_text("id;kreis;einwohner;steuer_id\n1;05315;5;X\n", encoding="utf-8")
    c.app.state.pool.ingest(changed, dataset="offen")  # type: ignore[attr-defined]
    page = c.get("/datasets/offen").text
    assert "Version 2" in page and 'name="from"' in page
    assert "/api/v1/datasets/offen/download?format=csv&amp;dialect=de" in page
    diff = c.get("/datasets/offen/diff?from=1&to=2")
    assert diff.status_code == 200 and "Entfernte Zeilen" in diff.text
    r = c.get("/api/v1/datasets/offen/download?format=csv&dialect=de&version=1")
    assert r.status_code == 200 and r.content.startswith(b"\xef\xbb\xbf")


# -- managing, uploading, SQL, administration, audit ----------------------------------------
def test_steward_manages_dataset(lite: TestClient) -> None:
    c = as_user(lite, "steward")
    r = c.post(
        "/datasets/offen/metadata",
        data={
            "csrf_token": csrf(c),
            "title": "Neuer Titel",
            "keywords": "a, b",
            "visibility": "internal",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = c.get(r.headers["location"]).text
    assert "Neuer Titel" in page and "Die Metadaten sind gespeichert." in page
    r = c.post(
        "/datasets/offen/metadata",
        data={"csrf_token": csrf(c), "title": "x", "temporal_start": "gestern"},
    )
    assert r.status_code == 400 and 'role="alert"' in r.text
    r = c.post("/datasets/offen/delete", data={"csrf_token": csrf(c), "confirm": "falsch"})
    assert r.status_code == 400
    r = c.post(
        "/datasets/offen/delete",
        data={"csrf_token": csrf(c), "confirm": "offen"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/?done=deleted"
    assert c.get("/datasets/offen").status_code == 404


def test_upload_without_javascript(lite: TestClient) -> None:
    c = as_user(lite, "steward")
    page = c.get("/upload?dataset=offen").text
    assert 'value="offen"' in page and "Datenlizenz Deutschland" in page
    r = c.post(
        "/upload",
        data={
            "csrf_token": csrf(c),
            "dataset": "neu",
            "org": "statamt",
            "title": "Neu",
            "visibility": "internal",
        },
        files={"file": ("neu.csv", b"a;b\n1;2,5\n3;4\n", "text/csv")},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    page = c.get(r.headers["location"]).text
    assert "Die neue Version ist gespeichert." in page, page
    assert "<h1>Neu</h1>" in page
    r = c.post(
        "/upload",
        data={"csrf_token": csrf(c), "dataset": "Ungültig!", "org": "statamt"},
        files={"file": ("x.csv", b"a\n1\n", "text/csv")},
    )
    assert r.status_code == 400 and 'role="alert"' in r.text
    assert "upload" in audit_actions(c)


def test_sql_page(lite: TestClient) -> None:
    c = as_user(lite, "analyst")
    r = c.post(
        "/sql",
        data={
            "csrf_token": csrf(c),
            "sql": "SELECT kreis, sum(einwohner) AS n FROM offen GROUP BY 1 ORDER BY 1",
        },
    )
    assert r.status_code == 200
    assert 'id="chart-data"' in r.text and "/static/plotly/plotly.min.js" in r.text
    assert re.search(r'<a href="/datasets/offen">offen</a>, Version 1', r.text)
    r = c.post("/sql", data={"csrf_token": csrf(c), "sql": "DROP TABLE offen"})
    assert r.status_code == 400 and 'role="alert"' in r.text
    r = c.post("/sql", data={"csrf_token": csrf(c), "sql": "SELECT * FROM vertraulich"})
    assert r.status_code == 404
    assert "query" in audit_actions(c)


def test_admin_accounts_and_tokens(lite: TestClient) -> None:
    c = as_user(lite, "admin")
    t = csrf(c)
    assert (
        c.post(
            "/admin/orgs",
            data={"csrf_token": t, "slug": "kreis-x", "name": "Kreis X"},
            follow_redirects=False,
        ).status_code
        == 303
    )
    r = c.post(
        "/admin/users",
        data={
            "csrf_token": t,
            "username": "neu",
            "org": "kreis-x",
            "role": "viewer",
            "password": "kurz",
        },
    )
    assert r.status_code == 400 and 'role="alert"' in r.text
    r = c.post(
        "/admin/users",
        data={
            "csrf_token": t,
            "username": "neu",
            "org": "kreis-x",
            "role": "viewer",
            "password": PASSWORD,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert (
        c.post(
            "/admin/users/neu", data={"csrf_token": t, "role": "analyst"}, follow_redirects=False
        ).status_code
        == 303
    )
    assert (
        c.post(
            "/admin/users/neu", data={"csrf_token": t, "active": "false"}, follow_redirects=False
        ).status_code
        == 303
    )
    users = {u.username: u for u in c.app.state.gate.accounts.users()}  # type: ignore[attr-defined]
    assert users["neu"].role == "analyst" and not users["neu"].active
    assert (
        c.post("/admin/users/admin", data={"csrf_token": t, "active": "false"}).status_code == 403
    )

    r = c.post(
        "/admin/tokens", data={"csrf_token": t, "name": "Skript", "scope": "read", "days": "30"}
    )
    assert r.status_code == 201
    token = re.search(r'value="(dl_[^"]+)"', r.text)[1]  # type: ignore[index]
    assert r.headers["cache-control"] == "no-store"
    page = c.get("/admin").text
    assert token not in page and token[:10] in page
    token_id = re.search(r"/admin/tokens/(\d+)/revoke", page)[1]  # type: ignore[index]
    assert (
        c.post(
            f"/admin/tokens/{token_id}/revoke", data={"csrf_token": t}, follow_redirects=False
        ).status_code
        == 303
    )
    assert "widerrufen" in c.get("/admin").text

    as_user(c, "steward")  # stewards see their organisation's accounts, change nothing
    page = c.get("/admin").text
    assert "kollege" in page and "analyst" not in re.findall(r'<th scope="row">(\w+)</th>', page)
    assert (
        c.post("/admin/orgs", data={"csrf_token": csrf(c), "slug": "y", "name": "Y"}).status_code
        == 403
    )


def test_audit_page(lite: TestClient) -> None:
    c = as_user(lite, "analyst")
    c.get("/datasets/offen")
    as_user(c, "steward")
    r = c.get("/audit", params={"action": "read"})
    assert r.status_code == 200
    assert "analyst" in r.text
    assert "/api/v1/audit/export?action=read&amp;format=csv" in r.text
    assert c.get("/audit", params={"since": "gestern"}).status_code == 400
    r = c.get("/audit", params={"action": "login"})  # not about the organisation's datasets
    assert "Keine Einträge." in r.text
    as_user(c, "admin")
    assert "Keine Einträge." not in c.get("/audit", params={"action": "login"}).text


# -- language, errors, assets ---------------------------------------------------------------
def test_language_switch(lite: TestClient) -> None:
    c = lite
    assert '<html lang="de">' in c.get("/").text
    r = c.get("/?lang=en")
    assert '<html lang="en">' in r.text and "Data catalogue" in r.text
    assert c.cookies.get("dl_lang") == "en"
    assert '<html lang="en">' in c.get("/datasets/offen").text
    assert '<html lang="de">' in c.get("/?lang=de").text
    c.cookies.clear()
    r = c.get("/", headers={"Accept-Language": "en-US,en;q=0.9,de;q=0.5"})
    assert '<html lang="en">' in r.text
    r = c.get("/", headers={"Accept-Language": "fr-FR, de;q=0.3"})
    assert '<html lang="de">' in r.text
    assert "Zum Inhalt springen" in r.text


def test_error_pages_in_both_languages(lite: TestClient) -> None:
    c = lite
    r = c.get("/gibt-es-nicht")
    assert r.status_code == 404 and "Nicht gefunden" in r.text
    assert "Not found" in c.get("/gibt-es-nicht?lang=en").text
    as_user(c, "viewer")
    r = c.get("/audit?lang=de")
    assert r.status_code == 403 and "Kein Zugriff" in r.text
    assert c.get("/api/v1/datasets/nope").headers["content-type"].startswith("application/json")


def test_assets_are_local_and_headers_strict(lite: TestClient) -> None:
    c = as_user(lite, "admin")
    js = c.get("/static/plotly/plotly.min.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000
    assert c.get("/static/ui/datenlabor.css").status_code == 200
    for path in ("/", "/datasets/offen", "/sql", "/upload", "/admin", "/audit", "/login"):
        r = c.get(path)
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert not re.search(r'(src|href)="(https?:)?//', r.text), path


def test_every_message_exists_in_both_languages() -> None:
    used: set[str] = set()
    for path in [*TEMPLATES.glob("*.html"), *TEMPLATES.parent.glob("ui*.py")]:
        used |= set(re.findall(r"\bt\(\s*[\"']([a-z_]+\.[a-z0-9_.-]+)[\"']", path.read_text()))
    prefixes = {k for k in used if k.endswith((".", "_"))}  # t("mode." ~ value)
    missing = sorted(k for k in used - prefixes if not i18n.has(k))
    assert not missing
    assert all(any(m.startswith(k) for m in i18n.MESSAGES) for k in prefixes)
    for key, (de, en) in i18n.MESSAGES.items():
        assert de.strip() and en.strip(), key
    for prefix, values in {
        "visibility.": ("public", "internal", "restricted"),
        "mode.": ("replace", "append", "upsert"),
        "role.": ("admin", "steward", "analyst", "viewer"),
        "op.": ("eq", "ne", "lt", "lte", "gt", "gte", "contains", "startswith", "in", "isnull"),
    }.items():
        for value in values:
            assert i18n.has(prefix + value), prefix + value
    assert i18n.negotiate("en-GB,en;q=0.8") == "en"
    assert i18n.negotiate("") == "de"
