# SPDX-License-Identifier: EUPL-1.2
"""Load test: 100 concurrent users with a realistic mix against `datenlabor serve`.

The script builds (once, cached under ``--data-dir``) a pool with the demo data (catalogue,
dashboards, accounts, the AI triage model) plus a 1M-row dataset ``vorgaenge`` (the table of
``bench/api.py``), starts the web service exactly as ``datenlabor --pool P serve --workers W``
runs it (uvicorn, loopback, a free port), and drives it with locust (as a library, headless,
bounded in time): every simulated user signs in with an API token of the demo steward and
loops over a weighted mix with think times of 1–5 s:

========================  ======  ===================================================
request type              weight  what
========================  ======  ===================================================
ui: catalogue             3       ``GET /`` (catalogue page)
ui: dataset page          3       ``GET /datasets/{slug}`` (demo datasets and the 1M table)
api: catalogue            2       ``GET /api/v1/datasets``
api: dataset              1       ``GET /api/v1/datasets/{slug}``
api: rows (filtered)      5       50 rows of ``vorgaenge``, two filters, sorted; every
                                  third time also the next page (keyset cursor)
api: sql aggregate        3       GROUP BY over the 1M rows, varied filter
download: csv             1       ``antraege`` as CSV
download: parquet         1       ``antraege`` as Parquet
dashboard: page           2       ``GET /dashboards/{slug}`` (tiles computed server side)
dashboard: api            1       ``GET /api/v1/dashboards/{slug}``
assist: triage            1       ``POST /api/v1/assist/triage`` with a citizen request
========================  ======  ===================================================

Reported: throughput, p50/p95/p99 per request type and overall, errors, and the resident
memory of the server (master plus workers, psutil, every 5 s) with its growth slope. Goals:
zero errors, overall p99 < 1 s, no memory growth: the Theil–Sen slope of RSS over the samples
after the memory warm-up (``--memory-warmup``, default 60 s, while caches fill) stays under
``--max-growth`` (default 1 MiB/min). Theil–Sen (median of all pairwise slopes) rather than
least squares because RSS oscillates by tens of MiB as Python and DuckDB buffers come and go;
over a few minutes such swings decide a least-squares slope, not a steady leak.

Run from the repository root::

    .venv/bin/python bench/load.py                           # 100 users, 5 minutes
    .venv/bin/python bench/load.py --users 20 --duration 30  # a quick look
    .venv/bin/python bench/load.py --json load.json --markdown load.md
"""

from __future__ import annotations

# locust patches the standard library with gevent; it must be imported first.
import locust  # isort: skip
from locust import FastHttpUser, between, task  # isort: skip
from locust.env import Environment  # isort: skip

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlencode

import gevent
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import api as api_bench  # noqa: E402  (bench/api.py: the 1M-row table and helpers)

VENV_BIN = Path(sys.executable).parent
BIG = api_bench.SLUG  # "vorgaenge"
USER = "steward"  # demo steward of bmas-demo: sees the demo data, caseworker for triage
ORG = "bmas-demo"
TRIAGE_TEXTS = [
    "Sehr geehrte Damen und Herren, ich beantrage Wohngeld für meine Familie ab März.",
    "Mein Hund ist zugelaufen, wo kann ich ihn als Fundtier melden?",
    "Ich möchte ein Gewerbe für einen Imbiss in der Innenstadt anmelden.",
    "Bitte um Auskunft nach dem Informationsfreiheitsgesetz zu den Ausgaben für Gutachten.",
    "Widerspruch gegen den Gebührenbescheid vom 12.03.2025, Aktenzeichen 4711/25.",
    "Wann kann ich meinen Reisepass abholen? Ich habe ihn vor drei Wochen beantragt.",
]


# -- the pool -------------------------------------------------------------------------------
def prepare(data_dir: Path, rows: int, regenerate: bool) -> tuple[Path, str]:
    """Pool with demo data plus the 1M-row table; returns (pool, token). Cached."""
    base = data_dir / f"load_{rows}"
    pool, token_file = base / "pool", base / "token.txt"
    if regenerate and base.exists():
        shutil.rmtree(base)
    if token_file.exists():
        return pool, token_file.read_text().strip()
    if pool.exists():
        shutil.rmtree(pool)
    base.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    parquet = data_dir / f"api_{rows}.parquet"
    if not parquet.exists():
        import pyarrow.parquet as pq

        pq.write_table(api_bench.generate_table(rows), parquet, compression="zstd")
    api_bench.datenlabor(pool, "demo")
    api_bench.datenlabor(
        pool, "ingest", str(parquet), "--dataset", BIG, "--org", ORG, "--visibility", "internal"
    )
    token = api_bench.datenlabor(pool, "tokens", "create", USER, "--days", "0").strip()
    token_file.write_text(token.splitlines()[-1] + "\n")
    print(f"  built {pool} in {time.perf_counter() - t0:.0f} s", flush=True)
    return pool, token_file.read_text().strip()


class Server:
    """``datenlabor serve`` in a child process; RSS of the whole process tree."""

    def __init__(
        self,
        pool: Path,
        workers: int,
        log: Path,
        healthcheck_s: float | None = None,
        keep_alive_s: float | None = None,
    ) -> None:
        self.port = api_bench.free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DATENLABOR_")}
        cmd = [str(VENV_BIN / "datenlabor"), "--pool", str(pool), "serve"]
        cmd += ["--port", str(self.port), "--workers", str(workers)]
        if healthcheck_s is not None or keep_alive_s is not None:
            # What `serve` runs, with uvicorn's timeouts changed, to measure proposed fixes:
            # - uvicorn kills a worker that does not answer its supervisor's ping within
            #   `timeout_worker_healthcheck` (5 s; a busy or CPU-starved worker), and with it
            #   every request in flight;
            # - it closes idle keep-alive connections after `timeout_keep_alive` (5 s); a
            #   client sending a POST on such a connection at that moment gets no answer.
            env["DATENLABOR_POOL"] = str(pool)
            code = (
                "import uvicorn; uvicorn.run('datenlabor.web.app:app_from_env', factory=True, "
                f"host='127.0.0.1', port={self.port}, workers={workers}, log_level='info', "
                f"access_log=False, timeout_worker_healthcheck={int(healthcheck_s or 5)}, "
                f"timeout_keep_alive={int(keep_alive_s or 5)})"
            )
            cmd = [sys.executable, "-c", code]
        self.log = log
        with open(log, "ab") as fh:
            self.proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout_s: float = 180) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited early; see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"server not ready after {timeout_s} s; see {self.log}")

    def rss_mib(self) -> float:
        try:
            me = psutil.Process(self.proc.pid)
            procs = [me, *me.children(recursive=True)]
        except psutil.NoSuchProcess:
            return float("nan")
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total / 1024**2

    def cpu_s(self) -> float:
        """CPU seconds (user + system) used so far by the server's processes."""
        total = 0.0
        try:
            me = psutil.Process(self.proc.pid)
            procs = [me, *me.children(recursive=True)]
        except psutil.NoSuchProcess:
            return float("nan")
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                continue
        return total

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- the users ------------------------------------------------------------------------------
class Mix:
    """What the users pick from, discovered from the running server."""

    token: ClassVar[str] = ""
    datasets: ClassVar[list[str]] = []
    dashboards: ClassVar[list[str]] = []
    download: ClassVar[str] = "antraege"


def _agg_sql() -> str:
    status = random.choice(api_bench.STATUSES)
    y0, y1 = random.choice(api_bench.YEARS)
    return (
        f"SELECT land, count(*) AS n, avg(betrag) AS avg_betrag, avg(bearbeitungstage) AS "
        f"avg_tage FROM {BIG} WHERE status = '{status}' AND eingang >= '{y0}-01-01' "
        f"AND eingang < '{y1}-01-01' GROUP BY land ORDER BY land"
    )


def _why(r: Any) -> str:
    """A failed response in one line: status and body, or the connection error."""
    if r.status_code == 0:
        return f"no response: {type(r.error).__name__}: {r.error}"
    return f"HTTP {r.status_code}: {(r.text or '')[:200]}"


class Analyst(FastHttpUser):
    wait_time = between(1, 5)
    network_timeout = 60.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Bearer {Mix.token}"}

    def _get(self, path: str, name: str) -> None:
        with self.client.get(path, headers=self.headers, name=name, catch_response=True) as r:
            if r.status_code != 200:
                r.failure(_why(r))

    @task(3)
    def ui_catalogue(self) -> None:
        self._get("/", "ui: catalogue")

    @task(3)
    def ui_dataset(self) -> None:
        self._get(f"/datasets/{random.choice(Mix.datasets)}", "ui: dataset page")

    @task(2)
    def api_catalogue(self) -> None:
        self._get("/api/v1/datasets", "api: catalogue")

    @task(1)
    def api_dataset(self) -> None:
        self._get(f"/api/v1/datasets/{random.choice(Mix.datasets)}", "api: dataset")

    @task(5)
    def rows(self) -> None:
        """A filtered page, sorted; every third time the next page through its cursor."""
        q = {
            "status": random.choice(api_bench.STATUSES),
            "bearbeitungstage__gte": random.choice(api_bench.MIN_DAYS),
            "sort": random.choice(["-betrag", "eingang", "id"]),
            "limit": 50,
        }
        path = f"/api/v1/datasets/{BIG}/rows"
        name = "api: rows (filtered)"
        with self.client.get(
            f"{path}?{urlencode(q)}", headers=self.headers, name=name, catch_response=True
        ) as r:
            if r.status_code != 200:
                r.failure(_why(r))
                return
            cursor = (r.json() or {}).get("next")
        if cursor and random.random() < 1 / 3:
            self._get(f"{path}?{urlencode({**q, 'after': cursor})}", "api: rows (next page)")

    @task(3)
    def sql(self) -> None:
        with self.client.post(
            "/api/v1/sql",
            json={"sql": _agg_sql()},
            headers=self.headers,
            name="api: sql aggregate",
            catch_response=True,
        ) as r:
            if r.status_code != 200:
                r.failure(_why(r))

    @task(1)
    def download_csv(self) -> None:
        self._get(f"/api/v1/datasets/{Mix.download}/download?format=csv", "download: csv")

    @task(1)
    def download_parquet(self) -> None:
        self._get(f"/api/v1/datasets/{Mix.download}/download?format=parquet", "download: parquet")

    @task(2)
    def dashboard_page(self) -> None:
        if Mix.dashboards:
            self._get(f"/dashboards/{random.choice(Mix.dashboards)}", "dashboard: page")

    @task(1)
    def dashboard_api(self) -> None:
        if Mix.dashboards:
            self._get(f"/api/v1/dashboards/{random.choice(Mix.dashboards)}", "dashboard: api")

    @task(1)
    def triage(self) -> None:
        with self.client.post(
            "/api/v1/assist/triage",
            json={"text": random.choice(TRIAGE_TEXTS)},
            headers=self.headers,
            name="assist: triage",
            catch_response=True,
        ) as r:
            if r.status_code != 200:
                r.failure(_why(r))


def discover(url: str, token: str) -> None:
    import urllib.request

    def get(path: str) -> Any:
        req = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    listed = get("/api/v1/datasets")
    items = listed["datasets"] if isinstance(listed, dict) else listed
    Mix.token = token
    Mix.datasets = [d["slug"] for d in items if not d["slug"].startswith("kb__")]
    if BIG not in Mix.datasets:
        raise SystemExit(f"the load user cannot see {BIG!r}: {Mix.datasets}")
    if Mix.download not in Mix.datasets:
        Mix.download = Mix.datasets[0]
    boards = get("/api/v1/dashboards")
    items = boards["dashboards"] if isinstance(boards, dict) else boards
    Mix.dashboards = [d["slug"] for d in items]


# -- running and reporting ------------------------------------------------------------------
def least_squares_slope(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of RSS over time (MiB per minute); reported for comparison."""
    if len(samples) < 3:
        return None
    xs = [t / 60 for t, _ in samples]
    ys = [m for _, m in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else None


def memory_growth(
    samples: list[tuple[float, float]], *, warmup_s: float, max_growth: float
) -> dict[str, Any]:
    """Theil–Sen slope of RSS (MiB) over time after ``warmup_s``, in MiB per minute, with its
    95 % confidence interval; growth is flagged when the slope reaches ``max_growth``."""
    from scipy.stats import theilslopes

    kept = [(t, m) for t, m in samples if t >= warmup_s and m == m]  # m == m: not NaN
    out: dict[str, Any] = {
        "method": "Theil-Sen (scipy.stats.theilslopes), samples after warm-up",
        "warmup_s": warmup_s,
        "samples": len(kept),
        "max_growth_mib_per_min": max_growth,
        "slope_mib_per_min": None,
        "ci95_mib_per_min": None,
        "growth": None,
    }
    if len(kept) < 3 or kept[-1][0] - kept[0][0] <= 0:
        return out  # too short a run to judge
    res = theilslopes([m for _, m in kept], [t / 60 for t, _ in kept], alpha=0.95)
    out["slope_mib_per_min"] = round(float(res.slope), 2)
    out["ci95_mib_per_min"] = [round(float(res.low_slope), 2), round(float(res.high_slope), 2)]
    out["growth"] = bool(res.slope >= max_growth)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    pool, token = prepare(args.data_dir, args.rows, args.regenerate)
    log_dir = args.data_dir / f"load_{args.rows}"
    log_file = log_dir / "server.log"
    log_start = len(log_file.read_text(errors="replace")) if log_file.exists() else 0
    server = Server(pool, args.workers, log_file, args.healthcheck_timeout, args.keep_alive_timeout)
    try:
        server.wait_ready()
        discover(server.url, token)
        # warm-up: one of each request type, so first-use caches do not count as load
        Analyst.host = server.url
        env = Environment(user_classes=[Analyst], host=server.url)
        warm = Analyst(env)
        warm.on_start()
        for task_fn in dict.fromkeys(Analyst.tasks):  # each request type once
            task_fn(warm)  # type: ignore[operator]
        for slug in Mix.datasets:  # and every page once: first-use caches are not load
            warm._get(f"/datasets/{slug}", "warm-up")
        for slug in Mix.dashboards:
            warm._get(f"/dashboards/{slug}", "warm-up")
        warm_errors = dict(env.stats.errors)
        env.stats.clear_all()

        load_before = os.getloadavg()
        samples: list[tuple[float, float]] = []
        t0 = time.monotonic()

        def sample() -> None:
            while True:
                samples.append((time.monotonic() - t0, server.rss_mib()))
                gevent.sleep(args.sample_s)

        cpu_before = server.cpu_s()
        sampler = gevent.spawn(sample)
        runner = env.create_local_runner()
        runner.start(args.users, spawn_rate=args.spawn_rate)
        gevent.sleep(args.duration)
        runner.quit()
        sampler.kill()
        samples.append((time.monotonic() - t0, server.rss_mib()))
        server_cpu = server.cpu_s() - cpu_before
        load_after = os.getloadavg()
    finally:
        server.stop()
    killed = server.log.read_text(errors="replace")[log_start:].count("] died")

    def entry(e: Any) -> dict[str, Any]:
        return {
            "requests": e.num_requests,
            "errors": e.num_failures,
            "rps": round(e.num_requests / args.duration, 2),
            "p50_ms": e.get_response_time_percentile(0.50),
            "p95_ms": e.get_response_time_percentile(0.95),
            "p99_ms": e.get_response_time_percentile(0.99),
            "max_ms": round(e.max_response_time or 0),
        }

    per_type = {name: entry(e) for (name, _m), e in sorted(env.stats.entries.items())}
    total = entry(env.stats.total)
    rss = [m for _, m in samples]
    growth = memory_growth(
        samples, warmup_s=min(args.memory_warmup, args.duration / 2), max_growth=args.max_growth
    )
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "users": args.users,
        "duration_s": args.duration,
        "server_workers": args.workers,
        "server": "datenlabor serve"
        if args.healthcheck_timeout is None and args.keep_alive_timeout is None
        else f"uvicorn as serve runs it but timeout_worker_healthcheck="
        f"{args.healthcheck_timeout or 5:g} s, timeout_keep_alive={args.keep_alive_timeout or 5:g} s",
        "workers_killed_by_supervisor": killed,
        "rows_big_table": args.rows,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "cpus": os.cpu_count(),
        "warmup_errors": [f"{e.method} {e.name}: {e.error}"[:300] for e in warm_errors.values()],
        # CPU the server got: cores used on average, and CPU per request. On a machine
        # where the server gets far less than the cores it could use, latency is queueing.
        "server_cpu_s": round(server_cpu, 1),
        "server_cores_used": round(server_cpu / args.duration, 2),
        "server_cpu_ms_per_request": round(
            1000 * server_cpu / max(env.stats.total.num_requests, 1), 1
        ),
        "per_type": per_type,
        "total": total,
        "errors": {
            f"{e.method} {e.name}: {e.error}"[:300]: e.occurrences
            for e in env.stats.errors.values()
        },
        # MiB (psutil's bytes / 1024**2), sampled every --sample-s seconds
        "rss_mib": {
            "first": round(rss[0], 1),
            "max": round(max(rss), 1),
            "last": round(rss[-1], 1),
            "least_squares_slope_mib_per_min": _round(least_squares_slope(samples)),
            "growth": growth,
            "samples": [(round(t, 1), round(m, 1)) for t, m in samples],
        },
    }
    result["goals"] = {
        "zero_errors": total["errors"] == 0,
        "p99_under_1s": (total["p99_ms"] or 0) < 1000,
        "no_memory_growth": growth["growth"] is False,
    }
    return result


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def markdown(r: dict[str, Any]) -> str:
    lines = [
        f"### Load test {r['when']}: {r['users']} users, {r['duration_s']:g} s, "
        f"{r['server']}, {r['server_workers']} worker(s), {r['rows_big_table']:,}-row table",
        "",
        f"Machine: {r['cpus']} cores, load average before {r['loadavg_before']}, "
        f"after {r['loadavg_after']} (1/5/15 min; other engineers' jobs included).",
        "",
        "| request type | requests | errors | req/s | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, e in [*r["per_type"].items(), ("**overall**", r["total"])]:
        lines.append(
            f"| {name} | {e['requests']} | {e['errors']} | {e['rps']} | {e['p50_ms']} | "
            f"{e['p95_ms']} | {e['p99_ms']} | {e['max_ms']} |"
        )
    m = r["rss_mib"]
    g = m["growth"]
    lines += [
        "",
        f"Server RSS (master + workers): first {m['first']} MiB, max {m['max']} MiB, "
        f"last {m['last']} MiB. Growth after {g['warmup_s']:g} s of warm-up "
        f"({g['samples']} samples): Theil–Sen slope {g['slope_mib_per_min']} MiB/min "
        f"(95 % CI {g['ci95_mib_per_min']}; limit {g['max_growth_mib_per_min']:g} MiB/min); "
        f"least squares over the whole run {m['least_squares_slope_mib_per_min']} MiB/min.",
        "",
        f"Server CPU: {r['server_cpu_s']} s in {r['duration_s']:g} s = "
        f"{r['server_cores_used']} cores on average, {r['server_cpu_ms_per_request']} ms "
        "CPU per request.",
        "",
        f"Workers killed by uvicorn's supervisor (health check) during the run: "
        f"{r['workers_killed_by_supervisor']}.",
        "",
        "Goals: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in r["goals"].items()),
    ]
    if r["warmup_errors"]:
        lines += ["", "Errors during warm-up (not counted above):", ""]
        lines += [f"- {e}" for e in r["warmup_errors"]]
    if r["errors"]:
        lines += ["", "Errors:", ""] + [f"- {k} ×{v}" for k, v in r["errors"].items()]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--duration", type=float, default=300.0, help="seconds of load")
    ap.add_argument("--spawn-rate", type=float, default=10.0, help="users started per second")
    ap.add_argument("--workers", type=int, default=1, help="server processes (serve --workers)")
    ap.add_argument(
        "--healthcheck-timeout",
        type=float,
        help="run uvicorn directly with this worker health-check timeout (s) instead of "
        "`datenlabor serve` (5 s): the proposed fix for workers killed under load",
    )
    ap.add_argument(
        "--keep-alive-timeout",
        type=float,
        help="run uvicorn directly with this keep-alive timeout (s) instead of `serve`'s 5 s",
    )
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the big table")
    ap.add_argument("--sample-s", type=float, default=5.0, help="RSS sampling interval")
    ap.add_argument(
        "--memory-warmup",
        type=float,
        default=60.0,
        help="seconds of load before RSS samples count for the growth slope (caches fill "
        "first; at most half the duration)",
    )
    ap.add_argument(
        "--max-growth",
        type=float,
        default=1.0,
        help="memory growth goal: Theil-Sen slope of RSS below this many MiB/min",
    )
    ap.add_argument("--data-dir", type=Path, default=ROOT / "bench" / "_data")
    ap.add_argument("--regenerate", action="store_true", help="rebuild the pool")
    ap.add_argument("--json", type=Path, help="write the result as JSON (- for stdout)")
    ap.add_argument("--markdown", type=Path, help="append the result table to this file")
    args = ap.parse_args()
    locust.stats.PERCENTILES_TO_REPORT = [0.5, 0.95, 0.99]
    r = run(args)
    text = markdown(r)
    print(text)
    if args.json:
        body = json.dumps(r, indent=2, ensure_ascii=False)
        if str(args.json) == "-":
            print(body)
        else:
            args.json.write_text(body + "\n", encoding="utf-8")
    if args.markdown:
        with args.markdown.open("a", encoding="utf-8") as fh:
            fh.write("\n" + text)
    return 0 if all(r["goals"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
