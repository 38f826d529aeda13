"""Disclosure control of dashboard figures for viewers without microdata access.

A dashboard over a procedure log or a dataset that is *not* confidential still shows small
counts (one or two cases of one type in one Kreis in one month, the duration of a single
case) to everyone who may open it. When the viewer has no microdata access to a tile's
dataset — not an admin, not a member of the publishing organisation, no microdata grant —
or when the spec says ``disclosure: {apply: always}``, every tile's figures go through the
disclosure-control layer (:mod:`datenlabor.disclosure`):

* **primary suppression** by the minimum frequency ``m`` of the spec (default: the house
  rule, ``Rules.min_frequency``): a count of cases in ``1 … m-1`` is suppressed, and so is
  every statistic computed from such a group (median, mean, rate, share);
* **secondary suppression** with ``datenlabor.disclosure``'s ``fast`` method, so that a
  suppressed count cannot be recovered from the totals and margins the dashboard shows (the
  grand total, a row's total over its columns, a Land's total over its Kreise): each tile's
  table is protected as one hierarchical table with those totals, the totals made costly to
  suppress because other tiles publish them;
* extremes of single cases (``min_s``/``max_s``) are not shown, histogram bins start at 0
  and end at a rounded bound (not at the shortest and longest case), and case lists and
  drill-downs to single cases are withheld.

Suppressed values are ``None`` in the rows and listed in ``TileData.suppressed``; pages and
CSV show them as ``.`` (the sign of official statistics for "secret"). Provenance names the
rules applied (``provenance.disclosure``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from datenlabor.disclosure import TOTAL, Dim, Rules
from datenlabor.errors import Forbidden

if TYPE_CHECKING:
    from datenlabor.access.principal import Principal
    from datenlabor.dashboards.spec import Spec
    from datenlabor.dashboards.tile import TileData
    from datenlabor.service.gate import Gate
    from datenlabor.service.gate import Source as GateSource

SUPPRESSED = "."  # shown instead of a suppressed value (as in GENESIS tables)
# Cost factor of totals that other tiles publish: secondary suppression picks inner cells.
_KEEP_FACTOR = 1e6
# Extremes of single cases: never shown under disclosure control.
EXTREMES = ("min_s", "max_s")


class Withheld(Forbidden):
    """Case-level data (case lists, drill-downs) is not shown under disclosure control."""


@dataclass(frozen=True)
class Control:
    """Disclosure control for one tile and one viewer."""

    min_frequency: int
    reason: str  # "no_microdata" (the default rule) or "always" (the spec asks for it)
    datasets: tuple[str, ...] = ()

    @property
    def rules(self) -> Rules:
        """The rule set of the disclosure layer (frequency tables: no dominance rule)."""
        return Rules(dims=[Dim("cell")], min_frequency=self.min_frequency, dominance=None)

    def key(self) -> tuple[Any, ...]:
        return ("sdc", self.min_frequency, self.reason)

    def provenance(self) -> dict[str, Any]:
        return {
            "applied": True,
            "reason": self.reason,
            "datasets": list(self.datasets),
            "rules": {"min_frequency": self.min_frequency, "dominance": None},
            "primary": f"counts of 1 to {self.min_frequency - 1} cases and figures computed "
            "from them",
            "secondary": "datenlabor.disclosure fast (totals and margins of the tile)",
            "method": "fast",
            "withheld": "case lists, single-case drill-downs, minimum and maximum durations",
        }


def has_microdata_access(gate: Gate, p: Principal, slug: str) -> bool:
    """Whether ``p`` sees the microdata of ``slug`` as its owners do: admins, members of the
    publishing organisation, holders of a microdata grant (the same people who see a
    confidential dataset's microdata, see :mod:`datenlabor.access.policy`)."""
    from datenlabor.access.policy import is_publisher_member

    if p.is_admin:
        return True
    d, _view = gate.dataset(p, slug)
    if is_publisher_member(p, d):
        return True
    if not p.authenticated:
        return False
    return any(
        g.microdata
        and (
            (g.user_id is not None and g.user_id == p.user_id)
            or (g.organisation_id is not None and g.organisation_id == p.organisation_id)
        )
        for g in d.grants
    )


def control_for(
    gate: Gate, p: Principal, spec: Spec, sources: Sequence[GateSource]
) -> Control | None:
    """The disclosure control a tile over ``sources`` needs for ``p`` (None: none).

    Confidential datasets read without microdata access are already protected (their
    protected table; log tiles say "protected") and do not count here.
    """
    m = spec.disclosure.min_frequency
    open_sources = [s for s in sources if not s.view.protected]
    slugs = tuple(s.slug for s in open_sources)
    if spec.disclosure.apply == "always":
        return Control(m, "always", slugs)
    lacking = tuple(s for s in slugs if not has_microdata_access(gate, p, s))
    return Control(m, "no_microdata", lacking) if lacking else None


# -- protecting a table of counts --------------------------------------------------------------
def protect_counts(
    keys: Sequence[str],
    counts: dict[str, np.ndarray],
    control: Control,
    *,
    row_total: np.ndarray | None = None,
    contributors: dict[str, np.ndarray] | None = None,
    parents: dict[str, str] | None = None,
) -> dict[str, np.ndarray]:
    """Suppress the counts of a tile's table; returns per column a boolean mask over rows.

    ``keys`` name the rows (unique); ``counts`` are count columns (non-negative integers).
    With ``row_total`` the columns are parts of it (a row's total is published too, e.g.
    ``cases = met + breached + overdue + open``), and its mask is returned as ``"__total"``.
    Every column's grand total is a published margin; ``parents`` adds a level between rows
    and the grand total (e.g. Kreis -> Land). ``contributors`` (default: the counts) is what
    the minimum-frequency rule counts — distinct cases where a count counts events.
    """
    from datenlabor.disclosure.primary import primary
    from datenlabor.disclosure.secondary_fast import cell_costs, suppress_fast
    from datenlabor.disclosure.table import Cells, constraint_matrix, encode

    n = len(keys)
    names = list(counts)
    if n == 0 or not names:
        return {c: np.zeros(n, dtype=bool) for c in [*names, "__total"]}
    contributors = contributors or {}
    parents = dict(parents or {})
    # Prefixed codes: a row named like the total ("Insgesamt") stays a row.
    rows = [f"r:{k}" for k in keys]
    row_parent = {f"r:{k}": (f"m:{parents[k]}" if k in parents else TOTAL) for k in keys}
    # Intermediate levels (codes that are parents but not rows) and their parents.
    middle = sorted({p for p in row_parent.values() if p != TOTAL})
    row_parent.update({mid: TOTAL for mid in middle})
    row_codes = [TOTAL, *middle, *rows]
    members: dict[str, list[int]] = {TOTAL: list(range(n))}
    for mid in middle:
        members[mid] = [i for i, k in enumerate(rows) if row_parent[k] == mid]
    col_codes = list(names)
    col_parent: dict[str, str] = {}
    if row_total is not None:
        col_codes = [TOTAL, *names]
        col_parent = {c: TOTAL for c in names}
    data = {c: np.asarray(v, dtype=np.float64) for c, v in counts.items()}
    if row_total is not None:
        data[TOTAL] = np.asarray(row_total, dtype=np.float64)
    contrib = {c: np.asarray(contributors.get(c, data[c]), dtype=np.float64) for c in data}

    position = {k: i for i, k in enumerate(rows)}
    if len(position) != n:
        raise ValueError("row keys of a protected tile must be unique")
    codes0: list[str] = []
    codes1: list[str] = []
    records: list[float] = []
    contr: list[float] = []
    keep: list[bool] = []
    where: list[tuple[int, str] | None] = []  # row index and column of an inner cell
    for r in row_codes:
        for c in col_codes:
            if r in members:
                idx = members[r]
                value = float(data[c][idx].sum())
                people = float(contrib[c][idx].sum())
                where.append(None)
                keep.append(True)
            else:
                i = position[r]
                value, people = float(data[c][i]), float(contrib[c][i])
                where.append((i, c))
                keep.append(False)
            codes0.append(r)
            codes1.append(c)
            records.append(value)
            contr.append(people)
    rec = np.round(np.asarray(records)).astype(np.int64)
    cells = Cells(
        dims=["row", "col"],
        codes=[np.asarray(codes0, dtype=object), np.asarray(codes1, dtype=object)],
        parents=[row_parent, col_parent],
        records=rec,
        contributors=np.round(np.asarray(contr)).astype(np.int64),
    )
    rules = control.rules
    mask, targets = primary(cells, rules)
    sup = mask
    if mask.any():
        matrix = constraint_matrix(cells.codes, cells.parents, what="tile")
        coding = encode(cells.codes, cells.parents)
        cost = cell_costs(targets[0].values, rules.cost)
        cost = np.where(np.asarray(keep), cost * _KEEP_FACTOR + 1.0, cost)
        sup, _stats = suppress_fast(matrix, mask, targets, cost, coding)
    out = {c: np.zeros(n, dtype=bool) for c in names}
    out["__total"] = np.zeros(n, dtype=bool)
    for flag, w in zip(sup, where, strict=True):
        if w is not None and flag:
            i, c = w
            out["__total" if c == TOTAL else c][i] = True
    return out


def small(value: Any, control: Control) -> bool:
    """A count the minimum-frequency rule suppresses (1 … m-1)."""
    return value is not None and 0 < float(value) < control.min_frequency


# -- marking a tile ----------------------------------------------------------------------------
def mark(tile: TileData, row: int, columns: Sequence[str]) -> None:
    """Suppress ``columns`` of row ``row`` (value None, listed in ``tile.suppressed``)."""
    if not tile.suppressed:
        tile.suppressed = [[] for _ in tile.rows]
    have = tile.suppressed[row]
    for c in columns:
        if c in tile.rows[row]:
            tile.rows[row][c] = None
            if c not in have:
                have.append(c)


def is_suppressed(tile: TileData, row: int, column: str) -> bool:
    return bool(tile.suppressed) and column in tile.suppressed[row]


def drop_columns(tile: TileData, columns: Sequence[str]) -> None:
    """Remove columns a viewer under disclosure control does not see at all."""
    gone = set(columns)
    tile.columns = [c for c in tile.columns if c["name"] not in gone]
    tile.rows = [{k: v for k, v in r.items() if k not in gone} for r in tile.rows]
    tile.y = [y for y in tile.y if y not in gone]


def withhold(tile: TileData, control: Control, message: str) -> TileData:
    """A tile that shows case-level data: no numbers for this viewer."""
    tile.status = "withheld"
    tile.message = message
    tile.rows, tile.columns, tile.kpi, tile.graph, tile.drill = [], [], None, None, None
    tile.provenance["disclosure"] = control.provenance()
    return tile


def protect_flow(
    values: np.ndarray,
    contributors: np.ndarray,
    matrix: Any,
    keep: np.ndarray,
    control: Control,
) -> np.ndarray:
    """Suppression pattern for counts bound by arbitrary equations ``matrix @ x = 0``.

    Used for process graphs, whose flow equations (into an activity = its events = out of it)
    are not a hierarchical table, so the ``fast`` method's table boxes do not apply. Primary
    cells by the minimum frequency; then, as long as the disclosure layer's exact attacker
    (``datenlabor.disclosure.attacker.violations``) narrows a primary cell below the
    threshold, the cells of the cheapest deviation that lifts it to the threshold are
    suppressed too (:func:`_deviation`). Suppression only grows, so the loop ends; ``keep``
    marks cells published elsewhere (costly).
    """
    from datenlabor.disclosure.attacker import violations
    from datenlabor.disclosure.primary import Target

    m = control.min_frequency
    values = np.asarray(values, dtype=np.float64)
    contributors = np.asarray(contributors, dtype=np.float64)
    prim = (contributors > 0) & (contributors < m)
    sup = prim.copy()
    if not prim.any():
        return sup
    upper = np.where(prim, m - contributors, 0.0)
    target = Target("n", values, upper, np.zeros(len(values)))
    cost = values + 1e-3 + np.where(keep, _KEEP_FACTOR * (values.max(initial=1.0) + 1), 0.0)
    for _ in range(len(values)):
        found = violations(matrix, sup, np.flatnonzero(prim), [target])
        if not found:
            return sup
        for v in found:
            if v.side == "upper":
                sup |= _deviation(matrix, values, sup, cost, v.cell, v.need)
    return sup


def _deviation(
    matrix: Any, values: np.ndarray, sup: np.ndarray, cost: np.ndarray, cell: int, need: float
) -> np.ndarray:
    """The published cells to suppress so that ``cell`` can be ``need`` larger: the support
    of the cheapest change ``y`` with ``matrix @ y = 0``, ``y[cell] >= need`` and
    ``values + y >= 0`` (Fischetti and Salazar's deviation; suppressing its support leaves
    the attacker a complete table with the cell that much larger). Written here with
    ``scipy.optimize.linprog`` because the disclosure layer's version of it is internal to
    its table method."""
    import scipy.sparse as sp
    from scipy.optimize import linprog

    n = len(values)
    price = np.where(sup, 0.0, cost)
    # y = up - down, both >= 0; down <= values (nothing below zero)
    c = np.concatenate([price, price])
    eq = sp.hstack([matrix, -matrix]).tocsr()
    lift = sp.csr_matrix(([-1.0, 1.0], ([0, 0], [cell, n + cell])), shape=(1, 2 * n))
    bounds = [(0, None)] * n + [(0, float(v)) for v in values]
    res = linprog(
        c, A_ub=lift, b_ub=[-need], A_eq=eq, b_eq=np.zeros(eq.shape[0]), bounds=bounds,
        method="highs",
    )  # fmt: skip
    if res.status != 0:  # no table lifts the cell: everything around it goes
        return np.ones(n, dtype=bool)
    y = res.x[:n] - res.x[n:]
    return np.abs(y) > 1e-7 * max(1.0, float(values.max(initial=1.0)))


# -- procedure-log tiles -----------------------------------------------------------------------
# metric -> (count columns that are parts, row-total column or None, columns to drop).
# Every other numeric column of a row is a figure computed from the row's cases and is
# suppressed with any of its counts.
LOG_PLANS: dict[str, tuple[list[str], str | None]] = {
    "throughput": (["cases"], None),
    "deadline": (["met", "breached", "overdue", "open"], "cases"),
    "waiting_times": (["events"], None),
    "rework": (["cases_repeated", "__once"], "cases"),
    "workload": (["events"], None),
    "variants": (["cases"], None),
}
_KEY_COLUMNS = ("period", "segment", "activity", "resource", "rank", "from", "to")


def row_key(row: dict[str, Any], columns: Sequence[str]) -> str:
    parts = [row.get(c) for c in columns if c in row and c in _KEY_COLUMNS]
    if not parts:
        parts = [next(iter(row.values()), None)]
    return "\u241f".join("(leer)" if p is None else str(p) for p in parts)


def protect_rows(
    tile: TileData,
    parts: list[str],
    control: Control,
    *,
    row_total: str | None = None,
    contributors: dict[str, np.ndarray] | None = None,
    parents: dict[str, str] | None = None,
    keys: list[str] | None = None,
    key_columns: Sequence[str] = _KEY_COLUMNS,
) -> np.ndarray:
    """Protect the count columns ``parts`` of ``tile.rows`` (with ``row_total`` their sum per
    row) and suppress, in every row with a suppressed count, every other figure of the row.
    Returns the rows with a suppressed count."""
    names = [c["name"] for c in tile.columns]
    if keys is None:
        keys = [row_key(r, names) for r in tile.rows]
    counts: dict[str, np.ndarray] = {}
    for c in parts:
        if c == "__once":  # the complement of the first part within the row total
            assert row_total is not None
            counts[c] = np.array(
                [(r.get(row_total) or 0) - (r.get(parts[0]) or 0) for r in tile.rows], dtype=float
            )
        else:
            counts[c] = np.array([r.get(c) or 0 for r in tile.rows], dtype=float)
    total = (
        np.array([r.get(row_total) or 0 for r in tile.rows], dtype=float)
        if row_total is not None
        else None
    )
    masks = protect_counts(
        keys, counts, control, row_total=total, contributors=contributors, parents=parents
    )
    hit = np.zeros(len(tile.rows), dtype=bool)
    for m in masks.values():
        hit |= m
    figures = [
        c["name"]
        for c in tile.columns
        if c["kind"] in ("int", "number", "duration_s", "rate") and c["name"] not in key_columns
    ]
    for i in np.flatnonzero(hit):
        mark(tile, int(i), figures)
    return hit


def protect_log_chart(tile: TileData, metric: str, control: Control, log: Any) -> None:
    """Disclosure control of a chart or table tile over a log (rows: the full result)."""
    drop_columns(tile, EXTREMES)
    if metric == "cases_over_time":
        for col in ("started", "completed"):
            protect_rows_single(tile, col, control)
        # The backlog is the running balance of started minus completed: from the first
        # period with a suppressed count on, it would give the suppressed counts away.
        first = next((i for i, s in enumerate(tile.suppressed) if s), None)
        if first is not None:
            for i in range(first, len(tile.rows)):
                mark(tile, i, ["open_at_end"])
        return
    if metric in ("dfg", "bottlenecks"):
        pattern = dfg_pattern(log, control)
        for i, r in enumerate(tile.rows):
            if pattern["edges"].get((r.get("from"), r.get("to")), False):
                mark(
                    tile,
                    i,
                    [c["name"] for c in tile.columns if c["name"] not in ("rank", "from", "to")],
                )
        return
    parts, total = LOG_PLANS[metric]
    contributors = None
    if metric == "waiting_times":
        per = dict(
            log.con.execute(
                "SELECT n.name, count(*) FROM (SELECT DISTINCT b, case_no FROM "
                f"{log.ensure_pairs()}) p JOIN activity_names n ON n.code = p.b GROUP BY 1"
            ).fetchall()
        )
        contributors = {"events": np.array([per.get(r["activity"], 0) for r in tile.rows], float)}
    if metric == "workload":
        contributors = {"events": np.array([r.get("cases") or 0 for r in tile.rows], float)}
    protect_rows(tile, parts, control, row_total=total, contributors=contributors)
    if metric == "deadline":  # median time to TO: a statistic of the cases that reached it
        for i, r in enumerate(tile.rows):
            if small((r.get("met") or 0) + (r.get("breached") or 0), control):
                mark(tile, i, ["median_s"])
    if metric == "variants":  # a rare path through the procedure may itself identify a case
        for i, s in enumerate(tile.suppressed):
            if s:
                mark(tile, i, ["activities", "variant"])


def protect_rows_single(tile: TileData, column: str, control: Control) -> None:
    """One count column with its grand total, suppressed on its own."""
    names = [c["name"] for c in tile.columns]
    keys = [row_key(r, names) for r in tile.rows]
    counts = {column: np.array([r.get(column) or 0 for r in tile.rows], dtype=float)}
    mask = protect_counts(keys, counts, control)[column]
    for i in np.flatnonzero(mask):
        mark(tile, int(i), [column])


def _distinct_cases(groups: np.ndarray, case_of: np.ndarray, size: int) -> np.ndarray:
    """Distinct cases per group id (``0 … size-1``); ``case_of`` ascends (events are in case
    order). A stable sort by group keeps the case order within each group (numpy sorts 16-bit
    keys by radix, in linear time), so a case starts wherever the group or the case changes."""
    keys = groups.astype(np.int16) if size < 2**15 else groups
    order = np.argsort(keys, kind="stable")
    g, c = groups[order], case_of[order]
    new = np.ones(len(g), dtype=bool)
    new[1:] = (g[1:] != g[:-1]) | (c[1:] != c[:-1])
    return np.bincount(g[new], minlength=size)


def dfg_pattern(log: Any, control: Control) -> dict[str, Any]:
    """One suppression pattern for every process-graph tile of a log (edges, start and end
    counts, events per activity), protected under the graph's flow equations."""
    import scipy.sparse as sp

    cached = getattr(log, "_sdc_dfg", None)
    if cached is not None and cached[0] == control.key():
        return dict(cached[1])
    # Transitions and distinct cases per edge, events and distinct cases per activity, from
    # the traces the library already holds in memory (numpy: one sort of case-keyed codes;
    # the same as group-bys by case in DuckDB, which measured 20x a plain group-by).
    tr = log.traces()
    k, n_ev = len(tr.activities), int(tr.codes.size)
    codes = tr.codes.astype(np.int64)
    case_of = np.repeat(
        np.arange(len(tr.starts), dtype=np.int64), np.diff(np.append(tr.starts, n_ev))
    )
    first = np.zeros(n_ev, dtype=bool)
    first[tr.starts] = True
    within = ~first[1:]
    pair = codes[:-1][within] * k + codes[1:][within]
    pair_count = np.bincount(pair, minlength=k * k)
    pair_cases = _distinct_cases(pair, case_of[1:][within], k * k)
    node_count = np.bincount(codes, minlength=k)
    node_cases = _distinct_cases(codes, case_of, k)
    names_of = [str(a) for a in tr.activities]
    edges = [
        (names_of[int(i) // k], names_of[int(i) % k], int(pair_count[i]), int(pair_cases[i]))
        for i in np.flatnonzero(pair_count)
    ]
    nodes = [
        (names_of[j], int(node_count[j]), int(node_cases[j])) for j in np.flatnonzero(node_count)
    ]
    starts, ends = log.start_end_counts()
    names = [str(n[0]) for n in nodes]
    at = {a: i for i, a in enumerate(names)}
    k, e = len(names), len(edges)
    # variables: edges, starts, ends, node events, total cases
    n_var = e + 3 * k + 1
    values = np.zeros(n_var)
    contrib = np.zeros(n_var)
    keep = np.zeros(n_var, dtype=bool)
    for i, (_a, _b, cnt, people) in enumerate(edges):
        values[i], contrib[i] = cnt, people
    for a, cnt in starts.items():
        values[e + at[a]] = contrib[e + at[a]] = cnt
    for a, cnt in ends.items():
        values[e + k + at[a]] = contrib[e + k + at[a]] = cnt
    for j, (_a, cnt, people) in enumerate(nodes):
        values[e + 2 * k + j], contrib[e + 2 * k + j] = cnt, people
    total = n_var - 1
    values[total] = contrib[total] = sum(starts.values())
    keep[total] = True
    entries: list[tuple[int, int, float]] = []  # (equation, variable, coefficient)
    for i, edge in enumerate(edges):  # into an activity: edges in + starts = its events;
        entries.append((2 * at[str(edge[1])], i, 1.0))  # out of it: edges out + ends
        entries.append((2 * at[str(edge[0])] + 1, i, 1.0))
    for j in range(k):
        entries += [(2 * j, e + j, 1.0), (2 * j + 1, e + k + j, 1.0)]
        entries += [(2 * j, e + 2 * k + j, -1.0), (2 * j + 1, e + 2 * k + j, -1.0)]
        entries += [(2 * k, e + j, 1.0), (2 * k + 1, e + k + j, 1.0)]  # starts, ends: cases
    entries += [(2 * k, total, -1.0), (2 * k + 1, total, -1.0)]
    eqs, var, coef = zip(*entries, strict=True)
    matrix = sp.csr_matrix((coef, (eqs, var)), shape=(2 * k + 2, n_var))
    sup = protect_flow(values, contrib, matrix, keep, control)
    pattern = {
        "edges": {(str(a), str(b)): bool(sup[i]) for i, (a, b, _c, _p) in enumerate(edges)},
        "starts": {a: bool(sup[e + at[a]]) for a in starts},
        "ends": {a: bool(sup[e + k + at[a]]) for a in ends},
        "nodes": {a: bool(sup[e + 2 * k + j]) for j, a in enumerate(names)},
    }
    log._sdc_dfg = (control.key(), pattern)
    return pattern


def protect_map(table: Any, tile: Any, control: Control) -> tuple[Any, dict[str, list[str]]]:
    """Map values under disclosure control: the regions' case counts with their grand total
    (and, on a Kreis map, the Länder as a level between), the value suppressed with them or
    when it rests on few cases. Returns the table with suppressed values set to null and,
    per region key, the suppressed columns."""
    import pyarrow as pa

    from datenlabor.dashboards.tile import TileData, fill

    scratch = fill(TileData("map", "map", ""), table)
    keys = [str(r["key"]) for r in scratch.rows]
    parents = {k: k[:2] for k in keys if len(k) > 2}
    if tile.value in ("breaches", "breach_rate"):
        hit = protect_rows(
            scratch, ["breaches", "__once"], control, row_total="cases", parents=parents, keys=keys
        )
    else:
        hit = protect_rows(scratch, ["cases"], control, parents=parents, keys=keys)
    hidden: dict[str, list[str]] = {}
    for i, r in enumerate(table.to_pylist()):
        few = (
            small(r.get("completed"), control)
            if "completed" in r
            else small(r.get("met"), control) or small(r.get("breaches"), control)
        )
        if hit[i]:
            hidden[keys[i]] = ["cases", "value"]
        elif few:
            hidden[keys[i]] = ["value"]
    rows = table.to_pylist()
    for r in rows:
        for c in hidden.get(str(r["key"]), []):
            r[c] = None
    return pa.Table.from_pylist(rows, schema=table.schema), hidden


def mark_map(tile: TileData, hidden: dict[str, list[str]]) -> None:
    """Mark the suppressed rows of a map tile and its regions (drawn as "secret")."""
    for i, r in enumerate(tile.rows):
        if r["key"] in hidden:
            mark(tile, i, hidden[r["key"]])
    if tile.graph is not None:
        for reg in tile.graph.get("regions", []):
            if "value" in hidden.get(reg["key"], []):
                reg["suppressed"] = True


# -- dataset tiles -----------------------------------------------------------------------------
def protect_dataset_rows(tile: TileData, spec_tile: Any, control: Control) -> None:
    """A chart, table or histogram over a dataset: the rows' record counts (``__n``, or a
    histogram's ``count``) with their total; every figure of a suppressed row goes with it."""
    if spec_tile.type == "histogram":
        protect_rows_single(tile, "count", control)
        if tile.rows:  # the outer edges are the smallest and the largest value
            mark(tile, 0, ["from_value"])
            mark(tile, len(tile.rows) - 1, ["to_value"])
        return
    names = [c["name"] for c in tile.columns]
    keys = [str(r.get(names[0])) if names else "" for r in tile.rows]
    protect_rows(tile, ["__n"], control, keys=keys, key_columns=names[:1])
    drop_columns(tile, ["__n"])
    tile.suppressed = [[c for c in s if c != "__n"] for s in tile.suppressed]
