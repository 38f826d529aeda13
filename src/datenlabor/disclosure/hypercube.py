"""Hypercube certificates and repairs: protection without linear programming.

A primary cell ``p`` is protected upwards by ``L`` when some table ``x + L·y`` is one the
attacker cannot exclude: ``M y = 0`` (every total still the sum of its parts), ``y`` zero on
published cells, ``x + L·y >= 0``. Such directions ``y`` are easy to build for a hierarchical
table as tensor products ``y = v_1 ⊗ … ⊗ v_D`` of one vector per dimension, each in the null
space of that dimension's hierarchy (every code's entry equals the sum of its children's):

* a *pair*: ``+1`` on the cell's code (with a path down to a leaf if the code has children,
  and up through single-child parents), ``-1`` on a sibling's path down to a leaf;
* a *chain*: ``+1`` on the code, a path down to a leaf and every ancestor up to the total.

With pairs in every dimension this is the 2×2×…×2 hypercube of τ-ARGUS's HYPERCUBE method
(GHMITER, Repsilber); here it serves two purposes:

* **certificate**: if every cell of a cube is suppressed and the cells moving down (sign
  ``-1`` for the upper side, ``+1`` for the lower side) hold at least ``L``, the cell is
  protected, provably and without any solver. Certificates stay valid when more cells are
  suppressed, so they never need re-checking.
* **repair**: for a cell without a certificate, suppress the cheapest cube (cost of the cells
  not yet suppressed).

Every certificate that is used is checked explicitly (``M y = 0`` with the real constraint
matrix, support suppressed, bounds kept) before the caller relies on it, so an error in the
construction can cost suppression, never safety. Written by hand because no maintained Python
library offers hypercube suppression (sdcTable and τ-ARGUS are R and Java/C++ programs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from datenlabor.disclosure.primary import Target
from datenlabor.disclosure.table import Coding

#: per dimension, how many of a cell's candidate vectors (cheapest first) form cubes
KEEP = (6, 4, 4, 3, 3, 2)
_MAX_SIBLINGS = 40
_MAX_DOWN = 2
_CHUNK = 400_000  # combination rows evaluated at once (memory bound)


@dataclass
class Requirement:
    """Protection a primary cell needs in one target column on one side (arrays, aligned)."""

    cell: np.ndarray
    target: np.ndarray
    side: np.ndarray  # +1 upper, -1 lower
    level: np.ndarray


def requirements(primary: np.ndarray, targets: list[Target]) -> Requirement:
    cells, tis, sides, levels = [], [], [], []
    prim = np.flatnonzero(primary)
    for ti, t in enumerate(targets):
        for side, lv in ((1, t.upper), (-1, t.lower)):
            c = prim[lv[prim] > 0]
            cells.append(c)
            tis.append(np.full(len(c), ti))
            sides.append(np.full(len(c), side))
            levels.append(lv[c])
    return Requirement(
        np.concatenate(cells).astype(np.int64),
        np.concatenate(tis).astype(np.int64),
        np.concatenate(sides).astype(np.int64),
        np.concatenate(levels).astype(np.float64),
    )


class _DimVectors:
    """Per code of one dimension: its candidate null-space vectors (codes and signs, padded)."""

    def __init__(self, parent_ids: np.ndarray) -> None:
        n = len(parent_ids)
        children: list[list[int]] = [[] for _ in range(n)]
        for c, p in enumerate(parent_ids):
            if p >= 0:
                children[int(p)].append(c)
        vectors: list[list[tuple[int, int]]] = []
        owner: list[int] = []
        for a in range(n):
            for vec in _vectors(a, parent_ids, children):
                vectors.append(vec)
                owner.append(a)
        width = max((len(v) for v in vectors), default=1)
        self.codes = np.full((len(vectors), width), -1, dtype=np.int64)
        self.signs = np.zeros((len(vectors), width), dtype=np.int64)
        self.length = np.array([len(v) for v in vectors], dtype=np.int64)
        for i, vec in enumerate(vectors):
            for j, (code, sign) in enumerate(vec):
                self.codes[i, j] = code
                self.signs[i, j] = sign
        owner_arr = np.array(owner, dtype=np.int64)
        self.start = np.searchsorted(owner_arr, np.arange(n + 1))


def _down(a: int, children: list[list[int]], limit: int) -> list[list[int]]:
    """Up to ``limit`` paths from ``a`` down to a code without children (``a`` included)."""
    if not children[a]:
        return [[a]]
    out: list[list[int]] = []
    for c in children[a]:
        for path in _down(c, children, limit - len(out)):
            out.append([a, *path])
            if len(out) >= limit:
                return out
    return out


def _vectors(
    a: int, parent_ids: np.ndarray, children: list[list[int]]
) -> list[list[tuple[int, int]]]:
    """Null-space vectors of the hierarchy with +1 on ``a``: pairs at the first level with
    siblings, and chains up to the top."""
    out: list[list[tuple[int, int]]] = []
    downs = _down(a, children, _MAX_DOWN)
    up: list[int] = []  # ancestors of a below u's parent, all +1
    u = a
    paired = False
    while True:
        p = int(parent_ids[u])
        if p < 0:
            for d in downs:
                out.append([(c, 1) for c in [*d, *up]])
            return out
        if not paired and len(children[p]) > 1:
            paired = True
            sibs = [s for s in children[p] if s != u][:_MAX_SIBLINGS]
            for s in sibs:
                minus = _down(s, children, 1)[0]
                for d in downs:
                    out.append([(c, 1) for c in [*d, *up]] + [(c, -1) for c in minus])
        up.append(p)
        u = p


class Cubes:
    """Hypercube search over one table."""

    def __init__(self, matrix: sp.csr_matrix, coding: Coding, targets: list[Target]) -> None:
        self.matrix = matrix
        self.coding = coding
        self.targets = targets
        self.dims = [_DimVectors(p) for p in coding.parent_ids]
        sizes = [len(p) for p in coding.parent_ids]
        keys = np.zeros(len(coding.ids[0]), dtype=np.int64)
        for d, ids in enumerate(coding.ids):
            keys += ids * coding.strides[d]
        space = int(coding.strides[0]) * sizes[0]
        self.dense: np.ndarray | None = None
        if space <= 50_000_000:
            self.dense = np.full(space, -1, dtype=np.int64)
            self.dense[keys] = np.arange(len(keys))
        else:
            self.order = np.argsort(keys)
            self.sorted_keys = keys[self.order]
        self.values = np.stack([t.values for t in targets])  # (targets, cells)

    def _lookup(self, keys: np.ndarray) -> np.ndarray:
        """Cell index per key, -1 where the combination is not in the table."""
        bad = keys < 0
        if self.dense is not None:
            out = self.dense[np.where(bad, 0, keys)]
            return np.where(bad, -1, out)
        pos = np.minimum(np.searchsorted(self.sorted_keys, keys), len(self.sorted_keys) - 1)
        hit = (self.sorted_keys[pos] == keys) & ~bad
        return np.where(hit, self.order[pos], -1)

    def _edges(
        self, req: Requirement, sup: np.ndarray, cost: np.ndarray, d: int, hidden_only: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per requirement, its dimension-``d`` candidates (rows of ``req``, vector ids) that
        are possible along that dimension alone, sorted by requirement then cost."""
        dv, c = self.dims[d], self.coding
        code = c.ids[d][req.cell]
        first, last = dv.start[code], dv.start[code + 1]
        counts = last - first
        rows = np.repeat(np.arange(len(req.cell)), counts)
        vec = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        vec = vec + first[rows]
        codes, signs = dv.codes[vec], dv.signs[vec]
        base = np.zeros(len(req.cell), dtype=np.int64)
        for e, ids in enumerate(c.ids):
            if e != d:
                base += ids[req.cell] * c.strides[e]
        keys = np.where(codes >= 0, base[rows][:, None] + codes * c.strides[d], -1)
        cells = self._lookup(keys)
        pad = codes < 0
        ok = ((cells >= 0) | pad).all(axis=1)
        value = self.values[req.target[rows][:, None], np.maximum(cells, 0)]
        down = signs * req.side[rows][:, None] < 0
        ok &= (~down | (value >= req.level[rows][:, None]) | pad).all(axis=1)
        free = ~pad & (cells >= 0) & ~sup[np.maximum(cells, 0)]
        price = np.where(free, cost[np.maximum(cells, 0)], 0.0).sum(axis=1)
        if hidden_only:
            ok &= price == 0.0
        rows, vec, price = rows[ok], vec[ok], price[ok]
        order = np.lexsort((price, rows))
        return rows[order], vec[order]

    def search(
        self, req: Requirement, sup: np.ndarray, cost: np.ndarray, *, hidden_only: bool = False
    ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
        """Per requirement the cheapest cube: its extra cost (0: fully suppressed already, a
        certificate; inf: none found), its cells and their signs. ``hidden_only``: look only
        for certificates among cubes whose cells next to the primary cell are suppressed."""
        n = len(req.cell)
        best = np.full(n, np.inf)
        cells_of: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * n
        signs_of: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * n
        per_dim = []
        for d in range(len(self.dims)):
            rows, vec = self._edges(req, sup, cost, d, hidden_only)
            keep = KEEP[min(d, len(KEEP) - 1)]
            starts = np.searchsorted(rows, np.arange(n + 1))
            rank = np.arange(len(rows)) - starts[rows]
            sel = rank < keep
            per_dim.append((rows[sel], vec[sel], np.minimum(np.diff(starts), keep)))
        counts = np.ones(n, dtype=np.int64)
        for _, _, k in per_dim:
            counts *= k
        step = max(1, _CHUNK // max(1, int(counts.max(initial=1))))
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            self._search_chunk(req, sup, cost, per_dim, counts, lo, hi, best, cells_of, signs_of)
        return best, cells_of, signs_of

    def _search_chunk(
        self,
        req: Requirement,
        sup: np.ndarray,
        cost: np.ndarray,
        per_dim: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
        counts: np.ndarray,
        lo: int,
        hi: int,
        best: np.ndarray,
        cells_of: list[np.ndarray],
        signs_of: list[np.ndarray],
    ) -> None:
        c = self.coding
        reqs = np.arange(lo, hi)
        cnt = counts[lo:hi]
        if not cnt.sum():
            return
        row = np.repeat(reqs, cnt)  # one per combination
        k = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        # Decompose k into one index per dimension (mixed radix over the per-dim counts).
        choice = []
        rem = k.copy()
        for d in range(len(self.dims) - 1, -1, -1):
            rows_d, vec_d, k_d = per_dim[d]
            start_d = np.searchsorted(rows_d, row)
            idx = rem % k_d[row]
            rem //= k_d[row]
            choice.append(vec_d[start_d + idx])
        choice.reverse()
        lengths = [self.dims[d].length[choice[d]] for d in range(len(self.dims))]
        size = np.ones(len(row), dtype=np.int64)
        for ln in lengths:
            size *= ln
        entry_row = np.repeat(np.arange(len(row)), size)
        e = np.arange(size.sum()) - np.repeat(np.cumsum(size) - size, size)
        keys = np.zeros(len(e), dtype=np.int64)
        sign = np.ones(len(e), dtype=np.int64)
        for d in range(len(self.dims) - 1, -1, -1):
            ln = lengths[d][entry_row]
            j = e % ln
            e = e // ln
            vec = choice[d][entry_row]
            keys += self.dims[d].codes[vec, j] * c.strides[d]
            sign *= self.dims[d].signs[vec, j]
        cells = self._lookup(keys)
        safe = np.maximum(cells, 0)
        r = row[entry_row]
        value = self.values[req.target[r], safe]
        down = sign * req.side[r] < 0
        bad = (cells < 0) | (down & (value < req.level[r]))
        starts = np.concatenate([[0], np.cumsum(size)[:-1]])
        invalid = np.logical_or.reduceat(bad, starts) if len(bad) else np.zeros(0, bool)
        price = np.add.reduceat(np.where(sup[safe], 0.0, cost[safe]), starts)
        price[invalid] = np.inf
        # The cheapest combination per requirement (first one on ties: deterministic).
        order = np.lexsort((np.arange(len(row)), price, row))
        first = np.ones(len(order), dtype=bool)
        first[1:] = row[order][1:] != row[order][:-1]
        win = order[first]
        for w in win:
            q = int(row[w])
            if price[w] < best[q]:
                best[q] = price[w]
                cells_of[q] = cells[starts[w] : starts[w] + size[w]]
                signs_of[q] = sign[starts[w] : starts[w] + size[w]]


def verify(
    matrix: sp.csr_matrix,
    sup: np.ndarray,
    req: Requirement,
    targets: list[Target],
    cells_of: list[np.ndarray],
    signs_of: list[np.ndarray],
) -> np.ndarray:
    """Explicit check of certificates, one per requirement: ``M y = 0`` with the real
    constraint matrix, every cell of ``y`` suppressed, ``y_p = 1`` and no cell below zero in
    ``x + side·level·y``. Returns which requirements hold."""
    n = len(cells_of)
    if not n:
        return np.zeros(0, dtype=bool)
    sizes = np.array([len(c) for c in cells_of], dtype=np.int64)
    cols = np.repeat(np.arange(n), sizes)
    cells = np.concatenate(cells_of).astype(np.int64)
    signs = np.concatenate(signs_of).astype(np.float64)
    y = sp.csc_matrix((signs, (cells, cols)), shape=(matrix.shape[1], n))
    residual = abs(matrix @ y)
    ok = np.asarray(residual.max(axis=0).todense()).ravel() == 0
    values = np.stack([t.values for t in targets])
    after = values[req.target[cols], cells] + (req.side * req.level)[cols] * signs
    bad = ~sup[cells] | (after < 0)
    clean = np.bincount(cols[bad], minlength=n) == 0
    own = np.asarray(y[req.cell, np.arange(n)]).ravel() == 1
    return ok & clean & own & (sizes > 0)


def certify(
    matrix: sp.csr_matrix,
    sup: np.ndarray,
    cells: np.ndarray,
    targets: list[Target],
    target: int,
    side: str,
    coding: Coding,
) -> np.ndarray:
    """Which of ``cells`` have a verified cube certificate in one target column and side."""
    t = targets[target]
    level = t.upper[cells] if side == "upper" else t.lower[cells]
    req = Requirement(
        cells.astype(np.int64),
        np.full(len(cells), target, dtype=np.int64),
        np.full(len(cells), 1 if side == "upper" else -1, dtype=np.int64),
        level.astype(np.float64),
    )
    cubes = Cubes(matrix, coding, targets)
    best, cells_of, signs_of = cubes.search(req, sup, np.ones(len(sup)), hidden_only=True)
    hit = np.flatnonzero(best == 0.0)
    ok = np.zeros(len(cells), dtype=bool)
    ok[hit] = verify(
        matrix,
        sup,
        Requirement(req.cell[hit], req.target[hit], req.side[hit], req.level[hit]),
        targets,
        [cells_of[i] for i in hit],
        [signs_of[i] for i in hit],
    )
    return ok


def protect_by_cubes(
    matrix: sp.csr_matrix,
    sup: np.ndarray,
    primary: np.ndarray,
    targets: list[Target],
    cost: np.ndarray,
    coding: Coding,
    *,
    max_rounds: int = 500,
) -> tuple[np.ndarray, dict[str, int]]:
    """Suppress cubes (in ``sup``) until every requirement has a certificate or no cube can
    be found for it; returns the primary cells without a verified certificate (for the LP
    path) and statistics."""
    cubes = Cubes(matrix, coding, targets)
    req = requirements(primary, targets)
    n = len(req.cell)
    cert_cells: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * n
    cert_signs: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * n
    pending = np.arange(n)
    stats = {"cube_rounds": 0, "cubes": 0}
    for _ in range(max_rounds):
        if not len(pending):
            break
        stats["cube_rounds"] += 1
        sub = Requirement(
            req.cell[pending], req.target[pending], req.side[pending], req.level[pending]
        )
        best, cells_of, signs_of = cubes.search(sub, sup, cost)
        for i in np.flatnonzero(best == 0.0):
            cert_cells[pending[i]] = cells_of[i]
            cert_signs[pending[i]] = signs_of[i]
        todo = np.flatnonzero((best > 0.0) & np.isfinite(best))
        if not len(todo):
            break
        # Accept cubes cheapest first; a cube that would add a cell another accepted cube of
        # this round adds waits for the next round (it may cost less by then).
        taken = np.zeros(len(sup), dtype=bool)
        for i in todo[np.argsort(best[todo], kind="stable")]:
            cells = cells_of[i]
            new = cells[~sup[cells]]
            if not taken[new].any():
                taken[new] = True
                stats["cubes"] += 1
        sup |= taken
        pending = pending[todo]
    ok = verify(matrix, sup, req, targets, cert_cells, cert_signs)
    stats["cube_certificates"] = int(ok.sum())
    left = np.unique(req.cell[~ok])
    return left, stats
