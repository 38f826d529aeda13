"""The attacker: linear programs over a published table give each suppressed cell's interval.

The attacker knows the table structure (every total equals the sum of its parts), every
published value, and that no cell is negative. For a suppressed cell ``c`` the feasible
interval is ``[min x_c, max x_c]`` over all non-negative fillings of the suppressed cells that
satisfy every equation. Equations only couple suppressed cells within a connected component
(cells linked by equations with other suppressed cells), so each component is one HiGHS
model; the model is kept and re-solved per cell with a warm start (objective changes only).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import highspy
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from datenlabor.config import usable_cpus
from datenlabor.errors import BadInput

INF = float("inf")
_I = TypeVar("_I")
_R = TypeVar("_R")
# Re-solves change only the objective (or bounds): the old basis stays primal feasible, so
# primal simplex from it is quickest; presolve would throw the basis away.
LP_OPTIONS: dict[str, str | int | bool] = {
    "output_flag": False,
    "presolve": "off",
    "simplex_strategy": 4,
}
_COLD_OPTIONS: dict[str, str | int | bool] = {"presolve": "on", "simplex_strategy": 1}
_COLD_AFTER = 100  # cells certified in one round after which the next starts afresh


def new_model(lp: highspy.HighsLp) -> highspy.Highs:
    """A HiGHS instance holding ``lp``, set up for :func:`solve`."""
    h = highspy.Highs()
    for k, v in LP_OPTIONS.items():
        h.setOptionValue(k, v)
    h.passModel(lp)
    return h


def lp_map(fn: Callable[[_I], _R], items: Sequence[_I]) -> list[_R]:
    """``[fn(x) for x in items]`` in threads, one per CPU this process may use: HiGHS
    releases the GIL while it solves (two solves on two cores took 1.0 s instead of 1.7 s).
    ``fn`` must touch no state another item touches; results come in order, and the first
    error of any item is raised."""
    workers = min(usable_cpus(), len(items))
    if workers <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(workers, thread_name_prefix="sdc-lp") as pool:
        return list(pool.map(fn, items))


def solve(h: highspy.Highs) -> None:
    """Run ``h``. The first run (no basis yet) uses presolve and dual simplex: from scratch
    that is far quicker on these tables (0.3 s instead of 4.8 s on a component of 16,605
    cells, mostly phase 1 of the primal simplex). Later runs change only the objective or
    bounds and go on with primal simplex from the basis the last run left."""
    if h.getBasis().valid:
        h.run()
        return
    for k, v in _COLD_OPTIONS.items():
        h.setOptionValue(k, v)
    try:
        h.run()
    finally:
        for k in _COLD_OPTIONS:
            h.setOptionValue(k, LP_OPTIONS[k])


def push_to_goals(
    h: highspy.Highs,
    cols: np.ndarray,
    goals: np.ndarray,
    side: str,
    tol: np.ndarray,
    found: Callable[[np.ndarray, np.ndarray], None] | None = None,
) -> np.ndarray:
    """Which of the model's columns ``cols`` reach their goals (max >= goal for "upper",
    min <= goal for "lower") in some solution of the model: a certificate for each.

    Instead of one LP per column, one LP pushes all pending columns towards their goals at
    once (each capped at its goal, so that one cannot take all); those that reach it are
    certified by that solution; repeat with the rest while that certifies more. The columns
    must be free (``[0, inf)``) before the call and are again after it. ``found(positions,
    solution)``, if given, receives each round's certified positions in ``cols`` and the
    solution (all columns) that certifies them.

    A certified column keeps its cap (only its objective returns to 0) until the next fresh
    start: lifting a bound of a column that sits on it moves the column off the old
    solution, and the warm start first has to repair that (primal phase 1). Keeping the cap
    only narrows the tables the next rounds may find, and every one of them is still a
    table the attacker cannot exclude. On the benchmark's 15 component LPs the certificate
    rounds took 6.9 s instead of 10.3 s and certified 18 cells more.
    """
    cols = np.asarray(cols, dtype=np.int32)
    ok = np.zeros(len(cols), dtype=bool)
    pending = np.ones(len(cols), dtype=bool)
    n = len(cols)
    zeros, inf = np.zeros(n), np.full(n, highspy.kHighsInf)
    cap = np.maximum(goals, 0.0)
    if side == "upper":
        h.changeColsBounds(n, cols, zeros, cap)
    else:
        h.changeColsBounds(n, cols, cap, inf)
    h.changeColsCost(n, cols, np.full(n, -1.0 if side == "upper" else 1.0))  # HiGHS minimises
    try:
        while pending.any():
            solve(h)
            if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                break
            values = np.asarray(h.getSolution().col_value)[cols[pending]]
            g, t = goals[pending], tol[pending]
            reached = values >= g - t if side == "upper" else values <= g + t
            if not reached.any():
                break
            done = np.flatnonzero(pending)[reached]
            if found is not None:
                found(done, np.asarray(h.getSolution().col_value))
            ok[done] = True
            pending[done] = False
            h.changeColsCost(len(done), cols[done], np.zeros(len(done)))
            if len(done) >= _COLD_AFTER:
                # Many objective coefficients change for the next round: the old basis is
                # far from its optimum, and a fresh start (presolve, dual simplex) is
                # quicker (1.0 s instead of 1.8 s on a component of 8,479 cells). Without a
                # basis to keep, the caps of the certified columns can go too. Small box
                # LPs, which rarely certify that many at once, keep their warm starts (a
                # fresh start each round made the clean-up of an 850-cell table 50 %
                # slower).
                h.clearSolver()
                fin = cols[ok]
                h.changeColsBounds(len(fin), fin, np.zeros(len(fin)), inf[: len(fin)])
    finally:
        h.changeColsCost(n, cols, zeros)
        h.changeColsBounds(n, cols, zeros, inf)
    return ok


class Certificates:
    """Kept certificates of one model: per (column, side) the solution that showed the
    column reaching its goal. Such a solution is a table the attacker cannot exclude for as
    long as it agrees with every published value, so publishing a column drops only the
    solutions that move it, and a later question about the same goal needs no LP (the
    clean-up of an 850-cell table ran HiGHS 11,245 times instead of 24,810)."""

    def __init__(self) -> None:
        self._by: dict[tuple[int, str], np.ndarray] = {}

    def add(self, col: int, side: str, solution: np.ndarray) -> None:
        self._by[col, side] = solution

    def publish(self, cols: np.ndarray, values: np.ndarray, tol: np.ndarray) -> None:
        """``cols`` are fixed at ``values`` now: drop the certificates that move them."""
        agrees: dict[int, bool] = {}  # one round's solution certifies many columns
        for y in self._by.values():
            if id(y) not in agrees:
                agrees[id(y)] = bool((np.abs(y[cols] - values) <= tol).all())
        self._by = {key: y for key, y in self._by.items() if agrees[id(y)]}

    def certify(
        self, h: highspy.Highs, cols: np.ndarray, goals: np.ndarray, side: str, tol: np.ndarray
    ) -> np.ndarray:
        """:func:`push_to_goals` for the columns without a kept certificate that reaches
        its goal; keeps the new ones."""
        ok = np.zeros(len(cols), dtype=bool)
        for k, c in enumerate(cols):
            y = self._by.get((int(c), side))
            ok[k] = y is not None and not short(y[c], goals[k], tol[k], side)
        todo = np.flatnonzero(~ok)

        def found(done: np.ndarray, y: np.ndarray) -> None:
            for k in todo[done]:
                self._by[int(cols[k]), side] = y

        ok[todo] = push_to_goals(h, cols[todo], goals[todo], side, tol[todo], found)
        return ok


@dataclass
class _Component:
    cells: np.ndarray  # table cell indices (columns of the model)
    model: highspy.Highs | None = None


class Attacker:
    """Interval computation for the suppressed cells of one published value column."""

    def __init__(self, matrix: sp.csr_matrix, values: np.ndarray, suppressed: np.ndarray) -> None:
        self.matrix = matrix
        self.suppressed = suppressed
        sup = np.flatnonzero(suppressed)
        pub = np.flatnonzero(~suppressed)
        self.sup = sup
        a = matrix[:, sup].tocsr()
        active = np.flatnonzero(np.diff(a.indptr) > 0)
        self.a = a[active]
        pub_vals = np.nan_to_num(values[pub], nan=0.0)
        self.rhs = -(matrix[active][:, pub] @ pub_vals)
        self.scale = max(1.0, float(np.abs(pub_vals).max(initial=0.0)))
        ns, ne = len(sup), len(active)
        graph = sp.bmat([[None, self.a.T], [self.a, None]], format="csr") if ne else None
        if graph is not None:
            _, labels = connected_components(graph, directed=False)
            self.label = labels[:ns]
            self.eq_label = labels[ns:]
        else:
            self.label = np.arange(ns)
            self.eq_label = np.zeros(0, dtype=np.int64)
        self.col = np.full(len(values), -1, dtype=np.int64)
        self.col[sup] = np.arange(ns)
        self._components: dict[int, _Component] = {}
        self._cols_of = _groups(self.label)
        self._rows_of = _groups(self.eq_label)

    def _component(self, label: int) -> _Component:
        comp = self._components.get(label)
        if comp is not None:
            return comp
        cols = self._cols_of.get(label, np.zeros(0, dtype=np.int64))
        rows = self._rows_of.get(label, np.zeros(0, dtype=np.int64))
        comp = _Component(self.sup[cols])
        if len(rows):
            sub = self.a[rows][:, cols].tocsc()
            lp = highspy.HighsLp()
            lp.num_col_ = len(cols)
            lp.num_row_ = len(rows)
            lp.col_cost_ = np.zeros(len(cols))
            lp.col_lower_ = np.zeros(len(cols))
            lp.col_upper_ = np.full(len(cols), highspy.kHighsInf)
            lp.row_lower_ = self.rhs[rows]
            lp.row_upper_ = self.rhs[rows]
            lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
            lp.a_matrix_.start_ = sub.indptr
            lp.a_matrix_.index_ = sub.indices
            lp.a_matrix_.value_ = sub.data
            comp.model = new_model(lp)
        self._components[label] = comp
        return comp

    def interval(self, cell: int, *, low: bool = True, high: bool = True) -> tuple[float, float]:
        """Feasible [min, max] of a suppressed cell (max may be infinite).

        ``low=False`` / ``high=False`` skip one side (returned as -inf / inf).
        """
        j = int(self.col[cell])
        if j < 0:
            raise ValueError(f"cell {cell} is published")
        return self._interval(self._component(int(self.label[j])), cell, low, high)

    def _interval(self, comp: _Component, cell: int, low: bool, high: bool) -> tuple[float, float]:
        if comp.model is None:
            return 0.0, INF
        local = int(np.searchsorted(comp.cells, cell))
        lo = optimum(comp.model, local, 1.0) if low else -INF
        hi = -optimum(comp.model, local, -1.0) if high else INF
        return lo, hi

    def intervals(self, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`interval` of many suppressed cells (components in parallel threads)."""
        lo, hi = np.zeros(len(cells)), np.zeros(len(cells))
        if (self.col[cells] < 0).any():
            raise ValueError(f"cell {int(cells[self.col[cells] < 0][0])} is published")

        def work(comp: _Component, idx: np.ndarray) -> None:
            for k in idx:
                lo[k], hi[k] = self._interval(comp, int(cells[k]), True, True)

        self._per_component(cells, work)
        return lo, hi

    def bounds(
        self,
        cells: np.ndarray,
        goal: np.ndarray,
        side: str,
        *,
        exact: bool = True,
        tol: np.ndarray | None = None,
        first: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Which cells provably reach ``goal`` (max >= goal, or min <= goal for "lower"),
        and with ``exact`` the attacker's max (min) of each other cell (NaN where certified).

        Instead of one LP per cell: per component, one LP pushes all pending cells towards
        their goals at once (each capped at its goal, so that one cell cannot take all);
        cells that reach it are certified by that feasible table; repeat with the rest while
        that certifies more. Only the cells left over get their own LP. ``first``: stop
        once one cell's bound falls short of its goal by more than ``tol`` (the caller asks
        only whether there is a violation); cells not examined then keep NaN.
        """
        ok = np.zeros(len(cells), dtype=bool)
        bound = np.full(len(cells), np.nan)
        stop = threading.Event()

        def work(comp: _Component, idx: np.ndarray) -> None:
            if stop.is_set():
                return
            ok[idx] = self._certify_component(comp, cells[idx], goal[idx], side)
            if not exact:
                return
            for k in idx[~ok[idx]]:
                if stop.is_set():
                    return
                lo, hi = self._interval(comp, int(cells[k]), side == "lower", side == "upper")
                bound[k] = hi if side == "upper" else lo
                if first and tol is not None and short(bound[k], goal[k], tol[k], side):
                    stop.set()

        self._per_component(cells, work)
        return ok, bound

    def _per_component(
        self, cells: np.ndarray, work: Callable[[_Component, np.ndarray], None]
    ) -> None:
        """Call ``work(component, positions in cells)`` for each component holding some of
        ``cells``, largest first, in threads (:func:`lp_map`): each component has its own
        model, used by one thread only, so the results do not depend on the scheduling."""
        if not len(cells):
            return
        groups = sorted(
            _groups(self.label[self.col[cells]]).items(),
            key=lambda kv: (-len(self._cols_of.get(kv[0], ())), kv[0]),
        )

        def one(item: tuple[int, np.ndarray]) -> None:
            work(self._component(item[0]), item[1])

        lp_map(one, groups)

    def _certify_component(
        self, comp: _Component, cells: np.ndarray, goal: np.ndarray, side: str
    ) -> np.ndarray:
        if comp.model is None:  # no equation: unbounded above, 0 below
            return goal <= 0.0 if side == "lower" else np.ones(len(cells), dtype=bool)
        local = np.searchsorted(comp.cells, cells)
        tol = np.broadcast_to(tolerance(goal, self.scale), goal.shape)
        return push_to_goals(comp.model, local, goal, side, tol)


class TableModel:
    """The attacker's LP over the whole table for one value column, kept while the pattern
    changes cell by cell: every cell is a column, a published one fixed at its value,
    suppressing frees it (``[0, inf)``). Same intervals as :class:`Attacker`, whose
    components leave the published cells out; for small tables, where a question costs a
    few simplex iterations from the last basis and building an :class:`Attacker` per
    question cost more (30 ms per question on an 850-cell table).

    Certificates are kept too (:class:`Certificates`).
    """

    def __init__(self, matrix: sp.csr_matrix, values: np.ndarray, suppressed: np.ndarray) -> None:
        n, m = matrix.shape[1], matrix.shape[0]
        self.x = np.asarray(values, dtype=np.float64)
        self.suppressed = suppressed.copy()
        self.certs = Certificates()
        csc = matrix.tocsc()
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = n, m
        lp.col_cost_ = np.zeros(n)
        lp.col_lower_ = np.where(suppressed, 0.0, self.x)
        lp.col_upper_ = np.where(suppressed, highspy.kHighsInf, self.x)
        lp.row_lower_ = np.zeros(m)
        lp.row_upper_ = np.zeros(m)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = csc.indptr
        lp.a_matrix_.index_ = csc.indices
        lp.a_matrix_.value_ = csc.data
        self.h = new_model(lp)

    @property
    def scale(self) -> float:
        """As :attr:`Attacker.scale`: the largest published value (at least 1)."""
        return max(1.0, float(np.abs(self.x[~self.suppressed]).max(initial=0.0)))

    def hide(self, cells: np.ndarray) -> None:
        """Suppress ``cells`` (free their columns)."""
        cells = np.asarray(cells, dtype=np.int32)
        self.suppressed[cells] = True
        k = len(cells)
        self.h.changeColsBounds(k, cells, np.zeros(k), np.full(k, highspy.kHighsInf))

    def publish(self, cells: np.ndarray) -> None:
        """Publish ``cells`` again (fix their columns at their values)."""
        cells = np.asarray(cells, dtype=np.int32)
        self.suppressed[cells] = False
        self.h.changeColsBounds(len(cells), cells, self.x[cells], self.x[cells])
        x = self.x[cells]
        self.certs.publish(cells, x, np.broadcast_to(tolerance(x, self.scale), x.shape))

    def bounds(
        self,
        cells: np.ndarray,
        goal: np.ndarray,
        side: str,
        *,
        exact: bool = True,
        tol: np.ndarray | None = None,
        first: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`Attacker.bounds` (``cells`` must be suppressed)."""
        cells = np.asarray(cells, dtype=np.int64)
        bound = np.full(len(cells), np.nan)
        cert_tol = np.broadcast_to(tolerance(goal, self.scale), goal.shape)
        ok = self.certs.certify(self.h, cells, goal, side, cert_tol)
        if exact:
            for k in np.flatnonzero(~ok):
                solution: list[np.ndarray] = []
                value = optimum(
                    self.h, int(cells[k]), -1.0 if side == "upper" else 1.0, solution.append
                )
                bound[k] = -value if side == "upper" else value
                if tol is not None and short(bound[k], goal[k], tol[k], side):
                    if first:
                        break
                elif solution:  # the optimal table reaches the goal: a certificate
                    self.certs.add(int(cells[k]), side, solution[0])
        return ok, bound


def optimum(
    h: highspy.Highs,
    col: int,
    sign: float,
    keep: Callable[[np.ndarray], None] | None = None,
) -> float:
    """Minimum of ``sign * x[col]`` over the model (-inf if unbounded); the objective is
    zero again afterwards. ``keep``, if given, receives the optimal solution (all columns).
    Raises BadInput if the model is infeasible (the published values contradict the table
    structure)."""
    h.changeColCost(col, sign)
    solve(h)
    status = h.getModelStatus()
    if status not in (highspy.HighsModelStatus.kOptimal, highspy.HighsModelStatus.kUnbounded):
        h.clearSolver()  # a warm start can end in a wrong verdict: confirm from scratch
        h.run()
        status = h.getModelStatus()
    value = float(h.getInfo().objective_function_value)
    if keep is not None and status == highspy.HighsModelStatus.kOptimal:
        keep(np.asarray(h.getSolution().col_value))
    h.changeColCost(col, 0.0)
    if status == highspy.HighsModelStatus.kOptimal:
        return value
    if status in (
        highspy.HighsModelStatus.kUnbounded,
        highspy.HighsModelStatus.kUnboundedOrInfeasible,
    ):
        if status == highspy.HighsModelStatus.kUnboundedOrInfeasible:
            h.clearSolver()  # tell apart with a cold primal solve below
            h.changeColCost(col, 0.0)
            h.run()
            if h.getModelStatus() == highspy.HighsModelStatus.kInfeasible:
                raise _inconsistent()
        return -INF
    if status == highspy.HighsModelStatus.kInfeasible:
        raise _inconsistent()
    raise RuntimeError(f"LP solver status {h.modelStatusToString(status)}")


def _groups(labels: np.ndarray) -> dict[int, np.ndarray]:
    """Positions of each label value, in one sort."""
    if not len(labels):
        return {}
    order = np.argsort(labels, kind="stable")
    cuts = np.flatnonzero(np.diff(labels[order])) + 1
    return {int(labels[g[0]]): g for g in np.split(order, cuts)}


def _inconsistent() -> BadInput:
    return BadInput(
        "the published values contradict the table structure (a total differs from the sum of "
        "its parts); check the hierarchy of each dimension"
    )


def tolerance(value: float | np.ndarray, scale: float) -> float | np.ndarray:
    """Numerical slack for comparing LP bounds with values of a table of this scale."""
    return 1e-7 * scale + 1e-6 * np.abs(value)


def short(
    bound: np.ndarray | float, goal: np.ndarray | float, tol: np.ndarray | float, side: str
) -> np.ndarray | bool:
    """Whether the attacker's bound stops short of the goal (NaN, not examined: False)."""
    if side == "upper":
        return np.less(bound, np.subtract(goal, tol))
    return np.greater(bound, np.add(goal, tol))


@dataclass
class Violation:
    """A primary cell whose interval in a target column is narrower than required."""

    target: int
    cell: int
    side: str  # "upper" | "lower"
    need: float  # the protection level
    bound: float  # the attacker's max (upper) or min (lower)


def violations(
    matrix: sp.csr_matrix,
    suppressed: np.ndarray,
    cells: np.ndarray,
    targets: list,  # list[primary.Target]; untyped to avoid the import cycle
    coding: object | None = None,  # table.Coding: certify in boxes first (much faster)
    *,
    cubes: bool = False,
    max_box: int | None = None,
    boxes: bool = True,
    exact: bool = True,
    first: bool = False,
    models: Sequence[TableModel] | None = None,
) -> list[Violation]:
    """Every (target, cell, side) whose required protection the attacker can undercut.

    Cells are first certified cheaply (box LPs around the true table, then one LP per
    component for all cells at once); only the rest get their exact interval. ``cubes``:
    before the boxes, try hypercube certificates (:mod:`.hypercube`, no solver);
    ``max_box``: skip boxes of more cells (their cells go to the component LP at once);
    ``boxes=False``: no box LPs at all (on large tables one LP per component certifies most
    cells faster than thousands of box LPs); ``exact=False``: cells no certificate covers are
    returned as violations without their exact interval (``bound`` NaN), for a caller that
    repairs them in their box anyway, where a cell protected already costs one LP and no
    suppression as long as its box shows it; ``first``: stop at the first violation (for a
    caller that asks only whether there is one); ``models``: one :class:`TableModel` per
    target, kept by the caller in step with ``suppressed``, instead of building an
    :class:`Attacker`. The audit uses no cubes, so that it stays independent of the fast
    method's shortcuts.
    """
    found = []
    cells = np.asarray(cells, dtype=np.int64)
    for ti, t in enumerate(targets):
        scale = max(1.0, float(np.abs(t.values).max(initial=0.0)))
        sides = {}
        for side, level in (("upper", t.upper), ("lower", t.lower)):
            c = cells[level[cells] > 0]
            goal = t.values[c] + level[c] if side == "upper" else t.values[c] - level[c]
            sides[side] = (c, goal)
        if coding is not None and cubes:
            from datenlabor.disclosure.hypercube import certify

            for side, (c, goal) in list(sides.items()):
                ok = certify(matrix, suppressed, c, targets, ti, side, coding)  # type: ignore[arg-type]
                sides[side] = (c[~ok], goal[~ok])
        if coding is not None and boxes:
            sides = _certify_in_boxes(matrix, suppressed, t, sides, coding, scale, max_box)
        if not any(len(c) for c, _ in sides.values()):
            continue
        attacker: Attacker | TableModel = (
            models[ti]
            if models is not None
            else Attacker(matrix, np.where(suppressed, np.nan, t.values), suppressed)
        )
        for side, (c, goal) in sides.items():
            tol = np.broadcast_to(tolerance(t.values[c], attacker.scale), (len(c),))
            ok, bound = attacker.bounds(c, goal, side, exact=exact, tol=tol, first=first)
            bad = ~ok if not exact else ~ok & short(bound, goal, tol, side)
            level = t.upper if side == "upper" else t.lower
            for k in np.flatnonzero(bad):
                cell = int(c[k])
                found.append(Violation(ti, cell, side, float(level[cell]), float(bound[k])))
            if first and found:
                return found
    return found


def _certify_in_boxes(
    matrix: sp.csr_matrix,
    suppressed: np.ndarray,
    t: object,
    sides: dict[str, tuple[np.ndarray, np.ndarray]],
    coding: object,
    scale: float,
    max_box: int | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from datenlabor.disclosure.local import BoxModel, box_groups

    csc = matrix.tocsc()
    values = t.values  # type: ignore[attr-defined]
    left = {}
    for side, (c, goal) in sides.items():
        ok = np.zeros(len(c), dtype=bool)
        where = {int(cell): i for i, cell in enumerate(c)}
        for members, box in box_groups(coding, c):  # type: ignore[arg-type]
            if max_box is not None and len(box) > max_box:
                continue
            model = BoxModel(csc, box, values, suppressed)
            idx = np.array([where[int(m)] for m in members])
            tol = np.broadcast_to(tolerance(values[members], scale), (len(members),))
            ok[idx] = model.certify(model.local(members), goal[idx], side, tol)
        left[side] = (c[~ok], goal[~ok])
    return left
