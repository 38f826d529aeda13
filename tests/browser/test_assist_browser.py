"""The review queue in a real browser: accept, edit and reject suggestions, the answer draft
with clickable sources, axe-core (WCAG 2.1 A/AA) on every page, nothing fetched elsewhere.

Uses the chromium, axe-core and per-page checks of ``browser_support``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import browser_support
import pytest
from browser_support import PASSWORD, live_server

from conftest import FIXTURES

pytest.importorskip("playwright.sync_api")
# the shared fixtures (tests/browser/browser_support.py)
browser, visit = browser_support.browser, browser_support.visit

REQUESTS = {
    "B-wohngeld": "Sehr geehrte Damen und Herren, ich möchte Wohngeld beantragen. Meine Miete "
    "ist auf 950 Euro gestiegen. Mit freundlichen Grüßen, Aylin Demir",
    "B-kfz": "Guten Tag, ich habe einen Gebrauchtwagen gekauft und möchte ihn zulassen. Welche "
    "Unterlagen brauche ich für die Zulassung? Gruß, Lukas Becker",
    "B-vage": "Bitte senden Sie mir die Unterlagen noch einmal zu.",
}


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import datenlabor
    from datenlabor.access.principal import Principal
    from datenlabor.assist import inbox, kb
    from datenlabor.web.app import create_app
    from test_assist_triage import install_model

    pool = datenlabor.open(tmp_path_factory.mktemp("assist-browser") / "pool", user="seed",
                           assist_min_confidence=0.7)  # fmt: skip
    app = create_app(pool)
    gate = app.state.gate
    gate.accounts.add_org("amt", "Bürgeramt Musterstadt")
    gate.accounts.add_user("analyst", org="amt", role="analyst", password=PASSWORD)
    gate.accounts.add_user("viewer", org="amt", role="viewer", password=PASSWORD)
    install_model(pool)
    admin = Principal("seed", role="admin", organisation="amt", via="local")
    doc = FIXTURES / "assist_kb" / "merkblatt_wohngeld.html"
    kb.add_documents(gate, admin, [(doc.name, doc)], org="amt")
    inbox.add(
        gate, admin, [inbox.Request(text=t, request_id=i) for i, t in REQUESTS.items()], org="amt"
    )
    with live_server(app) as url:
        yield url
    pool.store.dispose()


def test_review_queue_accept_edit_reject(visit: Any) -> None:
    v = visit()
    v.login("analyst")
    page = v.go("/assist")
    v.axe("assist-queue")
    rows = page.locator("table.assist-queue tbody tr")
    assert rows.count() == 3
    assert "an eine Person" in rows.filter(has_text="B-vage").inner_text()

    # Accept: the routing suggestion with its evidence highlighted.
    page.get_by_role("link", name="B-wohngeld").click()
    page.wait_for_url(re.compile(r"/assist/requests/B-wohngeld$"))
    v.axe("assist-request")
    marks = page.locator(".request-text mark").all_inner_texts()
    assert any("Wohngeld" in m for m in marks)
    assert "Wohngeldstelle" in page.locator("table.triage-facts").inner_text()
    page.get_by_role("button", name="Vorschlag übernehmen").click()
    page.wait_for_url(re.compile(r"done=assist_decided"))
    v.axe()
    assert page.get_by_text("Die Entscheidung ist gespeichert.").count() == 1
    assert "übernommen von analyst" in page.locator("p.decision").inner_text()

    # The answer draft: numbered sources that can be followed, then edited and accepted.
    page.get_by_role("button", name="Antwortentwurf erstellen").click()
    page.wait_for_url(re.compile(r"done=assist_answer"))
    v.axe("assist-answer")
    source_link = page.locator(".answer a[href^='#quelle-']").first
    target = source_link.get_attribute("href")
    source_link.click()
    page.wait_for_url(re.compile(re.escape(target or "#") + "$"))
    assert page.locator(target or "#none").is_visible()
    page.get_by_label("Antworttext").fill("Ihr Antrag auf Wohngeld ist eingegangen.")
    page.get_by_role("button", name="Ändern und übernehmen").click()
    page.wait_for_url(re.compile(r"done=assist_decided"))
    v.axe()
    assert page.locator(".answer p.decision").inner_text().startswith("Entschieden: geändert")

    # Edit: no suggestion for the vague request; the caseworker routes it.
    v.go("/assist/requests/B-vage")
    assert page.get_by_role("button", name="Vorschlag übernehmen").count() == 0
    page.get_by_label("Leistung").select_option("meldewesen")
    page.get_by_role("button", name="Ändern und übernehmen").click()
    page.wait_for_url(re.compile(r"done=assist_decided"))
    v.axe()
    assert "Bürgeramt (Meldebehörde)" in page.locator("p.decision").inner_text()

    # Reject with a reason.
    v.go("/assist/requests/B-kfz")
    page.get_by_label("Begründung (optional)").fill("Zuständig ist der Landkreis")
    page.get_by_role("button", name="Vorschlag verwerfen").click()
    page.wait_for_url(re.compile(r"done=assist_decided"))
    assert "Zuständig ist der Landkreis" in page.locator("p.decision").inner_text()

    page = v.go("/assist")
    assert page.get_by_text("Keine Anfragen in dieser Auswahl.").count() == 1
    page.get_by_label("Status").select_option("all")
    page.get_by_role("button", name="Anzeigen").click()
    page.wait_for_url(re.compile(r"status=all"))
    v.axe("assist-queue-all")
    assert page.locator("table.assist-queue tbody tr").count() == 3


def test_viewer_has_no_review_queue(visit: Any) -> None:
    v = visit()
    v.login("viewer")
    assert v.page.get_by_role("link", name="Vorgänge").count() == 0
    page = v.go("/assist")
    assert page.get_by_role("heading", name=re.compile("Kein Zugriff")).count() == 1
