"""Large-table path of the fast method: component certificates without box LPs, and
deviation repairs accepted only after an explicit certificate check."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings

from datenlabor.disclosure import Dim, Rules
from datenlabor.disclosure.attacker import Attacker, Violation, violations
from datenlabor.disclosure.secondary_fast import _certificate_holds, _repair_verified
from test_disclosure_methods import _grid, _parts, microdata


def _two_by_two() -> tuple:
    # p = (x, p) holds 1 (primary, needs max >= 3); the rectangle through (y, q) protects it.
    counts = {("x", "p"): 1, ("x", "q"): 4, ("y", "p"): 6, ("y", "q"): 3}
    return _parts(_grid(counts), Rules(dims=[Dim("r"), Dim("c")]))


def _rectangle(mask: np.ndarray, coding) -> tuple[np.ndarray, np.ndarray]:
    """The four inner cells with signs +1 on p and its opposite corner, -1 on the others."""
    (p,) = np.flatnonzero(mask)
    inner = (coding.parent_ids[0][coding.ids[0]] >= 0) & (coding.parent_ids[1][coding.ids[1]] >= 0)
    cells = np.flatnonzero(inner)
    same_row = coding.ids[0][cells] == coding.ids[0][p]
    same_col = coding.ids[1][cells] == coding.ids[1][p]
    y = np.where(same_row == same_col, 1.0, -1.0)
    return cells, y


def test_certificate_check_accepts_a_true_rectangle_only() -> None:
    matrix, mask, targets, _, coding = _two_by_two()
    (p,) = np.flatnonzero(mask)
    cells, y = _rectangle(mask, coding)
    need = float(targets[0].upper[p])
    v = Violation(0, int(p), "upper", need, 0.0)
    sup = np.zeros(len(mask), dtype=bool)
    sup[cells] = True
    assert _certificate_holds(matrix, sup, targets[0], v, cells, need * y)
    # Too short a move, a cell published, a cell driven below zero, a broken equation:
    assert not _certificate_holds(matrix, sup, targets[0], v, cells, 0.5 * need * y)
    published = sup.copy()
    published[cells[y < 0][0]] = False
    assert not _certificate_holds(matrix, published, targets[0], v, cells, need * y)
    assert not _certificate_holds(matrix, sup, targets[0], v, cells, 10.0 * y)
    broken = need * y
    broken[np.searchsorted(cells, p)] += 1.0
    assert not _certificate_holds(matrix, sup, targets[0], v, cells, broken)


def test_verified_repair_protects_an_exposed_cell() -> None:
    matrix, mask, targets, cost, _ = _two_by_two()
    (p,) = np.flatnonzero(mask)
    sup = mask.copy()  # p alone: recomputable from its row total
    found = violations(matrix, sup, np.array([p]), targets)
    assert [v.cell for v in found] == [p]
    before = sup.copy()
    failed = _repair_verified(matrix, sup, cost, targets, found)
    assert failed == []
    assert (sup >= before).all() and sup.sum() > before.sum()
    assert not violations(matrix, sup, np.array([p]), targets)
    _, hi = Attacker(matrix, np.where(sup, np.nan, targets[0].values), sup).interval(
        int(p), low=False
    )
    assert hi >= targets[0].values[p] + targets[0].upper[p] - 1e-9


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(microdata())
def test_attack_without_boxes_finds_the_same_violations(case: tuple[pa.Table, Rules]) -> None:
    """Certificates only decide which cells need the exact LP: with or without box LPs (and
    cubes) the attacker reports the same violations on any pattern."""
    table, rules = case
    matrix, mask, targets, _, coding = _parts(table, rules)
    rng = np.random.default_rng(len(mask))
    for share in (0.0, 0.3, 0.6):
        sup = mask | (rng.random(len(mask)) < share)
        cells = np.flatnonzero(mask)
        key = [(v.cell, v.side) for v in violations(matrix, sup, cells, targets)]
        fast = violations(matrix, sup, cells, targets, coding, cubes=True, boxes=False)
        assert sorted(key) == sorted((v.cell, v.side) for v in fast)
