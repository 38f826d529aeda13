"""Fairness metrics per group: selection rates, error rates, their differences and ratios.

Point estimates come from fairlearn's ``MetricFrame`` (per group, ``difference()`` and
``ratio()`` between groups). Confidence intervals are a percentile bootstrap over rows
(resampling the whole sample with replacement, as ``MetricFrame(n_boot=...)`` does), but
computed here: resampling rows is one multinomial draw over the (group, label, prediction)
cells, so all replicates cost one matrix product. fairlearn's own bootstrap re-runs its
per-row group-by for every replicate (see ``bench/governance_fairness.py`` for the figures).

Rules:

* four-fifths rule: the lowest group selection rate divided by the highest is below
  ``min_ratio`` (0.8) -> flagged;
* optional: the difference of false positive or false negative rates between groups above
  ``max_error_difference`` -> flagged (only with labels);
* groups with fewer than ``min_group_size`` rows are reported with a warning and left out of
  the ratios and the flag: their rates say too little.
"""

from __future__ import annotations

import warnings as _warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from datenlabor.errors import BadInput

MISSING = "(fehlt)"
SEP = " × "


@dataclass(frozen=True)
class Thresholds:
    min_ratio: float = 0.8
    max_error_difference: float | None = None
    min_group_size: int = 30
    n_boot: int = 500
    confidence: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.min_ratio <= 1:
            raise BadInput("the minimum ratio must be in (0, 1]", column="min_ratio")
        if self.max_error_difference is not None and not 0 <= self.max_error_difference <= 1:
            raise BadInput("the error-rate difference must be in [0, 1]",
                           column="max_error_difference")  # fmt: skip
        if self.min_group_size < 1 or not 0 <= self.n_boot <= 10_000:
            raise BadInput("min_group_size >= 1 and 0 <= n_boot <= 10000", column="n_boot")
        if not 0.5 <= self.confidence < 1:
            raise BadInput("confidence must be in [0.5, 1)", column="confidence")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Metric functions for MetricFrame, with sample weights: the audit hands MetricFrame one row
# per (group, label, prediction) combination weighted by its count. This gives exactly the same
# rates, but fairlearn's per-row Python overhead (about 4 s per 100,000 rows and attribute,
# measured here) then applies to at most 4 rows per group instead of every row.
def _weights(y: np.ndarray, sample_weight: Any) -> np.ndarray:
    return np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)


def selection_rate(y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
    y = np.asarray(y_pred, dtype=float)
    w = _weights(y, sample_weight)
    total = w.sum()
    return float((y * w).sum() / total) if total else float("nan")


def false_positive_rate(y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
    t, y = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    neg = (1 - t) * _weights(y, sample_weight)
    total = neg.sum()
    return float((y * neg).sum() / total) if total else float("nan")


def false_negative_rate(y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
    t, y = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    pos = t * _weights(y, sample_weight)
    total = pos.sum()
    return float(((1 - y) * pos).sum() / total) if total else float("nan")


def count(y_true: Any, y_pred: Any, sample_weight: Any = None) -> int:
    return round(float(_weights(np.asarray(y_pred), sample_weight).sum()))


def _frame(metrics: dict[str, Any], name: str, names: list[str], codes: np.ndarray,
           pred: np.ndarray, label: np.ndarray | None, keep: list[int] | None = None) -> Any:  # fmt: skip
    """MetricFrame over the rows compressed to (group, label, prediction) with counts."""
    from fairlearn.metrics import MetricFrame  # imported on first use: a second at start-up

    lab = pred if label is None else label
    key = codes.astype(np.int64) * 4 + lab.astype(np.int64) * 2 + pred.astype(np.int64)
    uniq, counts = np.unique(key, return_counts=True)
    g = uniq // 4
    if keep is not None:
        mask = np.isin(g, keep)
        uniq, counts, g = uniq[mask], counts[mask], g[mask]
    return MetricFrame(
        metrics=metrics,
        y_true=((uniq // 2) % 2).astype(bool),
        y_pred=(uniq % 2).astype(bool),
        sensitive_features=pd.Series(np.asarray(names, dtype=object)[g], name=name),
        sample_params={m: {"sample_weight": counts} for m in metrics},
    )


def _num(x: Any) -> float | None:
    x = float(x)
    return None if np.isnan(x) else round(x, 6)


def _bootstrap(
    codes: np.ndarray, pred: np.ndarray, label: np.ndarray | None, n_groups: int, t: Thresholds
) -> dict[str, np.ndarray]:
    """Per replicate and group: selection rate, FPR, FNR (arrays n_boot x n_groups).

    Resampling n rows with replacement and counting them per (group, label, prediction) cell
    is the same as one multinomial draw of n over the cells with their observed shares; so the
    bootstrap costs n_boot x cells instead of n_boot x rows (exact, not an approximation)."""
    rng = np.random.default_rng(t.seed)
    lab = pred if label is None else label
    key = codes.astype(np.int64) * 4 + lab.astype(np.int64) * 2 + pred.astype(np.int64)
    uniq, counts = np.unique(key, return_counts=True)
    n = int(counts.sum())
    draws = rng.multinomial(n, counts / n, size=t.n_boot).astype(float)  # n_boot x cells
    member = np.zeros((len(uniq), n_groups))
    member[np.arange(len(uniq)), uniq // 4] = 1.0
    p = (uniq % 2).astype(float)[:, None]
    y = ((uniq // 2) % 2).astype(float)[:, None]
    out: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        out["selection_rate"] = (draws @ (member * p)) / (draws @ member)
        if label is not None:
            out["fpr"] = (draws @ (member * p * (1 - y))) / (draws @ (member * (1 - y)))
            out["fnr"] = (draws @ (member * (1 - p) * y)) / (draws @ (member * y))
    return out


def _interval(values: np.ndarray, t: Thresholds) -> list[float | None]:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return [None, None]
    a = (1 - t.confidence) / 2
    lo, hi = np.quantile(values, [a, 1 - a])
    return [_num(lo), _num(hi)]


def _attribute(
    name: str, groups: np.ndarray, pred: np.ndarray, label: np.ndarray | None, t: Thresholds
) -> dict[str, Any]:
    metrics: dict[str, Any] = {"selection_rate": selection_rate, "count": count}
    if label is not None:
        metrics.update(fpr=false_positive_rate, fnr=false_negative_rate)
    cat = pd.Categorical(groups)
    names = [str(c) for c in cat.categories]
    codes = np.asarray(cat.codes, dtype=np.int64)
    table = _frame(metrics, name, names, codes, pred, label).by_group
    sizes = {g: int(table.loc[g, "count"]) for g in table.index}
    eligible = [g for g in table.index if sizes[g] >= t.min_group_size]
    warnings = [
        f"{name}: group {g!r} has {sizes[g]} rows (< {t.min_group_size}); its rates are "
        "shown but left out of ratios and flags"
        for g in table.index if sizes[g] < t.min_group_size
    ]  # fmt: skip
    rate_names = [m for m in ("selection_rate", "fpr", "fnr") if m in metrics]
    summary: dict[str, Any] = {}
    boot: dict[str, np.ndarray] = {}
    elig_idx = [names.index(str(g)) for g in eligible]
    if t.n_boot:
        boot = _bootstrap(codes, pred, label, len(names), t)
    if len(eligible) >= 2:
        sub = _frame({m: metrics[m] for m in rate_names}, name, names, codes, pred, label,
                     keep=elig_idx)  # fmt: skip
        ratio, difference = sub.ratio(), sub.difference()
        for m in rate_names:
            col = sub.by_group[m]
            entry: dict[str, Any] = {
                "difference": _num(difference[m]),
                "ratio": _num(ratio[m]),
                "max_group": str(col.idxmax()) if col.notna().any() else None,
                "min_group": str(col.idxmin()) if col.notna().any() else None,
            }
            if m in boot:
                with _warnings.catch_warnings():  # all-NaN replicates: no rate, no warning
                    _warnings.simplefilter("ignore", RuntimeWarning)
                    part = boot[m][:, elig_idx]
                    hi, lo = np.nanmax(part, axis=1), np.nanmin(part, axis=1)
                    entry["difference_ci"] = _interval(hi - lo, t)
                    entry["ratio_ci"] = _interval(np.where(hi > 0, lo / hi, np.nan), t)
            summary[m] = entry
    else:
        warnings.append(f"{name}: fewer than two groups with at least {t.min_group_size} rows; "
                        "no comparison possible")  # fmt: skip
    best = max((float(table.loc[g, "selection_rate"]) for g in eligible), default=float("nan"))
    rows = []
    for g in table.index:
        i = names.index(str(g))
        row: dict[str, Any] = {"group": str(g), "n": sizes[g], "small": sizes[g] < t.min_group_size}
        for m in rate_names:
            row[m] = _num(table.loc[g, m])
            if m in boot:
                row[m + "_ci"] = _interval(boot[m][:, i], t)
        sr = float(table.loc[g, "selection_rate"])
        row["ratio_to_best"] = _num(sr / best) if best and not np.isnan(best) else None
        rows.append(row)
    reasons = []
    sr_ratio = summary.get("selection_rate", {}).get("ratio")
    if sr_ratio is not None and sr_ratio < t.min_ratio:
        s = summary["selection_rate"]
        reasons.append(f"{name}: selection rate of {s['min_group']!r} is {sr_ratio:.2f} of "
                       f"{s['max_group']!r} (< {t.min_ratio:g}, four-fifths rule)")  # fmt: skip
        ci = s.get("ratio_ci") or [None, None]
        if ci[1] is not None and ci[1] >= t.min_ratio:
            warnings.append(f"{name}: the ratio's {t.confidence:.0%} interval reaches "
                            f"{ci[1]:.2f}; the groups may be too small to be sure")  # fmt: skip
    if t.max_error_difference is not None:
        for m in ("fpr", "fnr"):
            d = summary.get(m, {}).get("difference")
            if d is not None and d > t.max_error_difference:
                reasons.append(f"{name}: {m.upper()} differs by {d:.2f} between groups "
                               f"(> {t.max_error_difference:g})")  # fmt: skip
    return {
        "groups": rows,
        "metrics": summary,
        "min_ratio": sr_ratio,
        "flagged": bool(reasons),
        "reasons": reasons,
        "warnings": warnings,
    }


def audit(
    pred: Any,
    groups: dict[str, Any],
    label: Any | None = None,
    thresholds: Thresholds | None = None,
    *,
    intersectional: bool = True,
) -> dict[str, Any]:
    """Audit binary predictions (True = selected) per group attribute; with several
    attributes also their intersection. ``label`` (True = positive) adds error rates."""
    t = thresholds or Thresholds()
    y = np.asarray(pred, dtype=bool)
    lab = None if label is None else np.asarray(label, dtype=bool)
    if y.size == 0:
        raise BadInput("no rows to audit")
    if not groups:
        raise BadInput("at least one group attribute is needed", column="group")
    cols: dict[str, pd.Series] = {}
    for name, values in groups.items():
        col = pd.Series(values, dtype=object)
        if len(col) != y.size:
            raise BadInput(f"group {name!r} has {len(col)} values for {y.size} rows", column=name)
        cols[name] = col.where(col.notna(), MISSING).astype(str)
    if intersectional and len(cols) > 1:
        parts = list(cols.values())
        joined = parts[0]
        for part in parts[1:]:
            joined = joined + SEP + part
        cols[SEP.join(cols)] = joined
    arrays = {name: col.to_numpy(dtype=object) for name, col in cols.items()}
    attributes = {name: _attribute(name, arr, y, lab, t) for name, arr in arrays.items()}
    ratios = [a["min_ratio"] for a in attributes.values() if a["min_ratio"] is not None]
    return {
        "rows": int(y.size),
        "selection_rate": _num(y.mean()),
        "labels": lab is not None,
        "attributes": attributes,
        "min_ratio": min(ratios) if ratios else None,
        "flagged": any(a["flagged"] for a in attributes.values()),
        "reasons": [r for a in attributes.values() for r in a["reasons"]],
        "warnings": [w for a in attributes.values() for w in a["warnings"]],
        "thresholds": t.to_dict(),
    }


def positives(values: Any, positive: str | None, column: str) -> np.ndarray:
    """A prediction or label column as booleans: ``positive`` names the selected value;
    without it the column must be boolean-like (true/false, 1/0, ja/nein, yes/no)."""
    arr = list(values)
    if positive is not None:
        return np.asarray([str(v) == positive for v in arr], dtype=bool)
    truthy, falsy = {"true", "1", "1.0", "yes", "ja", "y", "j"}, {"false", "0", "0.0", "no", "nein",
                                                                 "n"}  # fmt: skip
    out = []
    for i, v in enumerate(arr):
        s = str(v).strip().lower()
        if s in truthy:
            out.append(True)
        elif s in falsy:
            out.append(False)
        else:
            raise BadInput(
                f"value {v!r} in row {i + 1} is not boolean; name the selected value with "
                "--positive",
                column=column,
            )
    return np.asarray(out, dtype=bool)
