"""Deadline outcomes per segment and period (one query for groups and totals) against a
plain-Python computation of the rule on a small simulated log with open cases."""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

import datenlabor
from datenlabor.procedures import open_log
from datenlabor.procedures.simulate import Simulation, simulate, write_log

BERLIN = ZoneInfo("Europe/Berlin")
FROM, TO = "Antrag eingegangen", "Bescheid versandt"
HOURS = 900  # hours: exact arithmetic (months and days follow the local calendar)
RULE = f"{FROM} -> {TO} within {HOURS} hours"


@pytest.fixture(scope="module")
def log_pool(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("deadline")
    sim = Simulation(
        cases=600, seed=9, arrivals_per_day=8, laender=("05", "09", "14"),
        observe_until=date(2024, 3, 20),
    )  # fmt: skip
    pool = datenlabor.open(tmp / "pool", user="test@example.org")
    pool.ingest(write_log(simulate(sim), tmp / "sim.parquet"), dataset="sim", format="parquet")
    yield pool
    pool.store.dispose()


def expected(
    pool: Any, *, by: str | None, freq: bool
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The rule worked out case by case in Python from the stored events."""
    rows = pool.dataset("sim").read().to_pylist()
    rows.sort(key=lambda r: r["seq"])
    now = max(r["timestamp"] for r in rows)
    cases: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        cases[r["case_no"]].append(r)
    outcomes = []
    for events in cases.values():
        starts = [e["timestamp"] for e in events if e["activity"] == FROM]
        if not starts:
            continue
        t0 = min(starts)
        due = t0 + timedelta(hours=HOURS)
        ends = [e["timestamp"] for e in events if e["activity"] == TO and e["timestamp"] >= t0]
        t1 = min(ends) if ends else None
        if t1 is not None:
            status = "met" if t1 <= due else "breached"
        else:
            status = "overdue" if due < now else "open"
        key: tuple[Any, ...] = ()
        if freq:
            key += (t0.astimezone(BERLIN).date().replace(day=1),)
        if by:
            key += (next((e[by] for e in events if e[by] is not None), None),)
        outcomes.append((key, status, (t1 - t0).total_seconds() if t1 else None))

    def figures(items: list[tuple[Any, str, float | None]]) -> dict[str, Any]:
        n = {
            s: sum(1 for _, st, _ in items if st == s)
            for s in ("met", "breached", "overdue", "open")
        }
        decided = n["met"] + n["breached"] + n["overdue"]
        times = [d for _, _, d in items if d is not None]
        return {
            "cases": len(items), **n,
            "breach_rate": (n["breached"] + n["overdue"]) / decided if decided else None,
            "median_s": statistics.median(times) if times else None,
        }  # fmt: skip

    groups: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for o in outcomes:
        groups[o[0]].append(o)
    names = (["period"] if freq else []) + (["segment"] if by else [])
    table = []
    for key in sorted(groups, key=lambda k: tuple((v is None, v) for v in k)):
        table.append({**dict(zip(names, key, strict=True)), **figures(groups[key])})
    return figures(outcomes), table


def close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-12)
    return bool(a == b)


@pytest.mark.parametrize(
    ("by", "freq"), [(None, False), ("land", False), (None, True), ("land", True)]
)
def test_deadline_groups_and_totals_match_python(log_pool, by, freq) -> None:  # type: ignore[no-untyped-def]
    totals, rows = expected(log_pool, by=by, freq=freq)
    with open_log(log_pool, "sim") as log:
        result = log.deadline(RULE, by=by, freq="month" if freq else None)
    got = result.rows()
    statuses = {s: sum(r[s] for r in rows) for s in ("met", "breached", "overdue", "open")}
    assert all(statuses.values()), statuses  # every outcome occurs: the check means something
    assert result.totals["rule"] == RULE
    for k, v in totals.items():
        assert close(result.totals[k], v), k
    if not by and not freq:
        rows = [totals]
    assert len(got) == len(rows)
    for g, e in zip(got, rows, strict=True):
        assert g.keys() == e.keys()
        assert all(close(g[k], e[k]) for k in e), (g, e)
    assert pa.types.is_integer(result.table.schema.field("cases").type)


def test_rule_no_case_is_subject_to(log_pool) -> None:  # type: ignore[no-untyped-def]
    with open_log(log_pool, "sim") as log:
        for by in (None, "land"):
            result = log.deadline("Gibt es nicht -> @end within 2 days", by=by)
            assert result.totals["cases"] == 0 and result.totals["breach_rate"] is None
            assert result.rows() == ([] if by else [result.rows()[0]])
            assert result.totals["median_s"] is None


def test_segment_of_a_case_is_computed_once_per_log(log_pool) -> None:  # type: ignore[no-untyped-def]
    with open_log(log_pool, "sim") as log:
        first = log.throughput(by="land").rows()
        again = log.deadline(RULE, by="land")
        assert log.throughput(by="land").rows() == first
        assert sum(r["cases"] for r in again.rows()) == again.totals["cases"]
        assert list(log.segments) == ["land"]
