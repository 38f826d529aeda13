"""Procedure analytics: Datenlabor against pm4py on simulated logs up to 10 million events.

Both compute the same three results from the same log: every case's duration (first to last
event), the performance directly-follows graph (count, median and mean seconds per edge) and
the variants with their case counts. Each contender runs in its own fresh subprocess; the
time is measured inside it from reading the stored log to having all three results (module
imports excluded, they are the same every time), the peak RSS of the whole process comes
from ``os.wait4``. The parent checks that both produced identical results.

- Datenlabor reads the log's pool version (Delta/Parquet) through ``open_log``.
- pm4py reads the same events from the simulator's Parquet file into pandas
  (``pd.read_parquet``) and runs ``get_all_case_durations``, ``discover_performance_dfg``
  and ``get_variants`` (pm4py is AGPL: used here as a reference, never imported by src/).

Usage::

    .venv/bin/python bench/procedures.py --events 100000,1000000,10000000 --repeat 3

The dashboard-render part of the issue's benchmark (12 tiles, cold/warm) comes with the
dashboards; it is not measured here yet.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
EVENTS_PER_CASE = 6.9  # what the default simulation produces on average


# -- children ---------------------------------------------------------------------------------
def child_datenlabor(args: argparse.Namespace) -> dict[str, Any]:
    # Module imports happen before the clock starts, in both children. DuckDB's Python
    # client loads pandas the first time it scans an Arrow table, so it is imported here,
    # as the pm4py child imports it too.
    import pandas  # noqa: F401

    import datenlabor
    import datenlabor.procedures.dfg
    import datenlabor.procedures.kpis
    import datenlabor.procedures.variants
    from datenlabor.procedures import open_log

    pool = datenlabor.open(args.pool)
    t0, c0, s0 = time.perf_counter(), time.process_time(), os.times().system
    with open_log(pool, args.dataset) as log:
        log.traces()
        t_load = time.perf_counter()
        durations = log.arrow(f"SELECT duration_s FROM {log.ensure_cases()}").column(0)
        graph = log.dfg()
        variants = log.variants()
        t_end = time.perf_counter()
        return {
            "load_s": t_load - t0,
            "compute_s": t_end - t_load,
            "total_s": t_end - t0,
            "cpu_s": time.process_time() - c0,
            "sys_s": os.times().system - s0,
            "durations": sorted(durations.to_pylist()),
            "dfg": [
                [r["from"], r["to"], r["count"], r["median_s"], r["mean_s"]] for r in graph.rows()
            ],
            "variants": {" > ".join(r["activities"]): r["cases"] for r in variants.rows()},
        }


def child_pm4py(args: argparse.Namespace) -> dict[str, Any]:
    import warnings

    warnings.filterwarnings("ignore")
    import pandas as pd
    import pm4py

    t0, c0, s0 = time.perf_counter(), time.process_time(), os.times().system
    df = pd.read_parquet(args.parquet, columns=["case_id", "activity", "timestamp"])
    df = df.rename(
        columns={
            "case_id": "case:concept:name",
            "activity": "concept:name",
            "timestamp": "time:timestamp",
        }
    )
    df["concept:name"] = df["concept:name"].astype(str)
    t_load = time.perf_counter()
    durations = pm4py.get_all_case_durations(df)
    perf = pm4py.discover_performance_dfg(df)[0]
    freq = pm4py.discover_dfg(df)[0]
    variants = pm4py.get_variants(df)
    t_end = time.perf_counter()
    return {
        "load_s": t_load - t0,
        "compute_s": t_end - t_load,
        "total_s": t_end - t0,
        "cpu_s": time.process_time() - c0,
        "sys_s": os.times().system - s0,
        "durations": sorted(float(d) for d in durations),
        "dfg": [
            [a, b, int(freq[(a, b)]), float(v["median"]), float(v["mean"])]
            for (a, b), v in perf.items()
        ],
        "variants": {" > ".join(k): int(v) for k, v in variants.items()},
    }


# -- parent -----------------------------------------------------------------------------------
def run_child(
    kind: str, extra: list[str], work: Path, env: dict[str, str] | None = None
) -> dict[str, Any]:
    result = work / f"{kind}-{time.monotonic_ns()}.json"
    cmd = [sys.executable, __file__, "--child", kind, "--result", str(result), *extra]
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, check=False, env=env)
    if proc.returncode != 0 or not result.is_file():
        raise SystemExit(f"{kind} child failed (exit {proc.returncode})")
    out = json.loads(result.read_text())
    result.unlink()
    return out


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def agree(a: dict[str, Any], b: dict[str, Any]) -> dict[str, bool]:
    """Do two contenders' results match (durations, DFG counts/medians/means, variants)?"""

    def close(x: float, y: float) -> bool:
        return abs(x - y) <= 1e-6 * max(1.0, abs(x), abs(y))

    da, db = a["durations"], b["durations"]
    ea = {(r[0], r[1]): r[2:] for r in a["dfg"]}
    eb = {(r[0], r[1]): r[2:] for r in b["dfg"]}
    return {
        "durations": len(da) == len(db) and all(close(x, y) for x, y in zip(da, db, strict=True)),
        "dfg_counts": {k: v[0] for k, v in ea.items()} == {k: v[0] for k, v in eb.items()},
        "dfg_performance": ea.keys() == eb.keys()
        and all(close(ea[k][1], eb[k][1]) and close(ea[k][2], eb[k][2]) for k in ea),
        "variants": a["variants"] == b["variants"],
    }


def machine() -> str:
    import duckdb
    import pyarrow

    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    try:
        import pm4py

        pm = pm4py.__version__
    except Exception:  # pm4py missing: only Datenlabor runs
        pm = "not installed"
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.1f} GiB, Python {sys.version.split()[0]}, "
        f"duckdb {duckdb.__version__}, pyarrow {pyarrow.__version__}, pm4py {pm}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", default="100000,1000000,10000000", help="log sizes (events)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pm4py-max-events", type=int, default=20_000_000)
    ap.add_argument("--pm4py-repeat", type=int, default=None, help="default: --repeat")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: temporary)")
    ap.add_argument("--json", type=Path, default=None, help="write all figures here")
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="with --work: use the log of an earlier run of the same size if it is there",
    )
    ap.add_argument(
        "--no-numpy-hugepages",
        action="store_true",
        help="run both contenders with NUMPY_MADVISE_HUGEPAGE=0 (numpy then does not ask the "
        "kernel for transparent huge pages; where the kernel compacts memory for them on "
        "demand, that saves kernel time in both)",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--pool", help=argparse.SUPPRESS)
    ap.add_argument("--dataset", help=argparse.SUPPRESS)
    ap.add_argument("--parquet", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        fn = {"datenlabor": child_datenlabor, "pm4py": child_pm4py}[args.child]
        out = fn(args)
        out["peak_rss_mib"] = peak_rss_mib()
        args.result.write_text(json.dumps(out))
        return 0

    import datenlabor
    from datenlabor.procedures.simulate import Simulation, simulate, write_log

    env = {**os.environ, "NUMPY_MADVISE_HUGEPAGE": "0"} if args.no_numpy_hugepages else None
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-procedures-"))
    work.mkdir(parents=True, exist_ok=True)
    pool_dir = work / "pool"
    pool = datenlabor.open(pool_dir)
    rows: list[dict[str, Any]] = []
    print(f"# machine: {machine()}", flush=True)
    thp = Path("/sys/kernel/mm/transparent_hugepage")
    if thp.is_dir():  # kernel time in both contenders depends on it (see --no-numpy-hugepages)
        settings = {f: (thp / f).read_text().strip() for f in ("enabled", "defrag")}
        print(f"# transparent huge pages: {settings}; numpy hugepages "
              f"{'off' if args.no_numpy_hugepages else 'default'}", flush=True)  # fmt: skip
    try:
        for events in (int(e) for e in args.events.split(",")):
            cases = max(1, round(events / EVENTS_PER_CASE))
            parquet = work / f"log-{events}.parquet"
            slug = f"log-{events}"
            if args.reuse and parquet.is_file() and slug in {d.slug for d in pool.datasets()}:
                n_events = pool.dataset(slug).version().rows
                print(f"## {n_events:,} events, {cases:,} cases: reused from {work}", flush=True)
            else:
                t = time.perf_counter()
                table = simulate(Simulation(cases=cases, seed=args.seed))
                sim_s = time.perf_counter() - t
                write_log(table, parquet)
                t = time.perf_counter()
                pool.ingest(parquet, dataset=slug, format="parquet")
                ingest_s = time.perf_counter() - t
                n_events = table.num_rows
                del table
                print(
                    f"## {n_events:,} events, {cases:,} cases: simulated in {sim_s:.1f} s, "
                    f"stored as a pool version in {ingest_s:.1f} s",
                    flush=True,
                )
            load_before = os.getloadavg()[0]
            runs: dict[str, list[dict[str, Any]]] = {"datenlabor": [], "pm4py": []}
            pm_repeat = args.pm4py_repeat if args.pm4py_repeat is not None else args.repeat
            for i in range(max(args.repeat, pm_repeat)):
                if i < args.repeat:
                    extra = ["--pool", str(pool_dir), "--dataset", slug]
                    runs["datenlabor"].append(run_child("datenlabor", extra, work, env))
                if i < pm_repeat and n_events <= args.pm4py_max_events:
                    extra = ["--parquet", str(parquet)]
                    runs["pm4py"].append(run_child("pm4py", extra, work, env))
                for k, v in runs.items():
                    if v and len(v) == i + 1:
                        r = v[-1]
                        print(
                            f"  {k:10s} run {i + 1}: {r['total_s']:7.2f} s "
                            f"(load {r['load_s']:.2f}), CPU {r['cpu_s']:.2f} s "
                            f"(kernel {r['sys_s']:.2f}), "
                            f"peak RSS {r['peak_rss_mib']:,.0f} MiB",
                            flush=True,
                        )
            row: dict[str, Any] = {
                "events": n_events,
                "cases": cases,
                "loadavg": [load_before, os.getloadavg()[0]],
            }
            for k, v in runs.items():
                if v:
                    row[k] = {
                        "runs": len(v),
                        "median_total_s": statistics.median(r["total_s"] for r in v),
                        "median_load_s": statistics.median(r["load_s"] for r in v),
                        "median_peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in v),
                        "median_cpu_s": statistics.median(r["cpu_s"] for r in v),
                        "median_sys_s": statistics.median(r["sys_s"] for r in v),
                        "cpu_s": [r["cpu_s"] for r in v],
                        "total_s": [r["total_s"] for r in v],
                    }
            if runs["pm4py"]:
                row["agreement"] = agree(runs["datenlabor"][0], runs["pm4py"][0])
                d, p = row["datenlabor"], row["pm4py"]
                row["speedup"] = p["median_total_s"] / d["median_total_s"]
                row["cpu_ratio"] = p["median_cpu_s"] / d["median_cpu_s"]
                row["memory_ratio"] = d["median_peak_rss_mib"] / p["median_peak_rss_mib"]
            rows.append(row)
            pool.dataset(slug)  # still there: the next size gets its own dataset
    finally:
        pool.store.dispose()
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(
        "\n| events | cases | load avg | Datenlabor s (load) | MiB | pm4py s (load) | MiB "
        "| speed-up | CPU-s D / P = ratio | memory | same results |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        d, p = r.get("datenlabor"), r.get("pm4py")
        if d is None:
            continue
        pm = (
            f"{p['median_total_s']:.2f} ({p['median_load_s']:.2f}) | {p['median_peak_rss_mib']:,.0f}"
            if p
            else "– | –"
        )
        ratio = (
            f"**{r['speedup']:.1f}×** | {d['median_cpu_s']:.2f} / {p['median_cpu_s']:.2f} = "
            f"{r['cpu_ratio']:.1f}× | {r['memory_ratio']:.2f}× | "
            + ", ".join(k for k, ok in r["agreement"].items() if ok)
            + ("" if all(r["agreement"].values()) else " (DIFFERENT: see JSON)")
            if p
            else "– | – | – | –"
        )
        load = "–".join(f"{x:.1f}" for x in r["loadavg"])
        print(
            f"| {r['events']:,} | {r['cases']:,} | {load} | {d['median_total_s']:.2f} "
            f"({d['median_load_s']:.2f}) | {d['median_peak_rss_mib']:,.0f} | {pm} | {ratio} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
