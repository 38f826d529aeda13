"""Crash safety: an ingest killed with SIGKILL at any moment leaves the pool consistent.

Requirement: "An ingest killed with SIGKILL at any moment leaves the pool readable with the
previous version intact and no half version visible."

The tests run real ``datenlabor ingest`` processes (``tests/fixtures/crash/ingest_runner.py``
runs ``datenlabor.cli.main`` after the imports, so a kill lands in the ingest itself rather
than in interpreter start-up) and kill them:

- at uniformly random moments over 1.2x the measured duration of an ingest, for each mode;
- at each critical point of the write protocol (files moved but not committed, Delta commit
  written but not recorded, lock just taken, stale commit rolled back), deterministically.

After each kill the pool must list only complete versions (the previous state, or the new
version complete and exact when the kill came after the recording), every listed version must
read back exactly, SQL must work, the lock must be free, and the next ordinary ingest must
produce exactly the right next version: a killed, unrecorded append must leave no rows behind.

Set ``DATENLABOR_SLOW_TESTS=1`` for the 120-trial variant, ``DATENLABOR_CRASH_SEED`` to
replay a run's kill moments (the seed is printed and named in every failure).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

import datenlabor
from datenlabor.errors import NotFound
from datenlabor.pool import delta
from datenlabor.pool.pool import Pool

RUNNER = Path(__file__).parent / "fixtures" / "crash" / "ingest_runner.py"
SLUG = "antraege"
KEY = "Antrag-Nr"
ROWS = 30_000  # per file: an ingest then takes about 1-2 s
MODES = ("replace", "append", "upsert")
DEFAULT_TRIALS = 10  # per mode: 30 random kills in the default run
SLOW_TRIALS = 40  # per mode: 120 random kills with DATENLABOR_SLOW_TESTS=1
CHANNELS = ("Online-Portal", "Post", "Persönlich vor Ort", "E-Mail")
SCHEMA = pa.schema(
    [
        (KEY, pa.int64()),
        ("Eingang", pa.date32()),
        ("Eingangskanal", pa.string()),
        ("Bearbeitungstage", pa.int64()),
        ("Betrag €", pa.float64()),
    ]
)


# -- test data --------------------------------------------------------------------------------


def write_csv(path: Path, keys: range, seed: int) -> pa.Table:
    """Write a German office CSV (cp1252, `;`, decimal comma, dd.mm.yyyy) of one row per key.

    Returns the rows as the Arrow table an ingest must produce from it.
    """
    rng = random.Random(seed)
    cols: dict[str, list] = {f.name: [] for f in SCHEMA}
    lines = [";".join(SCHEMA.names)]
    for k in keys:
        day = dt.date(2024, 1, 1) + dt.timedelta(days=(k * 7 + seed) % 366)
        channel = CHANNELS[rng.randrange(len(CHANNELS))]
        days = rng.randint(1, 120)
        cents = rng.randint(0, 9_999_999)
        lines.append(f"{k};{day:%d.%m.%Y};{channel};{days};{cents // 100},{cents % 100:02d}")
        for name, value in zip(SCHEMA.names, (k, day, channel, days, cents / 100), strict=True):
            cols[name].append(value)
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    return pa.table(cols, schema=SCHEMA)


def upsert_rows(current: pa.Table, new: pa.Table) -> pa.Table:
    """What an upsert by KEY must yield: current rows whose key is not in ``new``, plus ``new``."""
    new_keys = set(new.column(KEY).to_pylist())
    kept = current.filter(pa.array([k not in new_keys for k in current.column(KEY).to_pylist()]))
    return pa.concat_tables([kept, new])


_EXPECTED: dict[int, tuple[pa.Table, tuple[int, int]]] = {}


def checksum(table: pa.Table) -> tuple[int, int]:
    """Row count and an order-independent content checksum, the same as the pool computes."""
    con = duckdb.connect()
    con.register("t", table)
    n, h = con.execute("SELECT count(*), sum(hash(t)) FROM t").fetchone()  # type: ignore[misc]
    con.close()
    return int(n), int(h or 0)


def canonical(table: pa.Table) -> pa.Table:
    """Rows in key order with the expected types, for exact comparison."""
    return table.select(SCHEMA.names).cast(SCHEMA).sort_by(KEY).combine_chunks()


def expected_form(table: pa.Table) -> tuple[pa.Table, tuple[int, int]]:
    """canonical() and checksum() of an expected table, computed once per table."""
    if id(table) not in _EXPECTED:
        _EXPECTED[id(table)] = (canonical(table), checksum(table))
    return _EXPECTED[id(table)]


@dataclass
class Scenario:
    """Everything the crash tests need: input files and the exact expected states."""

    template: Path  # a pool with version 1 of SLUG (the base file), copied for each trial
    base_file: Path
    base: pa.Table
    files: dict[str, Path]  # per mode: the file the killed ingest loads
    expected: dict[str, pa.Table]  # per mode: version 2 when that ingest completes
    sha: dict[Path, str]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    root = tmp_path_factory.mktemp("crash")
    base_file = root / "antraege_basis.csv"
    base = write_csv(base_file, range(ROWS), seed=1)
    replace = write_csv(root / "antraege_neu.csv", range(ROWS // 4, ROWS // 4 + ROWS), seed=3)
    append = write_csv(root / "antraege_nachtrag.csv", range(ROWS, 2 * ROWS), seed=2)
    upsert = write_csv(root / "antraege_korrektur.csv", range(ROWS // 2, ROWS // 2 + ROWS), seed=4)
    files = {
        "replace": root / "antraege_neu.csv",
        "append": root / "antraege_nachtrag.csv",
        "upsert": root / "antraege_korrektur.csv",
    }
    expected = {
        "replace": replace,
        "append": pa.concat_tables([base, append]),
        "upsert": upsert_rows(base, upsert),
    }
    template = root / "template"
    with opened(template) as pool:
        pool.ingest(base_file, dataset=SLUG, key=KEY)
    sha = {f: hashlib.sha256(f.read_bytes()).hexdigest() for f in [base_file, *files.values()]}
    return Scenario(template, base_file, base, files, expected, sha)


# -- processes --------------------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a child: no DATENLABOR_* settings leak in from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATENLABOR_")}
    env.update(extra)
    return env


class Runner:
    """One ``datenlabor`` CLI process, started and warmed up, waiting for ``go()``."""

    def __init__(self, args: list[str], *, die_at: str | None = None) -> None:
        cmd = [sys.executable, str(RUNNER), "--wait"]
        if die_at:
            cmd += ["--die-at", die_at]
        self.proc = subprocess.Popen(
            [*cmd, "--", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=clean_env(),
        )
        assert self.proc.stdout is not None
        self.started = 0.0
        self._ready = False

    def wait_ready(self) -> None:
        if not self._ready:
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            if line != b"ready\n":
                _, err = self.proc.communicate(timeout=60)
                pytest.fail(f"runner did not start: {line!r}\n{err.decode()}")
            self._ready = True

    def go(self) -> None:
        self.wait_ready()
        assert self.proc.stdin is not None
        self.started = time.monotonic()
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()  # communicate() closes it later

    def finish(self, timeout: float = 120) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out.decode(), err.decode()

    def kill_after(self, delay: float) -> tuple[bool, float]:
        """SIGKILL at ``delay`` s after go() unless it finished; (killed?, ingest seconds)."""
        deadline = self.started + delay
        while self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(min(0.005, max(0.0, deadline - time.monotonic())))
        killed = False
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            killed = True
        _, err = self.proc.communicate(timeout=60)
        if not killed:
            assert self.proc.returncode == 0, f"ingest failed on its own: {err.decode()}"
        return killed, time.monotonic() - self.started


def ingest_args(pool_dir: Path, file: Path, mode: str) -> list[str]:
    args = ["--pool", str(pool_dir), "--user", "crash-test", "ingest", str(file)]
    args += ["--dataset", SLUG, "--mode", mode]
    return [*args, "--key", KEY] if mode == "upsert" else args


def cli(*args: str) -> str:
    """A CLI command in a fresh, ordinary ``python -m datenlabor.cli`` process."""
    res = subprocess.run(
        [sys.executable, "-m", "datenlabor.cli", *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
    )
    assert res.returncode == 0, f"datenlabor {' '.join(args)} failed: {res.stderr}"
    return res.stdout


# -- checks -----------------------------------------------------------------------------------


@contextlib.contextmanager
def opened(pool_dir: Path, **settings: object) -> Iterator[Pool]:
    """The pool as the children see it: SQLite store inside the pool, whatever the env says."""
    sqlite = f"sqlite:///{pool_dir.resolve() / 'metadata.sqlite'}"
    pool = datenlabor.open(pool_dir, database_url=sqlite, user="crash-test", **settings)
    try:
        yield pool
    finally:
        pool.store.dispose()


def assert_lock_free(pool_dir: Path) -> None:
    """Nobody holds the dataset's write lock (the kernel released the killed holder's)."""
    lock_file = pool_dir / "locks" / f"{SLUG}.lock"
    if not lock_file.exists():
        return
    with open(lock_file, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pytest.fail(f"lock {lock_file} is still held after the writer was killed")
        fcntl.flock(fh, fcntl.LOCK_UN)


def assert_versions(pool_dir: Path, states: list[tuple[pa.Table, Path]], where: str) -> None:
    """The pool lists exactly these versions (content, source file), each reads back exactly."""
    with opened(pool_dir) as pool:
        versions = pool.dataset(SLUG).versions()
        assert [v.version for v in versions] == list(range(1, len(states) + 1)), where
        handle = pool.dataset(SLUG)
        for v, (table, source) in zip(versions, states, strict=True):
            assert v.rows == table.num_rows, f"{where}: version {v.version} row count"
            assert v.source_name == source.name, f"{where}: version {v.version} source"
            got = handle.read(version=v.version)
            want, (n, h) = expected_form(table)
            assert got.num_rows == table.num_rows, f"{where}: version {v.version} rows read"
            assert canonical(got).equals(want), f"{where}: version {v.version} content"
            pinned = pool.query(
                f'SELECT count(*) AS n, sum(hash(t)) AS h FROM "{SLUG}@{v.version}" t'
            )
            assert pinned.to_pylist() == [{"n": n, "h": h}], f"{where}: SQL on version {v.version}"
        n, h = expected_form(states[-1][0])[1]
        current = pool.query(f"SELECT count(*) AS n, sum(hash(t)) AS h FROM {SLUG} t")
        assert current.to_pylist() == [{"n": n, "h": h}], f"{where}: SQL on the current version"


def delta_state(pool_dir: Path) -> tuple[int, int]:
    """(Delta version the store records as current, newest Delta version on disk)."""
    with opened(pool_dir) as pool:
        recorded = pool.dataset(SLUG).version().delta_version
        latest = delta.latest_version(pool.table_dir(SLUG))
    assert latest is not None
    return recorded, latest


def delta_table(table_dir: Path, version: int) -> pa.Table:
    """A Delta version's rows read straight from the table folder, bypassing the store."""
    import pyarrow.dataset as pads

    files, schema = delta.snapshot_files(table_dir, version)
    return pads.dataset(files, schema=schema, format="parquet").to_table()


def leftovers(pool_dir: Path) -> dict[str, int]:
    """Files a killed ingest left behind (harmless, but worth reporting)."""
    return {
        "staging": sum(1 for _ in (pool_dir / "staging").iterdir()),
        "tmp": sum(1 for _ in (pool_dir / "tmp").iterdir()),
    }


def check_after_kill(sc: Scenario, pool_dir: Path, mode: str, where: str) -> str:
    """Previous state or the complete new version, nothing in between; returns which."""
    assert_lock_free(pool_dir)
    with opened(pool_dir) as pool:
        numbers = [v.version for v in pool.dataset(SLUG).versions()]
    assert numbers in ([1], [1, 2]), f"{where}: versions {numbers}"
    if numbers == [1]:
        assert_versions(pool_dir, [(sc.base, sc.base_file)], where)
        recorded, latest = delta_state(pool_dir)
        return "previous (unrecorded Delta commit)" if latest > recorded else "previous"
    assert_versions(pool_dir, [(sc.base, sc.base_file), (sc.expected[mode], sc.files[mode])], where)
    return "new version"


def retry_and_check(sc: Scenario, pool_dir: Path, mode: str, state: str, where: str) -> None:
    """The next ordinary ingest works and yields exactly the right next version."""
    # A short lock wait: a lock left behind by the killed process would fail this at once.
    with opened(pool_dir, lock_timeout_s=5) as pool:
        if state.startswith("previous"):
            # Retry the interrupted load: exactly version 2, no trace of the killed attempt.
            info = pool.ingest(sc.files[mode], dataset=SLUG, mode=mode, key=KEY)
            states = [(sc.base, sc.base_file), (sc.expected[mode], sc.files[mode])]
        else:
            # The killed load had completed; the dataset accepts the next load.
            info = pool.ingest(sc.base_file, dataset=SLUG, mode="replace")
            states = [
                (sc.base, sc.base_file),
                (sc.expected[mode], sc.files[mode]),
                (sc.base, sc.base_file),
            ]
    assert info.version == len(states), where
    assert info.source_sha256 == sc.sha[states[-1][1]], where
    assert_versions(pool_dir, states, f"{where}, after the next ingest")
    recorded, latest = delta_state(pool_dir)
    assert recorded == latest, f"{where}: Delta table ahead of the store after the next ingest"


# -- random kills -----------------------------------------------------------------------------


def crash_seed() -> int:
    value = os.environ.get("DATENLABOR_CRASH_SEED")
    return int(value) if value else random.SystemRandom().randrange(2**31)


def kill_delays(rng: random.Random, trials: int, duration: float) -> list[float]:
    """Stratified uniform delays over [0, 1.2 x duration]: every part of an ingest gets hit."""
    span = 1.2 * duration
    delays = [(i + rng.random()) * span / trials for i in range(trials)]
    rng.shuffle(delays)
    return delays


def measure(sc: Scenario, tmp: Path, mode: str) -> float:
    """Duration of one uninterrupted ingest (after start-up), checked for the right result."""
    pool_dir = tmp / "measure"
    shutil.copytree(sc.template, pool_dir)
    runner = Runner(ingest_args(pool_dir, sc.files[mode], mode))
    runner.go()
    code, _, err = runner.finish()
    took = time.monotonic() - runner.started
    assert code == 0, err
    assert_versions(
        pool_dir,
        [(sc.base, sc.base_file), (sc.expected[mode], sc.files[mode])],
        f"uninterrupted {mode}",
    )
    shutil.rmtree(pool_dir)
    return took


def run_random_kills(sc: Scenario, tmp: Path, mode: str, trials: int) -> None:
    seed = crash_seed()
    rng = random.Random(seed)
    duration = measure(sc, tmp, mode)
    delays = kill_delays(rng, trials, duration)
    outcomes: Counter[str] = Counter()
    garbage: Counter[str] = Counter()

    def prepare(i: int) -> tuple[Path, Runner]:
        pool_dir = tmp / f"trial-{i}"
        shutil.copytree(sc.template, pool_dir)
        return pool_dir, Runner(ingest_args(pool_dir, sc.files[mode], mode))

    started = time.monotonic()
    pool_dir, runner = prepare(0)
    for i, delay in enumerate(delays):
        where = (
            f"{mode} trial {i}: kill at {delay:.3f} s of ~{duration:.2f} s "
            f"(DATENLABOR_CRASH_SEED={seed})"
        )
        runner.go()
        killed, _ = runner.kill_after(delay)
        # Start the next process now: its interpreter start-up overlaps the checks below.
        nxt = prepare(i + 1) if i + 1 < len(delays) else None
        garbage.update(leftovers(pool_dir))
        state = check_after_kill(sc, pool_dir, mode, where)
        outcomes[("killed: " if killed else "finished: ") + state] += 1
        retry_and_check(sc, pool_dir, mode, state, where)
        shutil.rmtree(pool_dir)
        if nxt is not None:
            pool_dir, runner = nxt
    print(
        f"\n{mode}: {trials} kills over 1.2 x {duration:.2f} s in {time.monotonic() - started:.0f} s "
        f"(seed {seed}): {dict(outcomes)}; left behind: {dict(garbage)}"
    )
    assert sum(outcomes.values()) == trials


@pytest.mark.parametrize("mode", MODES)
def test_random_sigkill_leaves_previous_or_complete_version(
    scenario: Scenario, tmp_path: Path, mode: str
) -> None:
    run_random_kills(scenario, tmp_path, mode, DEFAULT_TRIALS)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_random_sigkill_many_trials(scenario: Scenario, tmp_path: Path, mode: str) -> None:
    run_random_kills(scenario, tmp_path, mode, SLOW_TRIALS)


# -- kills at the critical points of the protocol ---------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_sigkill_at_each_commit_step_then_retry(
    scenario: Scenario, tmp_path: Path, mode: str
) -> None:
    sc = scenario
    pool_dir = tmp_path / "pool"
    shutil.copytree(sc.template, pool_dir)
    table_dir = next((pool_dir / "tables").iterdir())
    previous = [(sc.base, sc.base_file)]
    steps = ["after-move", "after-commit", "after-lock", "after-restore", "after-commit", None]
    # All processes start up together; each is released only when the one before has died.
    runners = [Runner(ingest_args(pool_dir, sc.files[mode], mode), die_at=s) for s in steps]
    for step, runner in zip(steps, runners, strict=True):
        where = f"{mode}, killed {step}"
        files_before = {p.name for p in table_dir.glob("*.parquet")}
        recorded_before, latest_before = delta_state(pool_dir)
        stale = latest_before > recorded_before  # an unrecorded commit awaits rollback
        runner.go()
        code, _, err = runner.finish()
        if step is None:
            assert code == 0, err
            break
        assert code == -signal.SIGKILL, f"{where}: exit {code}, {err}"
        assert_lock_free(pool_dir)
        assert_versions(pool_dir, previous, where)
        recorded, latest = delta_state(pool_dir)
        assert recorded == recorded_before, where
        newest = canonical(delta_table(table_dir, latest))
        # Prove that each kill hit the window it is named after.
        if step == "after-move":
            # Files moved into the table folder, but no Delta commit refers to them.
            assert latest == latest_before, where
            assert {p.name for p in table_dir.glob("*.parquet")} > files_before, where
        elif step == "after-commit":
            # The new data is the newest Delta version (after rolling back an older stale
            # commit first), yet readers above saw only the recorded version.
            assert latest == latest_before + (2 if stale else 1), where
            assert newest.equals(expected_form(sc.expected[mode])[0]), where
        elif step == "after-lock":
            assert latest == latest_before and stale, where
        elif step == "after-restore":
            # The rollback made the recorded version the newest state of the table again.
            assert stale and latest == latest_before + 1, where
            assert newest.equals(expected_form(sc.base)[0]), where
    final = [(sc.base, sc.base_file), (sc.expected[mode], sc.files[mode])]
    assert_versions(pool_dir, final, f"{mode}: retry after five kills")
    recorded, latest = delta_state(pool_dir)
    assert recorded == latest
    if mode != "append":
        return
    # A fresh ordinary CLI process sees the same (checked once, for the mode most at risk).
    listed = json.loads(cli("--pool", str(pool_dir), "versions", SLUG, "--json"))
    assert [(v["version"], v["rows"]) for v in listed] == [
        (1, sc.base.num_rows),
        (2, sc.expected[mode].num_rows),
    ]
    assert listed[1]["source_sha256"] == sc.sha[sc.files[mode]]
    counted = json.loads(
        cli("--pool", str(pool_dir), "sql", f"SELECT count(*) AS n FROM {SLUG}", "--format", "json")
    )
    assert counted == [{"n": sc.expected[mode].num_rows}]


def test_sigkill_during_first_ingest_leaves_no_dataset(scenario: Scenario, tmp_path: Path) -> None:
    sc = scenario
    pool_dir = tmp_path / "pool"
    steps = ["after-commit", "after-record", None]
    runners = [Runner(ingest_args(pool_dir, sc.base_file, "replace"), die_at=s) for s in steps]
    # Killed after its Delta table was created but before it was recorded: no dataset.
    runners[0].go()
    assert runners[0].finish()[0] == -signal.SIGKILL
    assert_lock_free(pool_dir)
    with opened(pool_dir) as pool:
        assert pool.datasets() == []
        with pytest.raises(NotFound):
            pool.dataset(SLUG)
    # Killed right after recording: version 1 is complete.
    runners[1].go()
    assert runners[1].finish()[0] == -signal.SIGKILL
    assert_versions(pool_dir, [(sc.base, sc.base_file)], "first ingest killed after recording")
    # The next load is version 2.
    runners[2].go()
    code, _, err = runners[2].finish()
    assert code == 0, err
    assert_versions(pool_dir, [(sc.base, sc.base_file)] * 2, "after a killed first ingest")
