"""Server time to render a 12-tile procedure dashboard over a large simulated log.

Simulates a log (``--cases``; about 6.9 events per case), imports it into a fresh pool,
saves the shipped demo dashboard ``leistungsantraege`` (12 tiles: 4 KPIs with trend, two
maps, line, two bar charts, histogram, process map, table) and measures:

* **cold**: every tile computed (tile cache emptied, a new gate: the log is opened, filtered
  and analysed) — ``--repeat`` runs;
* **warm**: the same request again (tiles from the cache, permissions and dataset versions
  still checked, audit entry written) — ``--warm`` runs;
* **warm page**: the whole HTML page over HTTP (FastAPI TestClient, anonymous caller),
  which adds the filter choices, formatting and templates.

Cold renders are measured for two viewers: an admin (microdata access: the figures as the
owners see them) and an anonymous reader of the public dashboard, for whom every tile goes
through disclosure control (primary and secondary suppression, see docs/dashboards.md).
The load average is printed at the start and the end (the machine may be shared).

Each for the default filters (a half-year period) and for a filtered view (one Land and one
channel), so a cold run with new filters is measured too. Prints medians, p95 and the goal
(warm p95 < 1 s)::

    .venv/bin/python bench/dashboards.py --cases 1450000 --repeat 5 --warm 50
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import datenlabor
from datenlabor.access.principal import ANONYMOUS, local_admin
from datenlabor.dashboards import versions
from datenlabor.dashboards.demo import SPECS
from datenlabor.dashboards.filters import parse_filters
from datenlabor.dashboards.render import CACHE, render
from datenlabor.pool.catalog import DatasetMeta
from datenlabor.procedures import import_log
from datenlabor.procedures.simulate import Simulation, simulate, write_log
from datenlabor.service.gate import Gate


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def stats(name: str, values: list[float]) -> dict[str, float | str | int]:
    return {
        "what": name,
        "runs": len(values),
        "p50_s": statistics.median(values),
        "p95_s": pct(values, 0.95),
        "max_s": max(values),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--cases", type=int, default=1_450_000, help="simulated cases (~6.9 events each)"
    )
    ap.add_argument("--repeat", type=int, default=5, help="cold runs per filter set")
    ap.add_argument("--warm", type=int, default=50, help="warm runs per filter set")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args()

    print(f"load average at start: {os.getloadavg()}, {os.cpu_count()} CPUs", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench-dash-") as tmp:
        pool = datenlabor.open(Path(tmp) / "pool", user="bench")
        t = time.perf_counter()
        sim = Simulation(cases=args.cases, seed=7, arrivals_per_day=4000)
        table = simulate(sim)
        path = write_log(table, Path(tmp) / "log.parquet")
        events = table.num_rows
        del table
        import_log(
            pool,
            path,
            dataset="leistungsantraege-log",
            meta=DatasetMeta(visibility="public", title="Benchmark"),
        )
        print(f"log: {args.cases:,} cases, {events:,} events, simulated + imported in "
              f"{time.perf_counter() - t:.1f} s", file=sys.stderr)  # fmt: skip
        spec = (SPECS / "leistungsantraege.yaml").read_text("utf-8")
        # The simulated period: the first half of the log's arrivals as the default period.
        spec = spec.replace("default: {start: 2024-07-01, end: 2025-01-01}",
                            "default: {start: 2024-01-01, end: 2024-04-01}")  # fmt: skip
        d = versions.put(pool, local_admin("bench"), "leistungsantraege", spec)
        assert len(d.spec.tiles) == 12
        p = ANONYMOUS
        owner = local_admin("bench")
        rows = []
        for label, params in [
            ("default filters", {}),
            ("Land 09 + channel online", {"f": ["1"], "period_from": ["2024-01-01"],
                                          "period_to": ["2024-03-31"], "region": ["09"],
                                          "channel": ["online"]}),
        ]:  # fmt: skip
            state = parse_filters(d.spec, params)
            cold: list[float] = []
            cold_owner: list[float] = []
            for _ in range(args.repeat):
                for who, into in ((owner, cold_owner), (p, cold)):  # alternating: same load
                    CACHE.clear()
                    gate = Gate(pool)
                    gc.collect()
                    t = time.perf_counter()
                    tiles = render(gate, who, d, state)
                    into.append(time.perf_counter() - t)
                    assert all(x.status == "ok" for x in tiles), [(x.id, x.message) for x in tiles]
            gate = Gate(pool)
            render(gate, p, d, state)
            warm = []
            for _ in range(args.warm):
                t = time.perf_counter()
                render(gate, p, d, state)
                warm.append(time.perf_counter() - t)
            from starlette.testclient import TestClient

            from datenlabor.web.app import create_app

            client = TestClient(create_app(pool))
            query = "&".join(f"{k}={v}" for k, vs in params.items() for v in vs)
            url = f"/dashboards/leistungsantraege?{query}"
            assert client.get(url).status_code == 200
            page = []
            for _ in range(args.warm):
                t = time.perf_counter()
                r = client.get(url)
                page.append(time.perf_counter() - t)
                assert r.status_code == 200
            rows += [
                stats(f"cold render, owner, {label}", cold_owner),
                stats(f"cold render, shared (disclosure control), {label}", cold),
                stats(f"warm render, {label}", warm),
                stats(f"warm page (HTTP), {label}", page),
            ]
        print(f"\n12-tile dashboard over {events:,} events / {args.cases:,} cases")
        print(f"{'what':<58} {'runs':>5} {'p50 s':>8} {'p95 s':>8} {'max s':>8}")
        for r in rows:
            print(
                f"{r['what']:<58} {r['runs']:>5} {r['p50_s']:>8.3f} {r['p95_s']:>8.3f} {r['max_s']:>8.3f}"
            )
        worst_warm = max(float(r["p95_s"]) for r in rows if str(r["what"]).startswith("warm"))
        print(f"load average at the end: {os.getloadavg()}", file=sys.stderr)
        print(f"\ngoal warm p95 < 1 s: {'met' if worst_warm < 1 else 'MISSED'} "
              f"(worst warm p95 {worst_warm:.3f} s)")  # fmt: skip
        if args.json:
            args.json.write_text(
                json.dumps({"events": events, "cases": args.cases, "rows": rows}, indent=2)
            )
        pool.store.dispose()


if __name__ == "__main__":
    main()
