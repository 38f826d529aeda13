"""The web interface in a real browser: main flows, keyboard use, axe-core on every page.

Runs Debian's chromium through Playwright (never ``playwright install``) against a uvicorn
server on a temporary pool. Every page visited is checked with axe-core (WCAG 2.1 A/AA)
and every request the browser makes must stay on the test server.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import browser_support
import pytest
from browser_support import PASSWORD, live_server

from conftest import shared_file

pytest.importorskip("playwright.sync_api")
# the shared fixtures (tests/browser/browser_support.py)
browser, visit = browser_support.browser, browser_support.visit

USERS = {  # name: (organisation, role)
    "admin": ("statamt", "admin"),
    "steward": ("statamt", "steward"),
    "analyst": ("stadt", "analyst"),
}


# -- server over a seeded pool --------------------------------------------------------------
@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import datenlabor
    from datenlabor.pool.catalog import DatasetMeta
    from datenlabor.web.app import create_app

    population = shared_file("genesis/12411-0006.csv")
    births = shared_file("genesis/12612-0002.csv")
    pool = datenlabor.open(tmp_path_factory.mktemp("browser") / "pool", user="seed")
    app = create_app(pool)
    accounts = app.state.gate.accounts
    accounts.add_org("statamt", "Statistisches Landesamt")
    accounts.add_org("stadt", "Stadtverwaltung Musterstadt")
    for name, (org, role) in USERS.items():
        accounts.add_user(name, org=org, role=role, password=PASSWORD)
    pool.ingest(
        population,
        dataset="bevoelkerung",
        meta=DatasetMeta(
            publisher="statamt",
            visibility="public",
            title="Bevölkerung nach Altersjahren",
            licence="dl-de/by-2-0",
            themes=["SOCI"],
        ),
    )
    pool.ingest(
        births,
        dataset="geburten",
        meta=DatasetMeta(
            publisher="statamt", visibility="restricted", title="Lebendgeborene", themes=["SOCI"]
        ),
    )
    with live_server(app) as url:
        yield url
    pool.store.dispose()


# -- flows ----------------------------------------------------------------------------------
def test_catalogue_with_facet_as_anonymous(visit: Any) -> None:
    v = visit()
    page = v.go("/")
    v.axe("catalogue")
    cards = page.locator(".card h3 a")
    assert cards.all_inner_texts() == ["Bevölkerung nach Altersjahren"]  # restricted one hidden
    page.get_by_label(re.compile(r"Statistisches Landesamt")).check()
    page.get_by_role("button", name="Filter anwenden").click()
    page.wait_for_url(re.compile(r"organisation=statamt"))
    v.axe()
    assert page.locator(".card").count() == 1
    page.goto("/?lang=en")
    v.axe("catalogue-en")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.get_by_role("heading", name="Data catalogue").count() == 1
    page.goto("/")  # the choice is remembered in a cookie
    assert page.locator("html").get_attribute("lang") == "en"
    page.goto("/?lang=de")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: everything reflows
    v.go("/datasets/bevoelkerung")
    v.axe("dataset-mobile")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1280, "height": 900})
    v.go("/login")
    v.axe("login")
    v.go("/datasets/geburten")  # restricted: not even its existence is shown
    assert page.get_by_role("heading", name=re.compile("Nicht gefunden")).count() == 1
    v.axe("error-404")


def test_sign_in_and_every_page(visit: Any) -> None:
    v = visit()
    v.login("steward")
    page = v.page
    for path, name in [
        ("/", None),
        ("/datasets/bevoelkerung", "dataset"),
        ("/datasets/bevoelkerung/diff", "diff"),
        ("/sql", None),
        ("/upload", "upload"),
        ("/admin", "admin"),
        ("/audit", "audit"),
    ]:
        v.go(path)
        if name:
            v.axe(name)
    assert page.locator("table.audit tbody tr").count() >= 1
    page.get_by_label("Aktion").select_option("read")
    page.get_by_role("button", name="Filtern").click()
    v.axe()
    actions = page.locator("table.audit tbody tr td:nth-child(4)").all_inner_texts()
    assert actions and set(actions) == {"read"}
    # A new API token is shown exactly once.
    v.go("/admin")
    page.get_by_label("Bezeichnung").fill("Skript")
    page.get_by_role("button", name="Erstellen").click()
    token = page.get_by_label("API-Schlüssel", exact=True).input_value()
    assert token.startswith("dl_")
    v.axe()
    v.go("/admin")
    assert token not in page.content()
    page.get_by_role("button", name="Abmelden").click()
    page.wait_for_url(re.compile(r"done=logout"))
    v.axe()
    assert page.get_by_role("link", name="Anmelden").count() == 1


def test_upload_wizard_with_progress(visit: Any) -> None:
    source = shared_file("genesis/63111-0001.csv")
    v = visit()
    v.login("steward")
    page = v.go("/upload")
    page.get_by_label("Datei", exact=True).set_input_files(str(source))
    page.get_by_label("Kennung des Datensatzes").fill("verdienste")
    page.get_by_label("Titel").fill("Verdienste")
    page.get_by_label("Lizenz").select_option("dl-de/zero-2-0")
    page.get_by_label("Sichtbarkeit").select_option("internal")
    page.get_by_role("button", name="Hochladen").click()
    status = page.locator("#upload-status")
    status.get_by_role("link", name="Datensatz öffnen").wait_for()
    assert "Version 1 von verdienste" in status.inner_text()
    assert page.locator("#upload-bar").evaluate("b => b.value") == 100
    v.axe("upload-done")
    status.get_by_role("link", name="Datensatz öffnen").click()
    page.wait_for_url(re.compile(r"/datasets/verdienste$"))
    v.axe()
    assert page.get_by_role("heading", name="Verdienste", exact=True).count() == 1
    assert "63111-0001.csv" in page.locator("#versionen").inner_text()


def test_preview_filter_and_paging(visit: Any) -> None:
    v = visit()
    page = v.go("/datasets/bevoelkerung")
    page.get_by_label("Spalte", exact=True).select_option("Geschlecht")
    page.get_by_label("Vergleich", exact=True).select_option("eq")
    page.get_by_label("Wert", exact=True).fill("weiblich")
    page.get_by_label("Sortieren nach").select_option("-value")
    page.get_by_role("button", name="Anwenden").click()
    page.wait_for_url(re.compile(r"Geschlecht=weiblich"))
    v.axe("preview-filtered")
    table = page.locator("#vorschau table")
    header = table.locator("thead th").all_inner_texts()
    column = header.index("Geschlecht")
    values = table.locator(f"tbody tr td:nth-child({column + 1})").all_inner_texts()
    assert len(values) == 25 and set(values) == {"weiblich"}
    page.get_by_role("link", name="Weiter").click()
    page.wait_for_url(re.compile(r"after="))
    v.axe()
    values = table.locator(f"tbody tr td:nth-child({column + 1})").all_inner_texts()
    assert set(values) == {"weiblich"}
    page.get_by_role("link", name="entfernen Geschlecht").click()
    page.wait_for_url(re.compile(r"^(?!.*Geschlecht=).*$"))
    assert "after=" not in page.url


def test_sql_with_chart(visit: Any) -> None:
    v = visit()
    v.login("analyst")
    page = v.go("/sql")
    page.get_by_label("Abfrage (nur SELECT)").fill(
        'SELECT "Geschlecht", sum(value) AS summe FROM bevoelkerung GROUP BY 1 ORDER BY 1'
    )
    page.get_by_role("button", name="Abfrage ausführen").click()
    page.locator("#chart .main-svg").first.wait_for()
    assert page.locator("#ergebnis table.data tbody tr").count() == 3
    assert "bevoelkerung" in page.locator(".provenance").inner_text()
    page.locator(".chart-table summary").click()
    assert page.locator("#chart-table table tbody tr").count() == 3
    v.axe("sql-chart")
    page.get_by_label("Art").select_option("line")
    page.get_by_role("button", name="Diagramm zeichnen").click()
    v.axe()
    page.get_by_label("Abfrage (nur SELECT)").fill("SELECT * FROM read_csv('/etc/passwd')")
    page.get_by_role("button", name="Abfrage ausführen").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "fehlgeschlagen" in alert.inner_text()
    v.axe("sql-error")


def test_download(visit: Any) -> None:
    v = visit()
    page = v.go("/datasets/bevoelkerung")
    with page.expect_download() as info:
        page.get_by_role("link", name="CSV für Excel (deutsch, Semikolon)").click()
    download = info.value
    assert download.suggested_filename == "bevoelkerung-v1.csv"
    body = Path(download.path()).read_bytes()
    assert body.startswith(b"\xef\xbb\xbf") and b";" in body.splitlines()[0]


def test_grant_changes_what_another_user_sees(visit: Any) -> None:
    steward, analyst = visit(), visit()
    steward.login("steward")
    analyst.login("analyst")
    analyst.go("/datasets/geburten")
    assert analyst.page.get_by_role("heading", name=re.compile("Nicht gefunden")).count() == 1

    page = steward.go("/datasets/geburten")
    columns = page.locator("#vorschau table thead th").all_inner_texts()
    hidden = columns[-1]
    page.get_by_role("combobox", name="Organisation", exact=True).select_option("stadt")
    page.locator("#verwaltung").get_by_label(hidden, exact=True).check()
    page.get_by_role("button", name="Freigeben").click()
    page.wait_for_url(re.compile(r"done=grant"))
    steward.axe("dataset-grants")
    assert "stadt" in page.locator("#verwaltung table").inner_text()

    apage = analyst.go("/datasets/geburten")
    assert apage.get_by_text("Sie sehen eine Teilansicht").count() == 1
    seen = apage.locator("#vorschau table thead th").all_inner_texts()
    assert hidden not in seen and len(seen) == len(columns) - 1
    assert apage.locator("#verwaltung").count() == 0  # no managing for a grantee

    page.get_by_role("button", name="Entziehen stadt").click()
    page.wait_for_url(re.compile(r"done=revoked"))
    steward.axe()
    analyst.go("/datasets/geburten")
    assert apage.get_by_role("heading", name=re.compile("Nicht gefunden")).count() == 1


def _focused(page: Any) -> str:
    return str(
        page.evaluate(
            "() => { const e = document.activeElement;"
            " return (e.tagName + ' ' + (e.id || '') + ' ' + (e.textContent || '').trim()).trim(); }"
        )
    )


def _tab_to(page: Any, pattern: str, limit: int = 60) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if re.search(pattern, _focused(page)):
            return
    raise AssertionError(f"Tab never reached {pattern!r}; last focus: {_focused(page)}")


def test_keyboard_only_main_flow(visit: Any) -> None:
    v = visit()
    page = v.go("/")
    page.keyboard.press("Tab")
    assert "Zum Inhalt springen" in _focused(page)
    page.keyboard.press("Enter")
    assert _focused(page).startswith("MAIN inhalt")
    # Sign in with the keyboard only.
    page.keyboard.press("Shift+Tab")
    _tab_to(page, r"^A\s+Anmelden")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/login"))
    _tab_to(page, r"^INPUT username")
    page.keyboard.type("analyst")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"^(?!.*/login).*$"))
    v.axe()
    # Search, open the dataset, filter the preview: Tab, typing and Enter only.
    _tab_to(page, r"^INPUT q")
    page.keyboard.type("Bevölkerung")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"q=Bev"))
    _tab_to(page, r"^A\s+Bevölkerung nach Altersjahren")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/datasets/bevoelkerung"))
    v.axe()
    _tab_to(page, r"^SELECT add-col")
    page.keyboard.type("Geschlecht")  # type-ahead picks the option
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert _focused(page).startswith("INPUT add-val")
    page.keyboard.type("Insgesamt")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"Geschlecht=Insgesamt"))
    assert page.get_by_role("alert").count() == 0
    v.axe("keyboard-filtered")
