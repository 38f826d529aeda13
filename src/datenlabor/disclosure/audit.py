"""Play the attacker on a published table: which confidential cells are not protected enough?

Two modes:

* :func:`audit` (and :func:`audit_csv`) works from the published table alone, as an outsider
  would: it reports every primary cell that is published, recomputable exactly, or (frequency
  tables) whose maximum lies below the minimum frequency, so that the attacker knows it is a
  small count.
* :meth:`Protected.audit` (:func:`audit_cells`) also knows the true values and each primary
  cell's protection levels and reports every interval narrower than required.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from datenlabor.disclosure.attacker import Attacker, tolerance, violations
from datenlabor.disclosure.hierarchy import infer_parents
from datenlabor.disclosure.rules import Dim, Hierarchy, Rules
from datenlabor.disclosure.table import constraint_matrix
from datenlabor.errors import BadInput

if TYPE_CHECKING:
    from datenlabor.disclosure.output import Protected

SUPPRESSED_MARKS = ("", ".")


def audit(table: pa.Table, rules: Rules, *, file: str | None = None) -> list[dict[str, Any]]:
    """Findings of the outsider's attack on a published table (empty list: protected)."""
    dims = rules.dim_names
    for col in [*dims, "n", "status", *rules.measures]:
        if col not in table.column_names:
            raise BadInput("the published table has no such column", file=file, column=col)
    codes = [np.asarray(table.column(d).cast(pa.string()).to_pylist(), dtype=object) for d in dims]
    for d, dim_codes in zip(dims, codes, strict=True):
        if any(c is None for c in dim_codes):
            raise BadInput("empty dimension values", file=file, column=d)
    parents = [
        infer_parents(d.name, dim_codes, None if d.hierarchy == "flat" else d.hierarchy)
        for d, dim_codes in zip(rules.dims, codes, strict=True)
    ]
    matrix = constraint_matrix(codes, parents, what="published table")
    status = np.asarray(table.column("status").fill_null("").to_pylist(), dtype=object)
    primary = status == "primary"
    findings: list[dict[str, Any]] = []
    for col in ["n", *rules.measures]:
        vals = table.column(col).cast(pa.float64()).to_numpy(zero_copy_only=False)
        suppressed = np.isnan(vals)
        _check_consistent(matrix, vals, suppressed, codes, dims, col, file)
        for c in np.flatnonzero(primary & ~suppressed):
            findings.append(_finding(codes, dims, int(c), col, "published", None))
        attacker = Attacker(matrix, vals, suppressed)
        threshold = col == "n" and rules.frequency_table
        hidden = np.flatnonzero(primary & suppressed)
        for c, lo, hi in zip(hidden, *attacker.intervals(hidden), strict=True):
            tol = tolerance(hi if np.isfinite(hi) else 0.0, attacker.scale)
            if hi - lo <= tol:
                findings.append(_finding(codes, dims, int(c), col, "exact", (lo, hi)))
            elif threshold and hi < rules.min_frequency - tol:
                findings.append(_finding(codes, dims, int(c), col, "below_threshold", (lo, hi)))
    return findings


def audit_cells(prot: Protected) -> list[dict[str, Any]]:
    """Findings of the attack with true values: intervals narrower than the protection levels."""
    if not prot.targets:
        return []  # cell-key tables are perturbed, not suppressed
    sup = prot.status != ""
    cells = np.flatnonzero(prot.status == "primary")
    found = violations(prot.matrix, sup, cells, prot.targets, prot.coding)
    dims, codes = prot.cells.dims, prot.cells.codes
    out = []
    for v in found:
        t = prot.targets[v.target]
        f = _finding(codes, dims, v.cell, t.column, v.side, None)
        f.update(value=float(t.values[v.cell]), required=v.need, bound=v.bound)
        out.append(f)
    return out


def _finding(
    codes: list[np.ndarray],
    dims: list[str],
    cell: int,
    col: str,
    problem: str,
    interval: tuple[float, float] | None,
) -> dict[str, Any]:
    f: dict[str, Any] = {
        "cell": {d: str(c[cell]) for d, c in zip(dims, codes, strict=True)},
        "column": col,
        "problem": problem,
    }
    if interval is not None:
        f["interval"] = [float(interval[0]), float(interval[1])]
    return f


def _check_consistent(
    matrix: Any,
    vals: np.ndarray,
    suppressed: np.ndarray,
    codes: list[np.ndarray],
    dims: list[str],
    col: str,
    file: str | None,
) -> None:
    touched = (abs(matrix) @ suppressed.astype(np.float64)) > 0
    residual = matrix @ np.nan_to_num(vals)
    scale = max(1.0, float(np.nanmax(np.abs(vals), initial=0.0)))
    bad = np.flatnonzero(~touched & (np.abs(residual) > 1e-6 * scale))
    if len(bad):
        row = matrix[bad[0]]
        total = int(row.indices[row.data < 0][0])
        cell = ", ".join(f"{d}={c[total]}" for d, c in zip(dims, codes, strict=True))
        raise BadInput(
            f"the total ({cell}) differs from the sum of its parts by {residual[bad[0]]:g} "
            f"({len(bad)} such totals); give the hierarchy of each dimension",
            file=file,
            column=col,
        )


def read_published_csv(path: Path, dims: list[str], measures: list[str]) -> pa.Table:
    """A published CSV: dimension codes as text; ``""`` or ``.`` in a value means suppressed."""
    try:
        raw = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                column_types={}, strings_can_be_null=False, auto_dict_encode=False
            ),
            read_options=pacsv.ReadOptions(autogenerate_column_names=False),
        )
    except (OSError, pa.ArrowInvalid) as exc:
        raise BadInput(f"cannot read the CSV: {exc}", file=str(path)) from exc
    raw = pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(raw.column_names, pa.string())
        ),
    )
    cols: dict[str, pa.Array] = {}
    for name in raw.column_names:
        col = raw.column(name).combine_chunks()
        if name in ("n", *measures):
            text = pc.utf8_trim_whitespace(col)
            hidden = pc.is_in(text, value_set=pa.array(SUPPRESSED_MARKS))
            text = pc.if_else(hidden, pa.scalar(None, pa.string()), text)
            try:
                cols[name] = pc.cast(text, pa.float64())
            except pa.ArrowInvalid:
                for i, v in enumerate(text.to_pylist()):
                    try:
                        None if v is None else float(v)
                    except ValueError:
                        raise BadInput(
                            f"not a number: {v!r}", file=str(path), line=i + 2, column=name
                        ) from None
                raise
        else:
            cols[name] = col
    for d in dims:
        if d not in cols:
            raise BadInput("no such column in the CSV", file=str(path), column=d)
    return pa.table(cols)


def audit_csv(
    path: Path,
    *,
    dims: list[str],
    measures: list[str] | None = None,
    hierarchies: dict[str, Hierarchy] | None = None,
    min_frequency: int = 3,
) -> list[dict[str, Any]]:
    """:func:`audit` on a CSV written by ``datenlabor sdc protect`` (or in its layout)."""
    hierarchies = hierarchies or {}
    rules = Rules(
        dims=[Dim(d, hierarchies.get(d, "flat")) for d in dims],
        measures=list(measures or []),
        min_frequency=min_frequency,
    )
    table = read_published_csv(path, dims, rules.measures)
    return audit(table, rules, file=str(path))
