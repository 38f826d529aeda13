"""The AI governance pages in a real browser (Debian chromium through Playwright), with
axe-core (WCAG 2.1 A/AA) on every page: the public register with history and diff, the impact
assessment form, the fairness report with its Plotly charts, and the marketplace flow."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import browser_support
import numpy as np
import pytest
from browser_support import PASSWORD, live_server

pytest.importorskip("playwright.sync_api")
# the shared fixtures (tests/browser/browser_support.py)
browser, visit = browser_support.browser, browser_support.visit


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import datenlabor
    from datenlabor.access.principal import Principal
    from datenlabor.governance import audits, marketplace, register
    from datenlabor.governance.fairness import Thresholds, audit
    from datenlabor.store.models import AssistModel
    from datenlabor.web.app import create_app

    pool = datenlabor.open(tmp_path_factory.mktemp("gov-browser") / "pool", user="seed")
    app = create_app(pool)
    gate = app.state.gate
    gate.accounts.add_org("stadt", "Stadt Musterstadt")
    gate.accounts.add_org("land", "Landesamt")
    gate.accounts.add_user("steward", org="stadt", role="steward", password=PASSWORD)
    gate.accounts.add_user("analyst", org="land", role="analyst", password=PASSWORD)
    admin = Principal("seed", "admin", via="local")
    with pool.store.session() as s, s.begin():
        s.add(AssistModel(name="triage", version=1, kind="sklearn", dataset="anfragen",
                          dataset_version=2, params={}, metrics={"holdout": {"accuracy": 0.93}},
                          active=True, created_by="seed"))  # fmt: skip
    entry = register.create(pool.store, admin, {
        "name": "Zuordnung eingehender Anfragen", "short_description": "Schlägt die zuständige "
        "Stelle vor; eine Person entscheidet.", "status": "in_use", "category": "B"},
        organisation="stadt", model_name="triage", public=True)  # fmt: skip
    register.edit(pool.store, admin, entry.slug, {"contact": "ki@musterstadt.de"})
    rng = np.random.default_rng(2)
    groups = ["Nord"] * 200 + ["Süd"] * 200
    pred = list(rng.random(200) < 0.5) + list(rng.random(200) < 0.25)
    t = Thresholds(n_boot=100)
    result = audit(pred, {"region": groups}, None, t)
    result["source"] = {"kind": "dataset", "dataset": "bewertung", "version": 1}
    audits.store(gate, admin, result, entry=entry.slug, schedule=False, thresholds=t)
    marketplace.from_register(pool.store, admin, entry.slug, level="municipal")
    marketplace.create(pool.store, admin, {"title": "Chatbot Bürgerservice", "problem":
                       "Viele gleiche Fragen.", "authority": "Stadt Musterstadt",
                       "status": "idea", "level": "municipal", "technique": "llm"},
                       organisation="stadt")  # fmt: skip
    with live_server(app) as url:
        yield url
    pool.store.dispose()


def test_register_history_and_report_as_anonymous(visit: Any) -> None:
    v = visit()
    page = v.go("/governance")
    v.axe("governance-register")
    page.get_by_role("link", name="Zuordnung eingehender Anfragen").click()
    page.wait_for_url(re.compile(r"/governance/register/"))
    v.axe("governance-entry")
    assert page.get_by_text("triage@1").count() >= 1  # filled from the deployed model
    assert page.get_by_role("heading", name="Bearbeiten").count() == 0  # no form for the public
    assert page.get_by_role("alert").count() == 1  # the flagged audit shows on the entry
    page.get_by_role("link", name="Versionsgeschichte").click()
    v.axe("governance-history")
    page.get_by_label("Von Version", exact=True).select_option("2")
    page.get_by_label("bis Version", exact=True).select_option("3")
    page.get_by_role("button", name="Vergleichen").click()
    page.wait_for_url(re.compile(r"a=2&b=3"))
    v.axe()
    assert "ki@musterstadt.de" in page.locator("table.diff").inner_text()
    v.go("/governance/register/zuordnung-eingehender-anfragen")
    page.get_by_role("alert").get_by_role("link", name="Bericht").click()
    page.wait_for_url(re.compile(r"/governance/audits/\d+$"))
    page.locator("#fig-region .main-svg").first.wait_for()  # Plotly drew the chart
    v.axe("governance-audit")
    assert "auffällig" in page.locator("main").inner_text()


def test_assessment_flow(visit: Any) -> None:
    v = visit()
    v.login("steward")
    page = v.page
    v.go("/governance/register/zuordnung-eingehender-anfragen")
    page.get_by_role("link", name="Folgenabschätzung durchführen").click()
    page.wait_for_url(re.compile(r"/assess$"))
    v.axe("governance-assess")
    page.get_by_label("empfiehlt ein Ergebnis, das eine Person prüft").check()
    page.get_by_label("erheblich (Zugang zu Leistungen, Geld, Aufenthalt, Freiheit)").check()
    page.get_by_label("nur mit Aufwand umkehrbar").check()
    page.get_by_label("personenbezogene Daten", exact=True).check()
    page.get_by_label("lernendes, aber interpretierbares Modell mit Begründung").check()
    page.get_by_label("1.000 bis 100.000").check()
    page.get_by_label(re.compile("^5 a Anspruch auf öffentliche")).check()
    page.get_by_label(re.compile("^Prüft eine Person jeden Vorschlag")).check()
    page.get_by_role("button", name="Bewerten und speichern").click()
    page.wait_for_url(re.compile(r"done=gov_assessed"))
    v.axe("governance-assessed")
    text = page.locator("main").inner_text()
    assert "hohes Risiko" in text and "Wirkungsstufe" in text
    assert "Grundrechte-Folgenabschätzung nach Art. 27 KI-VO" in text  # an unmet measure


def test_marketplace_filter_comment_and_interest(visit: Any) -> None:
    v = visit()
    page = v.go("/governance/marktplatz")
    v.axe("governance-marketplace")
    page.get_by_label("Status").select_option("idea")
    page.get_by_role("button", name="Filtern").click()
    page.wait_for_url(re.compile(r"status=idea"))
    v.axe()
    assert page.locator("tbody tr").count() == 1
    page.get_by_role("link", name="Chatbot Bürgerservice").click()
    v.axe("governance-usecase-anonymous")
    assert page.get_by_role("link", name="Zum Mitmachen anmelden").count() == 1
    w = visit()
    w.login("analyst")
    page = w.go("/governance/marktplatz/chatbot-buergerservice")
    page.get_by_label("Kommentar").fill("Bitte auch in leichter Sprache anbieten.")
    page.get_by_role("button", name="Kommentieren").click()
    page.wait_for_url(re.compile(r"done=gov_reacted"))
    w.axe("governance-usecase-comment")
    page.get_by_role("button", name="Interesse an Nachnutzung bekunden").click()
    page.wait_for_url(re.compile(r"done=gov_reacted"))
    text = page.locator("main").inner_text()
    assert "Bitte auch in leichter Sprache anbieten." in text
    assert "Interesse an Nachnutzung: 1" in text and "Landesamt" in text
    w.go("/governance/marktplatz/neu")
    w.axe("governance-usecase-new")
