"""Triage benchmark: throughput and latency of the embedded triage, and its held-out quality.

Part of the AI-assistance benchmark ``bench/assist.py`` (which runs this and the retrieval
part in one go); alone::

    .venv/bin/python bench/assist_triage.py [--train 3000] [--requests 5000] [--repeat 5]
                                            [--json PATH|-]

A *triaged request* is what :meth:`Triager.triage` returns for it, as the inbox and the API
call it: the service category with calibrated confidence and the best three candidates
(or no category below the minimum confidence: routed to a person), the evidence terms
with their positions in the text, the responsible unit, urgency with its cues, required
documents mentioned and missing, and the language with its probability. (Redaction and
the prompt-injection check belong to the LLM and answer paths, not to embedded triage.)

Variants, taking turns run by run (medians):

* ``full, batch 1000``: ``Triager.triage`` over batches of 1,000 requests;
* ``full, one at a time``: the same, one request per call (the API/CLI path), with the
  p50/p95 latency of a call;
* ``model only, batch 1000``: features + calibrated probabilities;
* ``sklearn pipeline, batch 1000``: scikit-learn's own ``predict_proba`` of the fitted
  pipeline, the reference for the portable model.

Besides wall-clock rates, requests per CPU-second of this process are printed: on a
shared machine they say what the code needs when other work takes the cores. A stage
profile (one batch run, CPU time per stage) shows where the time goes. Data: the synthetic
demo requests (:mod:`datenlabor.assist.demo_requests`), training and held-out sets from
different seeds; quality figures (accuracy, macro-F1, ECE, share routed to a person) come
from the held-out set. Goal (issue 7): ≥ 1,000 triaged requests/s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import datenlabor  # noqa: E402
from datenlabor.assist import demo_requests, registry, triage_language, triage_rules  # noqa: E402
from datenlabor.assist.triage import Triager  # noqa: E402
from datenlabor.assist.triage_eval import metrics  # noqa: E402
from datenlabor.assist.triage_model import TriageModel, fit  # noqa: E402

GOAL_PER_S = 1000.0


def _batches(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _cpu_stages(triager: Triager, texts: list[str]) -> dict[str, float]:
    """CPU µs per request of each stage of ``Triager.triage`` (batches of 1,000)."""
    model, tax = triager.explainer, triager.taxonomy
    batches = _batches(texts, 1000)

    def cpu(fn: Callable[[list[str]], Any]) -> float:
        start = time.process_time()
        for b in batches:
            fn(b)
        return (time.process_time() - start) * 1e6 / len(texts)

    def with_evidence(b: list[str]) -> None:
        x, proba = model.predict(b)
        model.evidence_batch(x, proba.argmax(axis=1).tolist(), b)

    def rules(b: list[str]) -> None:
        for t in b:
            triage_rules.urgency(t, tax)
            triage_rules.documents(t, tax.categories[0])

    predict = cpu(model.predict)
    evidence = cpu(with_evidence)
    return {
        "features + classifier + calibration": predict,
        "evidence terms + spans (difference of two runs)": max(evidence - predict, 0.0),
        "language": cpu(lambda b: triage_language.identify(b, tax.languages)),
        "urgency + documents": cpu(rules),
        "whole triage (incl. result objects)": cpu(triager.triage),
    }


def measure(
    train_n: int = 3000, requests: int = 5000, single: int = 500, repeat: int = 5
) -> dict[str, Any]:
    """Run the triage part; a dict for :func:`report` and the JSON output."""
    train = demo_requests.generate(train_n, seed=1001)
    held = demo_requests.generate(max(requests, 1000), seed=2002)
    texts = [r["text"] for r in held][:requests]
    t0 = time.perf_counter()
    pipe = fit([r["text"] for r in train], [r["category"] for r in train])
    fit_s = time.perf_counter() - t0
    model = TriageModel.from_pipeline(pipe)
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory() as tmp:
        pool = datenlabor.open(Path(tmp) / "pool", user="bench")
        registry.register(pool, model, name="triage", dataset="bench", dataset_version=1,
                          params=dict(model.params), metrics={}, user="bench")  # fmt: skip
        triager = Triager.for_pool(pool)
        triager.triage(texts[:50])  # warm-up: language model, regexes
        latencies: list[float] = []

        def full_batch() -> int:
            for b in _batches(texts, 1000):
                triager.triage(b)
            return len(texts)

        def full_single() -> int:
            for t in texts[:single]:
                start = time.perf_counter()
                triager.triage([t])
                latencies.append(time.perf_counter() - start)
            return min(single, len(texts))

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
        for _ in range(repeat):
            for name, fn in variants.items():
                start, cpu = time.perf_counter(), time.process_time()
                n = fn()
                rates[name].append(n / (time.perf_counter() - start))
                cpu_rates[name].append(n / max(time.process_time() - cpu, 1e-9))
        stages = _cpu_stages(triager, texts)
        results = triager.triage(texts)
        pool.store.dispose()

    truth = [r["category"] for r in held][: len(texts)]
    pred = [max(r.candidates, key=lambda c: c["probability"])["label"] for r in results]
    conf = [r.confidence for r in results]
    quality = metrics(truth, pred, conf, groups={"language": [r["language"] for r in held][: len(texts)]},
                      threshold=triager.min_confidence)  # fmt: skip
    lat = np.asarray(latencies) * 1000
    single_ms = {"p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95))}
    return {
        "train": train_n,
        "requests": len(texts),
        "repeat": repeat,
        "fit_s": fit_s,
        "rates": rates,
        "cpu_rates": cpu_rates,
        "medians": {k: statistics.median(v) for k, v in rates.items()},
        "cpu_medians": {k: statistics.median(v) for k, v in cpu_rates.items()},
        "single_ms": {**single_ms, "n": len(lat)},
        "stages_cpu_us": stages,
        "quality": quality,
        "min_confidence": triager.min_confidence,
        "loadavg": {"before": load_before, "after": os.getloadavg()},
    }


def report(res: dict[str, Any]) -> tuple[list[str], bool]:
    """Markdown lines and whether the goal is met."""
    med, base = res["medians"], res["medians"]["full, batch 1000"]
    lines = [
        f"training: {res['train']} requests, fit {res['fit_s']:.1f} s; triaged per run: "
        f"{res['requests']}; repeats: {res['repeat']}; load average (1 min) "
        f"{res['loadavg']['before'][0]:.1f} before, {res['loadavg']['after'][0]:.1f} after",
        "",
        "| variant | requests/s (median) | min–max | per CPU-second (median) | vs full batch |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, value in med.items():
        lo, hi = min(res["rates"][name]), max(res["rates"][name])
        lines.append(f"| {name} | {value:,.0f} | {lo:,.0f}–{hi:,.0f} | "
                     f"{res['cpu_medians'][name]:,.0f} | {value / base:.2f}× |")  # fmt: skip
    s = res["single_ms"]
    lines += [
        "",
        f"one request per call: p50 {s['p50']:.2f} ms, p95 {s['p95']:.2f} ms (n={s['n']})",
        "",
        "| stage (batch 1000) | CPU µs per request |",
        "| --- | ---: |",
    ]
    lines += [f"| {k} | {v:,.0f} |" for k, v in res["stages_cpu_us"].items()]
    q = res["quality"]
    lines += [
        "",
        f"held-out quality (n={q['n']}): accuracy {q['accuracy']:.3f}, macro-F1 "
        f"{q['macro_f1']:.3f}, ECE {q['ece']:.3f}; at min confidence {res['min_confidence']}: "
        f"{q['threshold']['suggested_share']:.1%} suggested, accuracy "
        f"{q['threshold']['accuracy_when_suggested']:.3f} on those",
    ]
    best = max(v for k, v in med.items() if k.startswith("full"))
    ok = best >= GOAL_PER_S
    lines.append(f"goal ≥ {GOAL_PER_S:,.0f} triaged requests/s: {'met' if ok else 'NOT met'} "
                 f"(best full variant {best:,.0f}/s)")  # fmt: skip
    return lines, ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=int, default=3000, help="training requests")
    ap.add_argument("--requests", type=int, default=5000, help="requests triaged per run")
    ap.add_argument("--single", type=int, default=500, help="requests of the one-at-a-time run")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", default=None, help="write results as JSON (- = stdout)")
    args = ap.parse_args()
    res = measure(args.train, args.requests, args.single, args.repeat)
    lines, ok = report(res)
    print("\n".join(lines))
    if args.json:
        text = json.dumps(res, indent=2)
        if args.json == "-":
            sys.stdout.write(text + "\n")
        else:
            Path(args.json).write_text(text, encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
