"""The demo dashboards in a real browser: load, filter, drill down, export; axe-core on
every page. Same set-up as ``test_ui_browser.py`` (``browser_support``: Debian chromium
through Playwright, a uvicorn server on a temporary pool, no request may leave the server)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import browser_support
import pytest
from browser_support import PASSWORD, Visit, live_server

from conftest import shared_file

pytest.importorskip("playwright.sync_api")
browser = browser_support.browser  # the shared fixture (tests/browser/browser_support.py)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import datenlabor
    from datenlabor.dashboards import demo
    from datenlabor.web.app import create_app

    shared = shared_file("eventlogs/receipt.xes.gz").parents[1]
    pool = datenlabor.open(tmp_path_factory.mktemp("dash-browser") / "pool", user="seed")
    app = create_app(pool)
    accounts = app.state.gate.accounts
    accounts.add_org("bmas-demo", "Bundesministerium (Demo)")
    accounts.add_org("kommune", "Eine Kommune")
    # The publisher's analyst sees the microdata; a Kommune's analyst does not (disclosure
    # control on the shared dashboards).
    accounts.add_user("bmas-analyse", org="bmas-demo", role="analyst", password=PASSWORD)
    accounts.add_user("kommune-analyse", org="kommune", role="analyst", password=PASSWORD)
    demo.load_demo_dashboards(pool, shared, log=lambda _m: None)
    with live_server(app) as url:
        yield url
    pool.store.dispose()


@pytest.fixture
def v(browser: Any, base_url: str) -> Iterator[Visit]:
    visit = Visit(browser, base_url)
    yield visit
    visit.close()


def _kpi(page: Any, tile: str) -> str:
    return str(page.locator(f"#tile-{tile} .kpi-value").inner_text())


def test_filter_map_drill_down_and_export(v: Visit, tmp_path: Path) -> None:
    v.login("bmas-analyse")
    page = v.go("/dashboards")
    v.axe("dashboards-list")
    page.get_by_role("link", name=re.compile("Leistungsanträge nach Region")).click()
    page.wait_for_url(re.compile(r"/dashboards/leistungsantraege$"))
    page.locator("#chart-weekly .main-svg").first.wait_for()
    v.axe("dashboard-regions")
    everyone = _kpi(page, "cases")

    # A filter changes every tile at once.
    page.get_by_label("Land", exact=True).select_option("05")
    page.get_by_label("Eingangskanal").select_option("online")
    page.get_by_role("button", name="Filter anwenden").click()
    page.wait_for_url(re.compile(r"region=05"))
    page.locator("#chart-weekly .main-svg").first.wait_for()
    v.axe("dashboard-filtered")
    assert _kpi(page, "cases") != everyone
    assert "Land: Nordrhein-Westfalen" in page.get_by_role("status").inner_text()
    land_rows = page.locator("#tile-map-land table tbody tr")
    assert land_rows.count() == 1 and "Nordrhein-Westfalen" in land_rows.text_content()
    nrw_cases = land_rows.locator("td").nth(2).text_content()

    # Export: CSV of a tile, PNG of a chart and of the map (drawn in the browser).
    with page.expect_download() as info:
        page.locator("#tile-by-channel").get_by_role("link", name=re.compile("CSV")).click()
    body = Path(info.value.path()).read_bytes()
    assert body.startswith(b"\xef\xbb\xbf") and b"segment;cases;" in body
    assert b"online" in body and b"Post" not in body  # the filter applies to the export
    with page.expect_download() as info:
        page.locator("#tile-by-channel").get_by_role("button", name=re.compile("PNG")).click()
    assert Path(info.value.path()).read_bytes().startswith(b"\x89PNG")
    with page.expect_download() as info:
        page.locator("#tile-map-land").get_by_role("button", name=re.compile("PNG")).click()
    assert info.value.suggested_filename == "kachel-map-land.png"
    assert Path(info.value.path()).read_bytes().startswith(b"\x89PNG")

    # Drill down from the map: the cases of NRW under the same filters.
    page.locator("#tile-map-land svg a").first.click()
    page.wait_for_url(re.compile(r"/cases\?.*d_value=05"))
    v.axe("dashboard-cases")
    status = page.get_by_role("status").inner_text()
    assert status.startswith(f"{nrw_cases} Fälle")  # the cases behind the map's number
    assert page.locator("table.data tbody tr").count() > 0
    page.get_by_role("link", name=re.compile("Zurück zum Dashboard")).click()
    page.wait_for_url(re.compile(r"/dashboards/leistungsantraege\?.*region=05"))


def test_click_on_bar_and_process_edge(v: Visit) -> None:
    v.login("bmas-analyse")
    page = v.go("/dashboards/eingangsphase")
    page.locator("#chart-by-channel .main-svg").first.wait_for()
    v.axe("dashboard-receipt")
    # Clicking a bar of the channel chart opens the cases of that channel.
    bars = page.locator("#chart-by-channel .trace.bars .point path")
    bars.first.scroll_into_view_if_needed()
    boxes = [bars.nth(i).bounding_box() for i in range(bars.count())]
    box = max((b for b in boxes if b), key=lambda b: b["height"])  # the tallest bar
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] - 3
    page.mouse.move(x, y)  # Plotly reports the click on the point it hovers
    page.locator("#chart-by-channel .hoverlayer .hovertext").first.wait_for()
    page.mouse.click(x, y)
    page.wait_for_url(re.compile(r"/cases\?.*d_value="))
    v.axe()
    assert page.locator("table.data tbody tr").count() > 0
    page.go_back()
    # A process-map edge is a link, reachable by keyboard.
    edge = page.locator("#tile-process svg a").first
    edge.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/cases\?.*d_from="))
    v.axe("dashboard-edge-cases")
    assert page.locator("table.data tbody tr").count() > 0
    page.goto("/dashboards/eingangsphase?lang=en")
    v.axe("dashboard-receipt-en")
    assert page.get_by_role("button", name="Apply filters").count() == 1


def _kreis_counts(page: Any) -> dict[str, str]:
    rows = page.locator("#tile-map-kreis table.data tbody tr")
    out = {}
    for i in range(rows.count()):
        cells = rows.nth(i).locator("td")
        # text_content: the data table sits in a closed <details>
        out[str(cells.nth(0).text_content()).strip()] = str(cells.nth(2).text_content()).strip()
    return out


def test_shared_viewer_sees_dots_where_the_owner_sees_small_counts(
    browser: Any, base_url: str
) -> None:
    # Few cases per Kreis: one channel and one application type.
    url = "/dashboards/leistungsantraege?f=1&channel=vor+Ort&case-type=%C3%84nderung"
    owner = Visit(browser, base_url)
    try:
        owner.login("bmas-analyse")
        page = owner.go(url)
        mine = _kreis_counts(page)
        small = [k for k, n in mine.items() if n in ("1", "2")]
        assert small, mine
        assert "Zahlenwert geheim gehalten" not in page.content()
        assert page.locator("#tile-map-kreis a[href*='/cases?']").count() > 0
    finally:
        owner.close()
    for who in ("kommune-analyse", None):  # another organisation, and anonymous readers
        shared = Visit(browser, base_url)
        try:
            if who:
                shared.login(who)
            page = shared.go(url)
            shared.axe("dashboard-shared-viewer" if who else None)
            theirs = _kreis_counts(page)
            assert set(theirs) == set(mine)
            assert all(theirs[k] == "." for k in small)
            assert all(theirs[k] in (mine[k], ".") for k in mine)
            legend = page.locator("#tile-map-kreis .sdc-legend")
            assert "„.“ = Zahlenwert geheim gehalten" in legend.inner_text()
            assert (
                "Geheimhaltung: Mindestfallzahl 3"
                in page.locator("#tile-map-kreis .provenance").inner_text()
            )
            assert page.locator("a[href*='/cases?']").count() == 0  # no drill-down
            with page.expect_download() as info:
                page.locator("#tile-map-kreis").get_by_role("link", name=re.compile("CSV")).click()
            body = Path(info.value.path()).read_text("utf-8-sig")
            assert any(
                line.startswith(f"{small[0]};") and ";.;" in line for line in body.splitlines()
            )
        finally:
            shared.close()
