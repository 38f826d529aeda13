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

The loop ends when the master's pattern passes every sub-problem: that pattern is feasible and,
the master being a relaxation, optimal (``mip_rel_gap = 0``). The result is never worse than
the fast method's: if the loop runs out of time, the fast pattern is returned.
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
    fast, _ = suppress_fast(matrix, primary, targets, cost, coding)
    fast_cost = float(cost[fast & ~primary].sum())
    cuts_a: list[np.ndarray] = []
    cuts_b: list[float] = []
    # Starting cuts, per primary cell, side and equation with it: the equation must balance
    # the cell's move, through cells that can move far enough (parts go down by at most
    # their value, a total can rise freely, and the other way round).
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
    subs = [_Sub(matrix, t) for t in targets]
    master = _Master(cost, primary, started + time_limit)
    master.add(cuts_a, cuts_b)
    stats: dict[str, float | int | bool] = {"iterations": 0, "cuts": 0, "optimal": False}
    prim = np.flatnonzero(primary)
    while time.perf_counter() - started < time_limit:
        stats["iterations"] = int(stats["iterations"]) + 1
        z = master.solve(fast)
        if z is None:
            break
        new_a: list[np.ndarray] = []
        new_b: list[float] = []
        for sub in subs:
            for a, b in sub.cuts(z, prim):
                new_a.append(a)
                new_b.append(b)
        stats["cuts"] = int(stats["cuts"]) + len(new_a)
        if not new_a:
            from datenlabor.disclosure.attacker import violations

            if violations(matrix, z | primary, prim, targets, coding):
                break  # cannot happen with exact arithmetic; never return an unsafe pattern
            stats["optimal"] = True
            if float(cost[z & ~primary].sum()) <= fast_cost:
                return z | primary, stats
            break
        master.add(new_a, new_b)
    return fast, stats


class _Master:
    """The master MIP, kept between rounds: cuts are added as rows, and every solve starts
    from the best known pattern (the fast one), which satisfies every valid cut, so HiGHS
    prunes against its cost from the first node."""

    def __init__(self, cost: np.ndarray, primary: np.ndarray, deadline: float) -> None:
        n = len(cost)
        self.n = n
        self.deadline = deadline
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("mip_rel_gap", 0.0)
        h.addVars(n, primary.astype(np.float64), np.ones(n))
        idx = np.arange(n, dtype=np.int32)
        h.changeColsCost(n, idx, cost.astype(np.float64))
        h.changeColsIntegrality(n, idx, np.full(n, highspy.HighsVarType.kInteger))
        self.h = h

    def add(self, rows: list[np.ndarray], rhs: list[float]) -> None:
        if not rows:
            return
        a = sp.csr_matrix(np.array(rows))
        self.h.addRows(
            a.shape[0],
            np.array(rhs, dtype=np.float64),
            np.full(a.shape[0], highspy.kHighsInf),
            a.nnz,
            a.indptr.astype(np.int32),
            a.indices.astype(np.int32),
            a.data.astype(np.float64),
        )

    def solve(self, start: np.ndarray) -> np.ndarray | None:
        """An optimal pattern of the master (None if it did not finish in time)."""
        h = self.h
        remaining = self.deadline - time.perf_counter()
        if remaining <= 0.5:
            return None
        h.setOptionValue("time_limit", remaining)
        sol = highspy.HighsSolution()
        sol.col_value = start.astype(np.float64).tolist()
        sol.value_valid = True
        h.setSolution(sol)
        h.run()
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
                ok = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
                best = -float(h.getInfo().objective_function_value) if ok else np.inf
                duals = np.asarray(h.getSolution().row_dual) if ok else None
                h.changeColCost(int(p), 0.0)
                tol = 1e-7 * self.big + 1e-6 * level
                if best >= level - tol or duals is None:
                    continue
                out.append((self._cut(p, sign, duals, z), float(level)))
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
