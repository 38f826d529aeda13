"""Metadata store outage: PostgreSQL stopped and started again under load.

A private PostgreSQL cluster (initdb + pg_ctl into a temporary folder, a free port, run as
the ``postgres`` system user because initdb refuses root) holds the metadata of a pool that
``datenlabor serve`` serves to a few concurrent clients. The shared server on 5432 is never
touched. While PostgreSQL is down every request must fail cleanly — 503 with a clear body
and ``Retry-After``, never a 500 or a traceback, never a hung worker — and ``/healthz`` must
say unhealthy; once PostgreSQL is back, requests must succeed again without restarting
Datenlabor, and the audit chain must verify.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

import datenlabor
from datenlabor.pool.catalog import DatasetMeta

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
CLIENTS = 4
DOWN_S = 6.0  # how long PostgreSQL stays down
RECOVER_S = 20.0  # how long Datenlabor may take to answer normally again


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float = 60) -> bool:
    """Poll (this machine may be busy: what takes 1 s idle can take 10)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@dataclass
class Cluster:
    """A throw-away PostgreSQL cluster owned by the ``postgres`` system user."""

    folder: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/datenlabor"

    def _pg(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [f"{PG_BIN[-1]}/{args[0]}", *args[1:]]
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=check)

    def init(self) -> None:
        self._pg("initdb", "-D", str(self.folder / "data"), "-A", "trust", "-U", "postgres",
                 "--no-sync", "-E", "UTF8", "--locale", "C.UTF-8")  # fmt: skip

    def start(self) -> None:
        opts = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.folder} -c fsync=off -c max_connections=40"
        )
        self._pg("pg_ctl", "-D", str(self.folder / "data"), "-l", str(self.folder / "log"),
                 "-o", opts, "-w", "-t", "60", "start")  # fmt: skip

    def stop(self) -> None:
        self._pg("pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")

    def createdb(self) -> None:
        self._pg("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                 "datenlabor")  # fmt: skip


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    assert PG_BIN, "no PostgreSQL binaries under /usr/lib/postgresql/*/bin"
    # Not under pytest's tmp_path: the postgres user must be able to enter the folder.
    folder = Path(tempfile.mkdtemp(prefix="datenlabor-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    c = Cluster(folder, _free_port())
    try:
        c.init()
        c.start()
        c.createdb()
        yield c
    finally:
        c._pg("pg_ctl", "-D", str(folder / "data"), "-m", "immediate", "stop", check=False)
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Load:
    """Clients looping over a mix of reads, SQL, an HTML page and the health check."""

    base: str
    token: str
    phase: str = "up"
    stop: threading.Event = field(default_factory=threading.Event)
    seen: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)
    slowest: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, n: int) -> None:
        h = {"Authorization": f"Bearer {self.token}"}
        calls = [
            ("datasets", "GET", "/api/v1/datasets", None),
            ("rows", "GET", "/api/v1/datasets/faelle/rows?limit=5", None),
            ("sql", "POST", "/api/v1/sql", {"sql": "SELECT count(*) AS n FROM faelle"}),
            ("page", "GET", "/datasets/faelle", None),
        ]
        with httpx.Client(base_url=self.base, timeout=30) as http:
            i = n
            while not self.stop.is_set():
                name, method, path, body = calls[i % len(calls)]
                i += 1
                phase = self.phase
                started = time.monotonic()
                try:
                    r = http.request(method, path, headers=h, json=body)
                except httpx.HTTPError as exc:
                    self.note(phase, name, -1, f"{name}: {exc!r}")
                    continue
                took = time.monotonic() - started
                if self.phase != phase:  # answered across a change: counted as such
                    phase = f"{phase}->{self.phase}"
                with self.lock:
                    self.slowest = max(self.slowest, took)
                problem = None
                if r.status_code == 503:
                    if "Retry-After" not in r.headers:
                        problem = f"{name}: 503 without Retry-After"
                    elif name != "page" and "metadata store" not in r.json().get("error", ""):
                        problem = f"{name}: 503 body {r.text[:200]}"
                    elif name == "page" and "text/html" not in r.headers.get("content-type", ""):
                        problem = f"page: 503 not as a page: {r.headers.get('content-type')}"
                elif r.status_code != 200:
                    problem = f"{name}: {r.status_code} {r.text[:300]}"
                self.note(phase, name, r.status_code, problem)

    def note(self, phase: str, name: str, status: int, problem: str | None) -> None:
        with self.lock:
            self.seen[(phase, name, status)] += 1
            if problem:
                self.bad.append(f"[{phase}] {problem}")

    def count(self, phase: str, status: int) -> int:
        with self.lock:
            return sum(n for (p, _, s), n in self.seen.items() if p == phase and s == status)


def test_requests_fail_cleanly_while_postgres_is_down_and_recover(
    cluster: Cluster, tmp_path: Path
) -> None:
    pool_dir = tmp_path / "pool"
    pool = datenlabor.open(pool_dir, database_url=cluster.url, user="setup")
    from datenlabor.service.gate import Gate

    acc = Gate(pool).accounts
    acc.add_org("bmi", "Bundesministerium des Innern")
    acc.add_user("ana", org="bmi", role="analyst", password="ein-langes-passwort-1")
    token = acc.create_token("ana", scope="read")
    src = tmp_path / "faelle.csv"
    src.write_text("ags;ort;faelle\n05111000;Düsseldorf;12\n09162000;München;7\n", "utf-8")
    pool.ingest(src, dataset="faelle", meta=DatasetMeta(publisher="bmi", visibility="internal"))
    pool.store.dispose()

    port = _free_port()
    env = {**os.environ, "DATENLABOR_POOL": str(pool_dir), "DATENLABOR_DATABASE_URL": cluster.url}
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "datenlabor.cli", "serve", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    base = f"http://127.0.0.1:{port}"
    load = Load(base, token)
    threads = [threading.Thread(target=load.client, args=(n,)) for n in range(CLIENTS)]
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "server did not start"
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        for t in threads:
            t.start()
        assert wait_for(lambda: load.count("up", 200) >= 8), load.seen

        load.phase = "stopping"
        cluster.stop()
        load.phase = "down"
        down_at = time.monotonic()
        health = httpx.get(f"{base}/healthz", timeout=15)
        assert health.status_code == 503 and health.json()["status"] == "unhealthy", health.text
        assert "metadata store" in " ".join(health.json()["problems"])
        time.sleep(max(0.0, DOWN_S - (time.monotonic() - down_at)))
        assert wait_for(lambda: load.count("down", 503) >= 8), load.seen

        load.phase = "restart"
        cluster.start()
        load.phase = "back"
        back_at = time.monotonic()
        while True:  # the first answers may still see the old, dead connections
            ok = [httpx.get(f"{base}/healthz", timeout=15).status_code == 200]
            if ok[0] and load.count("back", 200) >= 8:
                break
            assert time.monotonic() - back_at < RECOVER_S, f"no recovery: {load.seen}"
            time.sleep(0.2)
        recovered_s = time.monotonic() - back_at
        seen_back = load.count("back", 200)
        time.sleep(1.5)
        assert load.count("back", 200) > seen_back, "requests stopped succeeding again"
    finally:
        load.stop.set()
        for t in threads:
            t.join(60)
        alive = server.poll() is None
        server.terminate()
        server.wait(30)
    output = log_path.read_text()
    print(
        f"\noutage: {dict(load.seen)}; slowest answer {load.slowest:.2f} s; "
        f"recovered {recovered_s:.2f} s after PostgreSQL was back"
    )
    assert alive, "the server process died during the outage"
    assert not load.bad, load.bad[:10]
    assert all(s != 500 for (_p, _n, s) in load.seen), load.seen
    # Before the outage and once PostgreSQL is back, everything succeeds: no stale pooled
    # connection surfaces as an error after the restart (pool_pre_ping).
    assert all(s == 200 for (p, _n, s) in load.seen if p in ("up", "back")), load.seen
    assert all(s == 503 for (p, _n, s) in load.seen if p == "down"), load.seen
    assert not any(s == -1 for (p, _n, s) in load.seen if p != "restart"), load.seen
    assert load.slowest < 15, f"a request hung for {load.slowest:.1f} s"
    assert "Traceback" not in output, output[-3000:]
    assert "metadata store unavailable" in output  # logged, one line per failed request

    from datenlabor.access.audit import AuditLog

    pool = datenlabor.open(pool_dir, database_url=cluster.url, user="check")
    try:
        result = AuditLog(pool.store).verify()
        assert result.ok and result.entries > 0, result
    finally:
        pool.store.dispose()
