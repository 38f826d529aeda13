"""Fairness audit bootstrap: fairlearn's ``MetricFrame(n_boot=…)`` against the vectorised
bootstrap of ``datenlabor.governance.fairness``, side by side in one run.

Both compute 95 % percentile intervals of the per-group selection rate, FPR and FNR from the
same rows (3 groups, binary prediction and label) with the same number of replicates;
fairlearn gets the same metric functions the audit uses (its sklearn-based ones are slower
still) on the raw rows. Datenlabor's time is its whole audit (point estimates through
MetricFrame on rows compressed to weighted cells, plus the multinomial bootstrap). Prints the
median seconds of ``--repeat`` runs and the ratio, and checks that the intervals agree to
within 0.02 (different random draws, same distribution).

Usage::

    .venv/bin/python bench/governance_fairness.py --rows 2000,20000 --boot 200 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame

from datenlabor.governance import fairness
from datenlabor.governance.fairness import Thresholds


def data(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    groups = rng.choice(["a", "b", "c"], n)
    label = rng.random(n) < 0.5
    pred = rng.random(n) < np.where(groups == "a", 0.5, 0.3)
    return groups.astype(object), pred, label


def with_fairlearn(groups: np.ndarray, pred: np.ndarray, label: np.ndarray, boot: int) -> pd.DataFrame:
    mf = MetricFrame(
        metrics={"selection_rate": fairness.selection_rate, "fpr": fairness.false_positive_rate,
                 "fnr": fairness.false_negative_rate},
        y_true=label, y_pred=pred, sensitive_features=pd.Series(groups, name="g"),
        n_boot=boot, ci_quantiles=[0.025, 0.975], random_state=1,
    )  # fmt: skip
    return mf.by_group_ci[0]


def with_datenlabor(groups: np.ndarray, pred: np.ndarray, label: np.ndarray, boot: int) -> dict:
    r = fairness.audit(pred, {"g": groups}, label, Thresholds(n_boot=boot, seed=1))
    return {g["group"]: g for g in r["attributes"]["g"]["groups"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="2000,20000")
    ap.add_argument("--boot", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"{'rows':>8} {'fairlearn s':>12} {'datenlabor s':>13} {'ratio':>7}")
    for n in (int(x) for x in args.rows.split(",")):
        g, p, y = data(n)
        times: dict[str, list[float]] = {"fl": [], "dl": []}
        for _ in range(args.repeat):
            t = time.perf_counter()
            lo_fl = with_fairlearn(g, p, y, args.boot)
            times["fl"].append(time.perf_counter() - t)
            t = time.perf_counter()
            ours = with_datenlabor(g, p, y, args.boot)
            times["dl"].append(time.perf_counter() - t)
        for group, row in ours.items():
            gap = abs(row["selection_rate_ci"][0] - float(lo_fl.loc[group, "selection_rate"]))
            assert gap < 0.02, f"intervals disagree for {group}: {gap:.3f}"
        fl, dl = statistics.median(times["fl"]), statistics.median(times["dl"])
        print(f"{n:>8} {fl:>12.2f} {dl:>13.2f} {fl / dl:>6.1f}x")


if __name__ == "__main__":
    main()
