"""Scale: the same queries and procedure KPIs on DuckDB and on Spark (local mode), 1M-100M rows.

One generated event log per size (cases of ~6 events; 27 activities, 400 districts, a
decimal amount, UTC timestamps over two years) is loaded once into a pool under
``bench/_data/scale-pool`` (git-ignored). Each (engine, size) runs in a fresh subprocess,
through Datenlabor's own routes: pool SQL via :func:`datenlabor.engines.shared.query` and
KPIs via ``open_log(..., engine=...)``. Timed inside the child: every query from its
statement to the Arrow result on the driver; Spark's session start is reported apart (it
is paid once per process). Peak memory: the parent samples the RSS of the child *and its
descendants* (Spark's JVM) every 50 ms with psutil. The parent checks that both engines
return the same results (floats to 1e-9 relative).

Usage::

    .venv/bin/python bench/scale.py --sizes 1000000,10000000 --repeat 3
    .venv/bin/python bench/scale.py --sizes 100000000 --repeat 1 --engines duckdb,spark

Results go to ``bench/RESULTS.md`` (by hand, with the machine's load).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "_data"
POOL = DATA / "scale-pool"
MiB = 1024 * 1024

# The pool SQL of the benchmark, in Datenlabor's (DuckDB) dialect; {t} is the dataset.
QUERIES = {
    "group_sum": (
        'SELECT kreis, count(*) AS n, sum(betrag) AS summe, avg(betrag) AS mittel FROM "{t}" '
        "GROUP BY kreis ORDER BY kreis"
    ),
    "distinct_cases": 'SELECT count(DISTINCT case_no) AS faelle FROM "{t}"',
    "quantiles": (
        'SELECT activity, median(betrag) AS med, quantile_cont(betrag, 0.9) AS p90 FROM "{t}" '
        "GROUP BY activity ORDER BY activity"
    ),
    "window_top": (
        "SELECT kreis, activity, n FROM (SELECT kreis, activity, count(*) AS n, "
        "row_number() OVER (PARTITION BY kreis ORDER BY count(*) DESC, activity) AS r "
        'FROM "{t}" GROUP BY kreis, activity) WHERE r = 1 ORDER BY kreis'
    ),
}
KPIS = ("throughput", "cases_over_time", "rework")


# -- data ---------------------------------------------------------------------------------------
def ensure_dataset(rows: int) -> str:
    """The pool dataset with ``rows`` generated events (made once)."""
    import duckdb

    import datenlabor

    slug = f"ev{rows}"
    pool = datenlabor.open(POOL)
    try:
        if any(d.slug == slug for d in pool.datasets()):
            return slug
        DATA.mkdir(parents=True, exist_ok=True)
        path = DATA / f"scale-{rows}.parquet"
        if not path.is_file():
            con = duckdb.connect()
            con.execute("SET threads = 2")
            con.execute(
                f"""COPY (
                  SELECT i AS seq, i // 6 AS case_no, 'A-' || (i // 6) AS case_id,
                         'Tätigkeit ' || lpad(CAST(hash(i // 6, i % 6) % 27 AS VARCHAR), 2, '0')
                           AS activity,
                         TIMESTAMPTZ '2023-01-01 00:00:00+00'
                           + to_seconds(CAST((i // 6) * 37 + (i % 6) * (hash(i) % 86400) AS BIGINT))
                           AS timestamp,
                         lpad(CAST(hash(i // 6) % 400 AS VARCHAR), 5, '0') AS kreis,
                         CAST((hash(i) % 1000000) / 100 AS DECIMAL(12, 2)) AS betrag
                  FROM range({rows}) t(i)) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 122880)"""
            )
            con.close()
        pool.ingest(path, dataset=slug, format="parquet")
        return slug
    finally:
        pool.store.dispose()


# -- child ------------------------------------------------------------------------------------
def child(args: argparse.Namespace) -> dict[str, Any]:
    import datenlabor
    from datenlabor.engines.shared import query
    from datenlabor.procedures import open_log

    pool = datenlabor.open(POOL, engine=args.engine)
    out: dict[str, Any] = {"engine": args.engine, "rows": args.rows, "times": {}, "results": {}}
    if args.engine == "spark":
        from datenlabor.engines.spark import session

        t0 = time.perf_counter()
        session(pool.settings).sql("SELECT 1").collect()
        out["session_start_s"] = time.perf_counter() - t0
    for name, sql in QUERIES.items():
        times, table = [], None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            table = query(pool, sql.format(t=args.slug), args.engine)
            times.append(time.perf_counter() - t0)
            _progress(args, name, times[-1])
        out["times"][name] = times
        out["results"][name] = table.to_pylist() if table is not None else None
    for name in KPIS:
        times, rows = [], None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            with open_log(pool, args.slug, engine=args.engine, timezone="UTC") as log:
                result = getattr(log, name)()
            times.append(time.perf_counter() - t0)
            _progress(args, f"kpi_{name}", times[-1])
            rows = result.rows()
        out["times"][f"kpi_{name}"] = times
        out["results"][f"kpi_{name}"] = rows
    pool.store.dispose()
    return out


def _progress(args: argparse.Namespace, name: str, seconds: float) -> None:
    """Each timing as it is taken (stderr), so that a long run that is stopped keeps its figures."""
    print(
        f"  {args.engine} {args.rows:,} rows: {name} {seconds:.2f} s", file=sys.stderr, flush=True
    )


# -- parent -----------------------------------------------------------------------------------
def run_child(engine: str, rows: int, slug: str, repeat: int) -> dict[str, Any]:
    import psutil

    cmd = [sys.executable, __file__, "--child", engine, "--rows", str(rows), "--slug", slug,
           "--repeat", str(repeat)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ})
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        try:
            p = psutil.Process(proc.pid)
            while not done.is_set():
                total = 0
                for q in [p, *p.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        total += q.memory_info().rss
                peak = max(peak, total)
                time.sleep(0.05)
        except psutil.Error:
            return

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    stdout, _ = proc.communicate()
    wall = time.perf_counter() - t0
    done.set()
    thread.join()
    if proc.returncode != 0:
        raise SystemExit(f"{engine} at {rows:,} rows failed (exit {proc.returncode})")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_rss_mib"] = peak / MiB
    result["wall_s"] = wall
    return result


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def report(results: list[dict[str, Any]]) -> str:
    lines = [
        f"machine: {os.cpu_count()} cores; load before: {os.getloadavg()}",
        "",
        "| rows | engine | " + " | ".join(results[0]["times"]) + " | peak RSS MiB | start s |",
        "| --- | --- | " + " | ".join("---" for _ in results[0]["times"]) + " | --- | --- |",
    ]
    for r in results:
        cells = [f"{statistics.median(t):.2f}" for t in r["times"].values()]
        start = f"{r['session_start_s']:.1f}" if "session_start_s" in r else "–"
        lines.append(
            f"| {r['rows']:,} | {r['engine']} | "
            + " | ".join(cells)
            + f" | {r['peak_rss_mib']:.0f} | {start} |"
        )
    lines.append("")
    by = {(r["engine"], r["rows"]): r for r in results}
    sizes = sorted({r["rows"] for r in results})
    for rows in sizes:
        if ("duckdb", rows) in by and ("spark", rows) in by:
            d, s = by[("duckdb", rows)], by[("spark", rows)]
            ratios = [
                f"{name} {statistics.median(s['times'][name]) / statistics.median(t):.1f}x"
                for name, t in d["times"].items()
            ]
            lines.append(f"Spark/DuckDB at {rows:,} rows: " + ", ".join(ratios))
    for engine in ("duckdb", "spark"):
        mine = [by[(engine, n)] for n in sizes if (engine, n) in by]
        for small, large in itertools.pairwise(mine):
            factor = large["rows"] / small["rows"]
            growth = [
                f"{name} {statistics.median(large['times'][name]) / statistics.median(t):.1f}x"
                for name, t in small["times"].items()
            ]
            lines.append(
                f"{engine} {small['rows']:,} -> {large['rows']:,} rows ({factor:.0f}x): "
                + ", ".join(growth)
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--engines", default="duckdb,spark")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--slug", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.engine = args.child
        print(json.dumps(child(args), default=str))
        return
    results = []
    for rows in (int(s) for s in args.sizes.split(",")):
        slug = ensure_dataset(rows)
        per_engine = {}
        for engine in args.engines.split(","):
            print(f"{engine} {rows:,} rows …", file=sys.stderr, flush=True)
            per_engine[engine] = run_child(engine, rows, slug, args.repeat)
            results.append(per_engine[engine])
        if len(per_engine) == 2:
            d, s = per_engine["duckdb"]["results"], per_engine["spark"]["results"]
            for name in d:
                if not same(d[name], s[name]):
                    print(f"MISMATCH {name} at {rows:,} rows", file=sys.stderr)
        if args.json:
            args.json.write_text(json.dumps(results, default=str, indent=1))
    print(report(results))


if __name__ == "__main__":
    main()
