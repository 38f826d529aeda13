"""Leftovers of killed operations are removed; every version stays readable."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from datenlabor.pool.cleanup import work_prefix


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
