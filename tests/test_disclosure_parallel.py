"""The fast method's LPs on several CPUs: the pattern must not depend on how many there are,
and the shortcuts of large tables (no exact intervals before the box repairs) must keep
every primary cell protected."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datenlabor.disclosure import Dim, Rules, attacker
from datenlabor.disclosure.attacker import Attacker, violations
from datenlabor.disclosure.local import in_waves
from datenlabor.disclosure.secondary_fast import CLEANUP_MAX_CELLS, suppress_fast
from test_disclosure_methods import ART, KREISE, _parts


def _cpus(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    monkeypatch.setattr(attacker, "usable_cpus", lambda: n)


def _large_table(seed: int) -> tuple[pa.Table, Rules]:
    """Region (14 Kreise and their parents) x 12 months x case type: about 4,900 cells,
    above CLEANUP_MAX_CELLS, so the fast method takes its large-table path."""
    rng = np.random.default_rng(seed)
    months = [f"2024-{m:02d}" for m in range(1, 13)]
    combos = list(itertools.product(KREISE, months, sorted(ART)))
    counts = rng.choice([0, 0, 1, 1, 2, 3, 5, 8, 20, 60], size=len(combos))
    cols: dict[str, list[str]] = {"region": [], "monat": [], "art": []}
    for (region, month, art), c in zip(combos, counts, strict=True):
        cols["region"] += [region] * int(c)
        cols["monat"] += [month] * int(c)
        cols["art"] += [art] * int(c)
    rules = Rules(dims=[Dim("region", "ags"), Dim("monat", "time"), Dim("art", dict(ART))])
    return pa.table(cols), rules


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 29), min_size=1, max_size=6, unique=True), max_size=25))
def test_boxes_in_waves_end_as_one_after_the_other(boxes: list[list[int]]) -> None:
    arrays = [np.array(sorted(b), dtype=np.int64) for b in boxes]

    def run(parallel: bool) -> tuple[np.ndarray, list[int]]:
        state = np.arange(30, dtype=np.int64)

        def work(i: int) -> int:
            box = arrays[i]
            before = int(state[box].sum())
            state[box] = state[box] * 3 + i  # depends on the order of overlapping boxes
            return before

        if not parallel:
            return state, [work(i) for i in range(len(arrays))]
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(attacker, "usable_cpus", lambda: 4)
            results = in_waves(arrays, 30, work)
        return state, results

    seq_state, seq_results = run(False)
    par_state, par_results = run(True)
    assert par_results == seq_results
    assert (par_state == seq_state).all()


@pytest.mark.parametrize("seed", [3, 11])
def test_large_table_pattern_is_the_same_on_one_or_many_cpus(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    matrix, mask, targets, cost, coding = _parts(*_large_table(seed))
    assert matrix.shape[1] > CLEANUP_MAX_CELLS
    patterns = []
    for n in (1, 3):
        _cpus(monkeypatch, n)
        sup, stats = suppress_fast(matrix, mask, targets, cost, coding)
        patterns.append(sup)
    assert stats["local_repairs"] > 0  # the box repairs ran, in threads the second time
    assert (patterns[0] == patterns[1]).all()
    assert (patterns[0] >= mask).all()
    # the audit's attacker (no cubes, exact intervals) finds nothing
    assert violations(matrix, patterns[0], np.flatnonzero(mask), targets, coding) == []


def test_inexact_attack_reports_every_exact_violation() -> None:
    matrix, mask, targets, _, coding = _parts(*_large_table(5))
    rng = np.random.default_rng(1)
    cells = np.flatnonzero(mask)
    for share in (0.0, 0.2, 0.5):
        sup = mask | (rng.random(len(mask)) < share)
        exact = violations(matrix, sup, cells, targets, coding, cubes=True, boxes=False)
        rough = violations(
            matrix, sup, cells, targets, coding, cubes=True, boxes=False, exact=False
        )
        assert {(v.cell, v.side) for v in exact} <= {(v.cell, v.side) for v in rough}
        assert all(np.isnan(v.bound) for v in rough)
        assert all(np.isfinite(v.bound) for v in exact)


def test_intervals_in_threads_equal_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    matrix, mask, targets, _, _ = _parts(*_large_table(7))
    rng = np.random.default_rng(2)
    sup = mask | (rng.random(len(mask)) < 0.3)
    values = np.where(sup, np.nan, targets[0].values)
    cells = np.flatnonzero(mask)
    one_by_one = [Attacker(matrix, values, sup).interval(int(c)) for c in cells]
    _cpus(monkeypatch, 3)
    lo, hi = Attacker(matrix, values, sup).intervals(cells)
    assert np.allclose(lo, [a for a, _ in one_by_one])
    assert np.allclose(hi, [b for _, b in one_by_one])
    with pytest.raises(ValueError, match="published"):
        Attacker(matrix, values, sup).intervals(np.flatnonzero(~sup)[:1])


def test_first_violation_answers_as_the_full_attack(monkeypatch: pytest.MonkeyPatch) -> None:
    """The clean-up asks only whether a pattern has a violation: the attack that stops at
    the first one must say yes exactly when the full attack finds any, on one or more CPUs."""
    matrix, mask, targets, cost, coding = _parts(*_large_table(9))
    protected, _ = suppress_fast(matrix, mask, targets, cost, coding)
    secondary = np.flatnonzero(protected & ~mask)
    rng = np.random.default_rng(4)
    patterns = [protected, mask | (rng.random(len(mask)) < 0.3)]
    for k in (1, 5, 50):  # publish some secondary cells again
        sup = protected.copy()
        sup[rng.choice(secondary, k, replace=False)] = False
        patterns.append(sup)
    cells = np.flatnonzero(mask)
    answers = set()
    for n in (1, 3):
        _cpus(monkeypatch, n)
        for sup in patterns:
            full = {(v.cell, v.side) for v in violations(matrix, sup, cells, targets, boxes=False)}
            first = violations(matrix, sup, cells, targets, boxes=False, first=True)
            assert bool(first) == bool(full)
            assert {(v.cell, v.side) for v in first} <= full
            answers.add(bool(full))
    assert answers == {True, False}  # both outcomes were exercised
