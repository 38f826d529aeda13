"""The marker of a restore whose store may be committed while its pool folder is not switched.

A restore into PostgreSQL (or into a SQLite file outside the pool folder) commits the store
first and then moves the new pool folder into place. Killed in between, the store holds the
backup while the folder is still the old one, and a second run would find a non-empty store.
Just before that commit the restore writes ``.<pool>.restore-pending.json`` next to the pool
folder: which backup file, pool folder and store, and the exact state of the store it is
about to commit (row count of every table, audit chain length and head). A later run of the
*same* restore that finds the store in exactly that state knows the rows are its own and may
replace them again without ``--force``; a store changed since (the service was started and
wrote to it, say) is not taken for a half-done restore. The marker is removed once the folder
is in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from datenlabor.backup.create import audit_state, fsync_dir
from datenlabor.backup.store_dump import row_counts
from datenlabor.errors import BadInput


def marker_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.restore-pending.json")


def backup_identity(backup: Path) -> dict[str, Any]:
    """The backup file as the marker names it (the manifest is compared after verifying)."""
    st = backup.stat()
    return {"path": str(backup), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _digest(text: str) -> str:
    # the store URL may hold a password: the marker keeps only its hash
    return hashlib.sha256(text.encode()).hexdigest()


def manifest_digest(manifest: dict[str, Any]) -> str:
    return _digest(json.dumps(manifest, sort_keys=True, ensure_ascii=False))


def store_state(conn: Connection, audit: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the marker compares: every table's row count and the audit chain's end
    (``audit``: :func:`audit_state` of ``conn`` when already known)."""
    audit = audit if audit is not None else audit_state(conn)
    return {
        "rows": row_counts(conn),
        "audit_entries": audit["entries"],
        "audit_head": audit["head"],
    }


def write(
    target: Path,
    *,
    backup: dict[str, Any],
    manifest: dict[str, Any],
    url: str,
    new: Path,
    replace_pool: bool,
    state: dict[str, Any],
) -> Path:
    """Write the marker durably (temporary file, fsync, rename, fsync of the folder)."""
    path = marker_path(target)
    data = {
        "format": 1,
        "backup": backup,
        "manifest_sha256": manifest_digest(manifest),
        "pool": str(target),
        "database_sha256": _digest(url),
        "new_folder": str(new),
        "replace_pool": replace_pool,
        "store": state,
        "pid": os.getpid(),
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(data, fh, ensure_ascii=False, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return path


def read(target: Path) -> dict[str, Any] | None:
    path = marker_path(target)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(
            f"unreadable restore marker ({exc}); delete it, or restore with --force",
            file=str(path),
            line=exc.lineno,
        ) from exc
    return data if isinstance(data, dict) else None


def matches(data: dict[str, Any], *, target: Path, backup: Path, url: str) -> bool:
    """Does the marker belong to this restore (same backup file, pool folder and store)?"""
    return (
        data.get("format") == 1
        and data.get("pool") == str(target)
        and data.get("database_sha256") == _digest(url)
        and data.get("backup") == backup_identity(backup)
    )


def remove(target: Path) -> None:
    marker_path(target).unlink(missing_ok=True)


def remove_leftover_folder(data: dict[str, Any], target: Path) -> None:
    """Delete the interrupted run's unpacked folder (``.<pool>.restore-…`` next to the pool)."""
    folder = Path(str(data.get("new_folder", "")))
    if folder.parent == target.parent and folder.name.startswith(f".{target.name}.restore-"):
        shutil.rmtree(folder, ignore_errors=True)
