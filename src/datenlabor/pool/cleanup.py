"""Removing what killed or failed operations left behind, without touching any version.

Leftovers are never visible (readers go through the metadata store and Delta snapshots),
but they take disk space: work folders of dead processes in ``tmp/`` and ``staging/``,
Parquet files moved into a table folder whose Delta commit never happened, and table folders
of a first ingest that died before it was recorded.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from datenlabor.pool.locks import dataset_lock


@dataclass
class CleanupReport:
    work_folders: list[str] = field(default_factory=list)
    orphan_files: list[str] = field(default_factory=list)
    orphan_tables: list[str] = field(default_factory=list)
    purged_datasets: list[str] = field(default_factory=list)
    bytes_freed: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "work_folders": self.work_folders,
            "orphan_files": self.orphan_files,
            "orphan_tables": self.orphan_tables,
            "purged_datasets": self.purged_datasets,
            "bytes_freed": self.bytes_freed,
        }


def work_prefix() -> str:
    """Prefix of this process's work folders: host and PID tell whether the owner runs."""
    return f"{os.getpid()}~{socket.gethostname()}~"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def folder_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def remove_dead_work(root: Path, report: CleanupReport | None = None) -> CleanupReport:
    """Delete ``tmp/`` and ``staging/`` folders whose owning process is gone (same host)."""
    report = report or CleanupReport()
    for sub in ("tmp", "staging"):
        folder = root / sub
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            parts = entry.name.split("~")
            if len(parts) != 3 or not parts[0].isdigit() or parts[1] != socket.gethostname():
                continue  # not ours to judge: another host's, or not a work folder
            if not entry.is_dir() or _alive(int(parts[0])):
                continue
            report.bytes_freed += folder_size(entry)
            shutil.rmtree(entry, ignore_errors=True)
            report.work_folders.append(str(entry.relative_to(root)))
    return report


def referenced_files(table_dir: Path) -> set[str]:
    """Every data file any commit of the Delta log ever added (all versions stay readable)."""
    names: set[str] = set()
    for commit in sorted((table_dir / "_delta_log").glob("*.json")):
        with commit.open(encoding="utf-8") as fh:
            for line in fh:
                action = json.loads(line)
                if "add" in action:
                    names.add(action["add"]["path"])
    return names


def remove_orphans(
    root: Path,
    recorded: Callable[[], dict[str, str]],
    *,
    lock_timeout_s: float,
    report: CleanupReport,
) -> CleanupReport:
    """Delete unreferenced data files and table folders no dataset records.

    ``recorded()`` maps recorded table folders (relative to ``root``) to their dataset slug.
    Each folder is cleaned under its dataset's write lock, and the store is asked again while
    the lock is held, so an ingest committing at the same moment loses nothing.
    """
    for rel, slug in sorted(recorded().items()):
        table_dir = root / rel
        if not (table_dir / "_delta_log").is_dir():
            continue
        with dataset_lock(root / "locks", slug, timeout_s=lock_timeout_s):
            keep = referenced_files(table_dir)
            for f in table_dir.glob("*.parquet"):
                if f.name not in keep:
                    report.bytes_freed += f.stat().st_size
                    f.unlink()
                    report.orphan_files.append(str(f.relative_to(root)))
    for table_dir in sorted((root / "tables").glob("*")):
        rel = str(table_dir.relative_to(root))
        slug = table_dir.name.rsplit("-", 1)[0]
        if not table_dir.is_dir() or rel in recorded():
            continue
        with dataset_lock(root / "locks", slug, timeout_s=lock_timeout_s):
            if rel in recorded():  # a first ingest recorded it meanwhile
                continue
            report.bytes_freed += folder_size(table_dir)
            shutil.rmtree(table_dir, ignore_errors=True)
            report.orphan_tables.append(rel)
    return report
