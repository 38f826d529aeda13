"""Leftovers of killed operations are removed; every version stays readable."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from datenlabor.pool.cleanup import (
    MODELS_DIR,
    CleanupReport,
    model_lock_name,
    remove_dead_models,
    work_prefix,
)


def test_cleanup_removes_leftovers_and_keeps_all_versions(sqlite_pool, tmp_path: Path) -> None:
    pool = sqlite_pool
    for i in range(3):
        f = tmp_path / f"v{i}.csv"
        f.write_text("a;b\n" + "".join(f"{j};{i}\n" for j in range(100)), encoding="utf-8")
        pool.ingest(f, dataset="werte")  # replace: files of v1, v2 leave the current snapshot
    table = pool.table_dir("werte")
    before = {
        v.version: pool.dataset("werte").read(version=v.version)
        for v in pool.dataset("werte").versions()
    }

    # what killed processes leave behind
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)
    host_part = work_prefix().split("~")[1]
    dead_work = pool.root / "tmp" / f"{dead_pid}~{host_part}~abc"
    dead_work.mkdir()
    (dead_work / "transcoded-utf8.csv").write_text("x" * 1000)
    dead_stage = pool.root / "staging" / f"{dead_pid}~{host_part}~abc" / "u1"
    dead_stage.mkdir(parents=True)
    (dead_stage / "part-0.parquet").write_bytes(b"PAR1")
    live_work = pool.root / "tmp" / f"{work_prefix()}live"  # this process: must stay
    live_work.mkdir()
    foreign = pool.root / "tmp" / f"{dead_pid}~other-host~x"  # another host's: must stay
    foreign.mkdir()
    some_file = next(table.glob("*.parquet"))
    orphan = table / "000000009-00000-deadbeef0000.parquet"
    shutil.copy(some_file, orphan)
    orphan_table = pool.root / "tables" / "neu-0badc0de"
    (orphan_table / "_delta_log").mkdir(parents=True)

    report = pool.cleanup()
    assert sorted(report.work_folders) == sorted(
        [str(dead_work.relative_to(pool.root)), str(dead_stage.parent.relative_to(pool.root))]
    )
    assert report.orphan_files == [str(orphan.relative_to(pool.root))]
    assert report.orphan_tables == ["tables/neu-0badc0de"]
    assert report.bytes_freed > 1000
    assert live_work.exists() and foreign.exists()
    assert not orphan.exists() and not orphan_table.exists() and not dead_work.exists()
    # time travel still works for every version
    for number, table_data in before.items():
        assert pool.dataset("werte").read(version=number).equals(table_data)
    assert pool.cleanup().to_dict() == {
        "work_folders": [],
        "orphan_files": [],
        "orphan_tables": [],
        "purged_datasets": [],
        "bytes_freed": 0,
    }


HOLD_LOCK = """
import sys, time
from pathlib import Path
from datenlabor.pool.locks import dataset_lock
with dataset_lock(Path(sys.argv[1]), sys.argv[2], timeout_s=10):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes stdin
"""


@contextlib.contextmanager
def lock_held_elsewhere(lock_dir: Path, name: str) -> Iterator[None]:
    """Another process holds the lock ``name``, as a live writer does."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(lock_dir), name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)


def _confidential(pool: Any, tmp_path: Path) -> Path:
    """A confidential dataset whose protected table of version 1 was computed once."""
    from sqlalchemy import select

    from datenlabor.access.principal import local_admin
    from datenlabor.service import confidential
    from datenlabor.service.gate import Gate
    from datenlabor.store.models import Dataset

    f = tmp_path / "antraege.csv"
    rows = [f"{k};{a}" for k in ("05111", "05112", "09162") for a in ("A", "B") for _ in range(4)]
    f.write_text("kreis;art\n" + "\n".join(rows) + "\n", encoding="utf-8")
    pool.ingest(f, dataset="antraege")
    gate = Gate(pool)
    rules = {"dims": [{"name": "kreis", "hierarchy": "ags"}, {"name": "art", "hierarchy": "flat"}]}
    confidential.set_rules(gate, local_admin("t"), "antraege", rules)
    with pool.store.session() as s:
        d = s.scalar(select(Dataset).where(Dataset.slug == "antraege"))
        assert d is not None
        done = confidential.protected(gate, d, d.versions[-1])
    return done.path


def test_cleanup_removes_what_a_killed_protected_table_write_left(
    sqlite_pool: Any, tmp_path: Path
) -> None:
    pool = sqlite_pool
    table = _confidential(pool, tmp_path)
    folder = table.parent
    complete = sorted(p.name for p in folder.iterdir())
    assert complete == sorted([table.name, table.with_suffix(".json").name])
    # a writer killed while writing the table (or its report), and one killed between the
    # table and its report: the table alone is incomplete and is computed again on next use
    tmp = folder / ".3f2a9c0d1e4b4f6a8b7c6d5e4f3a2b1c.tmp"
    tmp.write_bytes(b"PAR1" + b"\0" * 4096)
    unreported = folder / "v1-00000000000000000000.parquet"
    shutil.copy(table, unreported)

    # while a live writer holds the lock nothing of it is touched, and cleanup does not wait
    with lock_held_elsewhere(pool.root / "locks", "disclosure-antraege"):
        started = time.monotonic()
        assert pool.cleanup().orphan_files == []
        assert time.monotonic() - started < pool.settings.lock_timeout_s
    assert tmp.exists() and unreported.exists()

    report = pool.cleanup()
    assert sorted(report.orphan_files) == sorted(
        str(p.relative_to(pool.root)) for p in (tmp, unreported)
    )
    assert report.bytes_freed >= 4100
    assert sorted(p.name for p in folder.iterdir()) == complete  # the complete table stays
    assert pool.cleanup().orphan_files == []


def test_cleanup_of_model_artifacts_of_a_killed_training(tmp_path: Path) -> None:
    root = tmp_path / "pool"
    models = root / MODELS_DIR
    models.mkdir(parents=True)
    recorded = models / "triage-0123456789ab.npz"  # a model record points to it
    recorded.write_bytes(b"x" * 100)
    partial = models / ".triage-aaaaaaaaaaaa.npz.partial"  # killed while saving
    partial.write_bytes(b"x" * 50)
    unrecorded = models / "triage-bbbbbbbbbbbb.npz"  # killed before its record was committed
    unrecorded.write_bytes(b"x" * 70)
    other = models / "notes.txt"  # not a model artifact: not cleanup's to judge
    other.write_text("bleibt")
    records = {recorded.relative_to(root).as_posix()}
    asked = []

    def artifacts() -> set[str]:
        asked.append(1)
        return records

    # a training of the same name running: its files are kept
    report = CleanupReport()
    with lock_held_elsewhere(root / "locks", model_lock_name("triage")):
        remove_dead_models(root, artifacts, report=report)
    assert partial.exists() and unrecorded.exists() and report.orphan_files == []

    # a training that committed its record meanwhile: the store is asked again under the lock
    def commits_meanwhile() -> set[str]:
        if asked:
            records.add(unrecorded.relative_to(root).as_posix())
        return artifacts()

    asked.clear()
    remove_dead_models(root, commits_meanwhile, report=report)
    assert report.orphan_files == [str(partial.relative_to(root))]
    assert unrecorded.exists()

    records.discard(unrecorded.relative_to(root).as_posix())
    report = CleanupReport()
    remove_dead_models(root, artifacts, report=report)
    assert report.orphan_files == [str(unrecorded.relative_to(root))]
    assert report.bytes_freed == 70
    assert sorted(p.name for p in models.iterdir()) == ["notes.txt", recorded.name]


def test_pool_cleanup_removes_model_files_no_record_points_to(pool) -> None:  # type: ignore[no-untyped-def]
    from datenlabor.assist.registry import register

    class Saved:
        def save(self, path: Path) -> None:
            Path(path).write_bytes(b"model")

    info = register(
        pool,
        Saved(),
        name="triage",
        dataset=None,
        dataset_version=None,
        params={},
        metrics={},
        user="test@example.org",
        activate=False,
    )
    assert info.artifact
    kept = pool.root / info.artifact
    folder = pool.root / MODELS_DIR
    unrecorded = folder / "triage-bbbbbbbbbbbb.npz"  # written, then killed before the record
    unrecorded.write_bytes(b"x" * 70)
    partial = folder / ".triage-cccccccccccc.npz.partial"  # killed while saving
    partial.write_bytes(b"x" * 30)

    report = pool.cleanup()

    assert kept.read_bytes() == b"model"
    assert not unrecorded.exists() and not partial.exists()
    assert {str(unrecorded.relative_to(pool.root)), str(partial.relative_to(pool.root))} <= set(
        report.orphan_files
    )


def test_cleanup_removes_what_a_killed_dashboard_save_left(sqlite_pool: Any) -> None:
    from datenlabor.access.principal import local_admin
    from datenlabor.dashboards import versions
    from test_dashboards import SPEC

    pool, admin = sqlite_pool, local_admin("t")
    saved = versions.put(pool, admin, "leistung", SPEC)
    folder = pool.root / "dashboards" / "leistung"
    kept = sorted(p.name for p in folder.iterdir())
    assert kept == ["v1.json", "v1.yaml"]
    # a save killed while writing its YAML to a temporary file, and one killed after its
    # metadata (written first) but before its YAML: version 2 was never saved
    tmp = folder / ".5e1f0c2b9a8d4e7f6a5b4c3d2e1f0a9b.tmp"
    tmp.write_text(SPEC, encoding="utf-8")
    meta = folder / "v2.json"
    meta.write_text('{"saved_by": "killed", "organisation": null}', encoding="utf-8")
    assert versions.version_numbers(pool, "leistung") == [1]

    # while a live save holds the dashboard's lock nothing is touched, and cleanup does not wait
    with lock_held_elsewhere(pool.root / "locks", "dashboard-leistung"):
        started = time.monotonic()
        assert pool.cleanup().orphan_files == []
        assert time.monotonic() - started < pool.settings.lock_timeout_s
    assert tmp.exists() and meta.exists()

    report = pool.cleanup()
    assert sorted(report.orphan_files) == sorted(str(p.relative_to(pool.root)) for p in (meta, tmp))
    assert sorted(p.name for p in folder.iterdir()) == kept
    assert versions.get(pool, "leistung").text == saved.text
    # the next save takes number 2, with its own metadata
    again = versions.put(pool, admin, "leistung", SPEC.replace("title: Leistung", "title: Neu"))
    assert again.version == 2 and again.saved_by != "killed"
    assert versions.get(pool, "leistung", 2).saved_by == again.saved_by
    assert pool.cleanup().orphan_files == []
