"""Restoring a backup onto a fresh pool folder and a fresh (or emptied) metadata store.

Order of work, so that a failure or a kill leaves the previous state as it was:

1. the whole archive is read and every member checked against the manifest (SHA-256, size);
   nothing is written before that passes;
2. the pool files are unpacked into a new folder next to the target (hashed again);
3. the store is built in one transaction (PostgreSQL) or in a new SQLite file: schema at the
   backup's Alembic revision, rows loaded, row counts compared, then ``alembic upgrade head``
   when the backup is older, then the audit chain is verified and every dataset version's
   files are resolved;
4. only then the new folder (and SQLite file) replace the target; the PostgreSQL
   transaction commits just before the folder is moved into place.

The target must be empty (no files besides empty folders, a store without rows) unless
``force`` is given; stop every process serving the target first. A store outside the new
folder (PostgreSQL, a separate SQLite file) is committed before the folder switch: a marker
written just before that commit (:mod:`datenlabor.backup.pending`) lets a rerun of the same
restore, killed in between, finish without ``force``.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic import command
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from datenlabor.backup import archive, pending
from datenlabor.backup.create import audit_state
from datenlabor.backup.store_dump import drop_all, load, row_counts
from datenlabor.config import Settings
from datenlabor.errors import BadInput, Conflict, DatenlaborError
from datenlabor.pool import delta
from datenlabor.store.db import _PG_MIGRATION_LOCK, alembic_config, head_revision, make_engine
from datenlabor.store.models import Dataset, Version

POOL_FOLDERS = ("tables", "staging", "locks", "tmp")


@dataclass
class RestoreReport:
    pool: Path
    database: str
    backup_revision: str
    revision: str | None
    upgraded: bool
    files: int
    tables: dict[str, int]
    audit: dict[str, Any]
    versions_checked: int
    seconds: float
    created_at: str
    checked_only: bool = False
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pool": str(self.pool),
            "database": self.database,
            "backup_revision": self.backup_revision,
            "revision": self.revision,
            "upgraded": self.upgraded,
            "files": self.files,
            "tables": self.tables,
            "audit": self.audit,
            "versions_checked": self.versions_checked,
            "seconds": round(self.seconds, 2),
            "created_at": self.created_at,
            "checked_only": self.checked_only,
            "warnings": self.warnings,
        }


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _check_revision(rev: str, file: str) -> None:
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    try:
        known = scripts.get_revision(rev)
    except CommandError:
        known = None
    if known is None:
        raise BadInput(
            f"the backup's schema revision {rev!r} is unknown to this Datenlabor (made by a "
            "newer version?); restore it with a Datenlabor at least as new",
            file=file,
        )


def _sqlite_path(url: str) -> Path | None:
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        return None
    if not u.database or u.database == ":memory:":
        raise BadInput(f"cannot restore into an in-memory SQLite store ({url})")
    return Path(u.database).resolve()


def _pool_content(target: Path, db: Path | None) -> list[str]:
    """Files in the target folder that a restore would replace (empty folders do not count,
    nor lock files; the SQLite store is judged by its rows)."""
    if not target.exists():
        return []
    if not target.is_dir():
        return [f"{target} is not a folder"]
    found = []
    for p in sorted(target.rglob("*")):
        if p.is_dir():
            continue
        rel = p.relative_to(target)
        if rel.parts[0] == "locks" or (db is not None and p.name.startswith(db.name)):
            continue
        found.append(rel.as_posix())
        if len(found) >= 3:
            break
    return found


def _store_state(url: str) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return pending.store_state(conn)
    finally:
        engine.dispose()


def _half_done(target: Path, backup: Path, url: str) -> dict[str, Any] | None:
    """The marker of an earlier run of this same restore that was stopped after committing
    the store, if the store is still exactly as that run committed it."""
    data = pending.read(target)
    if data is None or not pending.matches(data, target=target, backup=backup, url=url):
        return None
    return data if _store_state(url) == data.get("store") else None


def _store_rows(url: str, db: Path | None) -> int:
    if db is not None and not db.exists():
        return 0
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return sum(row_counts(conn).values())
    except OperationalError as exc:
        raise DatenlaborError(
            f"metadata store not reachable ({_safe_url(url)}): {exc.orig}"
        ) from exc
    finally:
        engine.dispose()


def restore_backup(
    backup: Path,
    settings: Settings,
    *,
    force: bool = False,
    check_only: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> RestoreReport:
    """Restore ``backup`` into ``settings.pool`` and the store at ``settings.metadata_url``."""
    t0 = time.monotonic()
    backup = backup.resolve()
    if not backup.is_file():
        raise BadInput("backup file not found", file=str(backup))
    total = backup.stat().st_size

    def report(phase: str) -> Callable[[int], None]:
        done = 0

        def step(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(phase, done, total)

        return step

    target = settings.pool.expanduser().resolve()
    url = settings.metadata_url
    db = _sqlite_path(url)
    db_in_pool = db is not None and db.is_relative_to(target)
    # the store is committed apart from the folder switch (PostgreSQL, a separate SQLite file)
    separate_store = not db_in_pool
    resumed: dict[str, Any] | None = None
    if not check_only:  # refuse a non-empty target before reading a large file
        content = _pool_content(target, db if db_in_pool else None)
        rows = _store_rows(url, db)
        if rows and not force and separate_store:
            resumed = _half_done(target, backup, url)  # its rows are this restore's own
        pool_blocked = content and not force and not (resumed and resumed.get("replace_pool"))
        store_blocked = rows and not force and resumed is None
        if pool_blocked or store_blocked:
            what = []
            if pool_blocked:
                what.append(f"the pool folder {target} holds files ({', '.join(content)} …)")
            if store_blocked:
                what.append(f"the metadata store {_safe_url(url)} holds {rows} rows")
            raise Conflict(
                f"the target is not empty: {'; '.join(what)}. Restore into an empty folder and "
                "store, or pass --force to replace them (stop every process using them first)"
            )

    verified = archive.verify(backup, report("verify"))
    manifest = verified.manifest
    if resumed is not None and resumed.get("manifest_sha256") != pending.manifest_digest(manifest):
        raise Conflict(
            f"{backup} is not the backup the interrupted restore into {target} was making "
            f"({pending.marker_path(target)}); pass --force to replace the store anyway"
        )
    rev = manifest["alembic_revision"]
    _check_revision(rev, str(backup))
    tables = {name: t["rows"] for name, t in manifest["store"]["tables"].items()}
    pool_members = [n for n in verified.members if n.startswith("pool/")]
    base = dict(
        backup_revision=rev,
        files=len(pool_members),
        tables=tables,
        audit=manifest["audit"],
        created_at=manifest["created_at"],
    )
    if check_only:
        return RestoreReport(
            pool=target,
            database=_safe_url(url),
            revision=None,
            upgraded=False,
            versions_checked=0,
            seconds=time.monotonic() - t0,
            checked_only=True,
            **base,
        )

    target.parent.mkdir(parents=True, exist_ok=True)
    identity = pending.backup_identity(backup)
    replace_pool = force or bool(resumed and resumed.get("replace_pool"))
    new = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.restore-"))
    dumps = new / "tmp" / "restore-store"
    new_db: Path | None = None
    committed = False
    if db is not None:
        new_db = new / db.relative_to(target) if db_in_pool else db.with_name(f".{db.name}.restore")
        new_db.unlink(missing_ok=True)
    try:
        step = report("restore")

        def place(name: str) -> Path:
            kind, rel = name.split("/", 1)
            return (new if kind == "pool" else dumps) / rel

        for _name in archive.extract(backup, verified, place, step):
            pass
        for sub in POOL_FOLDERS:
            (new / sub).mkdir(parents=True, exist_ok=True)
        secrets = new / "secrets"
        if secrets.is_dir():
            secrets.chmod(0o700)
            for key in secrets.iterdir():
                key.chmod(0o600)

        store_url = f"sqlite:///{new_db}" if new_db is not None else url
        order = [(name, dumps / f"{name}.jsonl.gz") for name in manifest["store"]["order"]]
        files = {name: t["file"] for name, t in manifest["store"]["tables"].items()}
        engine = make_engine(store_url)
        try:
            with engine.begin() as conn:
                result = _build_store(conn, store_url, rev, order, files, tables, manifest, new)
                if separate_store:  # just before the commit the folder switch will follow
                    pending.write(
                        target,
                        backup=identity,
                        manifest=manifest,
                        url=url,
                        new=new,
                        replace_pool=replace_pool,
                        state=pending.store_state(conn, audit=result[2]),
                    )
            committed = db is None  # PostgreSQL: committed now; SQLite: when the file moves
        except OperationalError as exc:
            raise DatenlaborError(
                f"metadata store not reachable ({_safe_url(url)}): {exc.orig}"
            ) from exc
        finally:
            engine.dispose()
        if new_db is not None:
            # fold the write-ahead log into the file, so the file alone is the whole store
            con = sqlite3.connect(new_db)
            try:
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                con.close()
        shutil.rmtree(dumps, ignore_errors=True)
        warnings = _config_warnings(new, url)
        # -- the switch: SQLite file next to its place, then the folder ------------------
        if new_db is not None and db is not None and not db_in_pool:
            for suffix in ("-wal", "-shm", "-journal"):
                db.with_name(db.name + suffix).unlink(missing_ok=True)
            os.replace(new_db, db)
            committed = True
        _swap(new, target)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        if new_db is not None and not db_in_pool:
            new_db.unlink(missing_ok=True)
        if not committed and resumed is None:  # the store is as it was: nothing to finish
            pending.remove(target)
        raise
    if separate_store:
        pending.remove(target)
    if resumed is not None:
        pending.remove_leftover_folder(resumed, target)
    upgraded, versions_checked, audit = result
    return RestoreReport(
        pool=target,
        database=_safe_url(url),
        revision=head_revision(),
        upgraded=upgraded,
        versions_checked=versions_checked,
        seconds=time.monotonic() - t0,
        warnings=warnings,
        **{**base, "audit": audit},
    )


def _build_store(
    conn: Connection,
    url: str,
    rev: str,
    order: list[tuple[str, Path]],
    files: dict[str, str],
    expected: dict[str, int],
    manifest: dict[str, Any],
    pool_dir: Path,
) -> tuple[bool, int, dict[str, Any]]:
    """Schema at ``rev``, rows, counts, upgrade to head, audit chain, version files."""
    if conn.dialect.name == "postgresql":
        # a service starting meanwhile would otherwise migrate the half-built schema
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
    drop_all(conn)  # the target has no rows (or --force): leftovers of an earlier schema
    cfg = alembic_config(url)
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, rev)
    load(conn, order, file_of=files)
    counts = row_counts(conn)
    for name, n in expected.items():
        if counts.get(name) != n:
            raise DatenlaborError(
                f"table {name}: {counts.get(name)} rows after loading, the backup has {n}; "
                "nothing was restored"
            )
    head = head_revision()
    upgraded = head != rev
    if upgraded:
        command.upgrade(cfg, "head")
    audit = audit_state(conn)
    before = manifest["audit"]
    if (audit["ok"], audit["entries"], audit["head"]) != (
        before["ok"],
        before["entries"],
        before["head"],
    ):
        raise DatenlaborError(
            f"the audit chain after loading ({audit['entries']} entries, head "
            f"{audit['head']}, ok={audit['ok']}) differs from the backup's ({before['entries']} "
            f"entries, head {before['head']}, ok={before['ok']}); nothing was restored"
        )
    checked = 0
    q = select(Dataset.slug, Dataset.table_path, Version.delta_version).join(
        Version, Version.dataset_id == Dataset.id
    )
    for slug, table_path, dv in conn.execute(q):
        try:
            snap, _schema = delta.snapshot_files(pool_dir / table_path, int(dv))
        except Exception as exc:  # any failure of delta-rs to open the version
            raise DatenlaborError(
                f"dataset {slug!r}: Delta version {dv} unreadable: {exc}"
            ) from exc
        missing = [f for f in snap if not Path(f).is_file()]
        if missing:
            raise DatenlaborError(f"dataset {slug!r}: version files missing: {missing[:3]}")
        checked += 1
    return upgraded, checked, audit


def _config_warnings(pool_dir: Path, url: str) -> list[str]:
    config = pool_dir / "datenlabor.toml"
    if not config.is_file():
        return []
    try:
        configured = tomllib.loads(config.read_text(encoding="utf-8")).get("database_url")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return [f"{config.name} from the backup is not valid TOML"]
    if configured and configured != url:
        return [
            f"{config.name} from the backup sets database_url = {_safe_url(configured)}, but "
            f"the store was restored to {_safe_url(url)}: set DATENLABOR_DATABASE_URL or edit "
            "the file before starting Datenlabor"
        ]
    return []


def _swap(new: Path, target: Path) -> None:
    """Put ``new`` where ``target`` is (renames on one file system; old content removed)."""
    old: Path | None = None
    if target.exists():
        old = target.with_name(f".{target.name}.replaced-{os.getpid()}")
        os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        if old is not None:
            os.rename(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
