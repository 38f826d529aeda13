# SPDX-License-Identifier: EUPL-1.2
"""API throughput: Datenlabor vs Datasette on the same 1M-row table, with the same load.

Both servers are started fresh by this script (one uvicorn process each), serve the same
generated table (Parquet ingested into a Datenlabor pool; the same rows in an SQLite file
for Datasette) and are driven by the same load generator: N concurrent keep-alive clients
for a fixed duration, in a separate process. uvicorn runs as each project ships it: one
worker, uvloop, no access log for Datenlabor (``datenlabor serve``: the pure-Python h11
parser, chosen for its bounded request head; see web/limits.py) and httptools with an
access-log line per request for Datasette (``datasette serve`` has no switch for either).
Scenarios:

* ``rows``: one page (50 rows) of a filtered table, ``status = S AND bearbeitungstage >= N``,
  S and N varied per request.
* ``rows-distinct``: the same pages, but every request adds a filter that is always true
  and never repeats (``id <> -k``, k counting up), so no result cache can answer it:
  Datenlabor keeps answers of rows requests per process (``service.engine.ResultCache``),
  ``rows`` shows the cached figure and ``rows-distinct`` the uncached one.
* ``aggregate``: ``count(*)``, ``avg(betrag)``, ``avg(bearbeitungstage)`` by ``land`` for
  one status and a date range, varied per request.

Datenlabor is called with a signed-in API token (analyst of the publishing organisation),
so every request is permission-checked and written to the hash-chained audit log.

Run from the repository root: ``.venv/bin/python bench/api.py`` (see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datenlabor.pool import ags

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SLUG = "vorgaenge"
DB_NAME = "bench"  # Datasette names the database after the file: bench.db -> /bench
TABLE = "vorgaenge"
ORG = "bmi"
USER = "bench"
SEED = 20261122

STATUSES = ["offen", "in_bearbeitung", "abgeschlossen", "abgelehnt", "ruhend"]
STATUS_WEIGHTS = [0.25, 0.30, 0.35, 0.06, 0.04]
MIN_DAYS = [0, 10, 30, 60, 120, 200]
LAENDER = ags.LAENDER  # the official Land names
BETREFF = [
    "Antrag auf Wohngeld",
    "Baugenehmigung Einfamilienhaus",
    "Gewerbeanmeldung Gaststätte",
    "Widerspruch gegen Gebührenbescheid",
    "Einbürgerung",
    "Führerschein Umschreibung",
    "Zuschuss Straßenausbau",
    "Förderantrag Kita-Plätze",
    "Genehmigung Großveranstaltung",
    "Auskunft nach IFG § 1",
    "Sondernutzung öffentlicher Straßenraum",
    "Fällgenehmigung Baum",
    "Elterngeld Antrag",
    "Aufenthaltstitel Verlängerung",
    "Schankerlaubnis Außengastronomie",
    "Härtefallantrag Grundsteuer",
]
YEARS = [(2019, 2020), (2020, 2021), (2021, 2022), (2022, 2023), (2023, 2024), (2024, 2025)]


# -- data ---------------------------------------------------------------------------------
def generate_table(n: int) -> Any:
    """A deterministic table of administrative procedures (pyarrow.Table)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(SEED)
    codes = list(LAENDER)
    # ~400 Gemeinde keys: Land (2) + Regierungsbezirk (1) + Kreis (2) + Gemeinde (3)
    keys: list[str] = []
    key_land: list[str] = []
    while len(keys) < 400:
        land = codes[int(rng.integers(0, len(codes)))]
        key = f"{land}{int(rng.integers(0, 10))}{int(rng.integers(1, 100)):02d}{int(rng.integers(0, 1000)):03d}"
        if key not in keys:
            keys.append(key)
            key_land.append(LAENDER[land])
    # Zipf-ish popularity: big cities get many procedures
    pop = 1.0 / np.arange(1, len(keys) + 1) ** 0.8
    pop /= pop.sum()
    gi = rng.choice(len(keys), size=n, p=pop)
    ags = pa.array(keys).take(pa.array(gi))
    land = pa.array(key_land).take(pa.array(gi))
    start = np.datetime64("2019-01-01")
    days = rng.integers(0, 6 * 365, size=n)
    eingang = pa.array(start + days.astype("timedelta64[D]"), type=pa.date32())
    status = pa.array(STATUSES).take(pa.array(rng.choice(len(STATUSES), size=n, p=STATUS_WEIGHTS)))
    tage = rng.gamma(2.0, 30.0, size=n).astype(np.int64)
    betrag = np.round(rng.lognormal(6.0, 1.2, size=n), 2)
    ids = np.arange(1, n + 1, dtype=np.int64)
    phrase = pa.array(BETREFF).take(pa.array(rng.integers(0, len(BETREFF), size=n)))
    aktenzeichen = pc.binary_join_element_wise("Az.", pc.cast(pa.array(ids), pa.string()), " ")
    betreff = pc.binary_join_element_wise(phrase, aktenzeichen, ", ")
    return pa.table(
        {
            "id": ids,
            "ags": ags,
            "land": land,
            "eingang": eingang,
            "status": status,
            "bearbeitungstage": tage,
            "betrag": betrag,
            "betreff": betreff,
        }
    )


def build_sqlite(table: Any, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute(
        f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, ags TEXT NOT NULL, land TEXT NOT NULL,"
        " eingang TEXT NOT NULL, status TEXT NOT NULL, bearbeitungstage INTEGER NOT NULL,"
        " betrag REAL NOT NULL, betreff TEXT NOT NULL)"
    )
    batch = 100_000
    for off in range(0, table.num_rows, batch):
        part = table.slice(off, batch)
        cols = [part.column(i).to_pylist() for i in range(part.num_columns)]
        cols[3] = [d.isoformat() for d in cols[3]]
        con.executemany(f"INSERT INTO {TABLE} VALUES (?,?,?,?,?,?,?,?)", zip(*cols, strict=True))
    # The columns the scenarios filter and group on, as anyone tuning SQLite would.
    for indexed in (
        "status",
        "bearbeitungstage",
        "status, bearbeitungstage",
        "land",
        "ags",
        "eingang",
        "status, eingang",
    ):
        name = "idx_" + indexed.replace(", ", "_")
        con.execute(f"CREATE INDEX {name} ON {TABLE} ({indexed})")
    con.commit()
    con.execute("ANALYZE")
    con.commit()
    con.close()
    tmp.rename(path)


def datenlabor(pool: Path, *args: str, env: dict[str, str] | None = None) -> str:
    e = dict(os.environ, DATENLABOR_POOL=str(pool), **(env or {}))
    r = subprocess.run(
        [str(VENV_BIN / "datenlabor"), *args], env=e, capture_output=True, text=True, check=False
    )
    if r.returncode != 0:
        raise SystemExit(f"datenlabor {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


@dataclass
class Data:
    parquet: Path
    sqlite: Path
    pool: Path
    token: str
    rows: int


def prepare(data_dir: Path, n: int, regenerate: bool) -> Data:
    import pyarrow.parquet as pq

    data_dir.mkdir(parents=True, exist_ok=True)
    base = data_dir / f"api_{n}"
    parquet, db = base.with_suffix(".parquet"), base / f"{DB_NAME}.db"
    pool, token_file = base / "pool", base / "token.txt"
    if regenerate and base.exists():
        shutil.rmtree(base)
        parquet.unlink(missing_ok=True)
    base.mkdir(exist_ok=True)
    table = None
    if not parquet.exists():
        t0 = time.perf_counter()
        table = generate_table(n)
        pq.write_table(table, parquet.with_suffix(".tmp"), compression="zstd")
        parquet.with_suffix(".tmp").rename(parquet)
        print(f"  generated {parquet} ({n:,} rows) in {time.perf_counter() - t0:.1f} s")
    if not db.exists():
        t0 = time.perf_counter()
        build_sqlite(table if table is not None else pq.read_table(parquet), db)
        print(f"  built {db} with indexes in {time.perf_counter() - t0:.1f} s")
    if not token_file.exists():
        t0 = time.perf_counter()
        if pool.exists():
            shutil.rmtree(pool)
        datenlabor(pool, "orgs", "add", ORG, "--name", "Bundesministerium des Innern")
        datenlabor(
            pool,
            "users",
            "add",
            USER,
            "--org",
            ORG,
            "--role",
            "analyst",
            env={"DATENLABOR_PASSWORD": "bench-password-not-secret"},
        )
        datenlabor(
            pool,
            "ingest",
            str(parquet),
            "--dataset",
            SLUG,
            "--org",
            ORG,
            "--visibility",
            "internal",
        )
        token = datenlabor(pool, "tokens", "create", USER, "--days", "0").strip().splitlines()[-1]
        token_file.write_text(token + "\n")
        print(f"  ingested into Datenlabor pool {pool} in {time.perf_counter() - t0:.1f} s")
    return Data(parquet, db, pool, token_file.read_text().strip(), n)


# -- requests -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Req:
    method: str
    url: str
    body: dict[str, Any] | None = None
    # "rows-distinct": query parameter prefix the load generator completes with a counter
    unique: str | None = None


def agg_sql(status: str, years: tuple[int, int]) -> str:
    return (
        f"SELECT land, count(*) AS n, avg(betrag) AS avg_betrag, "
        f"avg(bearbeitungstage) AS avg_tage FROM {TABLE} "
        f"WHERE status = '{status}' AND eingang >= '{years[0]}-01-01' "
        f"AND eingang < '{years[1]}-01-01' GROUP BY land ORDER BY land"
    )


def requests_for(server: str, scenario: str) -> list[Req]:
    """The request mix: every combination once; the load generator cycles through it."""
    from urllib.parse import urlencode

    out: list[Req] = []
    if scenario in ("rows", "rows-distinct"):
        distinct = scenario == "rows-distinct"
        for s in STATUSES:
            for d in MIN_DAYS:
                if server == "datenlabor":
                    q = urlencode({"status": s, "bearbeitungstage__gte": d, "limit": 50})
                    unique = "id__ne=-" if distinct else None
                    out.append(Req("GET", f"/api/v1/datasets/{SLUG}/rows?{q}", unique=unique))
                else:
                    q = urlencode(
                        {
                            "status": s,
                            "bearbeitungstage__gte": d,
                            "_size": 50,
                            "_shape": "objects",
                            "_nocount": 1,
                        }
                    )
                    unique = "id__not=-" if distinct else None
                    out.append(Req("GET", f"/{DB_NAME}/{TABLE}.json?{q}", unique=unique))
    else:
        for s in STATUSES:
            for y in YEARS:
                sql = agg_sql(s, y)
                if server == "datenlabor":
                    out.append(Req("POST", "/api/v1/sql", {"sql": sql}))
                else:
                    q = urlencode({"sql": sql, "_shape": "objects"})
                    out.append(Req("GET", f"/{DB_NAME}.json?{q}"))
    # interleave so that consecutive requests differ in both parameters
    k = 7
    return [out[(i * k) % len(out)] for i in range(len(out))] if len(out) % k else out


# -- servers --------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    cmd: list[str]
    env: dict[str, str]
    ready_path: str
    headers: dict[str, str]
    port: int
    cpus: set[int] | None
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def start(self, log_dir: Path) -> float:
        self.log = log_dir / f"server_{self.name}.log"
        cpus = self.cpus
        t0 = time.perf_counter()
        with open(self.log, "ab") as fh:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                self.cmd,
                env=self.env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
            )
        import httpx

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited early; see {self.log}")
            try:
                r = httpx.get(f"http://127.0.0.1:{self.port}{self.ready_path}", timeout=2)
                if r.status_code == 200:
                    return time.perf_counter() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise SystemExit(f"{self.name} did not become ready; see {self.log}")

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/stat") as fh:
            parts = fh.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def make_servers(data: Data, args: argparse.Namespace) -> dict[str, Server]:
    server_cpus, _ = cpu_split(args.pin)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATENLABOR_")}
    p1, p2 = free_port(), free_port()
    dl = Server(
        "datenlabor",
        [str(VENV_BIN / "datenlabor"), "--pool", str(data.pool), "serve", "--port", str(p1)],
        env,
        "/healthz",
        {"Authorization": f"Bearer {data.token}"},
        p1,
        server_cpus,
    )
    ds = Server(
        "datasette",
        [
            str(VENV_BIN / "datasette"),
            "serve",
            "-i",
            str(data.sqlite),
            "--port",
            str(p2),
            "--setting",
            "sql_time_limit_ms",
            str(args.datasette_time_limit_ms),
            "--setting",
            "num_sql_threads",
            str(args.datasette_threads),
            "--setting",
            "suggest_facets",
            "off",
        ],
        env,
        "/-/versions.json",
        {},
        p2,
        server_cpus,
    )
    return {"datenlabor": dl, "datasette": ds}


def cpu_split(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(server CPUs, load-generator CPUs): with --pin and >= 2 CPUs, the last one is the
    load generator's and the others the server's; without, nobody is pinned."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return None, None
    return set(cpus[:-1]), {cpus[-1]}


# -- load generator (runs in its own process) -----------------------------------------------
def _load_main(conf: dict[str, Any], out: Any) -> None:
    if conf["cpus"]:
        os.sched_setaffinity(0, conf["cpus"])
    try:
        out.put(asyncio.run(_load(conf)))
    except BaseException as exc:  # report, don't hang the parent
        out.put({"error": repr(exc)})


async def _load(conf: dict[str, Any]) -> dict[str, Any]:
    import httpx

    reqs = [Req(**r) for r in conf["requests"]]
    n = conf["clients"]
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    timeout = httpx.Timeout(conf["timeout_s"])
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    samples: dict[str, str] = {}
    warm_done = 0
    loop = asyncio.get_running_loop()
    t_start = loop.time()
    t_measure = t_start + conf["warmup_s"]
    t_end = t_measure + conf["duration_s"]

    async with httpx.AsyncClient(
        base_url=conf["base_url"], headers=conf["headers"], limits=limits, timeout=timeout
    ) as client:

        async def worker(w: int) -> None:
            nonlocal warm_done
            i = w
            while True:
                r = reqs[i % len(reqs)]
                url = f"{r.url}&{r.unique}{i}" if r.unique else r.url
                i += n
                t0 = time.perf_counter()
                try:
                    resp = await client.request(r.method, url, json=r.body)
                    await resp.aread()
                    code = str(resp.status_code)
                except httpx.TimeoutException:
                    code, resp = "timeout", None
                except httpx.HTTPError as exc:
                    code, resp = type(exc).__name__, None
                dt = time.perf_counter() - t0
                if in_window(loop.time(), t_measure, t_end):
                    if code.startswith("2"):
                        latencies.append(dt)
                    statuses[code] = statuses.get(code, 0) + 1
                    if not code.startswith("2") and code not in samples and resp is not None:
                        samples[code] = resp.text[:300]
                else:
                    warm_done += 1

        tasks = [asyncio.create_task(worker(w)) for w in range(n)]
        await asyncio.sleep(max(0.0, t_end - loop.time()))
        for t in tasks:  # requests still in flight at the end are not counted
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "latencies": latencies,
        "statuses": statuses,
        "error_samples": samples,
        "warmup_requests": warm_done,
        "duration_s": conf["duration_s"],
        "cpu_s": time.process_time(),
    }


def in_window(done: float, t_measure: float, t_end: float) -> bool:
    """Counted: requests that finished after the warm-up and before the end (closed loop,
    so the throughput is completions / duration)."""
    return t_measure <= done <= t_end


def other_load(seconds: float = 1.0) -> float:
    """Cores busy over ``seconds`` (this script idles meanwhile, servers are stopped)."""

    def busy() -> tuple[float, float]:
        with open("/proc/stat") as fh:
            f = [int(x) for x in fh.readline().split()[1:]]
        return sum(f[:8]) - f[3] - f[4], sum(f[:8])

    b0, t0 = busy()
    time.sleep(seconds)
    b1, t1 = busy()
    return (b1 - b0) / max(1, t1 - t0) * (os.cpu_count() or 1)


def wait_idle(limit_s: float) -> float:
    """Wait up to ``limit_s`` until other processes use < 25% of the CPUs; the last load."""
    deadline = time.monotonic() + limit_s
    load = other_load()
    while load >= 0.25 * (os.cpu_count() or 1) and time.monotonic() < deadline:
        load = other_load(2.0)
    return load


# -- wrk (Debian package): a C load generator, so that it is never the bottleneck ----------
def _lua_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nWRK-JSON {"requests": %d, "duration_us": %d, "status": %d, "connect": %d, "read": %d,'
    .. ' "write": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d,'
    .. ' "mean_us": %f}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
"""


def wrk_script(server: Server, reqs: list[Req]) -> str:
    """A wrk Lua script cycling through the request mix with the server's headers."""
    headers = dict(server.headers)
    if any(r.body is not None for r in reqs):
        headers["Content-Type"] = "application/json"
    lines = ["local reqs = {"]
    for r in reqs:
        body = _lua_string(json.dumps(r.body)) if r.body is not None else "nil"
        unique = _lua_string(r.unique) if r.unique else "nil"
        lines.append(f"  {{{_lua_string(r.method)}, {_lua_string(r.url)}, {body}, {unique}}},")
    lines.append("}")
    lines.append("local headers = {")
    lines += [f"  [{_lua_string(k)}] = {_lua_string(v)}," for k, v in headers.items()]
    lines.append("}")
    lines.append("local i = 0")
    lines.append("request = function()")
    lines.append("  i = i + 1")
    lines.append("  local r = reqs[(i % #reqs) + 1]")
    lines.append("  local url = r[2]")
    lines.append("  if r[4] then url = url .. '&' .. r[4] .. i end")
    lines.append("  return wrk.format(r[1], url, headers, r[3])")
    lines.append("end")
    return "\n".join(lines) + WRK_DONE


def drive_wrk(server: Server, scenario: str, args: argparse.Namespace) -> dict[str, Any]:
    _, load_cpus = cpu_split(args.pin)
    reqs = requests_for(server.name, scenario)
    script = Path(args.data_dir) / f"wrk_{server.name}_{scenario}.lua"
    script.write_text(wrk_script(server, reqs), encoding="utf-8")
    base = f"http://127.0.0.1:{server.port}"
    pin = ["taskset", "-c", ",".join(map(str, sorted(load_cpus)))] if load_cpus else []

    def run(seconds: float) -> tuple[dict[str, Any], float]:
        cmd = [*pin, "wrk", "-t1", f"-c{args.clients}", f"-d{max(1, round(seconds))}s",
               f"--timeout={max(1, round(args.timeout))}s", "-s", str(script), base]  # fmt: skip
        ru0 = os.times()
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        ru1 = os.times()
        line = next(x for x in out.splitlines() if x.startswith("WRK-JSON "))
        return json.loads(line.removeprefix("WRK-JSON ")), (
            ru1.children_user - ru0.children_user + ru1.children_system - ru0.children_system
        )

    if args.warmup > 0:
        run(args.warmup)
    cpu0 = server.cpu_seconds()
    w0 = time.monotonic()
    res, load_cpu = run(args.duration)
    span = time.monotonic() - w0
    cpu1 = server.cpu_seconds()
    dur_s = res["duration_us"] / 1e6
    errors = res["status"] + res["connect"] + res["read"] + res["write"] + res["timeout"]
    ok = res["requests"] - res["status"]
    return {
        "server": server.name,
        "scenario": scenario,
        "load": "wrk",
        "ok": ok,
        "errors": errors,
        "statuses": {"non-2xx/3xx": res["status"], "timeout": res["timeout"]},
        "error_samples": {},
        "rps": ok / dur_s,
        "p50_ms": res["p50_us"] / 1000,
        "p90_ms": res["p90_us"] / 1000,
        "p99_ms": res["p99_us"] / 1000,
        "max_ms": res["max_us"] / 1000,
        "mean_ms": res["mean_us"] / 1000,
        "server_cores": (cpu1 - cpu0) / span,
        "load_cores": load_cpu / span,
        "other_cores": None,
    }


def drive(server: Server, scenario: str, args: argparse.Namespace) -> dict[str, Any]:
    if args.load == "wrk":
        return drive_wrk(server, scenario, args)
    _, load_cpus = cpu_split(args.pin)
    reqs = requests_for(server.name, scenario)
    conf = {
        "base_url": f"http://127.0.0.1:{server.port}",
        "headers": server.headers,
        "requests": [r.__dict__ for r in reqs],
        "clients": args.clients,
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "timeout_s": args.timeout,
        "cpus": load_cpus,
    }
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_load_main, args=(conf, q))
    cpu0 = server.cpu_seconds()
    other_cpu_ticks(server, None)
    w0 = time.monotonic()
    proc.start()
    result = q.get(timeout=args.warmup + args.duration + args.timeout + 120)
    proc.join(30)
    span = time.monotonic() - w0
    cpu1 = server.cpu_seconds()
    if "error" in result:
        raise SystemExit(f"load generator failed: {result['error']}")
    _OTHER["load_cpu"] = result["cpu_s"]
    other1 = other_cpu_ticks(server, proc.pid)
    lat = sorted(result.pop("latencies"))
    ok = len(lat)
    total = sum(result["statuses"].values())
    return {
        "server": server.name,
        "scenario": scenario,
        "ok": ok,
        "errors": total - ok,
        "statuses": result["statuses"],
        "error_samples": result["error_samples"],
        "rps": ok / args.duration,
        "p50_ms": pct(lat, 50) * 1000 if lat else None,
        "p90_ms": pct(lat, 90) * 1000 if lat else None,
        "p99_ms": pct(lat, 99) * 1000 if lat else None,
        "max_ms": lat[-1] * 1000 if lat else None,
        "mean_ms": statistics.fmean(lat) * 1000 if lat else None,
        "server_cores": (cpu1 - cpu0) / span,
        "load_cores": result["cpu_s"] / span,
        "other_cores": other1 / span if other1 is not None else None,
    }


def pct(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    k = max(0, min(len(sorted_values), math.ceil(p / 100 * len(sorted_values))) - 1)
    return sorted_values[k]


_OTHER: dict[str, Any] = {}


def other_cpu_ticks(server: Server, load_pid: int | None) -> float | None:
    """CPU seconds used by everyone except the server and the load generator since the last
    call with load_pid=None (crude: total busy time minus the two; includes this script)."""

    def busy() -> float:
        with open("/proc/stat") as fh:
            f = [int(x) for x in fh.readline().split()[1:]]
        idle = f[3] + f[4]
        return (sum(f[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    if load_pid is None:
        _OTHER["busy"], _OTHER["server"] = busy(), server.cpu_seconds()
        return None
    used = busy() - _OTHER["busy"]
    server_used = server.cpu_seconds() - _OTHER["server"]
    load_used = _OTHER.get("load_cpu", 0.0)
    return max(0.0, used - server_used - load_used)


# -- equality check -------------------------------------------------------------------------
def check_same_answers(servers: dict[str, Server]) -> list[str]:
    """Both servers answer the first requests of each scenario with the same data."""
    import httpx

    notes = []
    for scenario in ("rows", "rows-distinct", "aggregate"):
        answers = {}
        for name, srv in servers.items():
            r = requests_for(name, scenario)[0]
            url = f"{r.url}&{r.unique}1" if r.unique else r.url
            resp = httpx.request(
                r.method,
                f"http://127.0.0.1:{srv.port}{url}",
                json=r.body,
                headers=srv.headers,
                timeout=120,
            )
            resp.raise_for_status()
            rows = resp.json()["rows"]
            answers[name] = rows
        a, b = answers["datenlabor"], answers["datasette"]
        if scenario != "aggregate":
            same = [x["id"] for x in a] == [x["id"] for x in b]
            notes.append(f"{scenario}: {len(a)} vs {len(b)} rows, same ids: {same}")
        else:
            same = len(a) == len(b) and all(
                x["land"] == y["land"]
                and x["n"] == y["n"]
                and abs(x["avg_betrag"] - y["avg_betrag"]) < 1e-6 * max(1, abs(y["avg_betrag"]))
                for x, y in zip(a, b, strict=False)
            )
            notes.append(f"aggregate: {len(a)} vs {len(b)} groups, same values: {same}")
        if not same:
            raise SystemExit(f"the servers disagree ({scenario}): {a[:2]} vs {b[:2]}")
    return notes


# -- report ---------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    model = "?"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) * 1024
    import datasette
    import duckdb
    import fastapi
    import httpx
    import uvicorn

    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "ram_gib": round(mem / 2**30, 1),
        "python": platform.python_version(),
        "versions": {
            "datasette": datasette.__version__,
            "duckdb": duckdb.__version__,
            "fastapi": fastapi.__version__,
            "uvicorn": uvicorn.__version__,
            "httpx": httpx.__version__,
            "sqlite": sqlite3.sqlite_version,
        },
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git": git_rev(),
    }


def git_rev() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short=8", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return rev + (" (+ uncommitted changes in src/)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


def fmt(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{v:,.{digits}f}"


def report(results: list[dict[str, Any]]) -> str:
    """Medians over the rounds, per scenario; ratios Datenlabor / Datasette."""
    lines = []
    for scenario in ("rows", "rows-distinct", "aggregate"):
        rs = [r for r in results if r["scenario"] == scenario]
        if not rs:
            continue
        lines.append(f"\n{scenario}:")
        lines.append(
            "| server | req/s | p50 ms | p99 ms | max ms | errors | server cores |"
            " server CPU ms/req | other cores | rounds req/s |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        med: dict[str, dict[str, float | None]] = {}
        for name in ("datenlabor", "datasette"):
            mine = [r for r in rs if r["server"] == name]
            if not mine:
                continue

            def m(key: str, mine: list[dict[str, Any]] = mine) -> float | None:
                vals = [r[key] for r in mine if r[key] is not None]
                return statistics.median(vals) if vals else None

            for r in mine:
                r["cpu_ms_per_req"] = (
                    r["server_cores"] / r["rps"] * 1000 if r["rps"] and r["server_cores"] else None
                )
            med[name] = {
                k: m(k)
                for k in (
                    "rps",
                    "p50_ms",
                    "p99_ms",
                    "max_ms",
                    "server_cores",
                    "cpu_ms_per_req",
                    "other_cores",
                )
            }
            errors = sum(r["errors"] for r in mine)
            lines.append(
                f"| {name} | {fmt(med[name]['rps'])} | {fmt(med[name]['p50_ms'])} | "
                f"{fmt(med[name]['p99_ms'])} | {fmt(med[name]['max_ms'])} | {errors} | "
                f"{fmt(med[name]['server_cores'], 2)} | {fmt(med[name]['cpu_ms_per_req'], 2)} | "
                f"{fmt(med[name]['other_cores'], 2)} | "
                + " / ".join(fmt(r["rps"]) for r in mine)
                + " |"
            )
        if len(med) == 2:
            a, b = med["datenlabor"], med["datasette"]

            def ratio(k: str, a: dict[str, Any] = a, b: dict[str, Any] = b) -> str:
                return f"{a[k] / b[k]:.2f}×" if a[k] and b[k] else "–"

            lines.append(
                f"| **ratio Datenlabor/Datasette** | **{ratio('rps')}** | {ratio('p50_ms')} | "
                f"**{ratio('p99_ms')}** | {ratio('max_ms')} | | | {ratio('cpu_ms_per_req')} | | |"
            )
            goal_rps = bool(a["rps"] and b["rps"] and a["rps"] >= 2 * b["rps"])
            goal_p99 = bool(a["p99_ms"] and b["p99_ms"] and a["p99_ms"] < b["p99_ms"])
            lines.append(
                f"\ngoal ≥ 2× throughput: {'PASS' if goal_rps else 'FAIL'}; "
                f"lower p99: {'PASS' if goal_p99 else 'FAIL'}"
            )
        for r in rs:
            if r["errors"]:
                lines.append(
                    f"  {r['server']}: statuses {r['statuses']}; samples {r['error_samples']}"
                )
    return "\n".join(lines)


# -- profile (in process) -------------------------------------------------------------------
def profile(data: Data, n: int) -> None:
    """Sequential in-process requests through fastapi's TestClient with the phases timed,
    then cProfile of the endpoint functions called directly (no HTTP)."""
    import cProfile
    import functools
    import pstats
    import threading

    os.environ["DATENLABOR_POOL"] = str(data.pool)
    from fastapi.responses import JSONResponse
    from fastapi.testclient import TestClient

    import datenlabor.access.accounts as accounts_mod
    import datenlabor.access.audit as audit_mod
    import datenlabor.pool.pool as pool_mod
    import datenlabor.query.rows as rows_mod
    import datenlabor.query.sandbox as sandbox_mod
    import datenlabor.service.gate as gate_mod
    import datenlabor.web.api as api_mod
    from datenlabor.pool import delta as delta_mod
    from datenlabor.web.app import create_app

    totals: dict[str, float] = {}
    local = threading.local()

    def wrap(owner: Any, name: str, label: str) -> None:
        orig = getattr(owner, name)

        @functools.wraps(orig)
        def timed(*a: Any, **kw: Any) -> Any:
            depth = getattr(local, "depth", 0)
            local.depth = depth + 1
            t0 = time.perf_counter()
            try:
                return orig(*a, **kw)
            finally:
                local.depth = depth
                totals[label] = totals.get(label, 0.0) + time.perf_counter() - t0

        setattr(owner, name, timed)

    wrap(accounts_mod.Accounts, "resolve_token", "token lookup (Accounts.resolve_token)")
    wrap(gate_mod.Gate, "_query", "dataset + grants from the store (Gate._query, cached 2 s)")
    wrap(gate_mod.Gate, "source", "Gate.source (incl. _load, snapshot)")
    wrap(delta_mod, "snapshot_files", "Delta snapshot (cached)")
    wrap(pool_mod.Pool, "connect", "DuckDB connection setup (Pool.connect)")
    wrap(rows_mod, "page", "rows query (rows.page)")
    wrap(rows_mod, "parse_rows_request", "parse filters")
    wrap(sandbox_mod, "check_select", "SQL check (sandbox.check_select)")
    wrap(gate_mod.Gate, "register", "register view (Gate.register)")
    wrap(sandbox_mod, "run_limited", "SQL run (sandbox.run_limited)")
    wrap(audit_mod.AuditLog, "record", "audit write (AuditLog.record, waits for commit)")
    wrap(api_mod, "rows_of", "Arrow -> Python rows (api.rows_of)")
    wrap(api_mod.DataJSONResponse, "render", "JSON encoding (DataJSONResponse.render)")
    # gate.py imports these names inside the functions, so the module attributes count.

    from datenlabor.pool.pool import open as open_pool

    app = create_app(open_pool())
    headers = {"Authorization": f"Bearer {data.token}"}
    with TestClient(app) as client:
        for scenario in ("rows", "aggregate"):
            reqs = requests_for("datenlabor", scenario)
            for r in reqs[:5]:  # warm-up
                client.request(r.method, r.url, json=r.body, headers=headers)
            totals.clear()
            t0 = time.perf_counter()
            for i in range(n):
                r = reqs[i % len(reqs)]
                resp = client.request(r.method, r.url, json=r.body, headers=headers)
                assert resp.status_code == 200, resp.text
            wall = time.perf_counter() - t0
            print(
                f"\nprofile {scenario}: {n} sequential requests via TestClient, "
                f"{wall / n * 1000:.2f} ms per request ({n / wall:.0f} req/s, one at a time)"
            )
            for label, secs in sorted(totals.items(), key=lambda kv: -kv[1]):
                print(f"  {secs / n * 1000:7.2f} ms  {label}")

        gate = app.state.gate
        from datenlabor.web.api import provenance, rows_of

        def body(scenario: str, i: int) -> None:
            """What the endpoint does, without HTTP and FastAPI."""
            p = gate.accounts.resolve_token(data.token)
            r = requests_for("datenlabor", scenario)[i % 30]
            if scenario == "rows":
                from urllib.parse import parse_qsl, urlsplit

                params = parse_qsl(urlsplit(r.url).query)
                res = gate.rows(p, SLUG, params, client="127.0.0.1")
                JSONResponse(
                    {
                        "rows": rows_of(res.table),
                        "next": res.next,
                        "provenance": provenance([res.source]),
                    }
                )
            else:
                assert r.body is not None
                res2 = gate.sql(p, r.body["sql"], client="127.0.0.1")
                JSONResponse({"rows": rows_of(res2.table), "provenance": provenance(res2.sources)})

        # The same with K threads at once, as uvicorn's thread pool runs sync endpoints:
        # which phase grows when requests overlap?
        from concurrent.futures import ThreadPoolExecutor

        for threads in (1, 4, 16):
            for scenario in ("rows", "aggregate"):
                totals.clear()
                t0 = time.perf_counter()
                with ThreadPoolExecutor(threads) as ex:
                    list(ex.map(lambda i, sc=scenario: body(sc, i), range(n)))
                wall = time.perf_counter() - t0
                print(
                    f"\n{threads:2d} threads, {scenario}: {n / wall:.1f} req/s, "
                    f"{wall / n * threads * 1000:.0f} ms per request (wall)"
                )
                for label, secs in sorted(totals.items(), key=lambda kv: -kv[1])[:7]:
                    print(f"  {secs / n * 1000:8.1f} ms  {label}")

        # cProfile of the endpoint body in this thread (no HTTP, no FastAPI)

        for scenario in ("rows", "aggregate"):
            reqs = requests_for("datenlabor", scenario)
            prof = cProfile.Profile()
            prof.enable()
            for i in range(n):
                p = gate.accounts.resolve_token(data.token)
                r = reqs[i % len(reqs)]
                if scenario == "rows":
                    from urllib.parse import parse_qsl, urlsplit

                    params = parse_qsl(urlsplit(r.url).query)
                    res = gate.rows(p, SLUG, params, client="127.0.0.1")
                    JSONResponse(
                        {
                            "rows": rows_of(res.table),
                            "next": res.next,
                            "provenance": provenance([res.source]),
                        }
                    )
                else:
                    assert r.body is not None
                    res2 = gate.sql(p, r.body["sql"], client="127.0.0.1")
                    JSONResponse(
                        {"rows": rows_of(res2.table), "provenance": provenance(res2.sources)}
                    )
            prof.disable()
            print(
                f"\ncProfile {scenario} ({n} calls, endpoint body without HTTP), "
                "top by cumulative time:"
            )
            st = pstats.Stats(prof)
            st.sort_stats("cumulative").print_stats(28)


# -- main -----------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="table rows (default 1M)")
    ap.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    ap.add_argument("--duration", type=float, default=20.0, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per run")
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="rounds; each runs every scenario on both servers, order alternating",
    )
    ap.add_argument(
        "--scenarios",
        default="rows,rows-distinct,aggregate",
        help="rows (30 repeating pages: cacheable), rows-distinct (every request different: "
        "uncached), aggregate",
    )
    ap.add_argument("--servers", default="datenlabor,datasette")
    ap.add_argument("--timeout", type=float, default=60.0, help="client timeout per request (s)")
    ap.add_argument(
        "--load",
        choices=("wrk", "httpx"),
        default="wrk" if shutil.which("wrk") else "httpx",
        help="load generator: wrk (C, apt-get install wrk; default when installed) or the "
        "Python httpx client (saturates its core at a few thousand requests/s)",
    )
    ap.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="pin the server to all CPUs but the last, the load generator to the last (default on)",
    )
    ap.add_argument(
        "--wait-idle",
        type=float,
        default=120.0,
        help="before each run wait up to S seconds until other processes use < 25%% of the CPUs",
    )
    ap.add_argument("--datasette-threads", type=int, default=2, help="num_sql_threads")
    ap.add_argument("--datasette-time-limit-ms", type=int, default=60_000)
    ap.add_argument("--data-dir", type=Path, default=ROOT / "bench" / "_data")
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--prepare-only", action="store_true")
    ap.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="instead of the load test: N in-process requests per scenario with "
        "Datenlabor's phases timed, then cProfile",
    )
    ap.add_argument("--json", type=Path, help="also write the results as JSON")
    args = ap.parse_args()

    info = machine()
    print(
        f"machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram_gib']} GiB RAM, "
        f"Python {info['python']}; {info['date']}; git {info['git']}"
    )
    print(f"versions: {info['versions']}")
    print("preparing data …")
    data = prepare(args.data_dir, args.rows, args.regenerate)
    if args.prepare_only:
        return 0
    if args.profile:
        profile(data, args.profile)
        return 0
    server_cpus, load_cpus = cpu_split(args.pin)
    print(
        f"pinning: servers on CPUs {sorted(server_cpus) if server_cpus else 'all'}, "
        f"load generator on {sorted(load_cpus) if load_cpus else 'all'}"
    )
    print(
        f"load: {args.clients} clients, {args.warmup:g} s warm-up + {args.duration:g} s "
        f"measured per run, {args.rounds} round(s)"
    )

    servers = make_servers(data, args)
    wanted = [s for s in args.servers.split(",") if s]
    scenarios = [s for s in args.scenarios.split(",") if s]
    log_dir = args.data_dir / f"api_{args.rows}"
    if set(wanted) == {"datenlabor", "datasette"}:
        for s in servers.values():
            s.start(log_dir)
        try:
            for note in check_same_answers(servers):
                print(f"check: {note}")
        finally:
            for s in servers.values():
                s.stop()

    results: list[dict[str, Any]] = []
    run = 0
    for rnd in range(args.rounds):
        for scenario in scenarios:
            order = wanted if run % 2 == 0 else list(reversed(wanted))
            run += 1
            for name in order:
                srv = servers[name]
                idle = wait_idle(args.wait_idle)
                started = srv.start(log_dir)
                try:
                    res = drive(srv, scenario, args)
                finally:
                    srv.stop()
                res["round"] = rnd + 1
                res["startup_s"] = started
                res["load_before"] = idle
                results.append(res)
                print(
                    f"  round {rnd + 1} {scenario:9s} {name:10s}: {res['rps']:8.1f} req/s  "
                    f"p50 {fmt(res['p50_ms'])} ms  p99 {fmt(res['p99_ms'])} ms  "
                    f"errors {res['errors']}  server {res['server_cores']:.2f} cores  "
                    f"load gen {res['load_cores']:.2f}  other {fmt(res['other_cores'], 2)} "
                    f"cores (before: {idle:.2f})",
                    flush=True,
                )
    print(report(results))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "results": results,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
