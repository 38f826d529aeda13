"""Procedure KPIs on a small hand-made log whose answers are worked out by hand below.

The log (tests/fixtures/procedures/antraege.csv, times in UTC):

    2024-001 online 05315  Eingang 01.01. 10:00 (Anna) -> Prüfung 02.01. 10:00 (Ben)
                           -> Bescheid 04.01. 10:00 (Anna)                       3 d
    2024-002 Post   05315  Eingang 15.01. 09:00 (Anna) -> Prüfung 15.01. 10:00 (Ben)
                           -> Prüfung 16.01. 10:00 (Ben) -> Bescheid 20.04. 09:00 (Carla)  96 d
    2024-003 online 09162  Eingang 01.02. 08:00 (Anna) -> Prüfung 01.02. 12:00 (Carla)
                           -> Bescheid 03.02. 08:00 (Carla)                      2 d
    2024-004 Post   09162  Eingang 10.03. 08:00 (Ben)  -> Prüfung 11.03. 08:00 (Ben)   1 d
"""

from __future__ import annotations

import itertools
from datetime import date, datetime

import pytest

from conftest import FIXTURES
from datenlabor.errors import BadInput
from datenlabor.procedures import DeadlineRule, Filters, Mapping, import_log, open_log
from datenlabor.procedures.deadline import parse_duration

H, D = 3600.0, 86400.0
CSV = FIXTURES / "procedures" / "antraege.csv"
MAPPING = Mapping(activity="Schritt", resource="Bearbeitung")
# Case durations: 3 d, 96 d (15.01. 09:00 -> 20.04. 09:00), 2 d, 1 d.
DURATIONS = {"2024-001": 3 * D, "2024-002": 96 * D, "2024-003": 2 * D, "2024-004": 1 * D}


@pytest.fixture(scope="module")
def log_pool(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    import datenlabor

    pool = datenlabor.open(tmp_path_factory.mktemp("kpis") / "pool", user="test@example.org")
    import_log(pool, CSV, dataset="antraege", mapping=MAPPING)
    yield pool
    pool.store.dispose()


def test_summary_counts_and_throughput(log_pool) -> None:  # type: ignore[no-untyped-def]
    with open_log(log_pool, "antraege") as log:
        s = log.summary()
    assert (s["cases"], s["events"], s["activities"], s["variants"]) == (4, 12, 3, 3)
    # median of 1 d, 2 d, 3 d, 96 d = (2 d + 3 d) / 2; mean = 102 d / 4
    assert s["throughput_median_s"] == pytest.approx(2.5 * D)
    assert s["throughput_mean_s"] == pytest.approx(102 * D / 4)
    assert s["start_activities"] == {"Eingang": 4}
    assert s["end_activities"] == {"Bescheid": 3, "Prüfung": 1}
    assert s["provenance"] == {"dataset": "antraege", "version": 1, "timezone": "Europe/Berlin"}


def test_directly_follows_graph(log_pool) -> None:  # type: ignore[no-untyped-def]
    with open_log(log_pool, "antraege") as log:
        edges = {(r["from"], r["to"]): r for r in log.dfg().rows()}
    assert set(edges) == {("Eingang", "Prüfung"), ("Prüfung", "Prüfung"), ("Prüfung", "Bescheid")}
    ep = edges[("Eingang", "Prüfung")]  # 1 d, 1 h, 4 h, 1 d
    assert ep["count"] == 4
    assert ep["median_s"] == pytest.approx((4 * H + D) / 2)
    assert ep["mean_s"] == pytest.approx((2 * D + 5 * H) / 4)
    pb = edges[("Prüfung", "Bescheid")]  # 2 d, 16.01. 10:00 -> 20.04. 09:00, 44 h
    late = 96 * D - 25 * H
    assert pb["count"] == 3
    assert pb["median_s"] == pytest.approx(2 * D)
    assert pb["mean_s"] == pytest.approx((2 * D + late + 44 * H) / 3)
    assert edges[("Prüfung", "Prüfung")]["count"] == 1


def test_variants_with_counts_and_durations(log_pool) -> None:  # type: ignore[no-untyped-def]
    with open_log(log_pool, "antraege") as log:
        result = log.variants()
    rows = result.rows()
    assert [(r["activities"], r["cases"]) for r in rows] == [
        (["Eingang", "Prüfung", "Bescheid"], 2),
        (["Eingang", "Prüfung"], 1),
        (["Eingang", "Prüfung", "Prüfung", "Bescheid"], 1),
    ]
    assert rows[0]["median_s"] == pytest.approx(2.5 * D)
    assert rows[0]["share"] == pytest.approx(0.5)
    assert result.totals == {"variants": 3, "cases": 4}


def test_end_activities_make_open_cases(log_pool) -> None:  # type: ignore[no-untyped-def]
    with open_log(log_pool, "antraege", end_activities=["Bescheid"]) as log:
        s = log.summary()
        volumes = log.cases_over_time("month").rows()
    assert (s["completed_cases"], s["open_cases"]) == (3, 1)
    assert s["throughput_median_s"] == pytest.approx(3 * D)  # of 2 d, 3 d, 96 d
    # started Jan 2, Feb 1, Mar 1; completed Jan (001), Feb (003), Apr (002); 004 stays open
    assert [(r["period"], r["started"], r["completed"], r["open_at_end"]) for r in volumes] == [
        (date(2024, 1, 1), 2, 1, 1),
        (date(2024, 2, 1), 1, 1, 1),
        (date(2024, 3, 1), 1, 0, 2),
        (date(2024, 4, 1), 0, 1, 1),
    ]


def test_volumes_per_week_have_no_gaps(log_pool) -> None:  # type: ignore[no-untyped-def]
    with open_log(log_pool, "antraege") as log:
        weeks = log.cases_over_time("week").rows()
    assert weeks[0]["period"] == date(2024, 1, 1)  # a Monday
    assert all((b["period"] - a["period"]).days == 7 for a, b in itertools.pairwise(weeks))
    assert sum(w["started"] for w in weeks) == 4 and weeks[-1]["open_at_end"] == 0


def test_throughput_per_segment(log_pool) -> None:  # type: ignore[no-untyped-def]
    with open_log(log_pool, "antraege") as log:
        result = log.throughput(by="Kanal")
    rows = {r["segment"]: r for r in result.rows()}
    assert rows["online"]["cases"] == 2 and rows["online"]["median_s"] == pytest.approx(2.5 * D)
    assert rows["Post"]["median_s"] == pytest.approx((96 * D + D) / 2)
    assert rows["Post"]["max_s"] == pytest.approx(96 * D)
    assert result.totals["p90_s"] == pytest.approx(3 * D + 0.7 * 93 * D)  # numpy's linear p90


def test_waiting_rework_workload(log_pool) -> None:  # type: ignore[no-untyped-def]
    with open_log(log_pool, "antraege") as log:
        waiting = {r["activity"]: r for r in log.waiting_times().rows()}
        rework = log.rework()
        workload = {r["resource"]: r for r in log.workload().rows()}
    assert waiting["Bescheid"]["events"] == 3 and waiting["Bescheid"]["median_s"] == 2 * D
    assert waiting["Prüfung"]["events"] == 5 and waiting["Prüfung"]["median_s"] == D
    assert "Eingang" not in waiting  # nothing happens before the first event
    by_activity = {r["activity"]: r for r in rework.rows()}
    assert by_activity["Prüfung"]["cases_repeated"] == 1
    assert by_activity["Prüfung"]["repetitions"] == 1
    assert by_activity["Prüfung"]["rework_rate"] == pytest.approx(0.25)
    assert rework.totals["cases_with_rework"] == 1
    assert {k: (v["events"], v["cases"]) for k, v in workload.items()} == {
        "Anna": (4, 3),
        "Ben": (5, 3),
        "Carla": (3, 2),
    }
    assert workload["Ben"]["share"] == pytest.approx(5 / 12)


def test_bottlenecks_rank_by_total_time(log_pool) -> None:  # type: ignore[no-untyped-def]
    with open_log(log_pool, "antraege") as log:
        rows = log.bottlenecks().rows()
    assert (rows[0]["from"], rows[0]["to"], rows[0]["rank"]) == ("Prüfung", "Bescheid", 1)
    total = sum(DURATIONS.values())  # consecutive gaps add up to the case durations
    assert rows[0]["share"] == pytest.approx((2 * D + 96 * D - 25 * H + 44 * H) / total)
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)


def test_deadline_rule_outcomes(log_pool) -> None:  # type: ignore[no-untyped-def]
    rule = "Eingang -> Bescheid within 3 months"
    with open_log(log_pool, "antraege") as log:
        result = log.deadline(rule)
        later = log.deadline(DeadlineRule.parse(rule), by="Kanal")
        days = log.deadline("Eingang -> Bescheid innerhalb 96 Tage").totals
        hours = log.deadline("Eingang -> Bescheid within 2304 hours").totals
        shorter = log.deadline("Eingang -> Bescheid within PT2303H").totals
    # 002: 15.01. + 3 months = 15.04. < 20.04. -> breached; 004 has no Bescheid and its
    # deadline (10.06.) is after the log's last event (20.04.) -> open.
    t = result.totals
    assert (t["met"], t["breached"], t["overdue"], t["open"]) == (2, 1, 0, 1)
    assert t["breach_rate"] == pytest.approx(1 / 3)
    assert {r["segment"]: r["breached"] for r in later.rows()} == {"online": 0, "Post": 1}
    # 002 took exactly 96 x 24 h, but days are calendar days in the log's time zone: from
    # 15.01. 10:00 CET, 96 days end 20.04. 10:00 CEST = 08:00 UTC, an hour before the notice.
    assert (days["met"], days["breached"]) == (2, 1)
    assert (hours["met"], hours["breached"]) == (3, 0)  # exactly the limit is in time
    assert shorter["breached"] == 1


def test_deadline_overdue_as_of_and_case_end(log_pool) -> None:  # type: ignore[no-untyped-def]
    from datenlabor.procedures.deadline import breaching_cases, check_deadline

    with open_log(log_pool, "antraege", end_activities=["Bescheid"]) as log:
        t = check_deadline(log, "@start -> @end within 3 months", as_of=datetime(2024, 7, 1)).totals
        late = breaching_cases(log, "Eingang -> Bescheid within 3 months").rows()
    assert (t["met"], t["breached"], t["overdue"], t["open"]) == (2, 1, 1, 0)
    assert t["breach_rate"] == pytest.approx(0.5)
    assert [r["case_id"] for r in late] == ["2024-002"]
    assert late[0]["late_s"] == pytest.approx(5 * D + H)  # due 15.04. 08:00 UTC (CEST)


def test_calendar_months(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import datenlabor

    csv = tmp_path / "monat.csv"
    csv.write_text(
        "case_id,activity,timestamp\n"
        "E1,Eingang,2024-01-31T12:00:00Z\nE1,Bescheid,2024-02-29T12:00:00Z\n"
        "E2,Eingang,2024-01-31T12:00:00Z\nE2,Bescheid,2024-03-01T12:00:00Z\n",
        encoding="utf-8",
    )
    pool = datenlabor.open(tmp_path / "pool")
    import_log(pool, csv, dataset="monat")
    with open_log(pool, "monat") as log:
        month = log.deadline("Eingang -> Bescheid within 1 month").totals
        days = log.deadline("Eingang -> Bescheid within 30 days").totals
    pool.store.dispose()
    assert (month["met"], month["breached"]) == (1, 1)  # 31.01. + 1 month = 29.02.
    assert (days["met"], days["breached"]) == (2, 0)


def test_duration_and_rule_syntax() -> None:
    assert parse_duration("3 months") == {"months": 3}
    assert parse_duration("6 Wochen") == {"weeks": 6}
    assert parse_duration("P1M15D") == {"months": 1, "days": 15}
    assert parse_duration("PT36H") == {"hours": 36}
    rule = DeadlineRule.parse("Antrag eingegangen -> Bescheid versandt innerhalb 3 Monate")
    assert (rule.from_activity, rule.to_activity) == ("Antrag eingegangen", "Bescheid versandt")
    for bad in ("3 fortnights", "P", "soon"):
        with pytest.raises(BadInput, match="duration"):
            parse_duration(bad)
    with pytest.raises(BadInput, match="FROM -> TO"):
        DeadlineRule.parse("Eingang bis Bescheid")


def test_filters_apply_to_every_result(log_pool) -> None:  # type: ignore[no-untyped-def]
    online = Filters(attributes={"Kanal": ["online"]})
    with open_log(log_pool, "antraege", filters=online) as log:
        s = log.summary()
        assert log.rework().totals["cases"] == 2
        assert {r["resource"] for r in log.workload().rows()} == {"Anna", "Ben", "Carla"}
    assert (s["cases"], s["events"], s["variants"]) == (2, 6, 1)
    assert s["provenance"]["filters"] == {"attributes": {"Kanal": ["online"]}}
    # A resource selects the cases it worked on.
    with open_log(log_pool, "antraege", filters={"attributes": {"resource": ["Carla"]}}) as log:
        assert log.summary()["cases"] == 2
    with open_log(log_pool, "antraege", filters=Filters(start=date(2024, 2, 1))) as log:
        assert log.summary()["cases"] == 2  # started in February or later: 003, 004
    window = Filters(start=date(2024, 1, 2), end=date(2024, 1, 5), period_mode="events")
    with open_log(log_pool, "antraege", filters=window) as log:
        s = log.summary()
        assert (s["cases"], s["events"]) == (1, 2)
        assert [(e["from"], e["to"], e["count"]) for e in s["dfg"]] == [
            ("Prüfung", "Bescheid", 1)
        ]
    with open_log(log_pool, "antraege", filters=Filters(attributes={"Kanal": []})) as log:
        assert log.summary()["cases"] == 0


def test_drill_down_to_cases(log_pool) -> None:  # type: ignore[no-untyped-def]
    with open_log(log_pool, "antraege") as log:
        loop = log.cases(edge=("Prüfung", "Prüfung"))
        common = log.cases(variant=["Eingang", "Prüfung", "Bescheid"])
        page = log.cases(limit=2)
    assert [r["case_id"] for r in loop.rows()] == ["2024-002"]
    assert sorted(r["case_id"] for r in common.rows()) == ["2024-001", "2024-003"]
    assert [r["case_id"] for r in page.rows()] == ["2024-002", "2024-001"]  # longest first
    assert page.totals["cases"] == 4
    assert page.rows()[0]["duration_s"] == DURATIONS["2024-002"]


def test_bad_requests_name_the_problem(log_pool) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BadInput, match="Region"):
        open_log(log_pool, "antraege", filters={"attributes": {"Region": ["x"]}})
    with pytest.raises(BadInput, match="period mode"):
        Filters(period_mode="sometimes")
    with open_log(log_pool, "antraege") as log:
        with pytest.raises(BadInput, match="unknown period"):
            log.cases_over_time("fortnight")
        with pytest.raises(BadInput, match="Region"):
            log.throughput(by="Region")


def test_not_an_event_log(log_pool, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plain = tmp_path / "plain.csv"
    plain.write_text("a,b\n1,2\n", encoding="utf-8")
    log_pool.ingest(plain, dataset="plain")
    with pytest.raises(BadInput, match="not an event log"):
        open_log(log_pool, "plain")


def test_variants_fall_back_to_sql_grouping(log_pool, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """If the sequence hash ever collided, variants are grouped in SQL: same answer."""
    from datenlabor.procedures.traces import Traces

    with open_log(log_pool, "antraege") as log:
        fast = log.variants().rows()
    monkeypatch.setattr(Traces, "variants_table", lambda self: None)
    monkeypatch.setattr(Traces, "edges_table", lambda self: None)
    with open_log(log_pool, "antraege") as log:
        assert log.variants().rows() == fast
        assert log.summary()["variants"] == 3
        assert {(e["from"], e["to"]): e["count"] for e in log.dfg().rows()} == {
            ("Eingang", "Prüfung"): 4,
            ("Prüfung", "Prüfung"): 1,
            ("Prüfung", "Bescheid"): 3,
        }
