"""Primary suppression: which cells are confidential, and how much protection each needs.

Protection levels follow Hundepool et al., *Handbook on Statistical Disclosure Control*
(ch. 4) and the τ-ARGUS manual. For a cell of value ``X`` with the largest contributions
``x1 >= x2 >= ...``:

* (n,k)-dominance: ``UPL = (100/k) * (x1 + ... + xn) - X`` (the value an attacker must not
  be able to exclude above ``X`` so that the top n are not estimated better than k %),
* p% rule: ``UPL = (p/100) * x1 - (X - x1 - x2)``,
* frequency rule on a magnitude: ``UPL = safety_range/100 * X``,
* frequency rule on a count ``n < m`` (frequency tables): ``UPL = m - n`` and no lower level:
  the attacker must not be able to exclude that the cell reaches the threshold.

The lower level equals the upper one for magnitudes (``protect_lower``), capped at ``X``
because no cell can be negative. Each is a *target*: a published column with its levels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datenlabor.disclosure.rules import Rules
from datenlabor.disclosure.table import Cells


@dataclass
class Target:
    """A published value column and the protection each primary cell needs in it."""

    column: str
    values: np.ndarray
    upper: np.ndarray  # required max >= value + upper (0 where not primary)
    lower: np.ndarray  # required min <= value - lower


def top_k(rules: Rules) -> int:
    k = rules.dominance[0] if rules.dominance else 0
    return max(k, 2 if rules.p_percent is not None else 0)


def primary(cells: Cells, rules: Rules) -> tuple[np.ndarray, list[Target]]:
    """The primary cells (bool mask) and the targets secondary suppression must protect."""
    m = rules.min_frequency
    freq = (cells.contributors > 0) & (cells.contributors < m)
    if rules.frequency_table:
        upper = np.where(freq, m - cells.contributors, 0).astype(np.float64)
        target = Target("n", cells.records.astype(np.float64), upper, np.zeros(len(upper)))
        return freq, [target]
    mask = np.zeros(cells.size, dtype=bool)
    targets = []
    for col in rules.measures:
        x = cells.values[col]
        top = cells.top.get(col)
        nonzero = x > 0
        consider = nonzero if rules.zero_cells == "safe" else np.ones(len(x), dtype=bool)
        upl = np.zeros(len(x))
        f = freq & consider
        upl = np.where(f, np.maximum(rules.safety_range / 100.0 * x, np.where(nonzero, 0, 1)), upl)
        if rules.dominance and top is not None:
            n, k = rules.dominance
            lead = top[:, :n].sum(axis=1)
            dom = nonzero & (lead > k / 100.0 * x)
            upl = np.where(dom, np.maximum(upl, 100.0 / k * lead - x), upl)
            f |= dom
        if rules.p_percent is not None and top is not None:
            x1, x2 = top[:, 0], top[:, 1]
            need = rules.p_percent / 100.0 * x1 - (x - x1 - x2)
            pp = nonzero & (need > 0)
            upl = np.where(pp, np.maximum(upl, need), upl)
            f |= pp
        lpl = np.minimum(upl, x) if rules.protect_lower else np.zeros(len(x))
        mask |= f
        targets.append(Target(col, x, upl, lpl))
    # The record counts are published too (additive, unlike distinct contributors): a primary
    # cell's count must not be recomputable exactly.
    n_upper = np.where(mask, 1.0, 0.0)
    targets.append(Target("n", cells.records.astype(np.float64), n_upper, np.zeros(cells.size)))
    return mask, targets
