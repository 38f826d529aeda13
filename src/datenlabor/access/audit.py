"""The audit log: every access on record, append-only and hash-chained.

Each entry's hash covers its content and the previous entry's hash, so changing, deleting
or reordering any entry breaks the chain from there on (:meth:`AuditLog.verify`). Cutting
off the newest entries cannot be seen from the chain alone: keep the head hash that
``datenlabor audit verify`` prints somewhere else (e.g. in the ticket of a periodic check).

Entries are written before the answer leaves (an access that cannot be recorded fails).
Concurrent requests are written together in one transaction by a writer thread ("group
commit"), so the serialised chain does not become the bottleneck of a busy server.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select, text
from sqlalchemy.orm import Session

from datenlabor.access.principal import Principal
from datenlabor.store import Store
from datenlabor.store.models import AuditEntry, AuditRef

_ENTRIES = cast(Table, AuditEntry.__table__)
_REFS = cast(Table, AuditRef.__table__)

GENESIS = "0" * 64
ACTIONS = (
    "read",
    "query",
    "download",
    "upload",
    "upload-started",
    "metadata",
    "delete",
    "restore",
    "grant",
    "revoke",
    "login",
    "logout",
    "login-failed",
    "account",
    "token",
    "audit-export",
    "disclosure",
    "assist-inbox",
    "assist-suggest",
    "assist-decide",
    "assist-train",
    "governance-assess",
    "governance-audit",
    "governance-alert",
)
# Any constant: names "Datenlabor audit chain" for pg_advisory_xact_lock.
_PG_AUDIT_LOCK = 0x41554454


@dataclass
class Event:
    """What happened, as the caller states it; the log adds time and chain."""

    action: str
    actor: str
    organisation: str | None = None
    datasets: dict[str, int] = field(default_factory=dict)  # slug -> version
    publishers: dict[str, str | None] = field(default_factory=dict)  # slug -> publisher
    query: str | None = None
    rows: int | None = None
    outcome: str = "ok"
    detail: dict[str, Any] = field(default_factory=dict)
    client: str | None = None


def _utc(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _content(e: AuditEntry) -> dict[str, Any]:
    """What an entry says (everything but id and chain), as the hash and exports show it."""
    return _body(
        e.at, e.actor, e.organisation, e.action, e.datasets, e.query, e.rows, e.outcome,
        e.detail, e.client,
    )  # fmt: skip


def _body(
    at: datetime,
    actor: str,
    organisation: str | None,
    action: str,
    datasets: dict[str, Any],
    query: str | None,
    rows: int | None,
    outcome: str,
    detail: dict[str, Any],
    client: str | None,
) -> dict[str, Any]:
    return {
        "at": _utc(at).astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "organisation": organisation,
        "action": action,
        "datasets": datasets,
        "query": query,
        "rows": rows,
        "outcome": outcome,
        "detail": detail,
        "client": client,
    }


def _chain(prev_hash: str, body: dict[str, Any]) -> str:
    canon = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev_hash + canon).encode()).hexdigest()


def entry_hash(prev_hash: str, e: AuditEntry) -> str:
    return _chain(prev_hash, _content(e))


@dataclass
class VerifyResult:
    ok: bool
    entries: int
    head: str
    first_bad: int | None = None
    reason: str | None = None


class AuditLog:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue: queue.Queue[tuple[Event, Future[None]]] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._start = threading.Lock()

    # -- writing -------------------------------------------------------------------------
    def record(self, event: Event) -> None:
        """Append an event; returns once it is committed (raises if it could not be)."""
        self.submit(event).result()

    def submit(self, event: Event) -> Future[None]:
        """Queue an event for the writer; the future is done once it is committed.

        For callers that wait elsewhere (an async route awaits it without holding a thread);
        whoever answers a request must still wait for it before the answer leaves.
        """
        done: Future[None] = Future()
        self._queue.put((event, done))
        self._ensure_writer()
        return done

    def log(self, p: Principal, action: str, **kw: Any) -> None:
        self.record(Event(action=action, actor=p.label(), organisation=p.organisation, **kw))

    def _ensure_writer(self) -> None:
        if self._writer is not None and self._writer.is_alive():
            return
        with self._start:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._run, name="audit", daemon=True)
                self._writer.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < 500:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._append([e for e, _ in batch])
            except BaseException as exc:  # hand every failure to the waiting callers
                for _, fut in batch:
                    fut.set_exception(exc)
            else:
                for _, fut in batch:
                    fut.set_result(None)

    @contextlib.contextmanager
    def _chain_lock(self, s: Session) -> Iterator[None]:
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_AUDIT_LOCK})
            yield
            return
        lock_dir = self.store.lock_dir
        if lock_dir is None:
            yield
            return
        lock_dir.mkdir(parents=True, exist_ok=True)
        with open(lock_dir / "audit.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)  # several processes may serve one pool
            yield

    def _append(self, events: list[Event]) -> None:
        """Write one batch in one transaction, chained on the newest committed entry.

        SQLAlchemy Core instead of ORM objects: in batches of 50 the unit of work cost
        0.18 ms of CPU per entry, Core 0.06 ms (a rows request costs ~1 ms in all). The
        hash covers the same content as before (:func:`_body`). The entries are inserted with
        one multi-row INSERT … RETURNING id in parameter order, so ids follow the chain
        (verify() walks by id). The chain lock plus the single transaction mean a kill at
        any point leaves either the whole batch or none of it: never a broken chain.
        """
        entries, refs = _ENTRIES, _REFS
        with self.store.session() as s, s.begin(), self._chain_lock(s):
            last = s.execute(select(entries.c.hash).order_by(entries.c.id.desc()).limit(1)).scalar()
            prev = last if last is not None else GENESIS
            now = datetime.now(UTC)
            rows: list[dict[str, Any]] = []
            for ev in events:
                body = _body(
                    now, ev.actor, ev.organisation, ev.action, dict(ev.datasets), ev.query,
                    ev.rows, ev.outcome, dict(ev.detail), ev.client,
                )  # fmt: skip
                digest = _chain(prev, body)
                del body["at"]
                rows.append({**body, "at": now, "prev_hash": prev, "hash": digest})
                prev = digest
            ids = (
                s.execute(
                    insert(entries).returning(entries.c.id, sort_by_parameter_order=True), rows
                )
                .scalars()
                .all()
            )
            links = [
                {"entry_id": entry_id, "dataset": slug, "publisher": ev.publishers.get(slug)}
                for entry_id, ev in zip(ids, events, strict=True)
                for slug in ev.datasets
            ]
            if links:
                s.execute(insert(refs), links)

    # -- reading -------------------------------------------------------------------------
    def verify(self, batch: int = 5000) -> VerifyResult:
        """Walk the whole chain; report the first entry that does not fit."""
        prev, count, after = GENESIS, 0, 0
        with self.store.session() as s:
            while True:
                rows = s.scalars(
                    select(AuditEntry)
                    .where(AuditEntry.id > after)
                    .order_by(AuditEntry.id)
                    .limit(batch)
                ).all()
                if not rows:
                    return VerifyResult(True, count, prev)
                for e in rows:
                    if e.prev_hash != prev:
                        return VerifyResult(
                            False, count, prev, e.id, "an entry before it was removed or changed"
                        )
                    if entry_hash(prev, e) != e.hash:
                        return VerifyResult(False, count, prev, e.id, "its content was changed")
                    prev, count, after = e.hash, count + 1, e.id
                s.expunge_all()

    def entries(
        self,
        *,
        publisher: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        dataset: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Newest first. ``publisher`` limits to accesses of that organisation's datasets."""
        q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if publisher is not None or dataset is not None:
            refs = select(AuditRef.entry_id)
            if publisher is not None:
                refs = refs.where(AuditRef.publisher == publisher)
            if dataset is not None:
                refs = refs.where(AuditRef.dataset == dataset)
            q = q.where(AuditEntry.id.in_(refs))
        if actor:
            q = q.where(AuditEntry.actor == actor)
        if action:
            q = q.where(AuditEntry.action == action)
        if since:
            q = q.where(AuditEntry.at >= since)
        if until:
            q = q.where(AuditEntry.at < until)
        if before_id:
            q = q.where(AuditEntry.id < before_id)
        with self.store.session() as s:
            return list(s.scalars(q))


def entry_dict(e: AuditEntry) -> dict[str, Any]:
    return {"id": e.id, **_content(e), "hash": e.hash}
