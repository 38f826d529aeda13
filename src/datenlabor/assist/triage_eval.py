"""Quality figures of a classifier on held-out data: accuracy, macro-F1, calibration,
per-class and per-group error rates, and what the confidence threshold does.

Calibration: the expected calibration error (ECE) over ``bins`` equal-width confidence bins
is the share-weighted mean of |accuracy − mean confidence| per bin; the bins themselves
(reliability diagram) are returned too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support


def _r(x: float) -> float:
    return round(float(x), 4)


def calibration(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> dict[str, Any]:
    edges = np.linspace(0.0, 1.0, bins + 1)
    # bin i holds (edges[i], edges[i+1]]; a confidence of exactly 0 goes to the first bin
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    n = len(confidence)
    out, ece = [], 0.0
    for i in range(bins):
        mask = which == i
        count = int(mask.sum())
        if count == 0:
            out.append({"low": _r(edges[i]), "high": _r(edges[i + 1]), "n": 0})
            continue
        conf, acc = float(confidence[mask].mean()), float(correct[mask].mean())
        ece += count / n * abs(acc - conf)
        out.append(
            {
                "low": _r(edges[i]),
                "high": _r(edges[i + 1]),
                "n": count,
                "confidence": _r(conf),
                "accuracy": _r(acc),
            }
        )
    return {"ece": _r(ece), "bins": out}


def metrics(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    confidence: Sequence[float],
    *,
    groups: Mapping[str, Sequence[Any]] | None = None,
    threshold: float | None = None,
    bins: int = 10,
) -> dict[str, Any]:
    """All figures for one held-out set; ``groups`` maps a column name to its values."""
    yt, yp = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    conf = np.asarray(confidence, dtype=float)
    correct = yt == yp
    labels = sorted(set(yt) | set(yp))
    prec, rec, f1, support = precision_recall_fscore_support(yt, yp, labels=labels, zero_division=0)
    cal = calibration(conf, correct, bins)
    out: dict[str, Any] = {
        "n": len(yt),
        "accuracy": _r(accuracy_score(yt, yp)),
        "macro_f1": _r(f1_score(yt, yp, labels=sorted(set(yt)), average="macro", zero_division=0)),
        "ece": cal["ece"],
        "reliability": cal["bins"],
        "per_class": {
            label: {
                "n": int(support[i]),
                "precision": _r(prec[i]),
                "recall": _r(rec[i]),
                "f1": _r(f1[i]),
                "error_rate": _r(1 - rec[i]) if support[i] else None,
            }
            for i, label in enumerate(labels)
        },
        "per_group": {},
    }
    for column, values in (groups or {}).items():
        vals = np.asarray([None if v is None else str(v) for v in values], dtype=object)
        per: dict[str, Any] = {}
        for value in sorted({v for v in vals if v is not None}):
            mask = vals == value
            per[value] = {
                "n": int(mask.sum()),
                "error_rate": _r(1 - correct[mask].mean()),
                "mean_confidence": _r(conf[mask].mean()),
            }
        out["per_group"][column] = per
    if threshold is not None:
        kept = conf >= threshold
        out["threshold"] = {
            "min_confidence": threshold,
            "suggested_share": _r(kept.mean()) if len(kept) else 0.0,
            "accuracy_when_suggested": _r(correct[kept].mean()) if kept.any() else None,
            "routed_to_person": int((~kept).sum()),
        }
    return out
