"""Schema upgrades: a store made by every earlier revision upgrades to head without data loss.

For each revision 0001…0004 a store is migrated to exactly that revision with Alembic, filled
with the representative rows of ``tests/fixtures/migrations/rows.json`` by raw SQL (pool
files as real Delta tables next to it), then opened by the application, which upgrades it to
head. Every row must be there with its values, new columns must carry their defaults, the
audit chain must verify and the pool must answer. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from alembic import command
from deltalake import write_deltalake
from sqlalchemy import Engine, create_engine, inspect, select, text

import datenlabor
from datenlabor.access.audit import GENESIS, entry_hash
from datenlabor.access.passwords import hash_password
from datenlabor.backup import create_backup, restore_backup
from datenlabor.config import load_settings
from datenlabor.service.gate import Gate
from datenlabor.store.db import alembic_config, head_revision
from datenlabor.store.models import AuditEntry, Base

FIXTURE = json.loads(
    (Path(__file__).parent / "fixtures" / "migrations" / "rows.json").read_text("utf-8")
)
REVISIONS = sorted(FIXTURE["revisions"])  # 0001 … 0004: every revision before head
TOKEN = "dl_migration-test-token-0000000000000000000000"
PASSWORD = "ein-langes-passwort-fuer-ana"
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?\+00:00$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'pool' / 'metadata.sqlite'}"
    return str(request.getfixturevalue("pg_url"))


def _special(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("argon2:"):
        return hash_password(value.removeprefix("argon2:"))
    if isinstance(value, str) and value.startswith("sha256:"):
        return hashlib.sha256(value.removeprefix("sha256:").encode()).hexdigest()
    return value


def _param(value: Any, sqlite: bool) -> Any:
    """A fixture value as the driver takes it (what the application stores on that backend)."""
    if isinstance(value, str) and _DATETIME.match(value):
        ts = datetime.fromisoformat(value)
        return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else ts
    if isinstance(value, str) and _DATE.match(value) and not sqlite:
        return date.fromisoformat(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def rows_up_to(revision: str) -> dict[str, list[dict[str, Any]]]:
    """Every fixture row a store at ``revision`` can hold, in insertion order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for rev in REVISIONS:
        if rev > revision:
            break
        for table, rows in FIXTURE["revisions"][rev].items():
            out.setdefault(table, []).extend(rows)
    return out


def audit_chain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The audit rows with prev_hash and hash computed by the application's own rule."""
    prev, out = GENESIS, []
    for r in rows:
        e = AuditEntry(**{**r, "at": datetime.fromisoformat(r["at"])})
        h = entry_hash(prev, e)
        out.append({**r, "prev_hash": prev, "hash": h})
        prev = h
    return out


def build(root: Path, url: str, revision: str) -> dict[str, list[dict[str, Any]]]:
    """A pool folder and store at ``revision``, filled by raw SQL; returns what went in."""
    root.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)
    for rel, rows in FIXTURE["delta"].items():
        write_deltalake(str(root / rel), pa.Table.from_pylist(rows))
    rows = rows_up_to(revision)
    if "audit_log" in rows:
        rows["audit_log"] = audit_chain(rows["audit_log"])
    engine = create_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    order = [t.name for t in Base.metadata.sorted_tables]
    try:
        with engine.begin() as conn:
            for table in order:
                for row in rows.get(table, []):
                    values = {k: _param(_special(v), sqlite) for k, v in row.items()}
                    marks = [
                        f"CAST(:{k} AS JSON)"
                        if isinstance(v, dict | list) and not sqlite
                        else f":{k}"
                        for k, v in row.items()
                    ]
                    conn.execute(
                        text(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join(marks)})"),
                        values,
                    )
            if not sqlite:  # ids were given explicitly: move the sequences on
                for table in order:
                    if rows.get(table) and "id" in rows[table][0]:
                        conn.execute(
                            text(
                                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                f"(SELECT max(id) FROM {table}))"
                            )
                        )
    finally:
        engine.dispose()
    return rows


def _normal(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    return value


def _expected(value: Any) -> Any:
    value = _special(value)
    if isinstance(value, str) and _DATETIME.match(value):
        return datetime.fromisoformat(value).astimezone(UTC)
    if isinstance(value, str) and _DATE.match(value):
        return date.fromisoformat(value)
    return value


# Columns added after a row's revision, with the value the upgrade must give them.
DEFAULTS: dict[str, dict[str, Any]] = {
    "datasets": {
        "visibility": "internal",
        "deleted_at": None,
        "purge_after": None,
        "disclosure": None,
        "origin": None,
    },
    "grants": {"microdata": False},
}


def check_rows(
    engine: Engine, rows: dict[str, list[dict[str, Any]]], *, exact: bool = True
) -> None:
    """Every inserted row is there with every value; later columns carry their defaults.
    ``exact``: and no other rows."""
    with engine.connect() as conn:
        for name, expected in rows.items():
            table = Base.metadata.tables[name]
            pk = list(table.primary_key.columns)
            found = {
                tuple(r._mapping[c.name] for c in pk): r._mapping
                for r in conn.execute(select(table))
            }
            assert len(found) == len(expected) or not exact, name
            for row in expected:
                got = found[tuple(row[c.name] for c in pk)]
                for col, value in row.items():
                    if name == "users" and col == "password_hash" and value:
                        assert str(got[col]).startswith("$argon2id$")
                        continue
                    assert _normal(got[col]) == _expected(value), (name, col)
                for col, default in DEFAULTS.get(name, {}).items():
                    if col not in row:
                        assert got[col] == default, (name, col)


def check_app(
    root: Path, url: str, rows: dict[str, list[dict[str, Any]]], slugs: list[str] | None = None
) -> None:
    """The application opens the upgraded pool: data, accounts, tokens, audit chain."""
    pool = datenlabor.open(root, database_url=url, user="t")
    try:
        table = pool.dataset("antraege").read(version=1)
        assert table.to_pylist() == FIXTURE["delta"]["tables/antraege-0001aaaa"]
        if slugs is None:
            slugs = sorted(d["slug"] for d in rows["datasets"] if not d.get("deleted_at"))
        assert [d.slug for d in pool.datasets()] == slugs
        gate = Gate(pool)
        audit = gate.audit.verify()
        assert audit.ok and audit.entries == len(rows.get("audit_log", []))
        if "users" in rows:
            assert gate.accounts.authenticate("ana", PASSWORD).organisation == "nrw"
            assert gate.accounts.resolve_token(TOKEN).username == "ana"
            # the upgraded store takes new rows: ids continue, the chain goes on
            gate.accounts.add_user("neu", org="bmi", role="viewer", password=PASSWORD)
            gate.audit.log(gate.accounts.authenticate("neu", PASSWORD), "login")
            assert gate.audit.verify().ok
    finally:
        pool.store.dispose()


@pytest.mark.parametrize("revision", REVISIONS)
def test_upgrade_from_every_earlier_revision(tmp_path: Path, url: str, revision: str) -> None:
    root = tmp_path / "pool"
    rows = build(root, url, revision)
    datenlabor.open(root, database_url=url).store.dispose()  # the app upgrades on opening
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
                head_revision()
            )
            assert set(Base.metadata.tables) <= set(inspect(conn).get_table_names())
        check_rows(engine, rows)
    finally:
        engine.dispose()
    check_app(root, url, rows)


def test_downgrade_then_upgrade_keeps_the_rows(tmp_path: Path, url: str) -> None:
    root = tmp_path / "pool"
    build(root, url, REVISIONS[-1])
    cfg = alembic_config(url)
    command.upgrade(cfg, "head")
    for target in reversed(REVISIONS[:-1]):  # head → 0003 → head, → 0002 → head, → 0001 → head
        command.downgrade(cfg, target)
        command.upgrade(cfg, "head")
        kept = rows_up_to(target)
        if "audit_log" in kept:
            kept["audit_log"] = audit_chain(kept["audit_log"])
        engine = create_engine(url)
        try:
            # rows of later revisions in surviving tables stay too, hence not exact
            check_rows(engine, kept, exact=False)
        finally:
            engine.dispose()
    # below 0002 there was no deletion column: the deleted dataset is back in the catalogue
    check_app(root, url, rows_up_to("0001"), slugs=["antraege", "faelle", "zensus"])


def test_backup_of_an_older_schema_is_upgraded_on_restore(tmp_path: Path) -> None:
    """A backup taken by an older release restores into the current one (schema upgraded)."""
    root = tmp_path / "pool"
    url = f"sqlite:///{root / 'metadata.sqlite'}"
    rows = build(root, url, "0003")
    file = tmp_path / "old.dlbackup"
    made = create_backup(root, url, file)
    assert made.revision == "0003" and made.audit["entries"] == 3
    dst = tmp_path / "restored"
    done = restore_backup(file, load_settings(pool=dst))
    assert done.upgraded and done.backup_revision == "0003" and done.revision == head_revision()
    dst_url = f"sqlite:///{dst / 'metadata.sqlite'}"
    engine = create_engine(dst_url)
    try:
        check_rows(engine, rows)
    finally:
        engine.dispose()
    check_app(dst, dst_url, rows)
