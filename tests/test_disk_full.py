"""Disk full: a pool on a real, small file system (a 32 MB tmpfs mounted for the test).

An ingest that does not fit must fail with a clear error (exit 1, "no space left" in words,
naming the file), leave the previous version intact and readable, show no half version, and
succeed once space is freed. The same for SQL whose DuckDB spill folder (inside the pool)
runs full, and for the quality report computed at ingest.

The sweep runs the same ingest at many fill levels of the disk, so the disk runs full in
every phase of an ingest in turn: staging the Parquet files, the Delta commit, the quality
report, recording the version in the SQLite metadata store next to the data.

The test mounts a tmpfs (it runs as root in CI). Where mounting is not permitted it fails:
a skipped disk-full test would hide exactly what it is there to find.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import datenlabor

SIZE_MB = 32  # room for a few versions of the 1.4 MB table


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """Mounts tmpfs file systems of a given size in MB; unmounted after the test."""
    mounted: list[Path] = []

    def mount(size_mb: int) -> Path:
        mnt = tmp_path / f"disk{len(mounted)}"
        mnt.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(mnt)],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, f"cannot mount a tmpfs here (needed): {proc.stderr}"
        mounted.append(mnt)
        return mnt

    try:
        yield mount
    finally:
        for mnt in mounted:
            subprocess.run(["umount", "-l", str(mnt)], check=True)


@pytest.fixture
def small_disk(tmpfs: Callable[[int], Path]) -> Path:
    return tmpfs(SIZE_MB)


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(disk: Path, leave: int) -> Path:
    """A filler file that leaves ``leave`` bytes free (tmpfs allocates exactly)."""
    filler = disk / "filler.bin"
    filler.unlink(missing_ok=True)
    size = max(0, free_bytes(disk) - leave)
    with filler.open("wb") as fh:
        chunk = os.urandom(1 << 20)
        while size > 0:
            n = min(size, len(chunk))
            try:
                fh.write(chunk[:n])
                fh.flush()
            except OSError:
                break
            size -= n
    return filler


def write_csv(path: Path, rows: int, seed: int, encoding: str = "cp1252") -> Path:
    """Random, badly compressible German CSV: ';', decimal comma, dd.mm.yyyy, AGS as text."""
    rng = random.Random(seed)
    lines = ["Kreis;Datum;Betrag;Vermerk"]
    for _ in range(rows):
        lines.append(
            f"{rng.randrange(1, 16):02d}{rng.randrange(1000):03d}{rng.randrange(1000):03d};"
            f"{rng.randrange(1, 29):02d}.{rng.randrange(1, 13):02d}.2024;"
            f"{rng.randrange(10**9) / 100:.2f}".replace(".", ",")
            + f";{rng.getrandbits(64):016x}-Prüfvermerk"
        )
    path.write_text("\n".join(lines) + "\n", encoding=encoding)
    return path


def cli(pool: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "datenlabor.cli", "--pool", str(pool), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )
    return proc.returncode, proc.stdout, proc.stderr


def state(pool_dir: Path) -> list[tuple[int, int, str | None, str]]:
    """(version, rows, source SHA-256, content fingerprint) of every version, read back."""
    pool = datenlabor.open(pool_dir, user="check")
    try:
        out = []
        for v in pool.dataset("zahlungen").versions():
            table = pool.dataset("zahlungen").read(version=v.version)
            assert table.num_rows == v.rows
            [row] = pool.query(
                f'SELECT CAST(sum(hash(t)) AS VARCHAR) AS h FROM "zahlungen@{v.version}" t'
            ).to_pylist()
            out.append((v.version, v.rows, v.source_sha256, str(row["h"])))
        [now] = pool.query("SELECT count(*) AS n FROM zahlungen").to_pylist()
        assert now["n"] == out[-1][1], "SQL does not see the newest version"
        return out
    finally:
        pool.store.dispose()


def failed_in(exc: BaseException) -> str:
    """Where the disk ran full: the innermost Datenlabor function of the cause's traceback."""
    from datenlabor.pool.diskfull import disk_full_cause

    cause = disk_full_cause(exc.__cause__) if exc.__cause__ else None
    frames = traceback.extract_tb(cause.__traceback__) if cause is not None else []
    ours = [f for f in frames if "/datenlabor/" in f.filename]
    return f"{Path(ours[-1].filename).stem}.{ours[-1].name}" if ours else "?"


def assert_clean_failure(code: int, err: str, name: str) -> None:
    assert code == 1, f"exit {code}: {err}"
    low = err.lower()
    assert "no space left" in low, err
    assert name in err, f"the message does not name {name}: {err}"
    assert "Traceback" not in err, err


def test_ingest_that_does_not_fit_fails_cleanly_at_every_fill_level(
    small_disk: Path, tmp_path: Path
) -> None:
    pool_dir = small_disk / "pool"
    first = write_csv(tmp_path / "zahlungen-2023.csv", 2_000, 1)
    # UTF-8: read in place (a cp1252 file is transcoded into the pool's tmp/ first, and the
    # sweep would mostly find the disk full there).
    big = write_csv(tmp_path / "zahlungen-2024.csv", 40_000, 2, "utf-8")  # ~1.4 MB Parquet
    code, _out, err = cli(pool_dir, "ingest", str(first), "--dataset", "zahlungen")
    assert code == 0, err

    # In-process from here (a subprocess per fill level would cost seconds each); the CLI's
    # own handling is checked once at the end.
    from datenlabor.pool.diskfull import DiskFull

    outcomes: Counter[str] = Counter()
    where: Counter[str] = Counter()

    def attempt(leave: int) -> bool:
        """One ingest with ``leave`` bytes free; True if it succeeded (checked either way)."""
        previous = state(pool_dir)
        filler = fill(small_disk, leave)
        # A small CSV sample (the sniffer's copy of the head of the file would otherwise be
        # where the disk runs full, every time).
        pool = datenlabor.open(pool_dir, user="test", csv_sample_bytes=64 * 1024)
        try:
            pool.ingest(big, dataset="zahlungen", mode="replace")
            ok = True
        except DiskFull as exc:
            assert "no space left" in str(exc).lower() and big.name in str(exc), str(exc)
            where[failed_in(exc)] += 1
            ok = False
        finally:
            pool.store.dispose()
            filler.unlink()  # the checks need a little room (SQLite journal, DuckDB)
        now = state(pool_dir)
        if ok:
            assert now[:-1] == previous and now[-1][1] == 40_000, f"leaving {leave} bytes"
        else:
            assert now == previous, f"leaving {leave} bytes: state changed by a failed ingest"
        assert not list((pool_dir / "staging").iterdir()), "staged files left behind"
        outcomes["succeeded" if ok else "failed cleanly"] += 1
        return ok

    # Coarse steps up to the first fill level where the ingest fits, then fine steps just
    # below it: there the disk runs full in the last phases (Delta log, quality, store).
    step, leave = 96 * 1024, 32 * 1024
    while not attempt(leave):
        leave += step
        assert leave < SIZE_MB << 20, "never succeeded"
    for fine in range(leave - step + 16 * 1024, leave, 16 * 1024):
        attempt(fine)
    print(
        f"\ndisk full sweep: {dict(outcomes)}; fits with {leave >> 10} KB free; "
        f"ran full in: {dict(where)}"
    )
    assert outcomes["failed cleanly"] >= 8

    # The command line, as a user meets it: exit 1, the file named, nothing changed.
    previous = state(pool_dir)
    filler = fill(small_disk, 256 * 1024)
    code, _out, err = cli(pool_dir, "ingest", str(big), "--dataset", "zahlungen")
    assert_clean_failure(code, err, big.name)
    filler.unlink()
    assert state(pool_dir) == previous
    code, out, err = cli(pool_dir, "ingest", str(big), "--dataset", "zahlungen", "--json")
    assert code == 0, err
    assert json.loads(out)["version"] == previous[-1][0] + 1


def test_sql_spilling_into_a_full_disk_fails_cleanly(
    tmpfs: Callable[[int], Path], tmp_path: Path
) -> None:
    # Room for the spill files of the query below once the filler is gone.
    small_disk = tmpfs(96)
    pool_dir = small_disk / "pool"
    src = write_csv(tmp_path / "zahlungen.csv", 2_000, 3)
    code, _out, err = cli(pool_dir, "ingest", str(src), "--dataset", "zahlungen")
    assert code == 0, err
    before = state(pool_dir)
    # An aggregation far larger than DuckDB's memory limit must spill into <pool>/tmp.
    sql = (
        "SELECT count(DISTINCT md5(k::VARCHAR) || md5((k + 1)::VARCHAR)) AS n "
        "FROM range(1000000) r(k)"
    )
    small = {"DATENLABOR_DUCKDB_MEMORY": "32MB"}
    filler = fill(small_disk, 512 * 1024)
    code, out, err = cli(pool_dir, "sql", sql, "--format", "json", env=small)
    filler.unlink()
    assert code == 1, f"exit {code}: {out[:300]} {err}"
    assert "no space left" in err.lower() and "Traceback" not in err, err
    assert not [p for p in (pool_dir / "tmp").iterdir()], "spill files left behind"
    assert state(pool_dir) == before
    code, out, err = cli(pool_dir, "sql", sql, "--format", "json", env=small)
    assert code == 0, err
    assert json.loads(out) == [{"n": 1_000_000}]
