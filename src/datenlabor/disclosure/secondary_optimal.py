"""Optimal secondary suppression: mixed-integer programming (HiGHS via ``scipy.optimize.milp``).

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
from scipy.optimize import Bounds, LinearConstraint, milp

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
    lower = primary.astype(np.float64)
    stats: dict[str, float | int | bool] = {"iterations": 0, "cuts": 0, "optimal": False}
    while time.perf_counter() - started < time_limit:
        stats["iterations"] = int(stats["iterations"]) + 1
        remaining = max(1.0, time_limit - (time.perf_counter() - started))
        res = milp(
            cost,
            integrality=np.ones(n),
            bounds=Bounds(lower, np.ones(n)),
            constraints=[LinearConstraint(np.array(cuts_a), np.array(cuts_b), np.inf)]
            if cuts_a
            else [],
            options={"mip_rel_gap": 0.0, "time_limit": remaining, "disp": False},
        )
        if res.x is None or res.status not in (0,):
            break
        z = res.x > 0.5
        new = 0
        for sub in subs:
            for a, b in sub.cuts(z, np.flatnonzero(primary)):
                cuts_a.append(a)
                cuts_b.append(b)
                new += 1
        stats["cuts"] = int(stats["cuts"]) + new
        if not new:
            from datenlabor.disclosure.attacker import violations

            if violations(matrix, z | primary, np.flatnonzero(primary), targets, coding):
                break  # cannot happen with exact arithmetic; never return an unsafe pattern
            stats["optimal"] = True
            if float(cost[z & ~primary].sum()) <= fast_cost:
                return z | primary, stats
            break
    return fast, stats


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
