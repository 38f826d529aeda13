"""Kill -9 trials: the server and CLI jobs die at random moments; nothing acknowledged is lost.

Issue 10 asks for at least 100 kill -9 trials per test run, during ingest, upsert, append,
harvest, disclosure control and model training, of the web server as well as of CLI jobs.
Each test below runs ``TRIALS`` trials of one operation on one metadata store (SQLite and
PostgreSQL): 5 operations x 2 stores x 10 = 100 trials by default, 400 with
``DATENLABOR_SLOW_TESTS=1`` (or ``DATENLABOR_KILL_TRIALS=N`` per test).

A trial starts the real command (``datenlabor ...`` through ``cli.main``, or ``datenlabor
serve`` answering real HTTP uploads), waits a random, seeded delay and sends SIGKILL. The
processes are forked from a pre-imported zygote (``tests/fixtures/faults/zygote.py``) so a
trial costs the operation, not 1.5 s of imports. After each kill
(``tests/fixtures/faults/consistency.py``):

- the pool is readable; every dataset's newest version is complete (rows as recorded, SQL
  sees it), and every acknowledged version is there with its rows, SHA-256 and content;
- the metadata store and the Delta log agree (no recorded version missing from the log, no
  commit in the log that is neither recorded, nor rolled back, nor the unrecorded tail that
  readers ignore and the next writer rolls back);
- the audit chain verifies;
- the operation's own state is one of "before" or "after", never in between (disclosure
  rules and their protected table; the active model and its artifact's SHA-256; the
  harvested dataset);
- retrying the interrupted operation succeeds and gives exactly the expected result.

A failure names the trial, the delay and the seed: ``DATENLABOR_KILL_SEED=S`` replays it.
Each test prints a summary (outcomes, states seen); under pytest-xdist, which hides prints,
``DATENLABOR_KILL_REPORT=FILE`` appends them to FILE.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

import datenlabor
from datenlabor.pool.catalog import DatasetMeta
from fixtures.faults.consistency import Ack, Findings, check_pool, fingerprint_of

ZYGOTE = Path(__file__).parent / "fixtures" / "faults" / "zygote.py"
SLOW = os.environ.get("DATENLABOR_SLOW_TESTS") == "1"
TRIALS = int(os.environ.get("DATENLABOR_KILL_TRIALS") or (40 if SLOW else 10))
KANAELE = ("Online-Portal", "Post", "Persönlich vor Ort", "E-Mail", "Behördenpostfach")
KREISE = ("05111", "05315", "09162", "09564", "01001", "16051")


# -- processes ----------------------------------------------------------------------------------


class Zygote:
    """Client of ``zygote.py``: forks pre-imported ``datenlabor`` processes, one at a time."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        logs.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, str(ZYGOTE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.started: queue.Queue[dict[str, Any]] = queue.Queue()
        self.ended: dict[int, int] = {}
        self.changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        assert self._next(120).get("ready"), "zygote did not start"
        self.count = 0

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            msg = json.loads(line)
            if "status" in msg:
                with self.changed:
                    self.ended[int(msg["pid"])] = int(msg["status"])
                    self.changed.notify_all()
            else:
                self.started.put(msg)

    def _next(self, timeout: float) -> dict[str, Any]:
        try:
            return self.started.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"zygote silent for {timeout} s") from None

    def status(self, pid: int, timeout: float) -> int:
        with self.changed:
            if not self.changed.wait_for(lambda: pid in self.ended, timeout):
                raise AssertionError(f"process {pid} still running after {timeout} s")
            return self.ended.pop(pid)

    def start(self, args: list[str], env: dict[str, str]) -> Job:
        self.count += 1
        out, err = self.logs / f"{self.count}.out", self.logs / f"{self.count}.err"
        request = {"args": args, "env": env, "out": str(out), "err": str(err)}
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return Job(self, int(self._next(30)["pid"]), out, err, time.monotonic())

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


@dataclass
class Job:
    zygote: Zygote
    pid: int
    out: Path
    err: Path
    started: float
    status: int | None = None

    def wait(self, timeout: float = 180) -> int:
        if self.status is None:
            self.status = self.zygote.status(self.pid, timeout)
        return self.status

    def done(self) -> bool:
        with self.zygote.changed:
            return self.status is not None or self.pid in self.zygote.ended

    def kill(self) -> bool:
        """SIGKILL; True if the job was still running (else it had finished)."""
        with contextlib.suppress(ProcessLookupError):  # it ended by itself
            os.kill(self.pid, signal.SIGKILL)
        return self.wait() == -signal.SIGKILL

    def text(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")


@pytest.fixture(scope="module")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zygote]:
    z = Zygote(tmp_path_factory.mktemp("zygote-logs"))
    yield z
    z.close()


def kill_seed() -> int:
    value = os.environ.get("DATENLABOR_KILL_SEED")
    return int(value) if value else random.SystemRandom().randrange(2**31)


def delays(rng: random.Random, trials: int, span: float) -> list[float]:
    """Stratified uniform delays over [0, span]: every phase of the operation gets hit."""
    out = [(i + rng.random()) * span / trials for i in range(trials)]
    rng.shuffle(out)
    return out


# -- scenarios: one operation each ---------------------------------------------------------------


@dataclass
class Scenario:
    """One operation on one pool. Subclasses say how to run it and what "done" means."""

    root: Path
    db_url: str | None
    zygote: Zygote
    acked: list[Ack] = field(default_factory=list)
    findings: Findings = field(default_factory=Findings)
    name: str = ""

    @property
    def pool_dir(self) -> Path:
        return self.root / "pool"

    def env(self) -> dict[str, str]:
        env = {"DATENLABOR_POOL": str(self.pool_dir), "DATENLABOR_LOCK_TIMEOUT_S": "60",
               "DATENLABOR_USER": "kill-trial"}  # fmt: skip
        if self.db_url:
            env["DATENLABOR_DATABASE_URL"] = self.db_url
        return env

    def open(self) -> Any:
        return datenlabor.open(self.pool_dir, database_url=self.db_url, user="fault-test")

    def run(self, args: list[str]) -> Job:
        return self.zygote.start(args, self.env())

    def run_ok(self, args: list[str], where: str) -> Job:
        job = self.run(args)
        code = job.wait()
        assert code == 0, f"{where}: {' '.join(args)} exited {code}: {job.text()[-2000:]}"
        return job

    # hooks
    def setup(self) -> None: ...
    def args(self, i: int) -> list[str]:
        raise NotImplementedError

    def after_kill(self, i: int, where: str) -> bool:
        """Check the operation's own state; True if the killed run had completed."""
        raise NotImplementedError

    def retry(self, i: int, landed: bool, where: str) -> None:
        raise NotImplementedError

    def measure(self) -> float:
        """Duration of one uninterrupted run (also trial -1, acknowledged)."""
        started = time.monotonic()
        self.run_ok(self.args(-1), f"{self.name}: uninterrupted run")
        took = time.monotonic() - started
        self.after_kill(-1, f"{self.name}: uninterrupted run")
        self.retry(-1, True, f"{self.name}: uninterrupted run")
        return took

    def trial(self, i: int, delay: float, where: str) -> str:
        job = self.run(self.args(i))
        time.sleep(max(0.0, delay - (time.monotonic() - job.started)))
        killed = job.kill()
        if not killed:
            assert job.status == 0, f"{where}: exited {job.status}: {job.text()[-2000:]}"
        check_pool(self.pool_dir, self.db_url, self.acked, where, self.findings)
        landed = self.after_kill(i, where)
        self.retry(i, landed, where)
        return ("killed, " if killed else "finished, ") + ("had landed" if landed else "undone")


# ingest (replace / append / upsert) through the CLI ---------------------------------------------


def antraege_rows(keys: range, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "Antrag-Nr": k,
            "Kreis": rng.choice(KREISE) + f"{rng.randrange(1000):03d}",
            "Eingang": dt.date(2024, 1, 1) + dt.timedelta(days=(k * 7 + seed) % 366),
            "Kanal": rng.choice(KANAELE),
            "Betrag": rng.randrange(10_000_000) / 100,
        }
        for k in keys
    ]


def write_antraege(path: Path, rows: list[dict[str, Any]]) -> Path:
    """A German office CSV: cp1252, ';', decimal comma, dd.mm.yyyy, AGS as text."""
    lines = ["Antrag-Nr;Kreis;Eingang;Kanal;Betrag"]
    for r in rows:
        betrag = f"{r['Betrag']:.2f}".replace(".", ",")
        lines.append(f"{r['Antrag-Nr']};{r['Kreis']};{r['Eingang']:%d.%m.%Y};{r['Kanal']};{betrag}")
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def normal(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        (r["Antrag-Nr"], r["Kreis"], r["Eingang"], r["Kanal"], round(r["Betrag"], 2)) for r in rows
    )


@dataclass
class IngestScenario(Scenario):
    """replace, append and upsert in turn, each trial a new file (800-1,500 rows)."""

    slug: str = "antraege"
    model: dict[int, dict[str, Any]] = field(default_factory=dict)  # the newest version's rows
    next_key: int = 0
    pending: tuple[str, Path, dict[int, dict[str, Any]]] | None = None

    def args(self, i: int) -> list[str]:
        mode = ("replace", "append", "upsert")[i % 3] if i >= 0 else "replace"
        seed = 1000 + i
        if mode == "replace":
            keys = range(self.next_key, self.next_key + 1500)
            self.next_key += 1500
            rows = antraege_rows(keys, seed)
            expected = {r["Antrag-Nr"]: r for r in rows}
        elif mode == "append":
            keys = range(self.next_key, self.next_key + 800)
            self.next_key += 800
            rows = antraege_rows(keys, seed)
            expected = {**self.model, **{r["Antrag-Nr"]: r for r in rows}}
        else:  # half updates of current keys, half new keys
            current = sorted(self.model)
            keys_old = current[:: max(1, len(current) // 400)][:400]
            keys_new = list(range(self.next_key, self.next_key + 400))
            self.next_key += 400
            rows = [
                {**r, "Antrag-Nr": k}
                for k, r in zip(keys_old + keys_new, antraege_rows(range(800), seed), strict=False)
            ]
            expected = {**self.model, **{r["Antrag-Nr"]: r for r in rows}}
        path = write_antraege(self.root / f"antraege-{i + 1}.csv", rows)
        self.pending = (mode, path, expected)
        return ["ingest", str(path), "--dataset", self.slug, "--mode", mode, "--key", "Antrag-Nr"]

    def _content(self, version: int) -> list[tuple[Any, ...]]:
        pool = self.open()
        try:
            t = pool.dataset(self.slug).read(version=version)
        finally:
            pool.store.dispose()
        return normal(t.to_pylist())

    def after_kill(self, i: int, where: str) -> bool:
        assert self.pending is not None
        mode, path, expected = self.pending
        before = len({a.version for a in self.acked})
        pool = self.open()
        try:
            versions = pool.dataset(self.slug).versions() if before or pool.datasets() else []
        finally:
            pool.store.dispose()
        assert len(versions) in (before, before + 1), f"{where}: {len(versions)} versions"
        if len(versions) == before:
            return False
        new = versions[-1]
        assert new.source_sha256 == sha256(path), f"{where}: newest is not this {mode}"
        assert self._content(new.version) == normal(list(expected.values())), (
            f"{where}: the killed {mode} landed with wrong content"
        )
        return True

    def retry(self, i: int, landed: bool, where: str) -> None:
        assert self.pending is not None
        mode, path, expected = self.pending
        if not landed:
            self.run_ok(self.args_of(path, mode), f"{where}: retry")
            assert self.after_kill(i, f"{where}: after the retry"), f"{where}: retry left nothing"
        elif mode == "append":
            # The append had completed: running it again is refused, not appended twice.
            job = self.run(self.args_of(path, mode))
            assert job.wait() == 2 and "already" in job.text(), f"{where}: {job.text()[-500:]}"
        pool = self.open()
        try:
            v = pool.dataset(self.slug).versions()[-1]
            self.acked.append(
                Ack(
                    self.slug,
                    v.version,
                    v.rows,
                    sha256(path),
                    fingerprint_of(pool, self.slug, v.version),
                )
            )
        finally:
            pool.store.dispose()
        self.model = expected

    def args_of(self, path: Path, mode: str) -> list[str]:
        return ["ingest", str(path), "--dataset", self.slug, "--mode", mode, "--key", "Antrag-Nr"]


# harvest of a local DCAT catalogue --------------------------------------------------------------


@dataclass
class HarvestScenario(Scenario):
    """A DCAT-AP.de catalogue (three pages, real reference files) whose budget table changes
    before every trial: the harvest downloads and ingests it as a new version."""

    srv: Any = None
    cat: Any = None
    haushalt: str | None = None  # slug
    expected_sha: str = ""
    previous_sha: str = ""

    def setup(self) -> None:
        from fixtures.harvest.catalogue_server import CatalogueServer
        from fixtures.harvest.catalogues import DcatCatalogue

        self.srv = CatalogueServer()
        self.srv.start()
        self.cat = DcatCatalogue(self.srv)

    def close(self) -> None:
        if self.srv is not None:
            self.srv.close()

    def args(self, i: int) -> list[str]:
        from fixtures.harvest.catalogues import HAUSHALT_CSV

        rng = random.Random(i)
        extra = "".join(
            f"{rng.randrange(100, 9999):04d},{rng.randrange(10000, 99999)},"
            f"Titel {n} für Büro und Geschäftsbedarf,{rng.randrange(10**8) / 100:.2f}\n"
            for n in range(1000)
        ).encode()
        data = HAUSHALT_CSV + extra
        self.previous_sha, self.expected_sha = self.expected_sha, hashlib.sha256(data).hexdigest()
        self.cat.haushalt(data)
        self.cat.page2(modified=f"2024-03-01T10:{(i + 2) // 60:02d}:{(i + 2) % 60:02d}")
        return ["harvest", self.cat.url, "--timeout", "5", "--download-timeout", "20",
                "--retries", "1"]  # fmt: skip

    def _newest_sha(self) -> str | None:
        pool = self.open()
        try:
            if self.haushalt is None:
                for d in pool.datasets():
                    if pool.dataset(d.slug).versions()[-1].source_sha256 == self.expected_sha:
                        self.haushalt = d.slug
            if self.haushalt is None:
                return None
            return pool.dataset(self.haushalt).versions()[-1].source_sha256
        finally:
            pool.store.dispose()

    def after_kill(self, i: int, where: str) -> bool:
        got = self._newest_sha()
        if i < 0:
            assert got == self.expected_sha, f"{where}: budget table not harvested"
        elif got != self.expected_sha:
            assert got == self.previous_sha, f"{where}: budget table neither old nor new"
        return got == self.expected_sha

    def retry(self, i: int, landed: bool, where: str) -> None:
        self.run_ok(self.args_again(), f"{where}: retry")
        assert self._newest_sha() == self.expected_sha, f"{where}: retry did not load it"
        pool = self.open()
        try:
            for d in pool.datasets():
                v = pool.dataset(d.slug).versions()[-1]
                ack = Ack(d.slug, v.version, v.rows, v.source_sha256 or "")
                if ack not in self.acked:
                    self.acked.append(ack)
        finally:
            pool.store.dispose()

    def args_again(self) -> list[str]:
        return ["harvest", self.cat.url, "--timeout", "5", "--download-timeout", "20",
                "--retries", "1"]  # fmt: skip


# disclosure control: sdc rules set --------------------------------------------------------------


@dataclass
class SdcScenario(Scenario):
    """``sdc rules set`` with different rules each trial: the protected table is computed,
    then the rules take effect (and are audited)."""

    slug: str = "betriebe"
    rules: dict[str, Any] | None = None
    previous: dict[str, Any] | None = None

    def setup(self) -> None:
        rng = random.Random(7)
        lines = ["kreis;branche;jahr;betrag;firma_id"]
        for _ in range(3000):
            lines.append(
                f"{rng.choice(KREISE)}{rng.randrange(3):03d};B{rng.randrange(12):02d};"
                f"{2020 + rng.randrange(4)};{rng.randrange(10**6) / 100:.2f};F{rng.randrange(900)}"
            )
        src = self.root / "betriebe.csv"
        src.write_text("\n".join(lines) + "\n", encoding="utf-8")
        pool = self.open()
        try:
            pool.ingest(src, dataset=self.slug, meta=DatasetMeta(publisher="statistik"))
        finally:
            pool.store.dispose()

    def args(self, i: int) -> list[str]:
        rules = {
            "dims": [{"name": "kreis", "hierarchy": "ags"}, "branche", "jahr"],
            "measures": ["betrag"],
            "contributor": "firma_id",
            "min_frequency": 3 + (i + 1) % 4,
        }
        self.previous, self.rules = self.rules, rules
        path = self.root / f"rules-{i + 1}.json"
        path.write_text(json.dumps(rules), encoding="utf-8")
        return ["sdc", "rules", "set", self.slug, str(path)]

    def _state(self, where: str) -> dict[str, Any] | None:
        from datenlabor.service.confidential import protected
        from datenlabor.service.gate import Gate

        pool = self.open()
        try:
            gate = Gate(pool)
            d = gate.load(self.slug, fresh=True)
            assert d is not None
            if d.disclosure is not None:
                # Whatever rules are in force, their protected table is there or computable.
                prot = protected(gate, d, d.versions[-1])
                assert prot.report.get("version") == d.versions[-1].number, where
                assert prot.report["rules"]["min_frequency"] == d.disclosure["min_frequency"]
            return d.disclosure
        finally:
            pool.store.dispose()

    def after_kill(self, i: int, where: str) -> bool:
        state = self._state(where)
        if state is None or self.rules is None:
            assert state is None and self.previous is None, where
            return False
        norm = {k: state.get(k) for k in ("min_frequency",)}
        assert norm["min_frequency"] in (
            self.rules["min_frequency"],
            (self.previous or {}).get("min_frequency"),
        ), f"{where}: rules neither old nor new: {state}"
        return bool(norm["min_frequency"] == self.rules["min_frequency"])

    def retry(self, i: int, landed: bool, where: str) -> None:
        path = self.root / f"rules-{i + 1}.json"
        self.run_ok(["sdc", "rules", "set", self.slug, str(path)], f"{where}: retry")
        assert self.after_kill(i, f"{where}: after the retry"), where
        pool = self.open()
        try:
            from datenlabor.access.audit import AuditLog

            [last] = AuditLog(pool.store).entries(action="disclosure", limit=1)
            assert last.detail["rules"]["min_frequency"] == self.rules["min_frequency"], where
        finally:
            pool.store.dispose()


# model training: assist train -------------------------------------------------------------------


@dataclass
class TrainScenario(Scenario):
    """``assist train`` on a pinned dataset version: the artifact, its record, activation."""

    slug: str = "anfragen"
    known: dict[int, str] = field(default_factory=dict)  # acknowledged model version -> sha256

    def setup(self) -> None:
        from datenlabor.assist import demo_requests

        src = demo_requests.write_csv(self.root / "anfragen.csv", 400, seed=3)
        pool = self.open()
        try:
            pool.ingest(src, dataset=self.slug, meta=DatasetMeta(publisher="bmas"))
        finally:
            pool.store.dispose()

    def args(self, i: int) -> list[str]:
        return ["assist", "train", self.slug, "--text", "text", "--label", "category",
                "--seed", str(i + 1), "--json"]  # fmt: skip

    def _models(self, where: str) -> list[Any]:
        from datenlabor.assist import registry

        pool = self.open()
        try:
            models = registry.models(pool, "triage")
            for m in models:
                registry.load(pool, m)  # artifact present, SHA-256 as recorded
            active = [m for m in models if m.active]
            assert len(active) == (1 if models else 0), f"{where}: active models {active}"
            assert [m.version for m in models] == list(range(1, len(models) + 1)), where
            return models
        finally:
            pool.store.dispose()

    def after_kill(self, i: int, where: str) -> bool:
        models = self._models(where)
        for version, sha in self.known.items():
            got = {m.version: m.params.get("sha256") for m in models}.get(version)
            assert got == sha, f"{where}: acknowledged model triage@{version} lost or changed"
        assert len(models) in (len(self.known), len(self.known) + 1), where
        if len(models) == len(self.known):
            return False
        assert models[-1].active and models[-1].params.get("seed") == i + 1, where
        return True

    def retry(self, i: int, landed: bool, where: str) -> None:
        if not landed:
            job = self.run_ok(self.args(i), f"{where}: retry")
            info = json.loads(job.out.read_text())
            assert info["active"] and info["version"] == len(self.known) + 1, where
        models = self._models(where)
        assert models[-1].active, where
        self.known[models[-1].version] = str(models[-1].params["sha256"])


# the web server during uploads ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerScenario(Scenario):
    """``datenlabor serve`` receiving uploads one after the other (replace, then append, ...)
    from a client; the server is killed while they run. Every upload answered 201 must be
    there, with its audit entry; the one in flight is sent again to a new server."""

    slug: str = "meldungen"
    token: str = ""
    server: Job | None = None
    base: str = ""
    uploads: int = 0
    inflight: tuple[Path, str] | None = None
    versions_acked: int = 0
    outcome: Counter[str] = field(default_factory=Counter)

    def setup(self) -> None:
        from datenlabor.service.gate import Gate

        pool = self.open()
        try:
            acc = Gate(pool).accounts
            acc.add_org("bmi", "Bundesministerium des Innern")
            acc.add_user("steward", org="bmi", role="steward", password="ein-langes-passwort-1")
            self.token = acc.create_token("steward", scope="write")
        finally:
            pool.store.dispose()
        self.start_server()

    def start_server(self) -> None:
        port = free_port()
        self.server = self.run(["serve", "--port", str(port)])
        self.wait_ready(port)

    def wait_ready(self, port: int) -> None:
        assert self.server is not None
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline and not self.server.done(), (
                f"server did not start: {self.server.text()[-3000:]}"
            )
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.02)

    def close(self) -> None:
        if self.server is not None and self.server.status is None:
            os.kill(self.server.pid, signal.SIGTERM)
            self.server.wait(30)

    def next_file(self) -> tuple[Path, str]:
        self.uploads += 1
        n = self.uploads
        mode = "replace" if n % 2 else "append"
        rows = antraege_rows(range(n * 10_000, n * 10_000 + 600), n)
        return write_antraege(self.root / f"meldung-{n}.csv", rows), mode

    def upload(self, client: httpx.Client, path: Path, mode: str) -> httpx.Response:
        first = self.versions_acked == 0
        url = (
            f"{self.base}/api/v1/datasets"
            if first
            else f"{self.base}/api/v1/datasets/{self.slug}/versions"
        )
        fields = {"mode": mode, "key": "Antrag-Nr"}
        if first:
            fields.update(dataset=self.slug, org="bmi")
        return client.post(
            url,
            headers={"Authorization": f"Bearer {self.token}"},
            data=fields,
            files={"file": (path.name, path.read_bytes(), "text/csv")},
            timeout=60,
        )

    def acknowledge(self, response: httpx.Response, path: Path) -> None:
        assert response.status_code == 201, response.text
        v = response.json()["version"]
        assert v["version"] > self.versions_acked and v["source_sha256"] == sha256(path)
        self.versions_acked = v["version"]
        self.acked.append(Ack(self.slug, v["version"], v["rows"], v["source_sha256"]))

    def args(self, i: int) -> list[str]:  # the server runs already; see trial()
        raise NotImplementedError

    def measure(self) -> float:
        path, mode = self.next_file()
        started = time.monotonic()
        with httpx.Client() as client:
            self.acknowledge(self.upload(client, path, mode), path)
        return time.monotonic() - started

    def trial(self, i: int, delay: float, where: str) -> str:
        assert self.server is not None
        stop = threading.Event()
        errors: list[str] = []

        def client_loop() -> None:
            with httpx.Client() as client:
                while not stop.is_set():
                    path, mode = self.next_file()
                    self.inflight = (path, mode)
                    try:
                        response = self.upload(client, path, mode)
                    except httpx.HTTPError:
                        return  # the server died under this request
                    try:
                        self.acknowledge(response, path)
                    except AssertionError as exc:
                        errors.append(f"{exc}: {response.status_code} {response.text[:300]}")
                        return
                    self.inflight = None

        thread = threading.Thread(target=client_loop)
        thread.start()
        time.sleep(delay)
        killed = self.server.kill()
        stop.set()
        # The next trial's server starts now (its start-up overlaps the checks) and serves
        # the retry.
        self.server, self.base = self.run(["serve", "--port", str(port := free_port())]), ""
        thread.join(60)
        assert killed and not errors, f"{where}: {errors}"
        check_pool(self.pool_dir, self.db_url, self.acked, where, self.findings)
        landed = self.after_kill(i, where)
        self.wait_ready(port)
        self.retry(i, landed, where)
        return f"killed after {sum(1 for a in self.acked if a.slug == self.slug)} acked, " + (
            "in-flight upload had landed" if landed else "in-flight upload undone"
        )

    def after_kill(self, i: int, where: str) -> bool:
        from datenlabor.access.audit import AuditLog

        pool = self.open()
        try:
            versions = pool.dataset(self.slug).versions() if self.versions_acked else []
            audit = AuditLog(pool.store).entries(action="upload", limit=10_000)
            started = AuditLog(pool.store).entries(action="upload-started", limit=10_000)
        finally:
            pool.store.dispose()
        audited = {e.datasets.get(self.slug) for e in audit if e.outcome == "ok"}
        missing = [a.version for a in self.acked if a.version not in audited]
        # (a version that landed while its server died unanswered has no entry: counted below)
        assert not missing, f"{where}: acknowledged uploads without audit entry: {missing}"
        assert len(versions) in (self.versions_acked, self.versions_acked + 1), where
        if len(versions) == self.versions_acked:
            return False
        assert self.inflight is not None and versions[-1].source_sha256 == sha256(self.inflight[0])
        if versions[-1].version not in audited:
            self.findings.counts["landed unacknowledged upload without audit entry"] += 1
            # ... but never unmentioned: its "upload-started" entry was written before it.
            mine = [e for e in started if (e.detail or {}).get("dataset") == self.slug]
            assert len(mine) >= len(versions), (
                f"{where}: {len(versions)} versions but {len(mine)} upload-started entries"
            )
        return True

    def retry(self, i: int, landed: bool, where: str) -> None:
        """Send the unanswered upload again, as its user would."""
        if self.inflight is None:
            return
        path, mode = self.inflight
        self.inflight = None
        with httpx.Client() as client:
            response = self.upload(client, path, mode)
        if landed and mode == "append":
            # It had landed: the same file is not appended twice, and the answer says why.
            assert response.status_code == 400 and "already" in response.text, response.text
            self.versions_acked += 1  # the version is there, now known to its user
            return
        self.acknowledge(response, path)


# -- the trials -----------------------------------------------------------------------------------

SCENARIOS = {
    "ingest": IngestScenario,
    "harvest": HarvestScenario,
    "sdc": SdcScenario,
    "train": TrainScenario,
    "server": ServerScenario,
}


def run_trials(sc: Scenario, trials: int) -> None:
    seed = kill_seed()
    rng = random.Random(seed)
    sc.setup()
    try:
        duration = sc.measure()
        span = duration * (1.8 if isinstance(sc, ServerScenario) else 1.2)
        outcomes: Counter[str] = Counter()
        started = time.monotonic()
        for i, delay in enumerate(delays(rng, trials, span)):
            where = (
                f"{sc.name} trial {i}: kill at {delay:.3f} s of ~{duration:.2f} s "
                f"(DATENLABOR_KILL_SEED={seed})"
            )
            outcomes[sc.trial(i, delay, where)] += 1
        # After all trials: the command users run to check the chain agrees.
        job = sc.run_ok(["audit", "verify"], f"{sc.name}: audit verify")
        assert "intact" in job.text()
        summary = (
            f"{sc.name}: {trials} kills over {span:.2f} s in {time.monotonic() - started:.0f} s "
            f"(seed {seed}): {dict(outcomes)}; seen: {dict(sc.findings.counts)}"
        )
        print("\n" + summary)
        report = os.environ.get("DATENLABOR_KILL_REPORT")  # pytest-xdist hides prints
        if report:
            with open(report, "a", encoding="utf-8") as fh:
                fh.write(summary + "\n")
        assert sum(outcomes.values()) == trials
    finally:
        close = getattr(sc, "close", None)
        if close is not None:
            close()


@pytest.mark.parametrize("op", list(SCENARIOS))
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_minus_nine_trials(
    op: str, backend: str, request: pytest.FixtureRequest, tmp_path: Path, zygote: Zygote
) -> None:
    db_url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    sc = SCENARIOS[op](root=tmp_path, db_url=db_url, zygote=zygote, name=f"{op}/{backend}")
    run_trials(sc, TRIALS)
