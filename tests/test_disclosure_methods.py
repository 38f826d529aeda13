"""Secondary suppression (fast, optimal) attacked by LP on random and real hierarchical tables."""

from __future__ import annotations

import itertools
from collections import defaultdict

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from conftest import shared_file
from datenlabor.disclosure import TOTAL, Dim, Rules, audit, protect
from datenlabor.disclosure.attacker import violations
from datenlabor.disclosure.secondary_fast import cell_costs

ART = {"A1": "A", "A2": "A", "A3": "A", "B1": "B", "B2": "B", "C": None}
KREISE = [
    "01001",
    "01002",
    "01053",
    "01054",
    "03101",
    "03102",
    "03151",
    "03152",
    "09162",
    "09163",
    "09171",
    "09172",
    "09261",
    "11000",
]


def independent_attack(
    table: pa.Table, dims: list[str], parents: list[dict[str, str]], col: str = "n"
) -> list[tuple[dict, float, float]]:
    """Our own LP attack, written apart from the library: the interval of every primary cell.

    Equations come from a plain dict of the published rows: for each dimension and each row
    whose code has a parent, the parent's row collects it.
    """
    rows = table.to_pylist()
    index = {tuple(r[d] for d in dims): i for i, r in enumerate(rows)}
    eqs: dict[tuple, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        key = tuple(r[d] for d in dims)
        for k, _d in enumerate(dims):
            parent = parents[k].get(key[k])
            if parent is None:
                continue
            pkey = (*key[:k], parent, *key[k + 1 :])
            eqs[(k, index[pkey])].append(i)
    hidden = [i for i, r in enumerate(rows) if r[col] is None]
    pos = {c: j for j, c in enumerate(hidden)}
    a_rows, b = [], []
    for (_, total), parts in eqs.items():
        members = [(total, -1.0)] + [(p, 1.0) for p in parts]
        if not any(c in pos for c, _ in members):
            continue
        row = np.zeros(len(hidden))
        rhs = 0.0
        for c, coef in members:
            if c in pos:
                row[pos[c]] += coef
            else:
                rhs -= coef * rows[c][col]
        a_rows.append(row)
        b.append(rhs)
    out = []
    for i, r in enumerate(rows):
        if r["status"] != "primary":
            continue
        assert r[col] is None, "a primary cell was published"
        e = np.zeros(len(hidden))
        e[pos[i]] = 1.0
        kw = {"A_eq": np.array(a_rows), "b_eq": np.array(b)} if a_rows else {}
        lo = linprog(e, bounds=(0, None), method="highs", **kw)
        hi = linprog(-e, bounds=(0, None), method="highs", **kw)
        assert lo.status == 0
        top = -hi.fun if hi.status == 0 else np.inf
        out.append(({d: r[d] for d in dims}, lo.fun, top))
    return out


def ags_parents(codes: set[str]) -> dict[str, str]:
    from datenlabor.disclosure.hierarchy import ags_parent

    return {c: ags_parent(c) or TOTAL for c in codes if c != TOTAL}


@st.composite
def microdata(draw: st.DrawFn) -> tuple[pa.Table, Rules]:
    """Random hierarchical frequency tables: 2-3 dims, skewed counts, many empty cells."""
    n_dims = draw(st.integers(2, 3))
    kreise = draw(st.lists(st.sampled_from(KREISE), min_size=2, max_size=6, unique=True))
    months = draw(
        st.lists(
            st.sampled_from([f"2024-{m:02d}" for m in range(1, 13)]),
            min_size=2,
            max_size=5,
            unique=True,
        )
    )
    arts = draw(st.lists(st.sampled_from(sorted(ART)), min_size=2, max_size=4, unique=True))
    levels = [kreise, months, arts][:n_dims]
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    combos = list(itertools.product(*levels))
    # Skewed: most cells empty or tiny, a few large.
    counts = rng.choice([0, 0, 1, 1, 2, 3, 5, 8, 20, 60], size=len(combos))
    cols: dict[str, list[str]] = {"region": [], "monat": [], "art": []}
    for combo, c in zip(combos, counts, strict=True):
        for _ in range(int(c)):
            for name, code in zip(["region", "monat", "art"], combo, strict=False):
                cols[name].append(code)
    if not cols["region"]:
        cols = {k: v or [levels[i][0]] for i, (k, v) in enumerate(cols.items()) if i < n_dims}
    dims = [Dim("region", "ags"), Dim("monat", "time"), Dim("art", dict(ART))][:n_dims]
    table = pa.table({d.name: cols[d.name] for d in dims})
    return table, Rules(dims=dims)


def _run(table: pa.Table, rules: Rules):  # type: ignore[no-untyped-def]
    con = duckdb.connect()
    con.register("t", table)
    return protect(con, "SELECT * FROM t", rules)


def _check_fast(case: tuple[pa.Table, Rules]) -> None:
    table, rules = case
    prot = _run(table, rules)
    assert prot.audit() == []  # with true values and protection levels
    assert audit(prot.table, rules) == []  # the outsider's attack on the published table
    m = rules.min_frequency
    for cell, lo, hi in independent_attack(prot.table, rules.dim_names, prot.cells.parents):
        assert hi - lo > 1e-6, f"{cell} recomputable"
        assert hi >= m - 1e-6, f"{cell} known to be below {m}: [{lo}, {hi}]"


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(microdata())
def test_fast_method_passes_every_attack(case: tuple[pa.Table, Rules]) -> None:
    _check_fast(case)


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(microdata())
def test_fast_method_passes_every_attack_many(case: tuple[pa.Table, Rules]) -> None:
    _check_fast(case)


def _cost(prot) -> float:  # type: ignore[no-untyped-def]
    sec = prot.status == "secondary"
    return float(cell_costs(prot.targets[0].values, prot.rules.cost)[sec].sum())


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(microdata())
def test_optimal_is_never_worse_than_fast(case: tuple[pa.Table, Rules]) -> None:
    table, rules = case
    fast = _run(table, rules)
    if fast.report["cells"] > 150:
        return
    opt = _run(table, Rules.from_json({**rules.to_json(), "method": "optimal"}))
    assert opt.audit() == []
    assert audit(opt.table, rules) == []
    assert _cost(opt) <= _cost(fast) + 1e-9


def test_optimal_equals_brute_force_minimum() -> None:
    # 2 x 3 table with totals (12 cells); one cell of 1 record.
    rows = {"r": [], "c": []}
    counts = {
        ("x", "p"): 1,
        ("x", "q"): 4,
        ("x", "s"): 9,
        ("y", "p"): 6,
        ("y", "q"): 3,
        ("y", "s"): 7,
    }
    for (r, c), k in counts.items():
        rows["r"] += [r] * k
        rows["c"] += [c] * k
    rules = Rules(dims=[Dim("r"), Dim("c")], method="optimal")
    opt = _run(pa.table(rows), rules)
    cost = cell_costs(opt.targets[0].values, "value")
    primary = opt.status == "primary"
    free = np.flatnonzero(~primary)
    best = np.inf
    for k in range(1, len(free) + 1):
        for subset in itertools.combinations(free, k):
            c = float(cost[list(subset)].sum())
            if c >= best:
                continue
            sup = primary.copy()
            sup[list(subset)] = True
            if not violations(opt.matrix, sup, np.flatnonzero(primary), opt.targets):
                best = c
    assert _cost(opt) == pytest.approx(best)
    fast = _run(pa.table(rows), Rules(dims=[Dim("r"), Dim("c")]))
    assert _cost(fast) >= best - 1e-9


def test_magnitude_table_protects_measure_and_counts() -> None:
    rng = np.random.default_rng(7)
    n = 400
    table = pa.table(
        {
            "region": rng.choice(KREISE[:8], n),
            "art": rng.choice(sorted(ART), n, p=[0.4, 0.1, 0.05, 0.25, 0.1, 0.1]),
            "firma": rng.choice([f"F{i}" for i in range(60)], n),
            "umsatz": rng.lognormal(3, 1.5, n).round(2),
        }
    )
    rules = Rules(
        dims=[Dim("region", "ags"), Dim("art", dict(ART))],
        measures=["umsatz"],
        contributor="firma",
        p_percent=15.0,
    )
    prot = _run(table, rules)
    assert prot.report["primary"] > 0
    assert prot.audit() == []
    assert audit(prot.table, rules) == []
    rows = prot.table.to_pylist()
    assert all((r["umsatz"] is None) == (r["status"] != "") for r in rows)
    assert all((r["n"] is None) == (r["status"] != "") for r in rows)
    # Published totals are exact sums of the microdata.
    total = next(r for r in rows if r["region"] == TOTAL and r["art"] == TOTAL)
    assert total["umsatz"] == pytest.approx(float(np.sum(table.column("umsatz").to_numpy())))


def test_real_kreis_table_from_genesis() -> None:
    """Population by Kreis and sex (GENESIS 12411), one record per 5,000 inhabitants: a
    frequency table with the real skew of German Kreise, AGS hierarchy up to the Länder."""
    path = shared_file("genesis/ffcsv/12411-01-01-4_de_flat.csv")
    con = duckdb.connect()
    con.execute(
        f"""CREATE TABLE pop AS SELECT "1_variable_attribute_code" AS kreis,
        "2_variable_attribute_code" AS geschlecht, CAST(value AS BIGINT) AS value
        FROM read_csv('{path}', delim=';', header=true, all_varchar=true)
        WHERE length("1_variable_attribute_code") = 5 AND value ~ '^[0-9]+$'
        AND "2_variable_attribute_code" IS NOT NULL"""
    )
    con.execute(
        "CREATE TABLE micro AS SELECT kreis, geschlecht FROM pop, "
        "range(CAST(value // 5000 AS BIGINT)) r(i)"
    )
    rules = Rules(dims=[Dim("kreis", "ags"), Dim("geschlecht")], min_frequency=15)
    prot = protect(con, "SELECT * FROM micro", rules)
    assert prot.report["cells"] > 900 and prot.report["primary"] > 0
    assert prot.audit() == []
    assert audit(prot.table, rules) == []
