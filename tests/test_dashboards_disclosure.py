"""Disclosure control on shared dashboards (SQLite and PostgreSQL): small counts suppressed
for viewers without microdata access, secondary suppression against totals, case lists
withheld, "." in CSV, provenance naming the rules; owners see everything."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from datenlabor.access.principal import ANONYMOUS
from datenlabor.dashboards import versions
from datenlabor.dashboards.filters import parse_filters
from datenlabor.dashboards.render import CACHE, cases, render
from datenlabor.dashboards.suppression import Withheld
from datenlabor.dashboards.tile import to_csv
from datenlabor.disclosure import TOTAL, Dim, Rules, audit
from datenlabor.errors import BadInput
from datenlabor.pool.catalog import DatasetMeta
from datenlabor.procedures import import_log
from datenlabor.service.gate import Gate

PASSWORD = "Geheimhaltung-Test-42"
# Kreis -> cases; 05315 (2) and 09184 (1) are below the minimum frequency of 3.
KREISE = {"05111": 10, "05315": 2, "05711": 6, "09162": 8, "09184": 1}
SPEC = """\
title: Anträge
visibility: public
sources:
  log: {log: antraege-log, end_activities: [Bescheid]}
  tab: {dataset: stellen}
filters:
  - {id: period, type: period}
  - {id: land, type: region, column: region, level: land}
  - {id: channel, type: select, column: channel}
tiles:
  - {id: cases, type: kpi, measure: cases}
  - {id: median, type: kpi, measure: throughput_median}
  - {id: kreise, type: map, value: cases, level: kreis, key: region}
  - {id: laender, type: map, value: cases, level: land, key: region}
  - {id: by-channel, type: bar, metric: throughput, by: channel, y: [median_s]}
  - {id: process, type: process_map}
  - {id: edges, type: table, metric: dfg}
  - {id: list, type: table, metric: cases}
  - {id: spread, type: histogram, bins: 5}
  - {id: staff, type: bar, source: tab, x: kanal, y: stellen}
  - {id: weekly, type: line, metric: cases_over_time, freq: week, y: [started, completed, open_at_end]}
  - {id: waiting, type: bar, metric: waiting_times}
  - {id: variants, type: table, metric: variants, limit: 5}
  - {id: late, type: bar, metric: deadline, by: channel, deadline: "Eingang -> Bescheid within 10 days"}
  - {id: rework, type: table, metric: rework}
  - {id: bottlenecks, type: table, metric: bottlenecks, limit: 3}
"""
COUNTS = (
    "cases",
    "count",
    "events",
    "started",
    "completed",
    "met",
    "breached",
    "overdue",
    "open",
    "cases_repeated",
    "open_at_end",
)


def _log_csv(path: Path) -> Path:
    """27 cases: channels online (20), vor Ort (5), Post (2); one case objects (rare path)."""
    lines = ["case_id,activity,timestamp,region,channel"]
    start = datetime(2024, 1, 8, 9)
    n = 0
    for kreis, count in KREISE.items():
        for _ in range(count):
            channel = "Post" if n in (3, 17) else "vor Ort" if n % 6 == 5 else "online"
            t0 = start + timedelta(days=2 * n)
            steps = ["Eingang", "Widerspruch" if n == 4 else "Prüfung", "Bescheid"]
            for j, act in enumerate(steps):
                t = t0 + timedelta(days=j * (3 + n % 7), hours=j)
                lines.append(f"A-{n:03d},{act},{t:%Y-%m-%dT%H:%M:%S},{kreis},{channel}")
            n += 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def shared(pool: Any, tmp_path: Path) -> Gate:
    gate = Gate(pool)
    gate.accounts.add_org("amt", "Landesamt")
    gate.accounts.add_org("kommune", "Kommune")
    gate.accounts.add_user("eigen", org="amt", role="steward", password=PASSWORD)
    gate.accounts.add_user("fremd", org="kommune", role="analyst", password=PASSWORD)
    meta = DatasetMeta(publisher="amt", visibility="internal", title="Anträge")
    import_log(pool, _log_csv(tmp_path / "log.csv"), dataset="antraege-log", meta=meta)
    stellen = tmp_path / "stellen.csv"
    rows = ["kanal;stellen"] + [f"online;{i}" for i in range(1, 8)] + ["Post;4", "Post;5"]
    rows += [f"vor Ort;{i}" for i in range(3)]
    stellen.write_text("\n".join(rows) + "\n", encoding="utf-8")
    pool.ingest(
        stellen, dataset="stellen", meta=DatasetMeta(publisher="amt", visibility="internal")
    )
    versions.put(pool, gate.accounts.authenticate("eigen", PASSWORD), "antraege", SPEC)
    CACHE.clear()
    return gate


def _tiles(gate: Gate, who: Any, params: dict[str, list[str]] | None = None) -> dict[str, Any]:
    d = versions.get(gate.pool, "antraege")
    return {t.id: t for t in render(gate, who, d, parse_filters(d.spec, params or {}))}


def _hidden(tile: Any, column: str) -> set[str]:
    key = "key" if tile.type == "map" else tile.x
    return {str(r[key]) for i, r in enumerate(tile.rows) if column in tile.suppressed[i]}


def test_owner_sees_small_counts_a_shared_viewer_sees_dots(shared: Gate) -> None:
    gate = shared
    owner = _tiles(gate, gate.accounts.authenticate("eigen", PASSWORD))
    other = _tiles(gate, gate.accounts.authenticate("fremd", PASSWORD))
    assert {r["key"]: r["cases"] for r in owner["kreise"].rows} == KREISE
    assert not any(owner["kreise"].suppressed) and "disclosure" not in owner["kreise"].provenance

    # Primary: the Kreise with 1 and 2 cases; secondary: in Land 09 (whose total the Land
    # map shows) the only other Kreis too, in Land 05 one more Kreis.
    hidden = _hidden(other["kreise"], "cases")
    assert {"05315", "09184", "09162"} <= hidden and len(hidden & {"05111", "05711"}) == 1
    for i, r in enumerate(other["kreise"].rows):
        assert (r["cases"] is None) == ("cases" in other["kreise"].suppressed[i])
        assert r["cases"] in (None, KREISE[r["key"]])
    assert {r["key"]: r["cases"] for r in other["laender"].rows} == {"05": 18, "09": 9}
    assert other["cases"].kpi["value"] == 27
    regions = {g["key"]: g for g in other["kreise"].graph["regions"] if g["key"] in KREISE}
    assert regions["05315"].get("suppressed") and regions["05315"]["value"] is None

    # What the viewer sees, put together as one table (Kreise, Länder, total), passes the
    # disclosure layer's audit: no suppressed count can be narrowed below 3.
    codes, counts = [TOTAL], [27]
    for tile in (other["laender"], other["kreise"]):
        codes += [r["key"] for r in tile.rows]
        counts += [r["cases"] for r in tile.rows]
    status = ["" if c is not None else "primary" for c in counts]
    published = pa.table({"region": codes, "n": pa.array(counts, pa.int64()), "status": status})
    hierarchy: dict[str, str | None] = {k: k[:2] for k in KREISE} | {"05": None, "09": None}
    assert audit(published, Rules(dims=[Dim("region", hierarchy)], dominance=None)) == []

    # The channel chart: "Post" (2 completed cases) is primary; one more channel hides it
    # from the total of completed cases; extremes of single cases are not shown at all.
    chan = other["by-channel"]
    assert "Post" in _hidden(chan, "median_s") and len(_hidden(chan, "cases")) >= 2
    assert "min_s" not in chan.rows[0] and "max_s" not in chan.rows[0]
    csv = to_csv(chan).splitlines()
    post = next(line for line in csv if line.startswith("Post;"))
    assert post.split(";")[1:3] == [".", "."]
    prov = chan.provenance["disclosure"]
    assert prov["rules"]["min_frequency"] == 3 and prov["reason"] == "no_microdata"
    assert prov["datasets"] == ["antraege-log"]


def test_no_tile_shows_a_small_count(shared: Gate) -> None:
    gate = shared
    for who in (gate.accounts.authenticate("fremd", PASSWORD), ANONYMOUS):
        for params in ({}, {"f": ["1"], "channel": ["vor Ort"]}, {"f": ["1"], "land": ["09"]}):
            tiles = _tiles(gate, who, params)
            for t in tiles.values():
                if t.status != "ok":
                    continue
                assert t.provenance["disclosure"]["rules"]["min_frequency"] == 3, t.id
                assert t.drill is None, t.id
                for r in t.rows:
                    for c in COUNTS:
                        assert not (r.get(c) is not None and 0 < r[c] < 3), (t.id, r)
                    assert r.get("min_s") is None and r.get("max_s") is None, t.id
                if t.kpi is not None and t.kpi["kind"] == "int" and t.kpi["value"] is not None:
                    assert not 0 < t.kpi["value"] < 3, t.id
    owner = _tiles(gate, gate.accounts.authenticate("eigen", PASSWORD))
    assert any(0 < (r.get("cases") or 0) < 3 for r in owner["variants"].rows)
    assert any(0 < (r.get("events") or 0) < 3 for r in owner["waiting"].rows)


def test_case_lists_process_maps_histograms_and_datasets(shared: Gate) -> None:
    gate = shared
    owner_p = gate.accounts.authenticate("eigen", PASSWORD)
    other_p = gate.accounts.authenticate("fremd", PASSWORD)
    owner, other = _tiles(gate, owner_p), _tiles(gate, other_p)
    d = versions.get(gate.pool, "antraege")
    state = parse_filters(d.spec, {})

    # Case lists and drill-downs: the owner gets them, the shared viewer does not.
    assert owner["list"].status == "ok" and len(owner["list"].rows) == 20
    assert other["list"].status == "withheld" and other["list"].rows == []
    _data, counts = cases(gate, owner_p, d, state, "kreise", {"value": "09184"})
    assert counts["total"] == 1
    with pytest.raises(Withheld):
        cases(gate, other_p, d, state, "kreise", {"value": "09184"})
    assert other["kreise"].drill is None and other["process"].drill is None

    # The rare path (one case objected) is suppressed in the table and not drawn. Every
    # activity's events flow in and out again, so the events of "Eingang" minus the main path
    # would give the rare path away: the main path beside it is hidden too.
    rare = [("Eingang", "Widerspruch"), ("Widerspruch", "Bescheid")]
    for i, r in enumerate(other["edges"].rows):
        assert (r["count"] is None) == (
            (r["from"], r["to"]) in rare or "count" in other["edges"].suppressed[i]
        )
    assert all(
        "count" in other["edges"].suppressed[i]
        for i, r in enumerate(other["edges"].rows)
        if (r["from"], r["to"]) in rare
    )
    drawn = {(e["from"], e["to"]) for e in other["process"].graph["edges"]}
    assert not drawn & set(rare)
    main = [("Eingang", "Prüfung"), ("Prüfung", "Bescheid")]
    assert drawn.isdisjoint(main) or sum("count" in s for s in other["edges"].suppressed) >= 3
    _assert_flow_protected(other)
    assert {(e["from"], e["to"]) for e in owner["process"].graph["edges"]} >= set(rare)
    nodes = {n["id"]: n["count"] for n in other["process"].graph["nodes"]}
    assert nodes.get("Widerspruch") is None

    # Histogram: from 0 to a rounded bound, not from the shortest to the longest case.
    spread = other["spread"]
    assert spread.rows[0]["from_s"] == 0
    assert (spread.rows[-1]["to_s"] / 86400) in (1, 2, 5, 10, 20, 50, 100)
    assert sum(r["cases"] or 0 for r in spread.rows) <= 27

    # A dataset tile: "Post" rests on 2 rows, so it is hidden, with one other group.
    staff = other["staff"]
    assert "Post" in _hidden(staff, "stellen") and len(_hidden(staff, "stellen")) >= 2
    assert {r["kanal"]: r["stellen"] for r in owner["staff"].rows}["Post"] == 9
    assert "__n" not in staff.rows[0]


def _assert_flow_protected(tiles: dict[str, Any]) -> None:
    """The attacker's LP over what the viewer sees of the graph (edges, events per activity,
    starts and ends, the number of cases) cannot narrow the rare path below 3."""
    import numpy as np
    import scipy.sparse as sp

    from datenlabor.disclosure.attacker import Attacker

    edges = tiles["edges"].rows
    nodes = {n["id"]: n.get("count") for n in tiles["process"].graph["nodes"] if not n["virtual"]}
    names = sorted({r["from"] for r in edges} | {r["to"] for r in edges})
    virtual = {
        (e["from"], e["to"]): e["count"] for e in tiles["process"].graph["edges"] if e["virtual"]
    }
    cells: list[float | None] = [r["count"] for r in edges]
    cells += [virtual.get(("▶", a)) for a in names] + [virtual.get((a, "■")) for a in names]
    cells += [nodes.get(a) for a in names] + [27]
    k, e = len(names), len(edges)
    rows, cols, vals = [], [], []
    for j, a in enumerate(names):
        for i, r in enumerate(edges):
            if r["to"] == a:
                rows.append(2 * j), cols.append(i), vals.append(1.0)
            if r["from"] == a:
                rows.append(2 * j + 1), cols.append(i), vals.append(1.0)
        rows += [2 * j, 2 * j + 1, 2 * j, 2 * j + 1, 2 * k, 2 * k + 1]
        cols += [e + j, e + k + j, e + 2 * k + j, e + 2 * k + j, e + j, e + k + j]
        vals += [1.0, 1.0, -1.0, -1.0, 1.0, 1.0]
    rows += [2 * k, 2 * k + 1]
    cols += [len(cells) - 1] * 2
    vals += [-1.0, -1.0]
    matrix = sp.csr_matrix((vals, (rows, cols)), shape=(2 * k + 2, len(cells)))
    hidden = np.array([c is None for c in cells])
    published = np.array([np.nan if c is None else float(c) for c in cells])
    attacker = Attacker(matrix, published, hidden)
    rare = next(
        i for i, r in enumerate(edges) if (r["from"], r["to"]) == ("Eingang", "Widerspruch")
    )
    _lo, hi = attacker.interval(rare, low=False, high=True)
    assert hi >= 3


def test_kpis_trends_cache_and_always(shared: Gate) -> None:
    gate = shared
    owner_p = gate.accounts.authenticate("eigen", PASSWORD)
    post = {"f": ["1"], "channel": ["Post"]}
    owner = _tiles(gate, owner_p, post)
    assert owner["cases"].kpi["value"] == 2
    # Same filters, cached entries: the other organisation does not get the owner's entry.
    other = _tiles(gate, gate.accounts.authenticate("fremd", PASSWORD), post)
    assert other["cases"].kpi["value"] is None and other["cases"].kpi["suppressed"] == ["value"]
    assert other["median"].kpi["value"] is None
    assert to_csv(other["cases"]).splitlines() == ["value", "."]
    # A period with a trend: the previous period had no case, this one few.
    trend = {"f": ["1"], "period_from": ["2024-01-01"], "period_to": ["2024-01-09"]}
    t = _tiles(gate, gate.accounts.authenticate("fremd", PASSWORD), trend)["cases"]
    assert t.kpi["value"] is None and t.kpi["change"] is None

    # "always": the owners see the dashboard as everyone else does.
    text = SPEC.replace("visibility: public", "visibility: public\ndisclosure: {apply: always}")
    versions.put(gate.pool, owner_p, "antraege", text)
    mine = _tiles(gate, owner_p)
    assert mine["kreise"].provenance["disclosure"]["reason"] == "always"
    assert {"05315", "09184"} <= _hidden(mine["kreise"], "cases")
    assert mine["list"].status == "withheld"
    # A higher minimum frequency hides more.
    text = SPEC.replace("visibility: public", "visibility: public\ndisclosure: {min_frequency: 7}")
    versions.put(gate.pool, owner_p, "antraege", text)
    seven = _tiles(gate, gate.accounts.authenticate("fremd", PASSWORD))
    assert {"05315", "09184", "05711"} <= _hidden(seven["kreise"], "cases")
    assert seven["kreise"].provenance["disclosure"]["rules"]["min_frequency"] == 7


def test_disclosure_block_is_validated(shared: Gate) -> None:
    owner_p = shared.accounts.authenticate("eigen", PASSWORD)
    bad = SPEC.replace("visibility: public", "visibility: public\ndisclosure: {min_frequency: 1}")
    with pytest.raises(BadInput) as info:
        versions.put(shared.pool, owner_p, "antraege", bad)
    assert info.value.line == 3 and info.value.column == "disclosure.min_frequency"
    bad = SPEC.replace("visibility: public", "visibility: public\ndisclosure: {apply: never}")
    with pytest.raises(BadInput, match="auto"):
        versions.put(shared.pool, owner_p, "antraege", bad)


def test_page_csv_and_print_show_dots_with_the_legend(shared: Gate) -> None:
    import re

    from starlette.testclient import TestClient

    from datenlabor.web.app import create_app
    from datenlabor.web.ui_dashboards import print_html

    app = create_app(shared.pool)
    c = TestClient(app)
    page = c.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', page.text)
    assert token
    c.post(
        "/login",
        data={"username": "fremd", "password": PASSWORD, "login_token": token[1], "next": "/"},
    )
    html = c.get("/dashboards/antraege").text
    kreise = html[html.index('id="tile-kreise"') : html.index('id="tile-laender"')]
    assert '<td class="num">.</td>' in kreise and "Zahlenwert geheim gehalten" in kreise
    assert "Geheimhaltung: Mindestfallzahl 3" in kreise and "/cases?" not in html
    assert "Nicht angezeigt: Einzelfälle" in html  # the case list
    r = c.get("/api/v1/dashboards/antraege/tiles/kreise/csv")
    lines = r.content.decode("utf-8-sig").splitlines()
    assert (
        "09184;München, Landkreis;.;." in lines
        and "05111;Düsseldorf, Kreisfreie Stadt;10;10" in lines
    )
    r = c.get("/api/v1/dashboards/antraege/tiles/kreise")
    body = r.json()
    assert body["provenance"]["disclosure"]["rules"]["min_frequency"] == 3
    row = next(i for i, x in enumerate(body["rows"]) if x["key"] == "09184")
    assert body["rows"][row]["cases"] is None and body["suppressed"][row] == ["cases", "value"]
    assert c.get("/api/v1/dashboards/antraege/cases?tile=kreise&d_value=09184").status_code == 403
    # The PDF is printed from the same page: the same dots for the same viewer.
    d = versions.get(shared.pool, "antraege")
    fremd = shared.accounts.authenticate("fremd", PASSWORD)
    printed = print_html(shared, fremd, d, parse_filters(d.spec, {}))
    assert '<td class="num">.</td>' in printed and "Zahlenwert geheim gehalten" in printed
    owner = print_html(
        shared, shared.accounts.authenticate("eigen", PASSWORD), d, parse_filters(d.spec, {})
    )
    assert '<td class="num">.</td>' not in owner
