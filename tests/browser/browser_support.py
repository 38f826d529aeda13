"""What every browser test shares: a live server, Debian chromium through Playwright, and the
per-page checks (axe-core WCAG 2.1 A/AA, no request leaving the server, no CSP violation).

A browser test module takes the fixtures into its namespace
(``browser, visit = browser_support.browser, browser_support.visit``) and defines its own
module-scoped ``base_url`` fixture: it seeds a pool, builds the app and serves it with
:func:`live_server`::

    @pytest.fixture(scope="module")
    def base_url(tmp_path_factory):
        pool = datenlabor.open(tmp_path_factory.mktemp("x") / "pool", user="seed")
        app = create_app(pool)  # ... accounts and data
        with live_server(app) as url:
            yield url
        pool.store.dispose()

Chromium is Debian's (``scripts/setup-browser.sh``), never ``playwright install``; axe-core
comes from npm (``npm ci``). Missing either skips locally and fails in CI.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(__file__).parent / "screenshots"
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
PASSWORD = "Browser-Test-Passwort-1"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def missing(what: str) -> None:
    """Skip (locally) or fail (in CI) for a missing browser-test prerequisite."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} missing in CI")
    pytest.skip(f"{what} not available")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def live_server(app: Any, *, start_timeout_s: float = 20) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on a free loopback port (as the service runs,
    without lifespan events); yields the base URL and stops the server afterwards."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout_s
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                pytest.fail("the test server did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, one per test module."""
    playwright_sync = pytest.importorskip("playwright.sync_api")
    executable = shutil.which("chromium")
    if executable is None:
        missing("chromium")
    if not AXE.exists():
        missing(f"axe-core ({AXE}; run `npm ci` in the repository)")
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
        signed_in = page.get_by_text(f"Angemeldet als {user}").count()
        assert signed_in == 1, f"{user}: 'Angemeldet als {user}' shown {signed_in} times"

    def close(self) -> None:
        foreign = [u for u in self.requests if urlparse(u).hostname not in ("127.0.0.1", None)]
        foreign = [u for u in foreign if not u.startswith(("data:", "blob:", "about:"))]
        self.context.close()
        assert not foreign, f"requests left the server: {foreign}"
        csp = [m for m in self.console_errors if "Content Security Policy" in m]
        assert not csp, f"blocked by the content security policy: {csp}"


@pytest.fixture
def visit(browser: Any, base_url: str) -> Iterator[Callable[[], Visit]]:
    """``visit()`` opens a new browser context (a user) on the module's server; every one is
    closed, with its checks, after the test."""
    opened: list[Visit] = []

    def make() -> Visit:
        v = Visit(browser, base_url)
        opened.append(v)
        return v

    yield make
    for v in opened:
        v.close()
