"""Fast secondary suppression for large tables (see docs/disclosure.md).

1. Singleton pass (vectorized): while some equation (a total and its parts) holds exactly one
   suppressed cell, suppress the cheapest other cell of it that can absorb the protection
   the suppressed cell needs. Cheap, and it removes most exact disclosures.
2. Attack: hypercube and box certificates (:mod:`.hypercube`, :mod:`.local`; tables above
   ``CLEANUP_MAX_CELLS`` skip the boxes and certify with one LP per component), the exact
   attacker (:mod:`.attacker`) for the rest (on those tables the first attack sends the
   uncertified cells straight to step 3). LPs run in threads (see docs/disclosure.md).
3. Repair each violation by column generation on its box LP (:mod:`.columns`: suppress the
   published cell with the best cost per unit of reduced cost until the cell reaches its
   level); where the box cannot, the same on the whole-table LP, and as a last resort the
   cheapest *deviation* LP after Fischetti and Salazar (``M y = 0``, ``x + y >= 0``, costs
   0 for suppressed cells; suppressing the support of ``y`` makes ``x + y`` a table the
   attacker cannot exclude). A repaired cell is protected by construction.
4. Attack again until clean (suppression only grows, so protection once reached stays).
5. Clean-up (tables up to ``CLEANUP_MAX_CELLS``): publish again what turns out unnecessary, most expensive
   first, each time checked by the attacker.
6. Post-optimisation (same tables, :mod:`.improve`): the optimal method's cut loop, started
   from the pattern and stopped by fixed counts; taken only when it finishes, passes the
   attacker and is cheaper.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import highspy
import numpy as np
import scipy.sparse as sp

from datenlabor.disclosure import columns
from datenlabor.disclosure.attacker import (
    TableModel,
    Violation,
    lp_map,
    tolerance,
    violations,
)
from datenlabor.disclosure.hypercube import protect_by_cubes
from datenlabor.disclosure.improve import improve
from datenlabor.disclosure.local import BoxModel, box_groups, in_waves
from datenlabor.disclosure.primary import Target
from datenlabor.disclosure.table import Coding

_MAX_ROUNDS = 20
#: tables up to this many cells get the clean-up pass (a full attack per secondary cell);
#: a count, not a time budget, so that the same table always gives the same result
CLEANUP_MAX_CELLS = 2000
#: boxes of more cells are not used for certificates (their cells go to the LP over the
#: component, certified all at once); tables of more cells are repaired by deviation LPs on
#: neighbourhoods instead of column generation on the whole table
MAX_BOX = 5000


def cell_costs(values: np.ndarray, kind: str) -> np.ndarray:
    """Suppression cost per cell: its value (plus a small tie-breaker) or 1 per cell."""
    if kind == "cells":
        return np.ones(len(values))
    positive = values[values > 0]
    eps = 1e-3 * float(positive.mean()) if len(positive) else 1.0
    return values + eps


def suppress_fast(
    matrix: sp.csr_matrix,
    primary: np.ndarray,
    targets: list[Target],
    cost: np.ndarray,
    coding: Coding,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Secondary suppression: the suppressed mask (primary included) and some statistics.

    Tables up to ``CLEANUP_MAX_CELLS`` get two starts (singleton pass and hypercubes), each
    repaired and cleaned up; the cheaper pattern wins (a different start often leads the
    clean-up to a much better local optimum)."""
    sup, stats = _from_singletons(matrix, primary, targets, cost, coding)
    if len(sup) > CLEANUP_MAX_CELLS:
        return sup, stats
    stats["cleaned"] = _cleanup(matrix, sup, primary, targets, coding, cost)
    alt = primary.copy()
    left, cube_stats = protect_by_cubes(matrix, alt, primary, targets, cost, coding)
    _settle(matrix, alt, left, targets, coding, cost, {"global_repairs": 0})
    cleaned = _cleanup(matrix, alt, primary, targets, coding, cost)
    out: dict[str, Any] = {**stats, "start": "singletons"}
    if float(cost[alt & ~primary].sum()) < float(cost[sup & ~primary].sum()):
        sup, out = alt, {**cube_stats, "cleaned": cleaned, "start": "cubes"}
    # post-optimisation with fixed counts (see improve): never worse, often the optimum
    sup, out["improve"] = improve(matrix, sup, primary, targets, cost, coding)
    return sup, out


def _from_singletons(
    matrix: sp.csr_matrix,
    primary: np.ndarray,
    targets: list[Target],
    cost: np.ndarray,
    coding: Coding,
) -> tuple[np.ndarray, dict[str, int]]:
    """Singleton pass, box repairs, then the whole table until the attacker finds nothing."""
    sup = primary.copy()
    need = np.zeros(len(sup))
    main = targets[0]
    need[primary] = np.maximum(main.upper, main.lower)[primary]
    _singletons(matrix, sup, cost, main.values, need)
    stats = {"singleton_cells": int(sup.sum() - primary.sum()), "local_repairs": 0}
    # Large tables: attacks certify by one LP per component instead of thousands of box
    # LPs, cells left uncertified go to their box repair without an exact interval each
    # (2,904 LPs, 14 s of CPU on the 138,882-cell benchmark table, for 0.5 % more
    # secondary cells), and deviation repairs are checked as certificates instead of
    # attacked again.
    large = matrix.shape[1] > CLEANUP_MAX_CELLS
    stuck = _local(matrix, sup, cost, targets, coding, primary, stats, boxes=not large)
    stats["global_repairs"] = 0
    pending = np.unique([v.cell for v in stuck]).astype(np.int64)
    _settle(matrix, sup, pending, targets, coding, cost, stats, large=large)
    return sup, stats


def _settle(
    matrix: sp.csr_matrix,
    sup: np.ndarray,
    pending: np.ndarray,
    targets: list[Target],
    coding: Coding,
    cost: np.ndarray,
    stats: dict[str, int],
    *,
    large: bool = False,
) -> None:
    """Attack the pending cells and repair on the whole table until the attacker finds
    nothing (suppression only grows, so cells protected before stay protected).

    ``large``: attack without box LPs, and check deviation repairs explicitly as
    certificates (:func:`_repair_verified`) so that only those failing the check are
    attacked again."""
    for _ in range(_MAX_ROUNDS):
        found = (
            violations(
                matrix,
                sup,
                pending,
                targets,
                coding,
                cubes=True,
                max_box=MAX_BOX,
                boxes=not large,
            )
            if len(pending)
            else []
        )
        if not found:
            return
        stats["global_repairs"] += len(found)
        # Column generation on the whole table is thorough but slow on large tables (a full
        # LP per step); there the deviation LPs on neighbourhoods repair all at once.
        left = (
            _repair_by_columns(matrix, sup, cost, targets, found)
            if matrix.shape[1] <= MAX_BOX
            else found
        )
        if large and len(left) == len(found):
            failed = _repair_verified(matrix, sup, cost, targets, found)
            pending = np.unique([v.cell for v in failed]).astype(np.int64)
            continue
        if left:
            _repair_all(matrix, sup, cost, targets, left)
        pending = np.unique([v.cell for v in found])
    raise RuntimeError("secondary suppression did not converge; please report this table")


def _cleanup(
    matrix: sp.csr_matrix,
    sup: np.ndarray,
    primary: np.ndarray,
    targets: list[Target],
    coding: Coding,
    cost: np.ndarray,
) -> int:
    """Publish again, most expensive first, every secondary cell whose suppression turns out
    unnecessary (the heuristics overshoot). A try re-certifies the primary cells whose box
    holds the cell (box certificates of other boxes do not involve it) and asks the exact
    attacker about cells no box certifies. Only for tables up to CLEANUP_MAX_CELLS."""
    if len(sup) > CLEANUP_MAX_CELLS:
        return 0
    prim = np.flatnonzero(primary)
    csc = matrix.tocsc()
    groups = []
    for ti, t in enumerate(targets):
        cells = prim[(t.upper[prim] > 0) | (t.lower[prim] > 0)]
        groups += [(ti, m, b) for m, b in box_groups(coding, cells)]

    # One box LP per group, kept for the whole clean-up: a try publishes the cell in the
    # models holding it (and hides it again if the try fails), and each certificate starts
    # from the basis the last one left (rebuilding them took a third of the clean-up).
    models = [BoxModel(csc, b, targets[ti].values, sup) for ti, _, b in groups]
    # The attacker's LPs, kept the same way (an Attacker per try cost 30 ms on an 850-cell
    # table, most of the clean-up).
    tables = [TableModel(matrix, t.values, sup) for t in targets]

    def boxed(g: int) -> np.ndarray:
        """Members of group ``g`` certified in their box (both sides where required)."""
        ti, members, _ = groups[g]
        t, model = targets[ti], models[g]
        scale = max(1.0, float(np.abs(t.values).max(initial=0.0)))
        ok = np.ones(len(members), dtype=bool)
        for side, level in (("upper", t.upper), ("lower", t.lower)):
            need = level[members] > 0
            if need.any():
                m = members[need]
                goal = t.values[m] + level[m] if side == "upper" else t.values[m] - level[m]
                tol = np.broadcast_to(tolerance(t.values[m], scale), (len(m),))
                ok[np.flatnonzero(need)] &= model.certify(model.local(m), goal, side, tol)
        return ok

    outside = [groups[g][1][~boxed(g)] for g in range(len(groups))]  # protected, not in box
    unboxed = np.unique(np.concatenate(outside)) if outside else np.zeros(0, dtype=np.int64)
    cand = np.flatnonzero(sup & ~primary)
    cleaned = 0
    for c in cand[np.argsort(-cost[cand], kind="stable")]:
        sup[c] = False
        check = [unboxed]
        holding = [
            g
            for g, (_, _, b) in enumerate(groups)
            if b[min(np.searchsorted(b, c), len(b) - 1)] == c
        ]
        for table in tables:
            table.publish(np.array([c]))
        for g in holding:
            models[g].publish(c)
            check.append(groups[g][1][~boxed(g)])  # lost the box certificate: ask the attacker
        cells = np.unique(np.concatenate(check))
        # Every cell here failed its box certificate, with as much suppression or more:
        # publishing a cell only narrows what the attacker must allow, so the boxes would
        # fail again; straight to the component LPs.
        safe = not len(cells) or not violations(
            matrix, sup, cells, targets, boxes=False, first=True, models=tables
        )
        if safe:
            cleaned += 1
            unboxed = cells  # from now on protected only through cells outside their box
        else:
            sup[c] = True
            for table in tables:
                table.hide(np.array([c]))
            for g in holding:
                models[g].hide(c)
    return cleaned


def _local(
    matrix: sp.csr_matrix,
    sup: np.ndarray,
    cost: np.ndarray,
    targets: list[Target],
    coding: Coding,
    primary: np.ndarray,
    stats: dict[str, int],
    *,
    boxes: bool = True,
) -> list[Violation]:
    """Find the violations (cube and box certificates first, the exact attacker for the
    rest), repair each in its box; returns those the box cannot settle (repaired on the
    whole table). ``boxes=False``: certify without box LPs (see :func:`violations`)."""
    found = violations(
        matrix,
        sup,
        np.flatnonzero(primary),
        targets,
        coding,
        cubes=True,
        max_box=MAX_BOX,
        boxes=boxes,
        exact=boxes,
    )
    csc = matrix.tocsc()
    stuck: list[Violation] = []
    for ti, t in enumerate(targets):
        mine = {(v.cell, v.side): v for v in found if v.target == ti}
        if not mine:
            continue
        cells = np.unique([c for c, _ in mine])
        scale = max(1.0, float(np.abs(t.values).max(initial=0.0)))
        groups = list(box_groups(coding, cells))
        repair = partial(_box_repair, groups, csc, t, mine, scale, sup, cost)
        for result in in_waves([box for _, box in groups], len(sup), repair):
            for v, ok in result:
                stats["local_repairs"] += 1
                if not ok:
                    stuck.append(v)
    return stuck


def _box_repair(
    groups: list[tuple[np.ndarray, np.ndarray]],
    csc: sp.csc_matrix,
    t: Target,
    mine: dict[tuple[int, str], Violation],
    scale: float,
    sup: np.ndarray,
    cost: np.ndarray,
    i: int,
) -> list[tuple[Violation, bool]]:
    """Push the violations of one box group's cells in their box LP; per violation whether
    it reached its goal. Touches ``sup`` only inside the box (see :func:`.local.in_waves`)."""
    members, box = groups[i]
    model = BoxModel(csc, box, t.values, sup)
    out = []
    for m in members:
        for side in ("upper", "lower"):
            v = mine.get((int(m), side))
            if v is None:
                continue
            x = float(t.values[m])
            goal = x + v.need if side == "upper" else x - v.need
            tol = float(tolerance(x, scale))
            col = int(model.local(np.array([m]))[0])
            out.append((v, model.push(col, goal, side, sup, cost, tol)))
    return out


def _singletons(
    matrix: sp.csr_matrix, sup: np.ndarray, cost: np.ndarray, values: np.ndarray, need: np.ndarray
) -> None:
    pattern = matrix.copy()
    pattern.data = np.ones_like(pattern.data)
    eq_of = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    cell_of = matrix.indices
    penalty = 10.0 * float(cost.max(initial=1.0)) + 1.0
    while True:
        count = pattern @ sup.astype(np.float64)
        single = count == 1
        if not single.any():
            return
        hit = single[eq_of]
        eqs, members = eq_of[hit], cell_of[hit]
        # The need of an equation is the need of its one suppressed cell.
        eq_need = np.zeros(matrix.shape[0])
        on = sup[members]
        np.maximum.at(eq_need, eqs[on], need[members[on]])
        free = ~on
        eqs, members = eqs[free], members[free]
        score = cost[members] + np.where(values[members] < eq_need[eqs], penalty, 0.0)
        order = np.lexsort((score, eqs))
        first = np.ones(len(order), dtype=bool)
        first[1:] = eqs[order][1:] != eqs[order][:-1]
        chosen = members[order[first]]
        chosen_eq = eqs[order[first]]
        need_new = np.zeros(len(sup))
        np.maximum.at(need_new, chosen, eq_need[chosen_eq])
        sup[chosen] = True
        need[chosen] = np.maximum(need[chosen], need_new[chosen])


def _push_in_table(model: TableModel, v: Violation, sup: np.ndarray, cost: np.ndarray) -> bool:
    """Suppress cells until the attacker's bound on ``v.cell`` reaches its protection level
    (:func:`.columns.push` on the whole-table LP); False if stuck."""
    x = model.x[v.cell]
    step = v.need * (1 + 1e-6) + 1e-9
    goal = x + step if v.side == "upper" else x - step

    def hide(j: int) -> None:
        sup[j] = True

    return columns.push(
        model.h,
        v.cell,
        goal,
        v.side,
        x=model.x,
        free=model.suppressed,
        cost=cost,
        hide=hide,
        steps=50,
    )


def _repair_by_columns(
    matrix: sp.csr_matrix,
    sup: np.ndarray,
    cost: np.ndarray,
    targets: list[Target],
    found: list[Violation],
) -> list[Violation]:
    """Repair by column generation on the whole-table LP; returns the violations it could not
    fix (degenerate duals), for the deviation LP."""
    models: dict[int, TableModel] = {}
    left = []
    for v in found:
        model = models.get(v.target)
        if model is None:
            model = models[v.target] = TableModel(matrix, targets[v.target].values, sup)
        else:
            model.hide(np.flatnonzero(sup))
        if not _push_in_table(model, v, sup, cost):
            left.append(v)
    return left


def _neighbourhood(pattern: sp.csr_matrix, cell: int, hops: int) -> np.ndarray:
    near = np.zeros(pattern.shape[1], dtype=bool)
    near[cell] = True
    return np.flatnonzero(_grow(pattern, near, hops))


def _grow(pattern: sp.csr_matrix, near: np.ndarray, hops: int) -> np.ndarray:
    """``near`` (a cell mask) with every cell reachable in ``hops`` steps through a shared
    equation added, in place."""
    for _ in range(hops):
        rows = (pattern @ near.astype(np.float64)) > 0
        near |= (pattern.T @ rows.astype(np.float64)) > 0
    return near


def _repair_all(
    matrix: sp.csr_matrix,
    sup: np.ndarray,
    cost: np.ndarray,
    targets: list[Target],
    found: list[Violation],
) -> None:
    """Deviation LPs for all violations at once (one block per violation); blocks that find
    no deviation in their neighbourhood retry with a larger one."""
    pattern = abs(matrix).tocsr()
    hops = 3
    todo = list(found)
    while todo:
        blocks = [_neighbourhood(pattern, v.cell, hops) for v in todo]
        whole = [len(b) == matrix.shape[1] for b in blocks]
        supports = _deviations(matrix, sup, cost, targets, todo, blocks)
        retry = []
        for v, support, full in zip(todo, supports, whole, strict=True):
            if support is not None:
                sup[support] = True
            elif full:
                raise RuntimeError(f"no deviation protects cell {v.cell}; please report this table")
            else:
                retry.append(v)
        todo = retry
        hops *= 2


def _repair_verified(
    matrix: sp.csr_matrix,
    sup: np.ndarray,
    cost: np.ndarray,
    targets: list[Target],
    found: list[Violation],
) -> list[Violation]:
    """Repair by deviation LPs on growing neighbourhoods, each solution checked explicitly as
    a certificate: ``x + y`` solves every equation (residual at most 1e-7 of the protection
    level, scaled), no cell below zero, ``y`` zero outside the suppressed cells and moving the
    cell by its level. No exact attack is needed afterwards; returns the violations without a
    verified certificate (for the exact path)."""
    pattern = abs(matrix).tocsr()
    # Neighbourhoods grow by one step per round (doubling jumped from 8,000 to 90,000
    # cells for the last few violations of the benchmark table, one step more sufficed).
    todo = [(v, _grow(pattern, _one_hot(len(sup), v.cell), 3)) for v in found]
    failed: list[Violation] = []
    while todo:
        blocks = [np.flatnonzero(near) for _, near in todo]
        vectors = _deviation_vectors(matrix, sup, cost, targets, [v for v, _ in todo], blocks)
        retry = []
        for (v, near), cells, y in zip(todo, blocks, vectors, strict=True):
            if y is None:
                if len(cells) == matrix.shape[1]:
                    failed.append(v)
                else:
                    retry.append((v, _grow(pattern, near, 1)))
                continue
            sup[cells[y != 0]] = True
            if not _certificate_holds(matrix, sup, targets[v.target], v, cells, y):
                failed.append(v)
        todo = retry
    return failed


def _one_hot(n: int, cell: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[cell] = True
    return mask


def _certificate_holds(
    matrix: sp.csr_matrix,
    sup: np.ndarray,
    target: Target,
    v: Violation,
    cells: np.ndarray,
    y: np.ndarray,
) -> bool:
    """Explicit check that ``x + y`` (``y`` on ``cells``) is a table the attacker cannot
    exclude and moves ``v.cell`` by its protection level on ``v.side``."""
    tol = 1e-7 * max(1.0, v.need)
    residual = matrix[:, cells] @ y
    if np.abs(residual).max(initial=0.0) > tol:
        return False
    if ((y != 0) & ~sup[cells]).any() or (target.values[cells] + y < -tol).any():
        return False
    move = float(y[np.searchsorted(cells, v.cell)])
    return move >= v.need if v.side == "upper" else -move >= v.need


def _deviations(
    matrix: sp.csr_matrix,
    sup: np.ndarray,
    cost: np.ndarray,
    targets: list[Target],
    found: list[Violation],
    blocks: list[np.ndarray],
) -> list[np.ndarray | None]:
    """Per violation, the cells of the cheapest deviation within its block (None if the
    block has none)."""
    vectors = _deviation_vectors(matrix, sup, cost, targets, found, blocks)
    return [None if y is None else b[y != 0] for b, y in zip(blocks, vectors, strict=True)]


def _deviation_vectors(
    matrix: sp.csr_matrix,
    sup: np.ndarray,
    cost: np.ndarray,
    targets: list[Target],
    found: list[Violation],
    blocks: list[np.ndarray],
) -> list[np.ndarray | None]:
    """Per violation, the cheapest deviation ``y`` (on its block's cells) moving the cell by
    its protection level (None if the block has none): one LP per violation, in threads
    (:func:`.attacker.lp_map`; separate LPs solved twice as fast as one LP holding all
    blocks side by side, before the threads).

    Variables: ``y+``, ``y-`` (``x + y+ - y- >= 0``) and a slack with a prohibitive cost
    that keeps the LP feasible and tells whether the block has no deviation.
    """
    wmax = max(float(cost.max(initial=1.0)), 1e-12)
    csc = matrix.tocsc()

    def one(item: tuple[Violation, np.ndarray]) -> np.ndarray | None:
        v, cells = item
        t = targets[v.target]
        sub = csc[:, cells].tocsr()
        a = sub[np.flatnonzero(np.diff(sub.indptr) > 0)]
        k = len(cells)
        x = t.values[cells]
        w = np.where(sup[cells], 1e-6 * cost[cells], cost[cells]) / wmax
        local = int(np.searchsorted(cells, v.cell))
        amount = v.need * 1.000001 + 1e-9
        pick = np.zeros((1, 2 * k + 1))
        hi = np.concatenate([np.full(k, highspy.kHighsInf), x, [highspy.kHighsInf]])
        if v.side == "upper":
            pick[0, local] = 1.0
            hi[k + local] = 0.0
        else:
            amount = min(amount, float(x[local]))
            pick[0, k + local] = 1.0
            hi[local] = 0.0
        pick[0, -1] = 1.0
        eq = sp.vstack(
            [sp.hstack([a, -a, sp.csr_matrix((a.shape[0], 1))]), sp.csr_matrix(pick)]
        ).tocsc()
        rhs = np.concatenate([np.zeros(a.shape[0]), [amount]])
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = 2 * k + 1, eq.shape[0]
        lp.col_cost_ = np.concatenate([w, w, [1e6]])
        lp.col_lower_ = np.zeros(2 * k + 1)
        lp.col_upper_ = hi
        lp.row_lower_ = rhs
        lp.row_upper_ = rhs
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = eq.indptr
        lp.a_matrix_.index_ = eq.indices
        lp.a_matrix_.value_ = eq.data
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.passModel(lp)
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            raise RuntimeError(f"repair LP failed: {h.modelStatusToString(h.getModelStatus())}")
        y = np.asarray(h.getSolution().col_value)
        scale = max(1.0, v.need)
        if y[-1] > 1e-7 * scale:
            return None
        used = (y[:k] + y[k : 2 * k]) > 1e-9 * scale
        return np.where(used, y[:k] - y[k : 2 * k], 0.0)

    return lp_map(one, list(zip(found, blocks, strict=True)))
