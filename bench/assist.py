"""The AI-assistance benchmark of issue 7, in one run.

1. **Triage** (``bench/assist_triage.py``): triaged requests per second (batches of 1,000
   and one request per call, with p50/p95 latency of a call), requests per CPU-second,
   where the CPU time goes per stage, and the embedded model's quality on held-out data
   (accuracy, macro-F1, ECE, share routed to a person).
2. **Retrieval** (``bench/assist_retrieval.py``): p50/p95 latency of knowledge-base
   retrieval over 100,000 chunks and recall@5 on labelled queries, side by side with a
   plain ``rank-bm25`` baseline (and DuckDB's full-text search with ``--fts``).

Goals: ≥ 1,000 triaged requests/s on 2 cores, retrieval p95 ≤ 50 ms, recall@5 at least the
baseline's. The exit status is 0 only if all are met. Usage (repository root)::

    .venv/bin/python bench/assist.py                     # full run (~5 min on a quiet machine)
    .venv/bin/python bench/assist.py --chunks 20000 --repeat 3 --rounds 3   # a quick look
    .venv/bin/python bench/assist.py --parts triage --json results.json

Options: ``--parts triage,retrieval``; triage: ``--train N`` (3,000), ``--requests N``
(5,000), ``--single N`` (500), ``--repeat N`` (5); retrieval: ``--chunks N`` (100,000),
``--rounds N`` (5), ``--fts``, ``--no-rank-bm25``, ``--duckdb-memory`` (2GB); ``--json PATH``.
The machine's load average is printed before and after: on the shared 2-core development
machines other work takes the cores, and wall-clock rates follow it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import assist_retrieval
import assist_triage


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--parts", default="triage,retrieval")
    ap.add_argument("--train", type=int, default=3000)
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--single", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--fts", action="store_true")
    ap.add_argument("--no-rank-bm25", action="store_true")
    ap.add_argument("--duckdb-memory", default="2GB")
    ap.add_argument("--json", default=None, help="write all figures as JSON")
    args = ap.parse_args()
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    unknown = parts - {"triage", "retrieval"}
    if unknown:
        ap.error(f"unknown part(s): {', '.join(sorted(unknown))}")

    print(f"# Assistance benchmark — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
          f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")  # fmt: skip
    out: dict[str, Any] = {"started": datetime.now(UTC).isoformat()}
    goals: dict[str, bool] = {}
    if "triage" in parts:
        res = assist_triage.measure(args.train, args.requests, args.single, args.repeat)
        lines, goals["triage ≥ 1,000 requests/s"] = assist_triage.report(res)
        print("\n## Triage\n\n" + "\n".join(lines))
        out["triage"] = res
    if "retrieval" in parts:
        ret = assist_retrieval.measure(
            args.chunks, args.rounds, args.fts, not args.no_rank_bm25, args.duckdb_memory
        )
        lines, goals["retrieval p95 ≤ 50 ms and recall@5 ≥ baseline"] = assist_retrieval.report(ret)
        print("\n## Retrieval\n\n" + "\n".join(lines))
        out["retrieval"] = ret
    load = os.getloadavg()
    print(f"\nload average at the end: {' / '.join(f'{x:.1f}' for x in load)}")
    for goal, ok in goals.items():
        print(f"goal {goal}: {'met' if ok else 'NOT met'}")
    out["goals"], out["loadavg_end"] = goals, load
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str), encoding="utf-8")
    return 0 if all(goals.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
