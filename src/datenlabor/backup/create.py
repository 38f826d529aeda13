"""Taking a backup: store snapshot, the pool files that belong to it, manifest."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, inspect
from sqlalchemy.engine import make_url

import datenlabor
from datenlabor.backup import archive
from datenlabor.backup.pool_files import select_files
from datenlabor.backup.store_dump import OnConnection, dump, revision, snapshot
from datenlabor.errors import BadInput, Conflict, DatenlaborError
from datenlabor.pool.cleanup import work_prefix
from datenlabor.store import Store


@dataclass
class BackupReport:
    path: Path
    bytes: int
    files: int
    revision: str
    tables: dict[str, int]
    audit: dict[str, Any]
    seconds: float
    snapshot_at: str = ""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "bytes": self.bytes,
            "files": self.files,
            "revision": self.revision,
            "tables": self.tables,
            "audit": self.audit,
            "seconds": round(self.seconds, 2),
            "snapshot_at": self.snapshot_at,
            "warnings": self.warnings,
        }


def store_files(database_url: str) -> set[Path]:
    """The files of a SQLite store (they are dumped logically, never copied)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        return set()
    db = Path(url.database).resolve()
    return {db, *(db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal"))}


def audit_state(conn: Connection) -> dict[str, Any]:
    """Entries, head hash and verification result of the audit chain seen by ``conn``."""
    from datenlabor.access.audit import AuditLog

    if "audit_log" not in inspect(conn).get_table_names():
        return {"entries": 0, "head": None, "ok": True, "first_bad": None}
    result = AuditLog(cast(Store, OnConnection(conn))).verify()
    return {
        "entries": result.entries,
        "head": result.head,
        "ok": result.ok,
        "first_bad": result.first_bad,
    }


def create_backup(
    root: Path,
    database_url: str,
    target: Path,
    *,
    lock_timeout_s: float = 600.0,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> BackupReport:
    """Back up the pool at ``root`` with its store at ``database_url`` into ``target``.

    The store is read at one point in time and the pool files are cut at that point (see
    :mod:`datenlabor.backup.pool_files`), so the service may keep running and writing.
    ``target`` appears only when complete (written under a temporary name, then renamed).
    ``progress(done_bytes, total_bytes)`` is called while files are written.
    """
    t0 = time.monotonic()
    root = root.resolve()
    target = target.resolve()
    if target.exists() and not force:
        raise Conflict(f"{target} exists; choose another name or pass --force to replace it")
    if not target.parent.is_dir():
        raise BadInput(f"folder {target.parent} does not exist", file=str(target))
    if target.is_relative_to(root):
        raise BadInput("the backup file cannot be inside the pool it backs up", file=str(target))
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=root / "tmp", prefix=work_prefix() + "backup-"))
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        with snapshot(database_url, work) as conn:
            snapshot_at = datetime.now(UTC).isoformat(timespec="seconds")
            rev = revision(conn)
            if rev is None:
                raise BadInput(f"the metadata store at {database_url} has no Datenlabor schema")
            dumps = dump(conn, work / "store")
            audit = audit_state(conn)
            files = select_files(
                root, conn, lock_timeout_s=lock_timeout_s, store_files=store_files(database_url)
            )
        total = sum(f.path.stat().st_size for f in files) + sum(
            d.path.stat().st_size for d in dumps
        )
        done = 0

        def step(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, total)

        writer = archive.Writer(partial, step)
        try:
            for f in files:
                try:
                    writer.add_file(f"pool/{f.rel}", f.path)
                except FileNotFoundError as exc:
                    raise DatenlaborError(
                        f"{f.path} disappeared during the backup (purged by cleanup?); "
                        "run the backup again"
                    ) from exc
            for d in dumps:
                writer.add_file(f"store/{d.name}.jsonl.gz", d.path)
            manifest = {
                "format": archive.FORMAT,
                "format_version": archive.FORMAT_VERSION,
                "created_at": snapshot_at,
                "datenlabor_version": datenlabor.__version__,
                "alembic_revision": rev,
                "source": {
                    "host": socket.gethostname(),
                    "pool": str(root),
                    "store_backend": make_url(database_url).get_backend_name(),
                },
                "store": {
                    "tables": {
                        d.name: {"rows": d.rows, "file": f"store/{d.name}.jsonl.gz"} for d in dumps
                    },
                    "order": [d.name for d in dumps],
                },
                "audit": audit,
                "files": writer.files,
            }
            writer.add_manifest(manifest)
        finally:
            writer.close()
        with partial.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(partial, target)
        fsync_dir(target.parent)
        warnings = []
        if not audit["ok"]:
            warnings.append(
                f"the audit chain does not verify (entry {audit['first_bad']}); the backup "
                "keeps it as it is"
            )
        return BackupReport(
            path=target,
            bytes=target.stat().st_size,
            files=len(files),
            revision=rev,
            tables={d.name: d.rows for d in dumps},
            audit=audit,
            seconds=time.monotonic() - t0,
            snapshot_at=snapshot_at,
            warnings=warnings,
        )
    finally:
        partial.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable (the directory entry itself)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
