"""Concurrent ingests into one dataset from several real processes.

Requirement: "Concurrent ingests into the same dataset from two processes: both versions land
or one gets a clear conflict error; none is lost silently."

Each test starts real ``datenlabor ingest`` processes (``tests/fixtures/crash/ingest_runner.py``
runs ``datenlabor.cli.main`` once released, so all of them start their ingest at the same
moment), waits for all of them and then checks the pool against what the processes reported:

- every process exits 0 (its version landed) or 4 (conflict, with a clear message);
- versions are 1 plus one per successful process, numbered without gaps, each with the
  source sha256 of exactly one successful process, and with exactly that process's rows
  (replace) or the previous rows plus that process's rows (append);
- the Delta table holds no commit the metadata store does not know.

One variant runs against PostgreSQL as metadata store (``DATENLABOR_TEST_POSTGRES_URL``;
skipped when unreachable, failed when ``CI=true``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import datenlabor
from datenlabor.pool import delta
from datenlabor.pool.locks import dataset_lock
from datenlabor.pool.pool import Pool

RUNNER = Path(__file__).parent / "fixtures" / "crash" / "ingest_runner.py"
SLUG = "antraege"
KEY = "Antrag-Nr"
ROWS = 5_000  # per file
CHANNELS = ("Online-Portal", "Post", "Persönlich vor Ort", "E-Mail")
CONFLICT = "is being changed by another process"


# -- test data --------------------------------------------------------------------------------


@dataclass
class Load:
    """One input file: the keys it holds and its sha256."""

    file: Path
    keys: range
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        self.sha = hashlib.sha256(self.file.read_bytes()).hexdigest()


def write_csv(path: Path, keys: range, seed: int) -> Load:
    """A German office CSV (cp1252, `;`, decimal comma, dd.mm.yyyy), one row per key."""
    rng = random.Random(seed)
    lines = [f"{KEY};Eingang;Eingangskanal;Bearbeitungstage;Betrag €"]
    for k in keys:
        lines.append(
            f"{k};{1 + k % 28:02d}.{1 + k % 12:02d}.2024;{rng.choice(CHANNELS)};"
            f"{rng.randint(1, 120)};{rng.randint(0, 99_999)},{rng.randint(0, 99):02d}"
        )
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    return Load(path, keys)


def loads_for(tmp: Path, n: int) -> tuple[Load, list[Load]]:
    """Version 1 and ``n`` further files with pairwise disjoint keys."""
    base = write_csv(tmp / "antraege_0.csv", range(ROWS), seed=0)
    more = [
        write_csv(tmp / f"antraege_{i}.csv", range(i * ROWS, (i + 1) * ROWS), seed=i)
        for i in range(1, n + 1)
    ]
    return base, more


# -- processes --------------------------------------------------------------------------------


def child_env(
    database_url: str | None = None, lock_timeout_s: float | None = None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATENLABOR_")}
    if database_url:
        env["DATENLABOR_DATABASE_URL"] = database_url
    if lock_timeout_s is not None:
        env["DATENLABOR_LOCK_TIMEOUT_S"] = str(lock_timeout_s)
    return env


@dataclass
class Result:
    load: Load
    code: int
    out: str
    err: str
    seconds: float


class Ingest:
    """A real ``datenlabor ingest --json`` process, started and waiting to be released."""

    def __init__(
        self, pool_dir: Path, load: Load, mode: str, env: dict[str, str], hold_lock: float = 0
    ) -> None:
        self.load = load
        args = ["--pool", str(pool_dir), "--user", "conc-test", "ingest", str(load.file)]
        args += ["--dataset", SLUG, "--mode", mode, "--json"]
        if mode == "upsert":
            args += ["--key", KEY]
        extra = ["--hold-lock", str(hold_lock)] if hold_lock else []
        self.proc = subprocess.Popen(
            [sys.executable, str(RUNNER), "--wait", *extra, "--", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.started = 0.0

    def ready(self) -> Ingest:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line == b"ready\n", f"runner did not start: {line!r}"
        return self

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.started = time.monotonic()
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def result(self, timeout: float = 300) -> Result:
        out, err = self.proc.communicate(timeout=timeout)
        took = time.monotonic() - self.started
        return Result(self.load, self.proc.returncode, out.decode(), err.decode(), took)


def run_together(pool_dir: Path, loads: list[Load], mode: str, env: dict[str, str]) -> list[Result]:
    """Start one ingest per load, release them all at once, wait for all."""
    procs = [Ingest(pool_dir, load, mode, env) for load in loads]
    for p in procs:
        p.ready()
    for p in procs:
        p.go()
    return [p.result() for p in procs]


@contextlib.contextmanager
def opened(pool_dir: Path, database_url: str | None = None, **kw: object) -> Iterator[Pool]:
    """The pool as the children see it; None: SQLite inside the pool, whatever the env says."""
    url = database_url or f"sqlite:///{pool_dir.resolve() / 'metadata.sqlite'}"
    pool = datenlabor.open(pool_dir, database_url=url, user="conc-test", **kw)
    try:
        yield pool
    finally:
        pool.store.dispose()


def lock_held(pool_dir: Path) -> bool:
    """Whether some process holds the dataset's write lock right now."""
    path = pool_dir / "locks" / f"{SLUG}.lock"
    if not path.exists():
        return False
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


# -- checks -----------------------------------------------------------------------------------


def assert_conflict_message(r: Result) -> None:
    """Exit 4 comes with a one-line, plain message that names the dataset."""
    assert r.code == 4, r.err
    assert f"dataset '{SLUG}' {CONFLICT}" in r.err, r.err
    assert "Traceback" not in r.err, r.err
    assert r.out == "", r.out


def check_outcome(
    pool_dir: Path, base: Load, results: list[Result], mode: str, database_url: str | None
) -> list[Result]:
    """Every process landed a version or failed cleanly with a conflict; nothing else happened."""
    for r in results:
        assert r.code in (0, 4), f"{r.load.file.name}: exit {r.code}\n{r.err}"
        if r.code == 4:
            assert_conflict_message(r)
    won = [r for r in results if r.code == 0]
    assert won, "no process succeeded"
    print(
        f"\n{mode}: exit codes {[r.code for r in results]}, seconds {[round(r.seconds, 1) for r in results]}"
    )
    reported = {json.loads(r.out)["version"]: r for r in won}
    assert len(reported) == len(won), "two processes reported the same version number"

    with opened(pool_dir, database_url) as pool:
        handle = pool.dataset(SLUG)
        versions = handle.versions()
        # 1 + one version per successful process, numbered without gaps.
        assert [v.version for v in versions] == list(range(1, len(won) + 2))
        assert versions[0].source_sha256 == base.sha
        # Each later version is exactly one successful process's load, none is missing.
        assert sorted(reported) == [v.version for v in versions[1:]]
        assert sorted(v.source_sha256 for v in versions[1:]) == sorted(r.load.sha for r in won)
        deltas = [v.delta_version for v in versions]
        assert deltas == sorted(set(deltas)), f"Delta versions not increasing: {deltas}"
        keys: list[int] = list(base.keys)
        for v in versions[1:]:
            r = reported[v.version]
            assert v.source_sha256 == r.load.sha
            assert json.loads(r.out)["rows"] == v.rows
            keys = [*keys, *r.load.keys] if mode == "append" else list(r.load.keys)
            assert v.rows == len(keys), f"version {v.version}: {v.rows} rows, expected {len(keys)}"
            got = handle.read(version=v.version, columns=[KEY]).column(KEY).to_pylist()
            assert sorted(got) == sorted(keys), f"version {v.version} holds other rows"
        if mode == "append":
            assert versions[-1].rows == ROWS + sum(len(r.load.keys) for r in won)
        n = pool.query(f"SELECT count(*) AS n, count(DISTINCT {json.dumps(KEY)}) AS k FROM {SLUG}")
        assert n.to_pylist() == [{"n": len(keys), "k": len(keys)}]
        # No commit in the Delta table that the store does not know about.
        assert delta.latest_version(pool.table_dir(SLUG)) == versions[-1].delta_version
    return won


def prepare_pool(pool_dir: Path, base: Load, database_url: str | None) -> None:
    with opened(pool_dir, database_url) as pool:
        pool.ingest(base.file, dataset=SLUG, key=KEY)


# -- PostgreSQL -------------------------------------------------------------------------------


# -- tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["append", "replace"])
def test_two_concurrent_ingests_both_land(tmp_path: Path, mode: str) -> None:
    base, loads = loads_for(tmp_path, 2)
    pool_dir = tmp_path / "pool"
    prepare_pool(pool_dir, base, None)
    results = run_together(pool_dir, loads, mode, child_env())
    won = check_outcome(pool_dir, base, results, mode, None)
    # With the default lock wait (600 s) nobody has a reason to give up.
    assert len(won) == 2, [r.err for r in results]


@pytest.mark.parametrize(
    ("mode", "store_url"),
    [("append", "sqlite"), ("replace", "sqlite"), ("append", "postgresql")],
    indirect=["store_url"],
)
def test_four_concurrent_ingests(tmp_path: Path, mode: str, store_url: str | None) -> None:
    """Four at once; a 1 s lock wait lets some give up on a slow machine, which is allowed."""
    base, loads = loads_for(tmp_path, 4)
    pool_dir = tmp_path / "pool"
    prepare_pool(pool_dir, base, store_url)
    results = run_together(pool_dir, loads, mode, child_env(store_url, lock_timeout_s=1))
    won = check_outcome(pool_dir, base, results, mode, store_url)
    # A process that gave up can simply retry: its load becomes the next version.
    lost = [r for r in results if r.code == 4]
    with opened(pool_dir, store_url) as pool:
        for r in lost:
            pool.ingest(r.load.file, dataset=SLUG, mode=mode)
        versions = pool.dataset(SLUG).versions()
    assert len(versions) == 1 + len(won) + len(lost) == 5
    if mode == "append":
        assert versions[-1].rows == 5 * ROWS


def test_concurrent_first_ingests_create_one_dataset(tmp_path: Path, store_url: str | None) -> None:
    """Two processes create the same dataset in a fresh pool (and a fresh metadata store)."""
    _, loads = loads_for(tmp_path, 2)
    pool_dir = tmp_path / "pool"
    results = run_together(pool_dir, loads, "replace", child_env(store_url))
    for r in results:
        assert r.code == 0, r.err
    with opened(pool_dir, store_url) as pool:
        assert [d.slug for d in pool.datasets()] == [SLUG]
        versions = pool.dataset(SLUG).versions()
        assert [v.version for v in versions] == [1, 2]
        assert sorted(v.source_sha256 for v in versions) == sorted(ld.sha for ld in loads)
        for v in versions:
            load = next(ld for ld in loads if ld.sha == v.source_sha256)
            keys = pool.dataset(SLUG).read(version=v.version, columns=[KEY]).column(KEY)
            assert sorted(keys.to_pylist()) == list(load.keys)
    # Both created a table folder? Only one may be in use.
    assert len(list((pool_dir / "tables").iterdir())) == 1


def test_lock_timeout_gives_clear_conflict(tmp_path: Path) -> None:
    """A writer busy inside its critical section makes a second one with a 0.5 s wait give up.

    The first writer is a real upsert that stays in the lock for 6 s (``--hold-lock``): even
    an upsert into a million-row dataset holds the lock only 1-2 s, too close to the 0.5 s
    wait plus the second writer's own parsing time for a test that must never flake.
    """
    base, (slow_load, quick_load) = loads_for(tmp_path, 2)
    pool_dir = tmp_path / "pool"
    prepare_pool(pool_dir, base, None)
    slow = Ingest(pool_dir, slow_load, "upsert", child_env(), hold_lock=6).ready()
    quick = Ingest(pool_dir, quick_load, "append", child_env(lock_timeout_s=0.5)).ready()
    slow.go()
    # Release the quick one only once the slow one is inside its critical section.
    deadline = time.monotonic() + 120
    while not lock_held(pool_dir):
        assert slow.proc.poll() is None, slow.result().err
        assert time.monotonic() < deadline, "the slow writer never took the lock"
        time.sleep(0.01)
    quick.go()
    q = quick.result()
    s = slow.result()
    assert s.code == 0, s.err
    assert_conflict_message(q)
    assert q.seconds >= 0.5, "gave up before the lock wait was over"
    with opened(pool_dir) as pool:
        versions = pool.dataset(SLUG).versions()
    assert [(v.version, v.source_sha256) for v in versions] == [(1, base.sha), (2, slow_load.sha)]
    assert versions[-1].rows == 2 * ROWS  # the upsert added its rows, nothing of the other
    # Retrying after the conflict works and loses nothing.
    again = Ingest(pool_dir, quick_load, "append", child_env(lock_timeout_s=0.5)).ready()
    again.go()
    r = again.result()
    assert r.code == 0, r.err
    with opened(pool_dir) as pool:
        versions = pool.dataset(SLUG).versions()
        keys = pool.dataset(SLUG).read(columns=[KEY]).column(KEY).to_pylist()
    assert [v.source_sha256 for v in versions] == [base.sha, slow_load.sha, quick_load.sha]
    assert sorted(keys) == [*base.keys, *slow_load.keys, *quick_load.keys]


def test_conflict_message_states_the_real_wait(tmp_path: Path) -> None:
    """The message tells how long the process waited: 0.5 s here, not "0 s"."""
    (load,) = loads_for(tmp_path, 1)[1]
    pool_dir = tmp_path / "pool"
    waiter = Ingest(pool_dir, load, "replace", child_env(lock_timeout_s=0.5)).ready()
    # This test process holds the dataset's lock the way a writer does.
    with dataset_lock(pool_dir / "locks", SLUG, timeout_s=0):
        waiter.go()
        w = waiter.result()
    assert_conflict_message(w)
    assert "0.5 s" in w.err, f"the message misstates the wait: {w.err.strip()}"
