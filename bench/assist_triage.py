"""Triage benchmark: throughput of the embedded triage (requests/s) and its quality on
held-out data. Part of the AI-assistance benchmark (``bench/assist.py`` adds retrieval).

Usage (from the repository root)::

    .venv/bin/python bench/assist_triage.py [--train 3000] [--requests 5000] [--repeat 5]
                                            [--json PATH|-]

What is measured, side by side in one run (the variants take turns run by run, medians):

* ``full, batch 1000``: :meth:`Triager.triage` as the inbox calls it — category with
  calibrated confidence, evidence terms with their positions, urgency, missing documents,
  language — over batches of 1,000 requests;
* ``full, one at a time``: the same, one request per call (what a naive API loop would do);
* ``model only, batch 1000``: just features + calibrated probabilities, no evidence/rules;
* ``sklearn pipeline, batch 1000``: scikit-learn's own ``predict_proba`` of the fitted
  pipeline, the reference for our portable model.

Data: the synthetic demo requests (:mod:`datenlabor.assist.demo_requests`), training and
held-out sets from different seeds. Quality figures (accuracy, macro-F1, ECE, share routed
to a person at the configured threshold) come from the held-out set. Goal: ≥ 1,000 triaged
requests/s on 2 cores. Besides wall-clock rates, requests per CPU-second of this process are
printed: on a shared machine they show what the code needs when other work takes the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import datenlabor
from datenlabor.assist import demo_requests, registry
from datenlabor.assist.triage import Triager
from datenlabor.assist.triage_eval import metrics
from datenlabor.assist.triage_model import TriageModel, fit

GOAL_PER_S = 1000.0


def _batches(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=int, default=3000, help="training requests")
    ap.add_argument("--requests", type=int, default=5000, help="requests triaged per run")
    ap.add_argument("--single", type=int, default=500, help="requests of the one-at-a-time run")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", default=None, help="write results as JSON (- = stdout)")
    args = ap.parse_args()

    train = demo_requests.generate(args.train, seed=1001)
    held = demo_requests.generate(max(args.requests, 1000), seed=2002)
    texts = [r["text"] for r in held][: args.requests]
    t0 = time.perf_counter()
    pipe = fit([r["text"] for r in train], [r["category"] for r in train])
    fit_s = time.perf_counter() - t0
    model = TriageModel.from_pipeline(pipe)

    with tempfile.TemporaryDirectory() as tmp:
        pool = datenlabor.open(Path(tmp) / "pool", user="bench")
        registry.register(pool, model, name="triage", dataset="bench", dataset_version=1,
                          params=dict(model.params), metrics={}, user="bench")  # fmt: skip
        triager = Triager.for_pool(pool)
        triager.triage(texts[:50])  # warm-up: language model, regexes

        def full_batch() -> int:
            for b in _batches(texts, 1000):
                triager.triage(b)
            return len(texts)

        def full_single() -> int:
            for t in texts[: args.single]:
                triager.triage([t])
            return min(args.single, len(texts))

        def model_only() -> int:
            for b in _batches(texts, 1000):
                model.predict(b)
            return len(texts)

        def sklearn_pipe() -> int:
            for b in _batches(texts, 1000):
                pipe.predict_proba(b)
            return len(texts)

        variants = {
            "full, batch 1000": full_batch,
            "full, one at a time": full_single,
            "model only, batch 1000": model_only,
            "sklearn pipeline, batch 1000": sklearn_pipe,
        }
        rates: dict[str, list[float]] = {k: [] for k in variants}
        cpu_rates: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(args.repeat):
            for name, fn in variants.items():
                start, cpu = time.perf_counter(), time.process_time()
                n = fn()
                rates[name].append(n / (time.perf_counter() - start))
                cpu_rates[name].append(n / max(time.process_time() - cpu, 1e-9))
        results = triager.triage(texts)
        pool.store.dispose()

    truth = [r["category"] for r in held][: len(texts)]
    pred = [max(r.candidates, key=lambda c: c["probability"])["label"] for r in results]
    conf = [r.confidence for r in results]
    quality = metrics(truth, pred, conf, groups={"language": [r["language"] for r in held][: len(texts)]},
                      threshold=triager.min_confidence)  # fmt: skip
    med = {k: statistics.median(v) for k, v in rates.items()}
    base = med["full, batch 1000"]
    print(f"# Triage benchmark — {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}")  # fmt: skip
    print(f"training: {args.train} requests, fit {fit_s:.1f} s; triaged per run: {len(texts)}; "
          f"repeats: {args.repeat}\n")  # fmt: skip
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average at the end: {load:.1f} (other work on the machine slows wall time)\n")
    print("| variant | requests/s (median) | min–max | per CPU-second (median) | vs full batch |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, value in med.items():
        lo, hi = min(rates[name]), max(rates[name])
        cpu_med = statistics.median(cpu_rates[name])
        print(
            f"| {name} | {value:,.0f} | {lo:,.0f}–{hi:,.0f} | {cpu_med:,.0f} | {value / base:.2f}× |"
        )
    print(f"\nheld-out quality (n={quality['n']}): accuracy {quality['accuracy']:.3f}, "
          f"macro-F1 {quality['macro_f1']:.3f}, ECE {quality['ece']:.3f}; at min confidence "
          f"{triager.min_confidence}: {quality['threshold']['suggested_share']:.1%} suggested, "
          f"accuracy {quality['threshold']['accuracy_when_suggested']:.3f} on those")  # fmt: skip
    best = max(v for k, v in med.items() if k.startswith("full"))
    ok = best >= GOAL_PER_S
    print(f"goal ≥ {GOAL_PER_S:,.0f} triaged requests/s on this machine: {'met' if ok else 'NOT met'}"
          f" (best full variant {best:,.0f}/s)")  # fmt: skip
    if args.json:
        payload: dict[str, Any] = {
            "rates": rates,
            "medians": med,
            "quality": quality,
            "fit_s": fit_s,
        }
        text = json.dumps(payload, indent=2)
        if args.json == "-":
            sys.stdout.write(text + "\n")
        else:
            Path(args.json).write_text(text, encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
