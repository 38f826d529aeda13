"""Local certificates and repairs: small LPs on the sub-table around a cell.

A cell's *box* is the product, over the dimensions, of the subtree below the parent of the
cell's code (its siblings, their parent and everything below them; the whole tree for the
total). Around a reference table ``x_ref`` that satisfies every equation (the true table, or
any filling of the published one), the box LP lets the suppressed cells of the box move and
keeps every other cell fixed. A solution is a complete table that differs from ``x_ref`` only
in suppressed cells, so an attacker cannot exclude it: if it moves a cell as far as its
protection level, the cell is protected (a certificate; no need for the LP over the whole
table). When it does not, the cell may still be protected through cells outside the box; the
callers then ask the exact attacker (:mod:`.attacker`) or repair locally.

Cells whose codes share the parent in every dimension share a box, so one model serves them
all: one LP pushes all of them towards their goals at once (each capped at its goal), and the
rounds repeat for those not yet there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import highspy
import numpy as np
import scipy.sparse as sp

from datenlabor.disclosure import columns
from datenlabor.disclosure.attacker import Certificates, lp_map, new_model, tolerance
from datenlabor.disclosure.table import Coding

_NEG = -(1 << 62)
T = TypeVar("T")


def in_waves(boxes: list[np.ndarray], n_cells: int, work: Callable[[int], T]) -> list[T]:
    """``[work(i) for i in range(len(boxes))]``, with boxes that share no cell in threads.

    ``work(i)`` may read and write state of the cells of ``boxes[i]`` only (the suppression
    mask there, its own box LP). Then two boxes without a common cell commute, and running
    them side by side gives what running them in order gives: each box goes into the wave
    after the last wave holding a box it overlaps, so overlapping boxes keep their order,
    and the boxes of one wave run in threads (:func:`.attacker.lp_map`), largest first.
    """
    last = np.full(n_cells, -1, dtype=np.int64)
    wave = np.empty(len(boxes), dtype=np.int64)
    for i, box in enumerate(boxes):
        wave[i] = int(last[box].max(initial=-1)) + 1
        last[box] = wave[i]
    results: list[T | None] = [None] * len(boxes)
    for w in range(int(wave.max(initial=-1)) + 1):
        idx = np.flatnonzero(wave == w)
        # Largest boxes first: a big box started last kept one thread busy alone at the
        # end of its wave.
        idx = idx[np.argsort([-len(boxes[i]) for i in idx], kind="stable")].tolist()
        for i, result in zip(idx, lp_map(work, idx), strict=True):
            results[i] = result
    return results  # type: ignore[return-value]


def box_groups(coding: Coding, cells: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(members, box)`` pairs: the given cells grouped by box, and each box's cells."""
    if not len(cells):
        return
    ids, pids, strides = coding.ids, coding.parent_ids, coding.strides
    roots = np.zeros(len(cells), dtype=np.int64)
    for d in range(len(ids)):
        roots += _branch_root(pids[d])[ids[d][cells]] * strides[d]
    group_keys, member_group = np.unique(roots, return_inverse=True)
    # Every cell lies in the boxes rooted at its codes' ancestors-or-self in every dimension.
    keys = np.zeros((len(ids[0]), 1), dtype=np.int64)
    for d in range(len(ids)):
        chain = _ancestors(pids[d])[ids[d]]  # (cells, depth)
        part = np.where(chain >= 0, chain * strides[d], _NEG)
        keys = (keys[:, :, None] + part[:, None, :]).reshape(len(ids[0]), -1)
        keys = np.where(keys < 0, _NEG, keys)
    cell_of = np.repeat(np.arange(len(ids[0])), keys.shape[1])
    flat = keys.ravel()
    pos = np.searchsorted(group_keys, flat)
    pos = np.minimum(pos, len(group_keys) - 1)
    hit = (flat >= 0) & (group_keys[pos] == flat)
    cell_of, grp = cell_of[hit], pos[hit]
    order = np.lexsort((cell_of, grp))
    cell_of, grp = cell_of[order], grp[order]
    starts = np.searchsorted(grp, np.arange(len(group_keys) + 1))
    m_order = np.argsort(member_group, kind="stable")
    m_starts = np.searchsorted(member_group[m_order], np.arange(len(group_keys) + 1))
    for g in range(len(group_keys)):
        yield cells[m_order[m_starts[g] : m_starts[g + 1]]], cell_of[starts[g] : starts[g + 1]]


def _branch_root(parent_ids: np.ndarray) -> np.ndarray:
    """Per code: its lowest ancestor with two or more children (a code's only child cannot
    move without its parent, so the box must reach up to where siblings exist); the code
    itself for a root."""
    children = np.bincount(parent_ids[parent_ids >= 0], minlength=len(parent_ids))
    root = np.arange(len(parent_ids))
    current = parent_ids.copy()
    done = np.zeros(len(parent_ids), dtype=bool)
    while True:
        active = ~done & (current >= 0)
        if not active.any():
            break
        root[active] = current[active]
        done |= active & (children[np.maximum(current, 0)] >= 2)
        current = np.where(active & ~done, parent_ids[np.maximum(current, 0)], -1)
    return root


def _ancestors(parent_ids: np.ndarray) -> np.ndarray:
    cols = [np.arange(len(parent_ids))]
    while True:
        prev = cols[-1]
        nxt = np.where(prev >= 0, parent_ids[np.maximum(prev, 0)], -1)
        if (nxt < 0).all():
            return np.column_stack(cols)
        cols.append(nxt)


class BoxModel:
    """The LP of one box around ``x_ref``: suppressed cells free (>= 0), others fixed."""

    def __init__(
        self, matrix_csc: sp.csc_matrix, box: np.ndarray, x_ref: np.ndarray, sup: np.ndarray
    ) -> None:
        self.box = box
        sub = matrix_csc[:, box].tocsr()
        rows = np.flatnonzero(np.diff(sub.indptr) > 0)
        a = sub[rows]
        self.x = x_ref[box]
        rhs = a @ self.x
        k = len(box)
        free = sup[box]
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = k, len(rows)
        lp.col_cost_ = np.zeros(k)
        lp.col_lower_ = np.where(free, 0.0, self.x)
        lp.col_upper_ = np.where(free, highspy.kHighsInf, self.x)
        lp.row_lower_ = rhs
        lp.row_upper_ = rhs
        csc = a.tocsc()
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = csc.indptr
        lp.a_matrix_.index_ = csc.indices
        lp.a_matrix_.value_ = csc.data
        self.h = new_model(lp)
        self.free = free.copy()
        self.certs = Certificates()
        self._scale = max(1.0, float(np.abs(self.x).max(initial=0.0)))

    def publish(self, cell: int) -> None:
        """Fix a suppressed cell of the box at its reference value (published again)."""
        col = int(np.searchsorted(self.box, cell))
        self.free[col] = False
        x = self.x[[col]]
        self._bounds(np.array([col]), x, x)
        self.certs.publish(np.array([col]), x, np.atleast_1d(tolerance(x, self._scale)))

    def hide(self, cell: int) -> None:
        """Free a cell of the box again (suppressed)."""
        col = int(np.searchsorted(self.box, cell))
        self.free[col] = True
        self._reset(np.array([col]))

    def local(self, cells: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.box, cells).astype(np.int32)

    def _bounds(self, cols: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        self.h.changeColsBounds(len(cols), cols.astype(np.int32), lo, hi)

    def _reset(self, cols: np.ndarray) -> None:
        self._bounds(cols, np.zeros(len(cols)), np.full(len(cols), highspy.kHighsInf))

    def certify(
        self, cols: np.ndarray, goals: np.ndarray, side: str, tol: np.ndarray
    ) -> np.ndarray:
        """Which of the local columns reach their goal (>= for "upper", <= "lower"); only
        suppressed (free) ones can."""
        ok = np.zeros(len(cols), dtype=bool)
        free = self.free[cols]
        ok[free] = self.certs.certify(self.h, cols[free], goals[free], side, tol[free])
        return ok

    def push(
        self, col: int, goal: float, side: str, sup: np.ndarray, cost: np.ndarray, tol: float
    ) -> bool:
        """Suppress box cells until ``col`` reaches ``goal`` (:func:`.columns.push`); marks
        them in ``sup``. False if stuck."""

        def hide(j: int) -> None:
            sup[self.box[j]] = True

        return columns.push(
            self.h,
            col,
            goal,
            side,
            x=self.x,
            free=self.free,
            cost=cost[self.box],
            hide=hide,
            tol=tol,
        )
