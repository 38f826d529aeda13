"""improve(): post-optimisation of a protected suppression pattern on small tables."""

from __future__ import annotations

import itertools
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datenlabor.disclosure import Dim, Rules
from datenlabor.disclosure.attacker import violations
from datenlabor.disclosure.improve import improve
from datenlabor.disclosure.primary import primary, top_k
from datenlabor.disclosure.secondary_fast import cell_costs, suppress_fast
from datenlabor.disclosure.secondary_optimal import suppress_optimal
from datenlabor.disclosure.table import aggregate, constraint_matrix, encode

ART = {"A1": "A", "A2": "A", "A3": "A", "B1": "B", "B2": "B", "C": None}
KREISE = ["01001", "01002", "01053", "03101", "03151", "09162", "09171"]


def _parts(table: pa.Table, rules: Rules) -> tuple[Any, ...]:
    """Matrix, primary mask, targets, costs and coding, as protect() builds them."""
    con = duckdb.connect()
    con.register("t", table)
    cells = aggregate(con, "SELECT * FROM t", rules, top_k=top_k(rules))
    matrix = constraint_matrix(cells.codes, cells.parents)
    coding = encode(cells.codes, cells.parents)
    mask, targets = primary(cells, rules)
    return matrix, mask, targets, cell_costs(targets[0].values, rules.cost), coding


def _table(seed: int, n_kreise: int, n_arts: int, months: int) -> tuple[pa.Table, Rules]:
    """Skewed case counts region x (month) x case type: many small cells."""
    rng = np.random.default_rng(seed)
    kreise = sorted(rng.choice(KREISE, n_kreise, replace=False).tolist())
    arts = sorted(rng.choice(sorted(ART), n_arts, replace=False).tolist())
    levels = [kreise, arts] + ([[f"2024-{m + 1:02d}" for m in range(months)]] if months else [])
    cols: dict[str, list[str]] = {"region": [], "art": [], "monat": []}
    for combo in itertools.product(*levels):
        for _ in range(int(rng.choice([0, 1, 1, 2, 3, 4, 6, 9, 15]))):
            for name, code in zip(cols, combo, strict=False):
                cols[name].append(code)
    dims = [Dim("region", "ags"), Dim("art", dict(ART))]
    if months:
        dims.append(Dim("monat", "time"))
    return pa.table({d.name: cols[d.name] for d in dims}), Rules(dims=dims)


def _loss(cost: np.ndarray, sup: np.ndarray, mask: np.ndarray) -> float:
    return float(cost[sup & ~mask].sum())


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.integers(2, 4), st.integers(2, 4), st.sampled_from([0, 2]))
def test_never_worse_and_still_protected(seed: int, kreise: int, arts: int, months: int) -> None:
    table, rules = _table(seed, kreise, arts, months)
    matrix, mask, targets, cost, coding = _parts(table, rules)
    fast, _ = suppress_fast(matrix, mask, targets, cost, coding)
    given_pattern = fast.copy()
    out, stats = improve(matrix, fast, mask, targets, cost, coding)
    assert np.array_equal(fast, given_pattern), "the input pattern was changed"
    assert (out >= mask).all(), "a primary cell was published"
    assert not violations(matrix, out, np.flatnonzero(mask), targets)
    assert _loss(cost, out, mask) <= _loss(cost, fast, mask) + 1e-9
    assert stats["loss_after"] == pytest.approx(_loss(cost, out, mask))
    assert stats["improved"] == (stats["loss_after"] < stats["loss_before"])


def test_reaches_the_brute_force_minimum_from_a_poor_start() -> None:
    # 2 x 3 table with totals (12 cells), one cell of 1 record; start: everything suppressed.
    counts = {("x", "p"): 1, ("x", "q"): 4, ("x", "s"): 9, ("y", "p"): 6, ("y", "q"): 3}
    counts[("y", "s")] = 7
    rows: dict[str, list[str]] = {"r": [], "c": []}
    for (r, c), k in counts.items():
        rows["r"] += [r] * k
        rows["c"] += [c] * k
    matrix, mask, targets, cost, coding = _parts(pa.table(rows), Rules(dims=[Dim("r"), Dim("c")]))
    everything = np.ones(len(mask), dtype=bool)
    assert not violations(matrix, everything, np.flatnonzero(mask), targets)
    out, stats = improve(matrix, everything, mask, targets, cost, coding)
    best = np.inf
    free = np.flatnonzero(~mask)
    for k in range(1, len(free) + 1):
        for subset in itertools.combinations(free, k):
            price = float(cost[list(subset)].sum())
            if price >= best:
                continue
            sup = mask.copy()
            sup[list(subset)] = True
            if not violations(matrix, sup, np.flatnonzero(mask), targets):
                best = price
    assert stats["optimal"] and stats["improved"]
    assert _loss(cost, out, mask) == pytest.approx(best)
    assert not violations(matrix, out, np.flatnonzero(mask), targets)


def test_matches_the_optimal_method_when_the_loop_finishes() -> None:
    table, rules = _table(2, 3, 3, 0)  # 46 cells, 10 primary: well within the limits
    matrix, mask, targets, cost, coding = _parts(table, rules)
    fast, _ = suppress_fast(matrix, mask, targets, cost, coding)
    out, stats = improve(matrix, fast, mask, targets, cost, coding)
    opt, opt_stats = suppress_optimal(matrix, mask, targets, cost, rules, coding, time_limit=300)
    assert stats["optimal"] and opt_stats["optimal"]
    assert _loss(cost, out, mask) == pytest.approx(_loss(cost, opt, mask))
    assert not violations(matrix, out, np.flatnonzero(mask), targets)


def test_deterministic_and_limits_keep_the_start() -> None:
    table, rules = _table(11, 3, 4, 2)
    matrix, mask, targets, cost, coding = _parts(table, rules)
    start = np.ones(len(mask), dtype=bool)  # protected, and far from optimal
    first, s1 = improve(matrix, start, mask, targets, cost, coding)
    second, s2 = improve(matrix, start, mask, targets, cost, coding)
    assert np.array_equal(first, second)
    assert (s1["rounds"], s1["cuts"], s1["nodes"]) == (s2["rounds"], s2["cuts"], s2["nodes"])
    # One round cannot prove anything here: the start comes back unchanged.
    stopped, s3 = improve(matrix, start, mask, targets, cost, coding, max_rounds=1)
    assert s1["rounds"] > 1
    assert np.array_equal(stopped, start) and not s3["improved"] and not s3["optimal"]


def test_big_tables_and_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    import datenlabor.disclosure.improve as mod

    table, rules = _table(5, 2, 3, 0)
    matrix, mask, targets, cost, coding = _parts(table, rules)
    start = np.ones(len(mask), dtype=bool)
    monkeypatch.setattr(mod, "MAX_CELLS", len(mask) - 1)
    out, stats = improve(matrix, start, mask, targets, cost, coding)
    assert np.array_equal(out, start) and stats["rounds"] == 0
    with pytest.raises(ValueError, match="cells"):
        improve(matrix, start[:-1], mask, targets, cost, coding)


def test_wired_into_fast_the_optimal_method_reuses_its_proof(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The wiring proposed for suppress_fast (stats["improve"]); the optimal method then
    returns the improved pattern without running the loop again."""
    import datenlabor.disclosure.secondary_fast as fast_mod
    import datenlabor.disclosure.secondary_optimal as opt_mod

    original = fast_mod.suppress_fast

    def wired(*args: Any) -> tuple[np.ndarray, dict[str, Any]]:
        matrix, mask, targets, cost, coding = args
        sup, stats = original(*args)
        sup, stats["improve"] = improve(matrix, sup, mask, targets, cost, coding)
        return sup, stats

    table, rules = _table(2, 3, 3, 0)
    matrix, mask, targets, cost, coding = _parts(table, rules)
    plain, _ = suppress_optimal(matrix, mask, targets, cost, rules, coding, time_limit=300)
    monkeypatch.setattr(fast_mod, "suppress_fast", wired)
    monkeypatch.setattr(opt_mod, "CutLoop", None)  # must not be needed
    sup, stats = suppress_optimal(matrix, mask, targets, cost, rules, coding, time_limit=300)
    assert stats["optimal"]
    assert _loss(cost, sup, mask) == pytest.approx(_loss(cost, plain, mask))
    assert not violations(matrix, sup, np.flatnonzero(mask), targets)
