"""The web interface in a real browser: main flows, keyboard use, axe-core on every page.

Runs Debian's chromium through Playwright (never ``playwright install``) against a uvicorn
server on a temporary pool. Every page visited is checked with axe-core (WCAG 2.1 A/AA)
and every request the browser makes must stay on the test server.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from conftest import REPO, shared_file

playwright_sync = pytest.importorskip("playwright.sync_api")

SCREENSHOTS = Path(__file__).parent / "screenshots"
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
PASSWORD = "Browser-Test-Passwort-1"
USERS = {  # name: (organisation, role)
    "admin": ("statamt", "admin"),
    "steward": ("statamt", "steward"),
    "analyst": ("stadt", "analyst"),
}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _missing(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} missing in CI")
    pytest.skip(f"{what} not available")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- server over a seeded pool --------------------------------------------------------------
@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import uvicorn

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
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the test server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    pool.store.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = shutil.which("chromium")
    if executable is None:
        _missing("chromium")
    if not AXE.exists():
        _missing(f"axe-core ({AXE}; run `npm ci` in the repository)")
    with playwright_sync.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Visit:
    """One browser context (one user) with checks on every page it opens."""

    def __init__(self, browser: Any, base_url: str) -> None:
        self.base = base_url
        self.context = browser.new_context(base_url=base_url, locale="de-DE", accept_downloads=True)
        self.context.set_default_timeout(15_000)
        # axe-core is served as if from the server: the pages' CSP allows only 'self' scripts,
        # and inline injection (add_script_tag(path=...)) would be blocked by it.
        self.context.route("**/__axe__/axe.min.js", lambda route: route.fulfill(path=AXE))
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.console_errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on(
            "console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None
        )
        self.checked = 0

    def go(self, path: str) -> Any:
        self.page.goto(path)
        self.axe()
        return self.page

    def axe(self, name: str | None = None) -> None:
        """No WCAG 2.1 A/AA violations on the current page (also after changes by script)."""
        page = self.page
        page.wait_for_load_state("load")
        page.add_script_tag(url="/__axe__/axe.min.js")
        result = page.evaluate(
            "async () => await axe.run(document, {runOnly: "
            "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'], resultTypes: ['violations']})"
        )
        problems = []
        for v in result["violations"]:
            nodes = "\n".join(
                f"      {n['target']}: {n.get('failureSummary', '')!s}".replace("\n", " ")
                for n in v["nodes"][:5]
            )
            problems.append(f"  [{v['impact']}] {v['id']}: {v['help']}\n{nodes}")
        assert not problems, f"axe on {page.url}:\n" + "\n".join(problems)
        self.checked += 1
        if name:
            SCREENSHOTS.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    def login(self, user: str) -> None:
        page = self.go("/login")
        page.get_by_label("Benutzername").fill(user)
        page.get_by_label("Passwort").fill(PASSWORD)
        page.get_by_role("button", name="Anmelden").click()
        page.wait_for_url(re.compile(r"^(?!.*/login).*$"))
        assert page.get_by_text(f"Angemeldet als {user}").count() == 1

    def close(self) -> None:
        foreign = [u for u in self.requests if urlparse(u).hostname not in ("127.0.0.1", None)]
        foreign = [u for u in foreign if not u.startswith(("data:", "blob:", "about:"))]
        self.context.close()
        assert not foreign, f"requests left the server: {foreign}"
        csp = [m for m in self.console_errors if "Content Security Policy" in m]
        assert not csp, f"blocked by the content security policy: {csp}"


@pytest.fixture
def visit(browser: Any, base_url: str) -> Iterator[Any]:
    opened: list[Visit] = []

    def make() -> Visit:
        v = Visit(browser, base_url)
        opened.append(v)
        return v

    yield make
    for v in opened:
        v.close()


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
