"""The hierarchical table: every cell and marginal total, aggregated in DuckDB, and the linear
constraint system (each total equals the sum of its parts) an attacker can exploit.

Aggregation is two SQL steps: microdata to leaf cells (per contributor where the rules need
contributors), then a join with one small "bridge" table per dimension (leaf code -> itself and
every ancestor up to ``Insgesamt``) grouped by the ancestor codes. This handles unbalanced code
lists the same way as AGS or time levels, and a contributor's share of a total is the sum of its
shares of the parts, as the dominance rule needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from datenlabor.disclosure.hierarchy import parent_map
from datenlabor.disclosure.rules import TOTAL, Rules
from datenlabor.errors import BadInput
from datenlabor.query.connection import quote_ident, quote_literal

_TEMPORAL = ("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_NS", "TIMESTAMP_MS")
KEY_MODULUS = 1 << 32  # record keys are 32-bit integers; a cell key is their sum mod 2**32


@dataclass
class Cells:
    """One entry per cell (inner cells and totals of every level), as numpy arrays."""

    dims: list[str]
    codes: list[np.ndarray]  # per dimension: code of the cell (object array of str)
    parents: list[dict[str, str]]  # per dimension: code -> parent code (roots -> TOTAL)
    records: np.ndarray  # number of records
    contributors: np.ndarray  # number of distinct contributors (= records without one)
    values: dict[str, np.ndarray] = field(default_factory=dict)  # measure -> cell sum
    top: dict[str, np.ndarray] = field(default_factory=dict)  # measure -> (cells, k) largest
    keysum: np.ndarray | None = None  # cell key * 2**32 (cell-key method)

    @property
    def size(self) -> int:
        return len(self.records)


def aggregate(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    rules: Rules,
    *,
    top_k: int = 0,
    secret: str | None = None,
) -> Cells:
    """Aggregate the rows of ``sql`` into every cell of the hierarchical table."""
    try:
        rel = con.sql(f"SELECT * FROM ({sql}) AS q LIMIT 0")
    except duckdb.Error as exc:
        raise BadInput(f"the source query fails: {str(exc).splitlines()[0]}") from exc
    types = {name: str(t) for name, t in zip(rel.columns, rel.types, strict=True)}
    needed = [*rules.dim_names, *rules.measures]
    if rules.contributor:
        needed.append(rules.contributor)
    for col in needed:
        if col not in types:
            raise BadInput(f"no such column; columns are {', '.join(rel.columns)}", column=col)
    by_contributor = bool(rules.contributor) or bool(rules.measures)
    dim_exprs = []
    for i, d in enumerate(rules.dims):
        q = quote_ident(d.name)
        if d.hierarchy == "time" and types[d.name].upper() in _TEMPORAL:
            dim_exprs.append(f"strftime({q}, '%Y-%m') AS d{i}")
        else:
            dim_exprs.append(f"CAST({q} AS VARCHAR) AS d{i}")
    cols = list(dim_exprs)
    for j, m in enumerate(rules.measures):
        if not _numeric(types[m]):
            raise BadInput(f"a measure must be numeric, the column is {types[m]}", column=m)
        cols.append(f"CAST({quote_ident(m)} AS DOUBLE) AS m{j}")
    if rules.contributor:
        cols.append(f"CAST({quote_ident(rules.contributor)} AS VARCHAR) AS c")
    elif by_contributor:
        cols.append("row_number() OVER () AS c")  # each record is its own contributor
    if secret is not None:
        ident = (
            f"CAST({quote_ident(rules.contributor)} AS VARCHAR)"
            if rules.contributor
            else "CAST(q AS VARCHAR)"
        )
        # Keyed hash: SHA-256 over secret + separator + record; its first 32 bits are the key.
        cols.append(
            f"('0x' || left(sha256({quote_literal(secret)} || chr(31) || {ident}), 8))::UBIGINT"
            " AS k"
        )
    con.execute(f"CREATE OR REPLACE TEMP TABLE sdc_src AS SELECT {', '.join(cols)} FROM ({sql}) q")
    try:
        _check_source(con, rules)
        group = [f"d{i}" for i in range(len(rules.dims))] + (["c"] if by_contributor else [])
        sums = [f"sum(m{j}) AS m{j}" for j in range(len(rules.measures))]
        if secret is not None:
            sums.append("sum(k)::HUGEINT AS k")
        con.execute(
            "CREATE OR REPLACE TEMP TABLE sdc_leaf AS SELECT "
            + ", ".join([*group, *sums, "count(*) AS r"])
            + f" FROM sdc_src GROUP BY {', '.join(group)}"
        )
        parents = []
        for i, d in enumerate(rules.dims):
            leaves = con.execute(f"SELECT DISTINCT d{i} FROM sdc_leaf").fetchnumpy()[f"d{i}"]
            pm = parent_map(d.name, d.hierarchy, [str(v) for v in leaves])
            parents.append(pm)
            con.register(f"sdc_bridge{i}", _bridge(pm, leaves))
        return _cells(con, rules, parents, by_contributor, top_k, secret is not None)
    finally:
        for i in range(len(rules.dims)):
            con.execute(f"DROP VIEW IF EXISTS sdc_bridge{i}")
        con.execute("DROP TABLE IF EXISTS sdc_leaf")
        con.execute("DROP TABLE IF EXISTS sdc_src")


def _numeric(t: str) -> bool:
    t = t.upper()
    return t in {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE"} or (
        t.startswith(("DECIMAL", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"))
    )


def _check_source(con: duckdb.DuckDBPyConnection, rules: Rules) -> None:
    checks = [f"count(*) FILTER (WHERE d{i} IS NULL)" for i in range(len(rules.dims))]
    checks += [f"count(*) FILTER (WHERE m{j} IS NULL)" for j in range(len(rules.measures))]
    checks += [f"count(*) FILTER (WHERE m{j} < 0)" for j in range(len(rules.measures))]
    if rules.contributor:
        checks.append("count(*) FILTER (WHERE c IS NULL)")
    row = con.execute(f"SELECT {', '.join(checks)} FROM sdc_src").fetchone()
    assert row is not None
    names = [*rules.dim_names, *rules.measures, *rules.measures]
    kinds = ["empty"] * (len(rules.dims) + len(rules.measures)) + ["negative"] * len(rules.measures)
    if rules.contributor:
        names.append(rules.contributor)
        kinds.append("empty")
    for name, kind, count in zip(names, kinds, row, strict=True):
        if count:
            hint = "filter or fill them first" if kind == "empty" else "the rules need values >= 0"
            raise BadInput(f"{count:,} rows have {kind} values; {hint}", column=name)


def _bridge(pm: dict[str, str], leaves: np.ndarray) -> pa.Table:
    src: list[str] = []
    anc: list[str] = []
    for leaf in leaves:
        code: str | None = str(leaf)
        while code is not None:
            src.append(str(leaf))
            anc.append(code)
            code = pm.get(code) if code != TOTAL else None
    return pa.table({"leaf": src, "anc": anc})


def _cells(
    con: duckdb.DuckDBPyConnection,
    rules: Rules,
    parents: list[dict[str, str]],
    by_contributor: bool,
    top_k: int,
    keyed: bool,
) -> Cells:
    nd, nm = len(rules.dims), len(rules.measures)
    joins = " ".join(f"JOIN sdc_bridge{i} b{i} ON l.d{i} = b{i}.leaf" for i in range(nd))
    anc = [f"b{i}.anc AS a{i}" for i in range(nd)]
    a = [f"a{i}" for i in range(nd)]
    if by_contributor:
        inner_aggs = [f"sum(l.m{j}) AS m{j}" for j in range(nm)] + ["sum(l.r) AS r"]
        if keyed:
            inner_aggs.append("sum(l.k) AS k")
        inner = (
            f"SELECT {', '.join(anc)}, l.c, {', '.join(inner_aggs)} FROM sdc_leaf l {joins} "
            f"GROUP BY {', '.join([*a, 'l.c'])}"
        )
        outer = ["count(*) AS contributors", "sum(r)::BIGINT AS records"]
        for j in range(nm):
            outer.append(f"sum(m{j}) AS m{j}")
            if top_k:
                outer.append(f"max(m{j}, {top_k}) AS t{j}")
        if keyed:
            outer.append(f"(sum(k) % {KEY_MODULUS})::UBIGINT AS k")
        query = (
            f"SELECT {', '.join([*a, *outer])} FROM ({inner}) GROUP BY {', '.join(a)} "
            f"ORDER BY {', '.join(a)}"  # a stable cell order makes results reproducible
        )
    else:
        outer = ["sum(l.r)::BIGINT AS records"]
        if keyed:
            outer.append(f"(sum(l.k) % {KEY_MODULUS})::UBIGINT AS k")
        query = (
            f"SELECT {', '.join([*anc, *outer])} FROM sdc_leaf l {joins} "
            f"GROUP BY {', '.join(f'b{i}.anc' for i in range(nd))} ORDER BY ALL"
        )
    t = con.execute(query).to_arrow_table()
    records = t.column("records").to_numpy().astype(np.int64)
    cells = Cells(
        dims=rules.dim_names,
        codes=[t.column(f"a{i}").to_numpy(zero_copy_only=False).astype(object) for i in range(nd)],
        parents=parents,
        records=records,
        contributors=(
            t.column("contributors").to_numpy().astype(np.int64) if by_contributor else records
        ),
    )
    for j, m in enumerate(rules.measures):
        cells.values[m] = t.column(f"m{j}").to_numpy().astype(np.float64)
        if top_k:
            lists = t.column(f"t{j}").to_pylist()
            top = np.zeros((len(lists), top_k))
            for row, vals in enumerate(lists):  # cells, not microdata rows
                top[row, : len(vals)] = vals
            cells.top[m] = top
    if keyed:
        cells.keysum = t.column("k").to_numpy().astype(np.uint64)
    return cells


@dataclass
class Coding:
    """Cells' codes as integers: per dimension the code id of each cell and each code's parent
    id (-1 for a root or a parent not in the table); ``strides`` make a mixed-radix cell key."""

    ids: list[np.ndarray]
    parent_ids: list[np.ndarray]
    strides: np.ndarray


def encode(codes: list[np.ndarray], parents: list[dict[str, str]]) -> Coding:
    ids, parent_ids, sizes = [], [], []
    for d, col in enumerate(codes):
        uniq, inv = np.unique(col.astype(str), return_inverse=True)
        index = {c: i for i, c in enumerate(uniq)}
        pid = np.array([index.get(parents[d].get(c, ""), -1) for c in uniq], dtype=np.int64)
        ids.append(inv.astype(np.int64))
        parent_ids.append(pid)
        sizes.append(len(uniq))
    strides = np.ones(len(codes), dtype=np.int64)
    for d in range(len(codes) - 2, -1, -1):
        strides[d] = strides[d + 1] * sizes[d + 1]
    return Coding(ids, parent_ids, strides)


def constraint_matrix(
    codes: list[np.ndarray], parents: list[dict[str, str]], *, what: str = "table"
) -> sp.csr_matrix:
    """Equations ``sum(parts) - total = 0``, one row per total and dimension (cells as columns).

    A total's parts are the cells whose code in that dimension is a child of the total's code
    and whose other codes are equal; combinations that are not in the table are zero.
    """
    n = len(codes[0]) if codes else 0
    coding = encode(codes, parents)
    ids, parent_ids, strides = coding.ids, coding.parent_ids, coding.strides
    keys = np.zeros(n, dtype=np.int64)
    for d in range(len(codes)):
        keys += ids[d] * strides[d]
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    dup = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
    if len(dup):
        i = int(order[dup[0] + 1])
        cell = ", ".join(f"{codes[d][i]}" for d in range(len(codes)))
        raise BadInput(f"the {what} has the cell ({cell}) twice")
    rows, cols, vals = [], [], []
    n_eq = 0
    for d in range(len(codes)):
        pid = parent_ids[d][ids[d]]
        child = np.flatnonzero(pid >= 0)
        pkeys = keys[child] + (pid[child] - ids[d][child]) * strides[d]
        pos = np.minimum(np.searchsorted(sorted_keys, pkeys), n - 1)
        found = sorted_keys[pos] == pkeys
        child, parent = child[found], order[pos[found]]
        if not len(child):
            continue
        uniq_parent, eq = np.unique(parent, return_inverse=True)
        rows += [eq + n_eq, np.arange(len(uniq_parent)) + n_eq]
        cols += [child, uniq_parent]
        vals += [np.ones(len(child)), -np.ones(len(uniq_parent))]
        n_eq += len(uniq_parent)
    if not rows:
        return sp.csr_matrix((0, n))
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_eq, n)
    )
