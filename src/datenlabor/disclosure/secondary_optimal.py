"""Optimal secondary suppression: mixed-integer programming (HiGHS, via ``highspy``).

Fischetti–Salazar model solved by cutting planes (Benders):

* master: ``min sum cost_c z_c`` over binary ``z`` (1 = suppressed), ``z_p = 1`` for primary
  cells, subject to the cuts found so far; starting cuts: in every equation with a primary
  cell another cell is suppressed;
* attacker sub-problems for the master's pattern: for each primary cell, target and side,
  ``max ±y_p`` subject to ``M y = 0``, ``-x_c z_c <= y_c <= U z_c`` (``U`` the grand total). If
  the maximum is below the protection level, linear programming duality gives a cut: for the
  equation multipliers ``λ`` of the solution and reduced costs ``r = ±e_p - Mᵀλ``,
  ``sum_c (U max(r_c, 0) + x_c max(-r_c, 0)) z_c >= level``. Weak duality makes it valid for
  every pattern and every ``λ``, so solver round-off cannot cut off a feasible pattern.
  Coefficients above the level are lowered to it (valid for binary ``z``, and tighter), and
  a cut already in the master is not added again.

The loop ends when the master's pattern passes every sub-problem: that pattern is feasible and,
the master being a relaxation, optimal (``mip_rel_gap = 0``). The result is never worse than
the fast method's: if the loop runs out of time, the fast pattern is returned. The loop
(:class:`CutLoop`) also serves :func:`.improve.improve`, with deterministic limits instead of
a time limit.
"""

from __future__ import annotations

import time

import highspy
import numpy as np
import scipy.sparse as sp

from datenlabor.disclosure.primary import Target
from datenlabor.disclosure.rules import Rules
from datenlabor.disclosure.table import Coding
from datenlabor.errors import BadInput

_TIME_LIMIT = 60.0


def suppress_optimal(
    matrix: sp.csr_matrix,
    primary: np.ndarray,
    targets: list[Target],
    cost: np.ndarray,
    rules: Rules,
    coding: Coding,
    *,
    time_limit: float = _TIME_LIMIT,
) -> tuple[np.ndarray, dict[str, float | int | bool]]:
    """Minimum-cost suppression pattern (primary included) and solver statistics."""
    from datenlabor.disclosure.secondary_fast import suppress_fast

    n = matrix.shape[1]
    if n > rules.optimal_max_cells:
        raise BadInput(
            f"the table has {n:,} cells; the optimal method takes at most "
            f"{rules.optimal_max_cells:,} (use method fast)",
            column="method",
        )
    started = time.perf_counter()
    fast, fast_stats = suppress_fast(matrix, primary, targets, cost, coding)
    done = fast_stats.get("improve")
    if isinstance(done, dict) and done.get("optimal"):
        # The fast method's post-optimisation (improve) already finished this same loop.
        return fast, {"iterations": done["rounds"], "cuts": done["cuts"], "optimal": True}
    loop = CutLoop(matrix, primary, targets, cost, fast)
    z = loop.run(deadline=started + time_limit)
    stats: dict[str, float | int | bool] = {
        "iterations": loop.rounds,
        "cuts": loop.cuts,
        "optimal": False,
    }
    if z is not None:
        from datenlabor.disclosure.attacker import violations

        # The sub-problems' attacker is bounded (see _Sub), so the real one checks the result;
        # with exact arithmetic it always passes: never return an unsafe pattern.
        if not violations(matrix, z, np.flatnonzero(primary), targets, coding):
            stats["optimal"] = True
            if float(cost[z & ~primary].sum()) <= float(cost[fast & ~primary].sum()):
                return z, stats
    return fast, stats


def starting_cuts(
    matrix: sp.csr_matrix, primary: np.ndarray, targets: list[Target]
) -> tuple[list[np.ndarray], list[float]]:
    """Cuts every protected pattern satisfies, before any sub-problem is solved: per primary
    cell, side and equation with it, the equation must balance the cell's move through cells
    that can move far enough (parts go down by at most their value, a total can rise freely,
    and the other way round)."""
    n = matrix.shape[1]
    cuts_a: list[np.ndarray] = []
    cuts_b: list[float] = []
    csc = matrix.tocsc()
    for t in targets:
        for p in np.flatnonzero(primary):
            for side, level in (("upper", t.upper[p]), ("lower", t.lower[p])):
                if level <= 0:
                    continue
                for eq in csc[:, p].indices:
                    members = matrix[eq].indices
                    signs = matrix[eq].data
                    same = signs == signs[members == p][0]  # p's side of the equation
                    # Moving p up: cells on its side go down (capacity x), the other side up.
                    limited = same if side == "upper" else ~same
                    cap = np.where(limited, t.values[members] / level, 1.0)
                    row = np.zeros(n)
                    row[members] = np.minimum(cap, 1.0)
                    row[p] = 0.0
                    cuts_a.append(row)
                    cuts_b.append(1.0)
    return cuts_a, cuts_b


class CutLoop:
    """The Benders loop: master MIP, attacker sub-problems, cuts, until the master's pattern
    passes every sub-problem (that pattern is then optimal, the master being a relaxation).

    ``start`` is a protected pattern (primary included); it satisfies every valid cut and
    warm-starts every master solve. ``run`` stops at a wall-clock ``deadline`` (the optimal
    method) or at deterministic limits (:mod:`.improve`: master simplex iterations, rounds,
    cuts, branch-and-bound nodes per master solve, so that the same table always gives the
    same result)."""

    def __init__(
        self,
        matrix: sp.csr_matrix,
        primary: np.ndarray,
        targets: list[Target],
        cost: np.ndarray,
        start: np.ndarray,
    ) -> None:
        self.matrix = matrix
        self.primary = primary
        self.start = start | primary
        self.subs = [_Sub(matrix, t) for t in targets]
        self.master = _Master(cost, primary)
        self.master.add(*starting_cuts(matrix, primary, targets))
        self.rounds = 0
        self.cuts = 0
        self.nodes = 0

    @property
    def sub_work(self) -> int:
        return sum(sub.solves for sub in self.subs) * self.matrix.shape[1]

    def run(
        self,
        *,
        deadline: float | None = None,
        max_rounds: int | None = None,
        max_cuts: int | None = None,
        max_nodes: int | None = None,
        max_iterations: int | None = None,
        max_sub_work: int | None = None,
    ) -> np.ndarray | None:
        """The optimal pattern (primary included), or None if a limit stopped the loop.

        ``max_nodes`` limits each master solve's branch-and-bound nodes; ``max_cuts`` (distinct
        cuts added) and ``max_iterations`` (simplex iterations of all master solves: the
        master's work, which grows steeply once its bound nears the optimum) are checked
        before each round, as is ``max_sub_work`` (sub-problem LPs solved times the table's
        cells: warm-started, they take few iterations each, so their cost is per solve)."""
        prim = np.flatnonzero(self.primary)
        while deadline is None or time.perf_counter() < deadline:
            if max_rounds is not None and self.rounds >= max_rounds:
                return None
            if max_cuts is not None and self.cuts > max_cuts:
                return None
            if max_iterations is not None and self.master.iterations > max_iterations:
                return None
            if max_sub_work is not None and self.sub_work > max_sub_work:
                return None
            self.rounds += 1
            z = self.master.solve(self.start, deadline=deadline, max_nodes=max_nodes)
            self.nodes += self.master.nodes
            if z is None:
                return None
            new_a: list[np.ndarray] = []
            new_b: list[float] = []
            for sub in self.subs:
                for a, b in sub.cuts(z, prim):
                    new_a.append(a)
                    new_b.append(b)
            if not new_a:
                return z | self.primary
            self.cuts += self.master.add(new_a, new_b)
        return None


class _Master:
    """The master MIP, kept between rounds: cuts are added as rows, and every solve starts
    from the best known pattern (the fast one), which satisfies every valid cut, so HiGHS
    prunes against its cost from the first node. HiGHS's MIP search is deterministic for the
    same model and options (repeated runs in separate processes gave the same rounds and
    cuts), so limits on nodes and iterations give the same result every time."""

    def __init__(self, cost: np.ndarray, primary: np.ndarray) -> None:
        n = len(cost)
        self.n = n
        self.nodes = 0  # of the last solve
        self.iterations = 0  # simplex iterations of all solves so far
        self.seen: set[bytes] = set()
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("mip_rel_gap", 0.0)
        h.addVars(n, primary.astype(np.float64), np.ones(n))
        idx = np.arange(n, dtype=np.int32)
        h.changeColsCost(n, idx, cost.astype(np.float64))
        h.changeColsIntegrality(n, idx, np.full(n, highspy.HighsVarType.kInteger))
        self.h = h

    def add(self, rows: list[np.ndarray], rhs: list[float]) -> int:
        """Add the cuts not in the master yet; returns how many were new. Several primary
        cells of one component often yield the same cut (most of them on small tables), and
        every duplicate row makes each later master solve dearer."""
        keep = []
        for row, b in zip(rows, rhs, strict=True):
            key = np.round(row / b, 12).tobytes()
            if key not in self.seen:
                self.seen.add(key)
                keep.append((row, b))
        if not keep:
            return 0
        a = sp.csr_matrix(np.array([row for row, _ in keep]))
        self.h.addRows(
            a.shape[0],
            np.array([b for _, b in keep], dtype=np.float64),
            np.full(a.shape[0], highspy.kHighsInf),
            a.nnz,
            a.indptr.astype(np.int32),
            a.indices.astype(np.int32),
            a.data.astype(np.float64),
        )
        return len(keep)

    def solve(
        self, start: np.ndarray, *, deadline: float | None = None, max_nodes: int | None = None
    ) -> np.ndarray | None:
        """An optimal pattern of the master (None if it did not finish within the limits)."""
        h = self.h
        if deadline is not None:
            remaining = deadline - time.perf_counter()
            if remaining <= 0.5:
                return None
            h.setOptionValue("time_limit", remaining)
        if max_nodes is not None:
            h.setOptionValue("mip_max_nodes", max_nodes)
        sol = highspy.HighsSolution()
        sol.col_value = start.astype(np.float64).tolist()
        sol.value_valid = True
        h.setSolution(sol)
        h.run()
        info = h.getInfo()
        self.nodes = int(info.mip_node_count)
        self.iterations += max(0, int(info.simplex_iteration_count))
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        return np.asarray(h.getSolution().col_value) > 0.5


class _Sub:
    """The attacker's LPs for one target on the full table, bounds set by the pattern."""

    def __init__(self, matrix: sp.csr_matrix, target: Target) -> None:
        self.matrix = matrix
        self.t = target
        n = matrix.shape[1]
        # Bound on any cell's move in the attacker's sub-problem. Tighter than the grand
        # total keeps the cuts' coefficients small; the sub-problem's attacker is then weaker
        # than the real one only in moves beyond it, so a pattern it accepts is still checked
        # by the real attacker before it is returned (see suppress_optimal).
        levels = np.concatenate([target.upper, target.lower])
        self.big = max(1.0, 4.0 * float(levels.max(initial=0.0)))
        csc = matrix.tocsc()
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = n, matrix.shape[0]
        lp.col_cost_ = np.zeros(n)
        lp.col_lower_ = np.zeros(n)
        lp.col_upper_ = np.zeros(n)
        lp.row_lower_ = np.zeros(matrix.shape[0])
        lp.row_upper_ = np.zeros(matrix.shape[0])
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = csc.indptr
        lp.a_matrix_.index_ = csc.indices
        lp.a_matrix_.value_ = csc.data
        self.h = highspy.Highs()
        self.h.setOptionValue("output_flag", False)
        self.h.passModel(lp)
        self.solves = 0  # LPs solved so far

    def cuts(self, z: np.ndarray, primaries: np.ndarray) -> list[tuple[np.ndarray, float]]:
        t, h, n = self.t, self.h, len(z)
        lo = np.where(z, -t.values, 0.0)
        hi = np.where(z, self.big, 0.0)
        h.changeColsBounds(n, np.arange(n, dtype=np.int32), lo, hi)
        out = []
        for p in primaries:
            for sign, level in ((1.0, t.upper[p]), (-1.0, t.lower[p])):
                if level <= 0:
                    continue
                h.changeColCost(int(p), -sign)  # HiGHS minimises: min -sign*y_p
                h.run()
                self.solves += 1
                ok = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
                best = -float(h.getInfo().objective_function_value) if ok else np.inf
                duals = np.asarray(h.getSolution().row_dual) if ok else None
                h.changeColCost(int(p), 0.0)
                tol = 1e-7 * self.big + 1e-6 * level
                if best >= level - tol or duals is None:
                    continue
                # With binary z, a coefficient above the right-hand side can be lowered to
                # it (one such cell alone satisfies the cut either way): a tighter master.
                cut = np.minimum(self._cut(p, sign, duals, z), level)
                out.append((cut, float(level)))
        return out

    def _cut(self, p: int, sign: float, duals: np.ndarray, z: np.ndarray) -> np.ndarray:
        e = np.zeros(self.matrix.shape[1])
        e[p] = sign
        best = None
        for lam in (duals, -duals):  # any multipliers give a valid cut; take the tighter one
            r = e - self.matrix.T @ lam
            coef = self.big * np.maximum(r, 0.0) + self.t.values * np.maximum(-r, 0.0)
            if best is None or coef[z].sum() < best[z].sum():
                best = coef
        assert best is not None
        return best
