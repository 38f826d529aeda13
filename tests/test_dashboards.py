"""Dashboards over the pool: tiles agree with the procedures library, filters, drill-down,
cache, versions and permissions (on SQLite and PostgreSQL), CSV export."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

import datenlabor
from conftest import shared_file
from datenlabor.access.principal import local_admin
from datenlabor.dashboards import versions
from datenlabor.dashboards.demo import SPECS
from datenlabor.dashboards.filters import parse_filters
from datenlabor.dashboards.render import CACHE, cases, render
from datenlabor.dashboards.suppression import Withheld
from datenlabor.dashboards.tile import to_csv
from datenlabor.errors import BadInput, Forbidden, NotFound
from datenlabor.pool.catalog import DatasetMeta
from datenlabor.procedures import Filters, import_log, open_log
from datenlabor.procedures.simulate import Simulation, simulate, write_log
from datenlabor.service.gate import Gate

ADMIN = local_admin("test-admin")
PASSWORD = "Dashboard-Test-42"
RULE = "Confirmation of receipt -> @end within 2 weeks"


def _by_id(tiles: list[Any]) -> dict[str, Any]:
    return {t.id: t for t in tiles}


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a == pytest.approx(b, rel=1e-9)
    return bool(a == b)


def _rows_equal(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        for k, v in w.items():
            assert _close(g[k], v), (k, g[k], v)


# -- the real receipt log (imported once, SQLite store) -------------------------------------
@pytest.fixture(scope="module")
def receipt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    pool = datenlabor.open(tmp_path_factory.mktemp("dash") / "pool", user="test")
    import_log(
        pool,
        shared_file("eventlogs/receipt.xes.gz"),
        dataset="receipt-log",
        meta=DatasetMeta(visibility="public", title="Receipt"),
    )
    versions.put(pool, ADMIN, "eingangsphase", (SPECS / "eingangsphase.yaml").read_text("utf-8"))
    yield pool
    pool.store.dispose()


def _render(pool: Any, params: dict[str, list[str]] | None = None, **kw: Any) -> dict[str, Any]:
    d = versions.get(pool, "eingangsphase")
    state = parse_filters(d.spec, params or {})
    return _by_id(render(Gate(pool), ADMIN, d, state, use_cache=False, **kw))


def test_tiles_agree_with_the_procedures_library(receipt: Any) -> None:
    tiles = _render(receipt)
    assert {t.status for t in tiles.values()} == {"ok"}
    with open_log(receipt, "receipt-log") as log:
        s = log.summary()
        assert tiles["cases"].kpi["value"] == s["cases"] == 1434
        assert tiles["throughput"].kpi["value"] == pytest.approx(s["throughput_median_s"])
        assert tiles["variants-count"].kpi["value"] == s["variants"]
        assert tiles["breach-rate"].kpi["value"] == pytest.approx(
            log.deadline(RULE).totals["breach_rate"]
        )
        _rows_equal(tiles["volume"].rows, log.cases_over_time("month").rows())
        _rows_equal(tiles["by-channel"].rows, log.throughput(by="case:channel").rows())
        _rows_equal(tiles["durations"].rows, log.histogram(30).rows())
        _rows_equal(tiles["process"].rows, log.dfg().rows()[:18])
        _rows_equal(tiles["variants"].rows, log.variants(limit=10).rows())
        _rows_equal(tiles["waiting"].rows, log.waiting_times().rows()[:12])
        _rows_equal(tiles["deadline-month"].rows, log.deadline(RULE, freq="month").rows())
    assert tiles["volume"].x == "period" and tiles["volume"].y == ["started", "completed"]
    prov = tiles["volume"].provenance
    assert prov["datasets"] == [{"slug": "receipt-log", "version": 1, "partial": False}]
    assert prov["analysis"] == "cases_over_time(freq='month')"
    graph = tiles["process"].graph
    drawn = {(e["from"], e["to"]) for e in graph["edges"] if not e["virtual"]}
    assert drawn == {(r["from"], r["to"]) for r in tiles["process"].rows}


def test_filters_change_every_tile_together(receipt: Any) -> None:
    params = {"period_from": ["2011-01-01"], "period_to": ["2011-06-30"], "channel": ["Desk"]}
    tiles = _render(receipt, params)
    filters = Filters(
        start=date(2011, 1, 1), end=date(2011, 7, 1), attributes={"case:channel": ["Desk"]}
    )
    with open_log(receipt, "receipt-log", filters=filters) as log:
        s = log.summary()
        assert 0 < tiles["cases"].kpi["value"] == s["cases"] < 1434
        assert tiles["throughput"].kpi["value"] == pytest.approx(s["throughput_median_s"])
        _rows_equal(tiles["volume"].rows, log.cases_over_time("month").rows())
        _rows_equal(tiles["process"].rows, log.dfg().rows()[:18])
        assert [r["segment"] for r in tiles["by-channel"].rows] == ["Desk"]
        assert tiles["volume"].provenance["filters"] == filters.to_dict()
    # The previous period of the same length (KPI trend).
    prev = Filters(start=date(2010, 7, 3), end=date(2011, 1, 1), attributes=filters.attributes)
    with open_log(receipt, "receipt-log", filters=prev) as log:
        assert tiles["cases"].kpi["previous"] == log.summary()["cases"]
    kpi = tiles["cases"].kpi
    assert kpi["change"] == pytest.approx((kpi["value"] - kpi["previous"]) / kpi["previous"])


def test_bad_filter_values_are_refused(receipt: Any) -> None:
    with pytest.raises(BadInput, match="not a date") as info:
        _render(receipt, {"period_from": ["31.12.2011"]})
    assert info.value.column == "period_from"
    with pytest.raises(BadInput, match="ends before it starts"):
        _render(receipt, {"period_from": ["2011-05-01"], "period_to": ["2011-04-01"]})


def test_drill_down_to_the_cases_behind_a_number(receipt: Any) -> None:
    d = versions.get(receipt, "eingangsphase")
    state = parse_filters(d.spec, {})
    gate = Gate(receipt)
    tiles = _by_id(render(gate, ADMIN, d, state))
    edge = tiles["process"].rows[0]
    data, counts = cases(gate, ADMIN, d, state, "process", {"from": edge["from"], "to": edge["to"]})
    with open_log(receipt, "receipt-log") as log:
        expected = log.cases(edge=(edge["from"], edge["to"]), limit=200)
    assert counts["total"] == expected.totals["cases"] > 0
    assert [r["case_id"] for r in data.rows] == [r["case_id"] for r in expected.rows()]
    assert "case_no" not in data.rows[0]
    # A bar of the monthly volume: exactly the cases started in that month.
    bar = next(r for r in tiles["volume"].rows if r["started"] > 10)
    _data, counts = cases(gate, ADMIN, d, state, "volume", {"period": bar["period"].isoformat()})
    assert counts["total"] == bar["started"]
    # A channel bar: the cases received on that channel.
    seg = tiles["by-channel"].rows[1]
    _data, counts = cases(
        gate, ADMIN, d, state, "by-channel", {"value": seg["segment"], "column": "case:channel"}
    )
    with open_log(receipt, "receipt-log") as log:
        assert counts["total"] == log.throughput(by="case:channel").rows()[1]["cases"]
    # Deadline breaches of a month: the breaching cases of that month.
    month = next(r for r in tiles["deadline-month"].rows if r["breached"] + r["overdue"] > 0)
    _data, counts = cases(
        gate,
        ADMIN,
        d,
        state,
        "deadline-month",
        {"period": month["period"].isoformat(), "breach": "1"},
    )
    assert counts["total"] == month["breached"] + month["overdue"]
    with pytest.raises(NotFound):
        cases(gate, ADMIN, d, state, "no-such-tile", {})


def test_cache_is_keyed_by_version_and_filters(receipt: Any, tmp_path: Path) -> None:
    CACHE.clear()
    d = versions.get(receipt, "eingangsphase")
    gate = Gate(receipt)
    state = parse_filters(d.spec, {"channel": ["Post"]})
    first = _by_id(render(gate, ADMIN, d, state, tiles=["cases"]))["cases"]
    again = _by_id(render(gate, ADMIN, d, state, tiles=["cases"]))["cases"]
    assert again.provenance["computed_s"] == first.provenance["computed_s"]  # same entry
    other = _by_id(render(gate, ADMIN, d, parse_filters(d.spec, {}), tiles=["cases"]))["cases"]
    assert other.kpi["value"] == 1434 != first.kpi["value"]
    # A new version of the log: new numbers, provenance names it.
    sim = write_log(simulate(Simulation(cases=50, seed=1)), tmp_path / "sim.parquet")
    import_log(receipt, sim, dataset="receipt-log")
    try:
        gate.forget()
        fresh = _by_id(render(gate, ADMIN, d, parse_filters(d.spec, {}), tiles=["cases"]))
        assert fresh["cases"].kpi["value"] == 50
        assert fresh["cases"].provenance["datasets"][0]["version"] == 2
    finally:
        # back to the real log for the other tests of this module
        import_log(receipt, shared_file("eventlogs/receipt.xes.gz"), dataset="receipt-log")
        gate.forget()


def test_csv_export(receipt: Any) -> None:
    tiles = _render(receipt)
    body = to_csv(tiles["by-channel"], "de")
    lines = body.splitlines()
    assert lines[0] == "segment;cases;mean_s;median_s;p90_s;min_s;max_s"
    internet = next(line for line in lines if line.startswith("Internet;"))
    cells = internet.split(";")
    row = next(r for r in tiles["by-channel"].rows if r["segment"] == "Internet")
    assert int(cells[1]) == row["cases"]
    assert float(cells[3].replace(",", ".")) == pytest.approx(row["median_s"])
    intl = to_csv(tiles["variants"], "intl").splitlines()
    assert intl[0].startswith("rank,activities,")
    assert "Confirmation of receipt → " in intl[1]
    with pytest.raises(BadInput):
        to_csv(tiles["variants"], "excel")


# -- versions and permissions on both metadata stores ---------------------------------------
SPEC = """\
title: Leistung
visibility: internal
sources:
  log: {log: sim-log}
filters:
  - {id: period, type: period}
  - {id: land, type: region, column: region, level: land}
  - {id: channel, type: select, column: channel}
tiles:
  - {id: cases, type: kpi, measure: cases}
  - {id: map, type: map, value: cases, level: land, key: region}
  - {id: kreise, type: map, value: throughput_median, level: kreis, key: region}
  - {id: by-channel, type: bar, metric: throughput, by: channel}
"""


@pytest.fixture
def seeded(pool: Any, tmp_path: Path) -> Any:
    gate = Gate(pool)
    gate.accounts.add_org("statamt", "Statistisches Landesamt")
    gate.accounts.add_org("nrw", "Land NRW")
    gate.accounts.add_org("bayern", "Freistaat Bayern")
    for name, org, role in [
        ("steward", "statamt", "steward"),
        ("fremd", "bayern", "steward"),
        ("analyst", "nrw", "analyst"),
        ("leser", "bayern", "viewer"),
    ]:
        gate.accounts.add_user(name, org=org, role=role, password=PASSWORD)
    sim = Simulation(cases=1200, seed=5, laender=("05", "09"), arrivals_per_day=60)
    path = write_log(simulate(sim), tmp_path / "sim.parquet")
    import_log(
        pool,
        path,
        dataset="sim-log",
        meta=DatasetMeta(publisher="statamt", visibility="restricted", title="Simulation"),
    )
    return gate


def _who(gate: Gate, name: str) -> Any:
    return gate.accounts.authenticate(name, PASSWORD)


def test_versions_are_immutable_and_owned(seeded: Gate) -> None:
    pool, gate = seeded.pool, seeded
    steward = _who(gate, "steward")
    v1 = versions.put(pool, steward, "leistung", SPEC)
    v2 = versions.put(pool, steward, "leistung", SPEC.replace("title: Leistung", "title: Neu"))
    assert (v1.version, v2.version) == (1, 2)
    assert versions.get(pool, "leistung").spec.title == "Neu"
    assert versions.get(pool, "leistung", 1).text == SPEC  # kept byte for byte
    assert versions.get(pool, "leistung", 1).organisation == "statamt"
    with pytest.raises(BadInput) as info:
        versions.put(pool, steward, "leistung", SPEC.replace("type: kpi", "type: torte"))
    assert info.value.line == 10
    assert versions.version_numbers(pool, "leistung") == [1, 2]  # nothing saved
    with pytest.raises(Forbidden):
        versions.put(pool, _who(gate, "analyst"), "leistung", SPEC)  # analysts do not save
    with pytest.raises(Forbidden, match="belongs to organisation 'statamt'"):
        versions.put(pool, _who(gate, "fremd"), "leistung", SPEC)
    assert versions.put(pool, ADMIN, "leistung", SPEC).version == 3
    with pytest.raises(NotFound):
        versions.get(pool, "leistung", 9)
    with pytest.raises(BadInput):
        versions.put(pool, steward, "../etc", SPEC)
    # internal: not for anonymous callers
    from datenlabor.access.principal import ANONYMOUS

    assert [d.slug for d in versions.visible(pool, steward)] == ["leistung"]
    assert versions.visible(pool, ANONYMOUS) == []
    with pytest.raises(NotFound):
        versions.get_for(pool, ANONYMOUS, "leistung")


def test_tiles_obey_visibility_and_grants(seeded: Gate) -> None:
    from datenlabor.service.grants import add_grant

    pool, gate = seeded.pool, seeded
    d = versions.put(pool, _who(gate, "steward"), "leistung", SPEC)
    state = parse_filters(d.spec, {})
    analyst = _who(gate, "analyst")

    # Restricted, no grant: every tile says "no access" and carries no numbers.
    for t in render(gate, analyst, d, state):
        assert t.status == "no_access" and t.kpi is None and t.rows == [] and t.graph is None

    # A grant to NRW narrowed to its own Kreise: the numbers are NRW's only.
    add_grant(gate, ADMIN, "sim-log", org="nrw", rows="region LIKE '05%'")
    gate.forget()
    mine = _by_id(render(gate, analyst, d, state))
    nrw_state = parse_filters(d.spec, {"land": ["05"]})
    admin_nrw = _by_id(render(gate, ADMIN, d, nrw_state))
    admin_all = _by_id(render(gate, ADMIN, d, state))
    assert mine["cases"].kpi["value"] == admin_nrw["cases"].kpi["value"]
    assert 0 < mine["cases"].kpi["value"] < admin_all["cases"].kpi["value"]
    assert [r["key"] for r in mine["map"].rows] == ["05"]
    assert {r["key"] for r in admin_all["map"].rows} == {"05", "09"}
    assert {r["key"][:2] for r in mine["kreise"].rows} == {"05"}
    assert mine["cases"].provenance["datasets"][0]["partial"] is True
    with open_log(pool, "sim-log") as log:  # the library on NRW's rows gives the same
        nrw = [k for k in log.con.execute("SELECT DISTINCT region FROM src").fetchall()]
        keys = [str(k[0]) for k in nrw if str(k[0]).startswith("05")]
    with open_log(pool, "sim-log", filters=Filters(attributes={"region": keys})) as log:
        # NRW's analysts have no microdata access to the log: disclosure control applies
        # (no group is small here; single cases' extremes and drill-downs are not shown).
        want = [
            {k: v for k, v in r.items() if k not in ("min_s", "max_s")}
            for r in log.throughput(by="channel").rows()
        ]
        _rows_equal(mine["by-channel"].rows, want)
    assert mine["by-channel"].provenance["disclosure"]["rules"]["min_frequency"] == 3
    with pytest.raises(Withheld):
        cases(gate, analyst, d, state, "map", {"value": "05"})
    # The publisher's own people see the figures whole and drill down to the cases.
    steward = _who(gate, "steward")
    owner = _by_id(render(gate, steward, d, state))
    assert "disclosure" not in owner["by-channel"].provenance
    assert "min_s" in owner["by-channel"].rows[0]
    _data, counts = cases(gate, steward, d, state, "map", {"value": "09"})
    assert counts["total"] == next(r["cases"] for r in owner["map"].rows if r["key"] == "09")


def test_hidden_columns_and_confidential_logs(seeded: Gate) -> None:
    from datenlabor.service.confidential import set_rules
    from datenlabor.service.grants import add_grant

    pool, gate = seeded.pool, seeded
    d = versions.put(pool, _who(gate, "steward"), "leistung", SPEC)
    add_grant(gate, ADMIN, "sim-log", org="nrw", hide_columns=["channel"])
    gate.forget()
    analyst = _who(gate, "analyst")
    tiles = _by_id(render(gate, analyst, d, parse_filters(d.spec, {})))
    assert tiles["cases"].status == "ok"
    assert tiles["by-channel"].status == "error" and "channel" in tiles["by-channel"].message
    filtered = _by_id(render(gate, analyst, d, parse_filters(d.spec, {"channel": ["online"]})))
    assert filtered["cases"].status == "error" and filtered["cases"].kpi is None

    # Confidential: whoever reads only the protected table gets no procedure figures.
    from datenlabor.service.grants import grants_of, revoke_grant

    for g in grants_of(gate, ADMIN, "sim-log"):
        revoke_grant(gate, ADMIN, "sim-log", g.id)
    add_grant(gate, ADMIN, "sim-log", org="nrw")
    set_rules(gate, ADMIN, "sim-log", {"dims": ["land", "channel"]})
    gate.forget()
    tiles = render(gate, _who(gate, "analyst"), d, parse_filters(d.spec, {}))
    assert {t.status for t in tiles} == {"protected"}
    assert all(t.kpi is None and not t.rows for t in tiles)
    owner = _by_id(render(gate, _who(gate, "steward"), d, parse_filters(d.spec, {})))
    assert owner["cases"].status == "ok" and owner["cases"].kpi["value"] == 1200


# -- dataset and SQL sources ----------------------------------------------------------------
DATA_SPEC = """\
title: Anträge
sources:
  tab: {dataset: antraege, columns: {period: monat, land: kreis, kanal: kanal}}
  q:
    sql: SELECT kanal, sum(antraege) AS summe FROM antraege GROUP BY kanal
    columns: {kanal: kanal}
filters:
  - {id: period, type: period}
  - {id: land, type: region, column: region, level: land}
  - {id: kanal, type: select, column: kanal, values: [Post, Online]}
tiles:
  - {id: total, type: kpi, value: antraege}
  - {id: by-channel, type: bar, x: kanal, y: antraege}
  - {id: map, type: map, key: kreis, value: antraege, level: land}
  - {id: spread, type: histogram, value: antraege, bins: 4}
  - {id: sql, type: table, source: q}
"""


def test_dataset_and_sql_tiles(sqlite_pool: Any, tmp_path: Path) -> None:
    from datenlabor.service.grants import add_grant

    lines = ["kreis;monat;kanal;antraege"]
    rows = []
    for i, kreis in enumerate(["05315", "05111", "09162", "14612"]):
        for m in range(1, 7):
            for j, kanal in enumerate(["Post", "Online"]):
                n = 10 * i + m + 3 * j
                rows.append((kreis, m, kanal, n))
                lines.append(f"{kreis};01.{m:02d}.2024;{kanal};{n}")
    csv = tmp_path / "antraege.csv"
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    pool = sqlite_pool
    gate = Gate(pool)
    gate.accounts.add_org("amt", "Amt")
    gate.accounts.add_org("nrw", "NRW")
    gate.accounts.add_user("leser", org="nrw", role="viewer", password=PASSWORD)
    pool.ingest(csv, dataset="antraege", meta=DatasetMeta(publisher="amt", visibility="restricted"))
    d = versions.put(pool, ADMIN, "antraege", DATA_SPEC)
    params = {"period_from": ["2024-02-01"], "period_to": ["2024-04-30"], "land": ["05"]}
    tiles = _by_id(render(gate, ADMIN, d, parse_filters(d.spec, params)))
    sel = [r for r in rows if 2 <= r[1] <= 4 and r[0].startswith("05")]
    assert tiles["total"].kpi["value"] == sum(r[3] for r in sel)
    prev = [
        r for r in rows if r[1] in (1,) and r[0].startswith("05")
    ]  # the 89 days before 1 Feb: January
    assert tiles["total"].kpi["previous"] == sum(r[3] for r in prev)
    assert {r["kanal"]: r["antraege"] for r in tiles["by-channel"].rows} == {
        k: sum(r[3] for r in sel if r[2] == k) for k in ("Online", "Post")
    }
    assert [(r["key"], r["value"]) for r in tiles["map"].rows] == [("05", sum(r[3] for r in sel))]
    assert sum(r["count"] for r in tiles["spread"].rows) == len(sel)
    assert "WHERE" in tiles["total"].provenance["query"]
    assert tiles["total"].provenance["filters"]["land"] == ["05"]
    # The SQL source: only the filters it maps (kanal), applied to its result.
    sql = _by_id(render(gate, ADMIN, d, parse_filters(d.spec, {"kanal": ["Post"]})))["sql"]
    assert sql.rows == [{"kanal": "Post", "summe": sum(r[3] for r in rows if r[2] == "Post")}]
    # A viewer (no SQL role needed) without a grant: no access; with a row-filtered grant:
    # only the rows granted, in every tile.
    leser = gate.accounts.authenticate("leser", PASSWORD)
    assert {t.status for t in render(gate, leser, d, parse_filters(d.spec, {}))} == {"no_access"}
    add_grant(gate, ADMIN, "antraege", org="nrw", rows="kreis = '05315'")
    gate.forget()
    mine = _by_id(render(gate, leser, d, parse_filters(d.spec, {})))
    assert mine["total"].kpi["value"] == sum(r[3] for r in rows if r[0] == "05315")
    # The viewer is outside the publishing organisation: disclosure control applies, and an
    # SQL source (whose figures cannot be checked for small counts) is withheld.
    assert mine["sql"].status == "withheld" and not mine["sql"].rows
    assert mine["total"].provenance["disclosure"]["reason"] == "no_microdata"
    assert mine["total"].provenance["datasets"][0]["partial"] is True


def test_concurrent_saves_never_overwrite(sqlite_pool: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    texts = [SPEC.replace("title: Leistung", f"title: Fassung {i}") for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as ex:
        saved = list(ex.map(lambda t: versions.put(sqlite_pool, ADMIN, "parallel", t), texts))
    assert sorted(d.version for d in saved) == list(range(1, 9))
    for d in saved:  # each number holds exactly the text that was saved under it
        assert versions.get(sqlite_pool, "parallel", d.version).text == d.text
    assert {versions.get(sqlite_pool, "parallel", n).text for n in range(1, 9)} == set(texts)
