# SPDX-License-Identifier: EUPL-1.2
"""Disclosure control: time and information loss of each method, audited.

A case-count table region (AGS: Land > Regierungsbezirk > Kreis, the real 401 Kreise) x month
(year > quarter > month) x case type (a small code list) is generated with realistic skew:
Kreis sizes log-normal, case types from common to rare, so that many cells are small.

Sizes: small tables (fast vs optimal); the goal table (103,642 cells: the large table's
records per month over 17 months, the fewest months giving the 100,000 cells the goal names;
16 give 99,304); the large table (24 months, 138,882 cells). For each size the script runs
the fast method (and the optimal one where the table is small enough), audits every result
with the attacker's LP (true values and protection levels) and prints medians of
``--repeat`` runs, the information loss (suppressed cells, suppressed value) and the ratio
fast/optimal. It ends with a verdict per goal (fast < 10 s at 100,000 cells, loss within
1.15x of the optimum, audit clean).

Run from the repository root: ``.venv/bin/python bench/sdc.py`` (see bench/README.md).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from datenlabor.disclosure import Dim, Rules, protect
from datenlabor.disclosure.secondary_fast import cell_costs

ART = {"A1": "A", "A2": "A", "A3": "A", "B1": "B", "B2": "B", "C": None, "D": None}
ART_P = [0.35, 0.08, 0.02, 0.2, 0.05, 0.25, 0.05]
KEYS = Path(__file__).resolve().parents[1] / "src" / "datenlabor" / "data" / "ags_keys.csv"


def kreise() -> list[str]:
    with KEYS.open(encoding="utf-8") as f:
        return [r["key"] for r in csv.DictReader(f) if r["level"] == "kreis"]


def generate(records: int, *, n_kreise: int | None, months: int, seed: int) -> pa.Table:
    """One row per case: Kreis key, date, case type."""
    rng = np.random.default_rng(seed)
    ks = kreise()
    if n_kreise:
        ks = sorted(rng.choice(ks, n_kreise, replace=False).tolist())
    weight = rng.lognormal(0.0, 1.0, len(ks))
    region = rng.choice(np.array(ks), records, p=weight / weight.sum())
    month = rng.integers(0, months, records)
    firsts = np.array(
        [np.datetime64(f"{2023 + k // 12}-{k % 12 + 1:02d}-01") for k in range(months)]
    )
    day = firsts[month] + rng.integers(0, 28, records).astype("timedelta64[D]")
    art = rng.choice(np.array(list(ART)), records, p=ART_P)
    return pa.table({"region": region, "monat": day.astype("datetime64[D]"), "art": art})


def rules(method: str) -> Rules:
    return Rules(
        dims=[Dim("region", "ags"), Dim("monat", "time"), Dim("art", dict(ART))], method=method
    )


def run(table: pa.Table, method: str) -> dict[str, Any]:
    con = duckdb.connect()
    con.register("faelle", table)
    started, cpu = time.perf_counter(), time.process_time()
    prot = protect(con, "SELECT * FROM faelle", rules(method))
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu  # less noisy than wall time on a shared machine
    t0 = time.perf_counter()
    findings = prot.audit()
    audit_s = time.perf_counter() - t0
    sec = prot.status == "secondary"
    cost = cell_costs(prot.targets[0].values, "value")
    return {
        "method": method,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "cells": prot.report["cells"],
        "primary": prot.report["primary"],
        "secondary": int(sec.sum()),
        "secondary_value": float(prot.targets[0].values[sec].sum()),
        "loss": float(cost[sec].sum()),
        "audit_findings": len(findings),
        "audit_seconds": audit_s,
        "solver": prot.report.get("solver", {}),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--small", type=int, default=4, help="small tables (fast vs optimal)")
    ap.add_argument("--small-records", type=int, default=120)
    ap.add_argument("--small-kreise", type=int, default=3)
    ap.add_argument("--large-records", type=int, default=300_000)
    ap.add_argument("--large-months", type=int, default=24)
    ap.add_argument(
        "--goal-months",
        type=int,
        default=17,
        help="months of the goal table: 17 with the large table's records per month give "
        "103,642 cells, the smallest such table of at least 100,000 cells (0: skip it)",
    )
    ap.add_argument("--medium", action="store_true", help="also a 10k-cell table")
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    out: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "small": [],
        "medium": [],
        "goal": [],
        "large": [],
    }
    print(f"machine: {out['machine']}; load average at start: {load()}")
    print(
        f"\n## small tables: fast vs optimal ({args.small_records} records, "
        f"{args.small_kreise} Kreise x 2 months x case type)"
    )
    for seed in range(args.small):
        table = generate(args.small_records, n_kreise=args.small_kreise, months=2, seed=seed)
        fast = [run(table, "fast") for _ in range(args.repeat)]
        opt = run(table, "optimal")
        ratio = fast[0]["loss"] / opt["loss"] if opt["loss"] else 1.0
        row = {
            "seed": seed,
            "fast": fast[0],
            "optimal": opt,
            "ratio": ratio,
            "fast_median_s": statistics.median(r["seconds"] for r in fast),
        }
        out["small"].append(row)
        print(
            f"seed {seed}: {opt['cells']} cells, {opt['primary']} primary | fast "
            f"{row['fast_median_s']:.2f} s (cpu {fast[0]['cpu_seconds']:.2f} s), "
            f"{fast[0]['secondary']} secondary, loss "
            f"{fast[0]['loss']:.0f}, audit {fast[0]['audit_findings']} | optimal "
            f"{opt['seconds']:.1f} s (cpu {opt['cpu_seconds']:.1f} s), {opt['secondary']} secondary, loss {opt['loss']:.0f}, "
            f"audit {opt['audit_findings']}, proven {opt['solver'].get('optimal')} | "
            f"ratio {ratio:.3f}"
        )
    sizes = [("medium", 30_000, 30, 12)] if args.medium else []
    if not args.skip_large:
        if args.goal_months:
            per_month = args.large_records / args.large_months
            sizes.append(("goal", round(per_month * args.goal_months), 0, args.goal_months))
        sizes.append(("large", args.large_records, 0, args.large_months))
    for name, records, n_kreise, months in sizes:
        table = generate(records, n_kreise=n_kreise or None, months=months, seed=1)
        runs = [run(table, "fast") for _ in range(args.repeat)]
        med = statistics.median(r["seconds"] for r in runs)
        out[name] = runs
        r = runs[0]
        print(
            f"\n## {name}: {r['cells']:,} cells, {r['primary']:,} primary, {records:,} records\n"
            f"fast: median {med:.1f} s over {len(runs)} runs "
            f"({', '.join(format(x['seconds'], '.1f') for x in runs)}; cpu "
            f"{', '.join(format(x['cpu_seconds'], '.1f') for x in runs)}), {r['secondary']:,} secondary, "
            f"suppressed value {r['secondary_value']:,.0f}, audit findings "
            f"{r['audit_findings']} ({r['audit_seconds']:.1f} s), solver {r['solver']}"
        )
    print("\n## goals")
    for line in verdicts(out):
        print(line)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))
    bad = [r for s in out["small"] for r in (s["fast"], s["optimal"]) if r["audit_findings"]]
    bad += [r for key in ("medium", "goal", "large") for r in out[key] if r["audit_findings"]]
    return 1 if bad else 0


def verdicts(out: dict[str, Any]) -> list[str]:
    """The issue's goals, each with the figures it was judged on."""
    lines = []
    runs = out["goal"]
    if runs:
        med = statistics.median(r["seconds"] for r in runs)
        verdict = "met" if med < 10.0 and runs[0]["cells"] >= 100_000 else "MISSED"
        lines.append(f"fast < 10 s at {runs[0]['cells']:,} cells: {verdict} (median {med:.1f} s)")
    if out["small"]:
        worst = max(s["ratio"] for s in out["small"])
        verdict = "met" if worst <= 1.15 else "MISSED"
        lines.append(f"loss <= 1.15x optimal: {verdict} (worst ratio {worst:.3f})")
    audited = [r for s in out["small"] for r in (s["fast"], s["optimal"])]
    audited += [r for key in ("medium", "goal", "large") for r in out[key]]
    findings = sum(r["audit_findings"] for r in audited)
    lines.append(
        f"audit clean: {'met' if not findings else 'MISSED'} ({findings} findings in "
        f"{len(audited)} results)"
    )
    return lines


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def machine() -> str:
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.split("\n")
            if line.startswith("Model name")
        )
    except (OSError, StopIteration):
        model = platform.processor()
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return (
        f"{nproc} cores, {model}, Python {platform.python_version()}, duckdb {duckdb.__version__}"
    )


if __name__ == "__main__":
    sys.exit(main())
