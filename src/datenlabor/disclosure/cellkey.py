"""The cell-key method for frequency tables (ABS / Zensus 2022 style).

Every record gets a *record key*: the first 32 bits of SHA-256 over a secret and the record
(its contributor id if the rules name one, else the whole row), so the same record always has
the same key and nobody without the secret can compute it. A cell's *cell key* is the sum of
its records' keys modulo 1 (computed exactly as integers modulo 2**32). The cell key picks the
deviation ``d`` from the perturbation table row of the cell's count ``n``; ``n + d`` is published.
The same set of records always gives the same cell key and thus the same published count, in
every table and query.

Perturbation table (p-table): for each count ``n``, the distribution of ``d`` over
``-min(D, n) .. D`` is the maximum-entropy distribution with mean 0 and variance ``V``
(``p(d) ∝ exp(a d + b d²)``); ``d = 0`` is excluded for ``n`` in 1 and 2 so that counts of 1 and
2 are never published unperturbed; no published count is negative. Defaults ``D = 2``,
``V = 1.5``. Rows for ``n > D`` are all alike. Totals are perturbed on their own (their cell key
is the sum over their records), so a table is not additive: that is the price of the method.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy.optimize import root

from datenlabor.disclosure.rules import Rules
from datenlabor.disclosure.table import KEY_MODULUS, Cells
from datenlabor.errors import BadInput

SMALL = (1, 2)  # counts never published unperturbed


@cache
def ptable(max_deviation: int, variance: float) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``n -> (deviations, probabilities)`` for ``n = 0 .. D+1`` (the last row serves n > D)."""
    rows: dict[int, tuple[np.ndarray, np.ndarray]] = {0: (np.array([0]), np.array([1.0]))}
    for n in range(1, max_deviation + 2):
        d = np.arange(-min(max_deviation, n), max_deviation + 1)
        if n in SMALL:
            d = d[d != 0]
        rows[n] = (d, _maxent(d, variance, n, max_deviation))
    return rows


def _maxent(d: np.ndarray, variance: float, n: int, max_deviation: int) -> np.ndarray:
    x = d.astype(np.float64)

    def probs(ab: np.ndarray) -> np.ndarray:
        z = ab[0] * x + ab[1] * x * x
        e = np.exp(z - z.max())
        return e / e.sum()

    def moments(ab: np.ndarray) -> np.ndarray:
        p = probs(ab)
        return np.array([p @ x, p @ (x * x) - variance])

    sol = root(moments, np.zeros(2), method="hybr")
    p = probs(sol.x)
    if not sol.success or np.abs(moments(sol.x)).max() > 1e-9:
        raise BadInput(
            f"no perturbation table with maximum deviation {max_deviation} and variance "
            f"{variance} for count {n} (mean 0 impossible); raise the deviation or change the "
            "variance",
            column="cellkey_variance",
        )
    return p


def perturb(cells: Cells, rules: Rules) -> tuple[np.ndarray, np.ndarray]:
    """Published counts and whether each changed (vectorized lookup per count row)."""
    assert cells.keysum is not None
    table = ptable(rules.cellkey_max_deviation, rules.cellkey_variance)
    key = cells.keysum.astype(np.float64) / KEY_MODULUS  # cell key in [0, 1)
    n = cells.records
    row = np.minimum(n, rules.cellkey_max_deviation + 1)
    dev = np.zeros(len(n), dtype=np.int64)
    for r, (d, p) in table.items():
        sel = row == r
        if sel.any():
            edges = np.cumsum(p)[:-1]
            dev[sel] = d[np.searchsorted(edges, key[sel], side="right")]
    out = n + dev
    return out, dev != 0
