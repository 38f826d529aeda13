"""Removing what killed or failed operations left behind, without touching any version.

Leftovers are never visible (readers go through the metadata store and Delta snapshots),
but they take disk space: work folders of dead processes in ``tmp/`` and ``staging/``,
Parquet files moved into a table folder whose Delta commit never happened, table folders
of a first ingest that died before it was recorded, temporary and half-written protected
tables (``disclosure/<slug>/``), and model artifacts of a killed ``assist train``.

Whether a live operation still owns a leftover is decided the way its writer allows: by the
PID and host in a work folder's name, or by holding the writer's lock (an OS file lock, which
the kernel releases when its holder dies) and looking again while it is held.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from datenlabor.errors import Conflict
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
    """Delete unreferenced data files and table folders no dataset records, and what killed
    protected-table writes left (:func:`remove_dead_protected`).

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
    remove_dead_protected(root, report=report)
    return report


def remove_dead_protected(root: Path, *, report: CleanupReport) -> None:
    """Delete what a killed protected-table write left in ``disclosure/<slug>/``: its
    temporary files (``.*.tmp``) and a table whose report was never written (the report is
    written last, so a table without one is incomplete and is computed again on next use).

    Cleaned under the lock ``datenlabor.service.confidential`` writes under
    (``disclosure-<slug>``): while cleanup holds it, no live writer owns such a file. A folder
    whose lock is held is skipped, not waited for: its writer is alive and its files are its own.
    """
    folder = root / "disclosure"
    if not folder.is_dir():
        return
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if not _incomplete_protected(sub):
            continue  # nothing to do: do not wait for a writer's lock
        with _unless_busy(root, f"disclosure-{sub.name}") as free:
            for f in _incomplete_protected(sub) if free else []:
                _remove_file(root, f, report)


def _incomplete_protected(folder: Path) -> list[Path]:
    found = []
    for f in sorted(folder.iterdir()):
        if not f.is_file():
            continue
        temporary = f.name.startswith(".") and f.name.endswith(".tmp")
        unreported = f.suffix == ".parquet" and not f.with_suffix(".json").exists()
        if temporary or unreported:
            found.append(f)
    return found


DASHBOARDS_DIR = Path("dashboards")
_DASHBOARD_META = re.compile(r"^v(\d+)\.json$")


def dashboard_lock_name(slug: str) -> str:
    """Lock (:func:`dataset_lock`) held while a version of dashboard ``slug`` is saved."""
    return f"dashboard-{slug}"


def remove_dead_dashboards(root: Path, *, report: CleanupReport) -> None:
    """Delete what a killed dashboard save left in ``dashboards/<slug>/``: its temporary
    files (``.*.tmp``) and a version's metadata without its YAML (the save writes the
    metadata first and the YAML last, so such a version was never saved).

    Cleaned under the lock :func:`dashboard_lock_name` that the save holds; a folder whose
    lock is held is skipped, not waited for: its save is alive and its files are its own.
    """
    folder = root / DASHBOARDS_DIR
    if not folder.is_dir():
        return
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if not _dead_dashboard_files(sub):
            continue
        with _unless_busy(root, dashboard_lock_name(sub.name)) as free:
            for f in _dead_dashboard_files(sub) if free else []:
                _remove_file(root, f, report)


def _dead_dashboard_files(folder: Path) -> list[Path]:
    names = {p.name for p in folder.iterdir()}
    found = []
    for f in sorted(folder.iterdir()):
        if not f.is_file():
            continue
        temporary = f.name.startswith(".") and f.name.endswith(".tmp")
        meta = _DASHBOARD_META.match(f.name)
        if temporary or (meta is not None and f"v{meta[1]}.yaml" not in names):
            found.append(f)
    return found


MODELS_DIR = Path("assist") / "models"
# <name>-<12 hex>.npz, and its temporary form .<name>-<12 hex>.npz.partial
# (datenlabor.assist.registry.register)
_MODEL_FILE = re.compile(
    r"^(?P<partial>\.)?(?P<name>[^.].*)-[0-9a-f]{12}\.npz(?(partial)\.partial)$"
)


def model_lock_name(name: str) -> str:
    """Lock (:func:`dataset_lock`) held while a model of ``name`` is written and recorded."""
    return f"assist-model-{name}"


def remove_dead_models(
    root: Path, recorded: Callable[[], Iterable[str]], *, report: CleanupReport
) -> None:
    """Delete model artifacts of a killed ``assist train`` in ``assist/models/``: temporary
    ``.*.partial`` files, and artifacts no model record points to (written, then the process
    died before the record was committed).

    ``recorded()`` lists the artifact paths (relative to ``root``) of every model record. Each
    model name is cleaned under the lock :func:`model_lock_name` that the writer holds from
    the first byte until its record is committed, and the store is asked again while it is
    held, so a model being trained at the same moment loses nothing (a name whose lock is
    held is skipped: its training is alive).
    """
    folder = root / MODELS_DIR
    if not folder.is_dir():
        return
    names = sorted(
        {m["name"] for f in folder.iterdir() if (m := _MODEL_FILE.match(f.name)) and f.is_file()}
    )
    for name in names:
        if not _dead_models(folder, name, set(recorded()), root):
            continue
        with _unless_busy(root, model_lock_name(name)) as free:
            for f in _dead_models(folder, name, set(recorded()), root) if free else []:
                _remove_file(root, f, report)


def _dead_models(folder: Path, name: str, recorded: set[str], root: Path) -> list[Path]:
    found = []
    for f in sorted(folder.iterdir()):
        m = _MODEL_FILE.match(f.name)
        if m is None or m["name"] != name or not f.is_file():
            continue
        if m["partial"] or f.relative_to(root).as_posix() not in recorded:
            found.append(f)
    return found


@contextlib.contextmanager
def _unless_busy(root: Path, lock: str) -> Iterator[bool]:
    """Hold ``lock`` if it is free (yields True); False at once if a live process holds it."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(dataset_lock(root / "locks", lock, timeout_s=0))
        except Conflict:
            yield False
            return
        yield True


def _remove_file(root: Path, f: Path, report: CleanupReport) -> None:
    try:
        size = f.stat().st_size
        f.unlink()
    except FileNotFoundError:
        return  # removed meanwhile (its writer finished, or another cleanup)
    report.bytes_freed += size
    report.orphan_files.append(str(f.relative_to(root)))
