"""The procedure-log simulator: deterministic, plausible, fast."""

from __future__ import annotations

import time

import numpy as np
import pyarrow.compute as pc
import pytest

from datenlabor.errors import BadInput
from datenlabor.pool import ags
from datenlabor.procedures.simulate import DEFAULT_STEPS, Simulation, Step, simulate


def test_same_seed_same_log_other_seed_other_log() -> None:
    a = simulate(Simulation(cases=500, seed=11))
    b = simulate(Simulation(cases=500, seed=11))
    c = simulate(Simulation(cases=500, seed=12))
    assert a.equals(b)
    assert not a.equals(c)


def test_plausible_log() -> None:
    sim = Simulation(cases=20_000, seed=1, laender=("05", "09"))
    t = simulate(sim)
    n = t.num_rows
    assert t.column_names[:7] == [
        "seq", "case_no", "case_id", "activity", "timestamp", "resource", "lifecycle",
    ]  # fmt: skip
    assert t.column("seq").to_pylist() == list(range(n))
    cases = t.column("case_no").to_numpy()
    assert np.all(np.diff(cases) >= 0) and len(np.unique(cases)) == 20_000
    ts = t.column("timestamp").cast("int64").to_numpy()
    same_case = np.diff(cases) == 0
    assert np.all(np.diff(ts)[same_case] >= 0)  # time never runs backwards within a case
    # Every case starts with the receipt; exactly one decision per finished case.
    firsts = np.flatnonzero(np.concatenate(([True], ~same_case)))
    acts = t.column("activity").cast("string")
    assert set(acts.take(firsts).to_pylist()) == {DEFAULT_STEPS[0].activity}
    decided = pc.sum(pc.is_in(acts, value_set=pc.cast(["Bescheid bewilligt", "Bescheid abgelehnt"], "string"))).as_py()
    assert decided == 20_000
    rejected = pc.sum(pc.equal(acts, "Bescheid abgelehnt")).as_py() / 20_000
    assert 0.19 < rejected < 0.25  # configured 22 %
    # Regions are real Kreis keys of the chosen Länder.
    regions = set(t.column("region").cast("string").to_pylist())
    assert all(ags.level_of(r) == "kreis" and ags.is_known(r) for r in regions)
    assert {r[:2] for r in regions} == {"05", "09"}
    assert set(t.column("land").cast("string").to_pylist()) == {"05", "09"}
    channels = t.column("channel").cast("string").to_pylist()
    assert set(channels) == {"online", "Post", "vor Ort"}
    # Weekdays get far more arrivals than Sundays (weights 1.3 … 0.03).
    start_ts = ts[firsts]
    weekday = ((start_ts // 86_400_000_000) + 3) % 7
    counts = np.bincount(weekday, minlength=7)
    assert counts[0] > 10 * counts[6]


def test_rework_and_observation_cut() -> None:
    steps = (
        Step("Eingang", 0),
        Step("Prüfung", 10, rework=0.5),
        Step("Bescheid", 10),
    )
    t = simulate(Simulation(cases=4000, seed=2, steps=steps))
    acts = t.column("activity").cast("string")
    checks = pc.sum(pc.equal(acts, "Prüfung")).as_py()
    assert 1.85 < checks / 4000 < 2.15  # geometric repetitions: mean 1 / (1 - 0.5) = 2
    cut = simulate(
        Simulation(cases=4000, seed=2, steps=steps, observe_until=Simulation().start.replace(day=20))
    )
    assert cut.num_rows < t.num_rows
    assert pc.max(cut.column("timestamp")).as_py().day < 20


def test_bad_parameters() -> None:
    with pytest.raises(BadInput, match="add up to 1"):
        simulate(Simulation(cases=10, channels={"online": (0.5, 1.0)}))
    with pytest.raises(BadInput, match="at least one case"):
        simulate(Simulation(cases=0))
    with pytest.raises(BadInput, match="no Kreis keys"):
        simulate(Simulation(cases=10, laender=("99",)))


def test_a_million_events_in_seconds() -> None:
    t0 = time.perf_counter()
    t = simulate(Simulation(cases=145_000, seed=5))
    elapsed = time.perf_counter() - t0
    assert t.num_rows > 900_000
    assert elapsed < 15  # typically ~1 s; generous for a busy 2-core machine
