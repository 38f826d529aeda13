"""Logical dump and load of the metadata store, the same on SQLite and PostgreSQL.

A dump is one gzip-compressed JSON-lines file per table, rows in primary-key order. Values
are written by column type, so a dump taken on one backend loads on the other:
timestamps as ISO 8601 in UTC with microseconds (the audit chain hashes exactly that),
dates as ISO dates, JSON columns as their stored JSON *text* (so SQL NULL and JSON ``null``
stay apart), everything else as JSON scalars.

Why not ``pg_dump``/``.dump``: their output loads only into the same backend (and pg_dump's
only into a server at least as new as itself); a restore onto a fresh machine must accept
either backend, and must be able to run the schema migrations between loading and use.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    MetaData,
    Text,
    bindparam,
    cast,
    create_engine,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy import types as sqltypes
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from datenlabor.errors import BadInput
from datenlabor.store.models import Base

ALEMBIC_TABLE = "alembic_version"
BATCH = 1000


def known_tables() -> list[str]:
    """Datenlabor's tables in dependency order (parents first); alembic's own is not dumped."""
    return [t.name for t in Base.metadata.sorted_tables]


@dataclass
class TableDump:
    name: str
    rows: int
    path: Path


@contextlib.contextmanager
def snapshot(engine_url: str, work: Path) -> Iterator[Connection]:
    """A read-only connection that sees the whole store at one point in time.

    SQLite: the online backup API copies the database (pages of one consistent state, also
    while other processes write in WAL mode) to ``work``, and the dump reads that copy.
    PostgreSQL: one REPEATABLE READ, READ ONLY transaction sees a single snapshot.
    """
    url = make_url(engine_url)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise BadInput(f"cannot back up an in-memory SQLite store ({engine_url})")
        copy = work / "store-snapshot.sqlite"
        db = Path(url.database).resolve()
        if not db.is_file():
            raise BadInput("the SQLite metadata store does not exist", file=str(db))
        src = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=60)
        dst = sqlite3.connect(copy)
        try:
            src.backup(dst)  # all pages in one step: one consistent state
        finally:
            dst.close()
            src.close()
        engine = create_engine(f"sqlite:///{copy}")
        try:
            with engine.connect() as conn:
                yield conn
        finally:
            engine.dispose()
        return
    from datenlabor.store.db import make_engine

    engine = make_engine(engine_url)
    try:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                conn.execute(text("SET TRANSACTION READ ONLY"))
                yield conn
    finally:
        engine.dispose()


def revision(conn: Connection) -> str | None:
    if ALEMBIC_TABLE not in inspect(conn).get_table_names():
        return None
    return conn.execute(text(f"SELECT version_num FROM {ALEMBIC_TABLE}")).scalar()


def _reflect(conn: Connection, names: list[str]) -> MetaData:
    present = set(inspect(conn).get_table_names())
    md = MetaData()
    md.reflect(conn, only=[n for n in names if n in present])
    return md


def _is_json(col: Any) -> bool:
    return isinstance(col.type, sqltypes.JSON)


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite keeps UTC naive
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        raise BadInput("binary columns are not part of the metadata store schema")
    return value


def dump(conn: Connection, out: Path) -> list[TableDump]:
    """Write every Datenlabor table of ``conn`` to ``out/<table>.jsonl.gz``."""
    out.mkdir(parents=True, exist_ok=True)
    md = _reflect(conn, known_tables())
    dumps = []
    for name in known_tables():
        if name not in md.tables:
            continue  # an older schema revision without this table
        table = md.tables[name]
        cols = [cast(c, Text).label(c.name) if _is_json(c) else c for c in table.columns]
        order = list(table.primary_key.columns) or list(table.columns)
        query = select(*cols).order_by(*order)
        path = out / f"{name}.jsonl.gz"
        n = 0
        with gzip.open(path, "wt", encoding="utf-8", compresslevel=6) as fh:
            result = conn.execution_options(yield_per=BATCH).execute(query)
            for row in result:
                record = {k: _encode(v) for k, v in row._mapping.items()}
                fh.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
                n += 1
        dumps.append(TableDump(name, n, path))
    return dumps


def drop_all(conn: Connection) -> None:
    """Remove Datenlabor's tables (and alembic's) from the target store."""
    md = _reflect(conn, [*known_tables(), ALEMBIC_TABLE])
    md.drop_all(conn)


def row_counts(conn: Connection) -> dict[str, int]:
    md = _reflect(conn, known_tables())
    return {
        name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
        for name, t in md.tables.items()
    }


def _decoder(col: Any) -> Any:
    if isinstance(col.type, sqltypes.DateTime):
        return lambda v: None if v is None else datetime.fromisoformat(v)
    if isinstance(col.type, sqltypes.Date):
        return lambda v: None if v is None else date.fromisoformat(v)
    return lambda v: v


def load(conn: Connection, table_dumps: list[tuple[str, Path]], *, file_of: dict[str, str]) -> None:
    """Insert the dumped rows (tables in dependency order) into the empty schema of ``conn``.

    ``file_of`` maps table names to archive member names, for error messages.
    """
    md = _reflect(conn, [name for name, _ in table_dumps])
    postgres = conn.dialect.name == "postgresql"
    for name, path in table_dumps:
        if name not in md.tables:
            raise BadInput(
                f"the backup has table {name!r}, which the schema at the backup's revision "
                "does not have",
                file=file_of.get(name),
            )
        table = md.tables[name]
        values: dict[str, Any] = {}
        decoders = {}
        for col in table.columns:
            if _is_json(col):
                # JSON columns are loaded from their text, so SQL NULL stays NULL and JSON
                # null stays JSON null (a JSON-typed bind would turn None into 'null').
                raw = bindparam(f"v_{col.name}", type_=Text)
                values[col.name] = cast(raw, JSON) if postgres else raw
            else:
                values[col.name] = bindparam(f"v_{col.name}", type_=col.type)
                decoders[col.name] = _decoder(col)
        stmt = table.insert().values(values)
        batch: list[dict[str, Any]] = []
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, 1):
                try:
                    record = json.loads(line)
                    row = {f"v_{c}": dec(record.get(c)) for c, dec in decoders.items()}
                except (ValueError, TypeError) as exc:
                    raise BadInput(
                        f"unreadable row: {exc}", file=file_of.get(name), line=line_no
                    ) from exc
                unknown = set(record) - set(table.columns.keys())
                if unknown:
                    raise BadInput(
                        f"columns {sorted(unknown)} are not in table {name!r}",
                        file=file_of.get(name),
                        line=line_no,
                    )
                for col in table.columns:
                    if _is_json(col):
                        row[f"v_{col.name}"] = record.get(col.name)
                batch.append(row)
                if len(batch) >= BATCH:
                    conn.execute(stmt, batch)
                    batch = []
        if batch:
            conn.execute(stmt, batch)
    if postgres:
        _reset_sequences(conn, md)


def _reset_sequences(conn: Connection, md: MetaData) -> None:
    """Rows were inserted with their ids: move each id sequence past the largest one."""
    for name, table in md.tables.items():
        pk = list(table.primary_key.columns)
        if len(pk) != 1 or not isinstance(pk[0].type, sqltypes.Integer):
            continue
        col = pk[0].name
        q = conn.dialect.identifier_preparer.quote
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence(:t, :c), "
                f"(SELECT COALESCE(MAX({q(col)}), 0) + 1 FROM {q(name)}), false)"
            ),
            {"t": q(name), "c": col},
        )


class OnConnection:
    """Hands one open connection (a snapshot, a restore transaction) to code that asks a
    store for sessions, e.g. :meth:`datenlabor.access.audit.AuditLog.verify`."""

    lock_dir = None

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def session(self) -> Session:
        return Session(bind=self.conn)
