"""Engine, sessions and migrations of the metadata store."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from datenlabor.errors import BadInput, DatenlaborError

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant works; it names "Datenlabor schema migration" for pg_advisory_lock.
_PG_MIGRATION_LOCK = 0x44415445


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def make_engine(url: str) -> Engine:
    """A SQLAlchemy engine for the metadata store at ``url``, set up as every Datenlabor
    process uses it (SQLite: WAL, foreign keys, full sync; PostgreSQL: outage-tolerant pool).
    No migration runs; :class:`Store` does that. A malformed URL is :class:`BadInput`."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise BadInput(f"invalid database URL {url!r}: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL lets readers go on while one process writes; several processes share it.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if parsed.get_backend_name() != "postgresql":
        return create_engine(url, pool_pre_ping=True)
    # Surviving a database restart or outage without restarting Datenlabor: every pooled
    # connection is tested before use (a dead one is replaced, and all older ones with it),
    # connecting gives up after a few seconds instead of the OS default of minutes, a request
    # waits at most 10 s for a free connection, and TCP keepalives notice a peer that
    # vanished without closing the connection. Errors then reach the web layer as
    # OperationalError, answered 503 + Retry-After (datenlabor.web.errors).
    connect_args: dict[str, Any] = {"connect_timeout": 5}
    host = parsed.query.get("host", "")
    if not str(host).startswith("/"):  # keepalives: TCP only
        connect_args.update(keepalives=1, keepalives_idle=30, keepalives_interval=10,
                            keepalives_count=3)  # fmt: skip
    given = {k for k in parsed.query}
    connect_args = {k: v for k, v in connect_args.items() if k not in given}
    return create_engine(
        url, pool_pre_ping=True, pool_timeout=10, pool_recycle=1800, connect_args=connect_args
    )


class Store:
    """The metadata store at a SQLAlchemy URL, migrated to the newest schema on open."""

    def __init__(self, url: str, *, lock_dir: Path | None = None) -> None:
        self.url = url
        self.lock_dir = lock_dir
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        try:
            self._migrate(lock_dir)
        except OperationalError as exc:
            raise DatenlaborError(f"metadata store not reachable ({url}): {exc.orig}") from exc

    def _current_revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def _migrate(self, lock_dir: Path | None) -> None:
        head = head_revision()
        sqlite = self.engine.dialect.name == "sqlite"
        # On SQLite even the first look happens under the file lock: a fresh file is switched
        # to WAL by the first connection, and two processes doing that while one of them
        # already migrates can get "database is locked" without waiting.
        if not sqlite and self._current_revision() == head:
            return
        with self._migration_lock(lock_dir):
            if self._current_revision() == head:  # another process was faster
                return
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK}
                    )
                cfg = alembic_config(self.url)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")

    @contextlib.contextmanager
    def _migration_lock(self, lock_dir: Path | None) -> Iterator[None]:
        if lock_dir is None or self.engine.dialect.name != "sqlite":
            yield
            return
        lock_dir.mkdir(parents=True, exist_ok=True)
        with open(lock_dir / "migrate.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    def session(self) -> Session:
        return self._sessions()

    def dispose(self) -> None:
        self.engine.dispose()
