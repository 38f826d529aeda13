"""``protect()``: aggregate, find primary cells, protect them, and publish the table."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from datenlabor.disclosure.primary import Target, primary, top_k
from datenlabor.disclosure.rules import TOTAL, Rules
from datenlabor.disclosure.table import Cells, Coding, aggregate, constraint_matrix, encode

PRIMARY, SECONDARY, PERTURBED = "primary", "secondary", "perturbed"


@dataclass
class Protected:
    """A protected table: ``table`` is what may be published, ``report`` says how."""

    table: pa.Table
    report: dict[str, Any]
    rules: Rules
    # What the data holder knows beyond the published table (for the audit with true values).
    cells: Cells = field(repr=False)
    matrix: sp.csr_matrix = field(repr=False)
    status: np.ndarray = field(repr=False)  # per cell: "primary" | "secondary" | "perturbed" | ""
    targets: list[Target] = field(repr=False, default_factory=list)
    coding: Coding | None = field(repr=False, default=None)

    def audit(self) -> list[dict[str, Any]]:
        """Findings of the attacker's LP with the true values and protection levels."""
        from datenlabor.disclosure.audit import audit_cells

        return audit_cells(self)


def protect(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    rules: Rules,
    *,
    secret: str | None = None,
) -> Protected:
    """Protect the aggregate of ``sql`` (any SELECT on ``con``) by the rules' method.

    ``secret`` keys the record keys of the cell-key method (required there, unused otherwise).
    """
    from datenlabor.errors import BadInput

    started = time.perf_counter()
    if rules.method == "cellkey" and not secret:
        raise BadInput("the cell-key method needs a secret (the pool's key)", column="secret")
    cells = aggregate(
        con, sql, rules, top_k=top_k(rules), secret=secret if rules.method == "cellkey" else None
    )
    if rules.method == "cellkey":
        from datenlabor.disclosure.cellkey import perturb

        counts, changed = perturb(cells, rules)
        status = np.where(changed, PERTURBED, "")
        matrix = sp.csr_matrix((0, cells.size))
        table = _table(cells, {"n": counts.astype(np.float64)}, status, np.zeros(cells.size, bool))
        report = _report(rules, cells, status, {}, started)
        report["cellkey"] = {
            "max_deviation": rules.cellkey_max_deviation,
            "variance": rules.cellkey_variance,
            "perturbed_cells": int(changed.sum()),
        }
        return Protected(table, report, rules, cells, matrix, status)
    matrix = constraint_matrix(cells.codes, cells.parents)
    coding = encode(cells.codes, cells.parents)
    mask, targets = primary(cells, rules)
    from datenlabor.disclosure.secondary_fast import cell_costs, suppress_fast

    cost = cell_costs(targets[0].values, rules.cost)
    stats: dict[str, Any]
    if rules.method == "optimal":
        from datenlabor.disclosure.secondary_optimal import suppress_optimal

        sup, stats = suppress_optimal(matrix, mask, targets, cost, rules, coding)
    else:
        sup, stats = suppress_fast(matrix, mask, targets, cost, coding)
    status = np.where(mask, PRIMARY, np.where(sup, SECONDARY, ""))
    published = {t.column: t.values for t in targets if t.column != "n"}
    published["n"] = cells.records.astype(np.float64)
    table = _table(cells, published, status, sup)
    report = _report(rules, cells, status, {t.column: t.values for t in targets}, started)
    report["solver"] = stats
    return Protected(table, report, rules, cells, matrix, status, targets, coding)


def _table(
    cells: Cells, columns: dict[str, np.ndarray], status: np.ndarray, suppressed: np.ndarray
) -> pa.Table:
    """One row per cell, sorted by the codes with each total before its parts' codes."""
    data: dict[str, Any] = {}
    for name, codes in zip(cells.dims, cells.codes, strict=True):
        data[name] = pa.array(codes.astype(str), pa.string())
    order = _order(cells)
    out: dict[str, pa.Array] = {k: v.take(pa.array(order)) for k, v in data.items()}
    integral = {"n"}
    for name in ["n", *[c for c in columns if c != "n"]]:
        vals = columns[name][order]
        hidden = suppressed[order]
        if name in integral:
            out[name] = pa.array(np.round(vals).astype(np.int64), pa.int64(), mask=hidden)
        else:
            out[name] = pa.array(vals, pa.float64(), mask=hidden)
    out["status"] = pa.array(status[order].astype(str), pa.string())
    return pa.table(out)


def _order(cells: Cells) -> np.ndarray:
    keys = []
    for codes in reversed(cells.codes):
        s = codes.astype(str)
        keys.append(np.where(s == TOTAL, "", s))  # "" sorts first: totals lead
    return np.lexsort(keys)


def _report(
    rules: Rules,
    cells: Cells,
    status: np.ndarray,
    values: dict[str, np.ndarray],
    started: float,
) -> dict[str, Any]:
    sec = status == SECONDARY
    prim = status == PRIMARY
    return {
        "method": rules.method,
        "rules": rules.to_json(),
        "cells": int(cells.size),
        "primary": int(prim.sum()),
        "secondary": int(sec.sum()),
        "suppressed_value": {k: float(v[prim | sec].sum()) for k, v in values.items()},
        "secondary_value": {k: float(v[sec].sum()) for k, v in values.items()},
        "seconds": round(time.perf_counter() - started, 3),
    }
