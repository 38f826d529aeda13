"""Post-optimisation of the fast method's pattern on small tables (issue 5: loss goal).

The fast method is a heuristic; on small tables its greedy clean-up can stop in a local
optimum well above the minimum. ``improve`` runs the optimal method's cutting-plane loop
(:class:`.secondary_optimal.CutLoop`, warm-started from the fast pattern) under
*deterministic* limits: simplex iterations of the master, sub-problem LPs solved, rounds,
cuts and branch-and-bound nodes per master solve, never wall clock, so that the same table always gives the same result
whatever the machine's load.

If the loop finishes within the limits its pattern is optimal; it is taken only if the exact
attacker (:func:`.attacker.violations`) confirms it and it is cheaper than the fast pattern.
Otherwise the fast pattern is returned unchanged: the result is never worse and always
protected.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from datenlabor.disclosure.attacker import violations
from datenlabor.disclosure.primary import Target
from datenlabor.disclosure.secondary_optimal import CutLoop
from datenlabor.disclosure.table import Coding

#: Tables up to this many cells are improved (the same bound as the fast method's clean-up,
#: ``secondary_fast.CLEANUP_MAX_CELLS``; repeated here to avoid an import cycle).
MAX_CELLS = 2000
#: Deterministic limits of the loop (no wall clock: the same table always gives the same
#: result). The master's simplex iterations are the one that matters: they track its CPU time
#: (about 0.1-0.3 ms each here), and they grow steeply once the master's bound nears the
#: optimum on tables where the loop cannot finish soon. Measured on the six small tables of
#: ``bench/sdc.py`` (~300 cells, 50-110 primary cells; bench/_results/sdc_loss.md): where the
#: fast pattern is not optimal the loop finished within 23 rounds, 230 distinct cuts and 3,424
#: master iterations (0.1-1.0 s CPU); where it is optimal the proof takes 50-100 s CPU, and
#: these limits stop the fruitless try after ~2 s CPU. The sub-problems (one LP per primary
#: cell and side per round) took at most 577,000 LP solves x cells there (~0.5 s CPU); their
#: limit, and those on rounds and cuts, are backstops for bigger tables.
MAX_ITERATIONS = 6000
MAX_SUB_WORK = 5_000_000
MAX_ROUNDS = 60
MAX_CUTS = 3000
MAX_NODES = 500


def improve(
    matrix: sp.csr_matrix,
    suppressed: np.ndarray,
    primary: np.ndarray,
    targets: list[Target],
    cost: np.ndarray,
    coding: Coding | None = None,
    *,
    max_rounds: int = MAX_ROUNDS,
    max_cuts: int = MAX_CUTS,
    max_nodes: int = MAX_NODES,
    max_iterations: int = MAX_ITERATIONS,
    max_sub_work: int = MAX_SUB_WORK,
) -> tuple[np.ndarray, dict[str, Any]]:
    """A pattern at most as costly as ``suppressed`` (primary included, protected), and
    statistics: ``improved`` (bool), ``optimal`` (the loop finished: the returned pattern is a
    minimum), ``rounds``, ``cuts``, ``nodes``, ``iterations``, ``sub_work`` (the loop's work) and
    ``loss_before``/``loss_after`` (cost of the secondary cells).

    ``suppressed`` must be protected already (the fast method's result); it is not changed.
    Tables of more than ``MAX_CELLS`` cells are returned as they are.
    """
    n = matrix.shape[1]
    if len(suppressed) != n or len(primary) != n or len(cost) != n:
        raise ValueError(
            f"improve: the table has {n} cells but suppressed/primary/cost have "
            f"{len(suppressed)}/{len(primary)}/{len(cost)}"
        )
    start = suppressed | primary
    before = float(cost[start & ~primary].sum())
    stats: dict[str, Any] = {
        "improved": False,
        "optimal": False,
        "rounds": 0,
        "cuts": 0,
        "nodes": 0,
        "iterations": 0,
        "sub_work": 0,
        "loss_before": before,
        "loss_after": before,
    }
    if n > MAX_CELLS or not primary.any() or before <= 0.0:
        return start, stats
    loop = CutLoop(matrix, primary, targets, cost, start)
    z = loop.run(
        max_rounds=max_rounds,
        max_cuts=max_cuts,
        max_nodes=max_nodes,
        max_iterations=max_iterations,
        max_sub_work=max_sub_work,
    )
    stats.update(
        rounds=loop.rounds,
        cuts=loop.cuts,
        nodes=loop.nodes,
        iterations=loop.master.iterations,
        sub_work=loop.sub_work,
    )
    if z is None:
        return start, stats
    # The loop's attacker is bounded (see secondary_optimal._Sub): the exact one decides.
    if violations(matrix, z, np.flatnonzero(primary), targets, coding):
        return start, stats
    stats["optimal"] = True
    after = float(cost[z & ~primary].sum())
    if after < before:
        stats.update(improved=True, loss_after=after)
        return z, stats
    return start, stats
