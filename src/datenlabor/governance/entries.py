"""Versioned governance entries: AI register entries and marketplace use cases.

An entry (``gov_entries``) holds identity and ownership; its content lives in immutable
versions (``gov_entry_versions``). Every change, by a person or by the platform's automatic
refresh (``changed_by="platform"``), writes a new version; nothing is overwritten, so the
history can be browsed and any two versions compared.

Who may do what:

* read: public entries everyone (also without signing in); the others signed-in users;
* create and edit: admins, and stewards of the entry's organisation (write credentials).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from datenlabor.access.principal import Principal
from datenlabor.errors import BadInput, Conflict, Forbidden, NotFound
from datenlabor.store.db import Store
from datenlabor.store.models import GovEntry, GovEntryVersion, Organisation

PLATFORM = "platform"
KINDS = ("register", "usecase")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")


def slugify(text: str) -> str:
    """A URL-safe slug of a name: ``"Zuständigkeit für Anträge"`` -> ``zustaendigkeit-fuer-antraege``."""
    umlauts: dict[str, str | int | None] = {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"}
    text = text.lower().translate(str.maketrans(umlauts))
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:80] or "eintrag"


def _utc(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


@dataclass
class EntryView:
    id: int
    kind: str
    slug: str
    organisation: str | None
    organisation_name: str | None
    organisation_id: int | None
    model_name: str | None
    public: bool
    version: int
    data: dict[str, Any]
    changed_by: str
    changed_at: datetime
    note: str
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, e: GovEntry, v: GovEntryVersion) -> EntryView:
        org = e.organisation
        return cls(
            e.id,
            e.kind,
            e.slug,
            org.slug if org else None,
            org.name if org else None,
            e.organisation_id,
            e.model_name,
            bool(e.public),
            v.number,
            dict(v.data or {}),
            v.changed_by,
            _utc(v.changed_at),
            v.note or "",
            e.created_by,
            _utc(e.created_at),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "kind": self.kind,
            "organisation": self.organisation,
            "model_name": self.model_name,
            "public": self.public,
            "version": self.version,
            "changed_by": self.changed_by,
            "changed_at": self.changed_at.isoformat(),
            "data": self.data,
        }


def can_edit(p: Principal, organisation_id: int | None) -> bool:
    if not p.can_write:
        return False
    if p.is_admin:
        return True
    return p.role == "steward" and organisation_id is not None and organisation_id == p.organisation_id


def require_edit(p: Principal, organisation_id: int | None, what: str) -> None:
    p.require_write()
    if not can_edit(p, organisation_id):
        raise Forbidden(f"only admins and stewards of the owning organisation may change {what}")


def _query(kind: str | None = None) -> Any:
    q = select(GovEntry).options(
        selectinload(GovEntry.organisation), selectinload(GovEntry.versions)
    )
    return q.where(GovEntry.kind == kind) if kind else q


def _latest(e: GovEntry) -> GovEntryVersion:
    return e.versions[-1]


def load(s: Session, slug: str, kind: str | None = None) -> GovEntry:
    e = s.scalar(_query(kind).where(GovEntry.slug == slug))
    if e is None or not e.versions:
        raise NotFound(f"no {kind or 'governance'} entry {slug!r}")
    return e


def visible(p: Principal, e: GovEntry) -> bool:
    return bool(e.public) or p.authenticated


def get(store: Store, p: Principal, slug: str, kind: str | None = None) -> EntryView:
    with store.session() as s:
        e = load(s, slug, kind)
        if not visible(p, e):
            raise NotFound(f"no {kind or 'governance'} entry {slug!r}")
        return EntryView.of(e, _latest(e))


def entries(store: Store, p: Principal, kind: str) -> list[EntryView]:
    with store.session() as s:
        q = _query(kind).order_by(GovEntry.slug)
        if not p.authenticated:
            q = q.where(GovEntry.public.is_(True))
        return [EntryView.of(e, _latest(e)) for e in s.scalars(q) if e.versions]


def org_id(s: Session, slug: str | None) -> int | None:
    if not slug:
        return None
    o = s.scalar(select(Organisation).where(Organisation.slug == slug))
    if o is None:
        raise BadInput(f"unknown organisation {slug!r}", column="organisation")
    return o.id


def add_version(
    s: Session, e: GovEntry, data: dict[str, Any], changed_by: str, note: str = ""
) -> GovEntryVersion:
    last = s.scalar(
        select(func.max(GovEntryVersion.number)).where(GovEntryVersion.entry_id == e.id)
    )
    v = GovEntryVersion(
        entry_id=e.id, number=(last or 0) + 1, data=data, changed_by=changed_by, note=note
    )
    s.add(v)
    s.flush()
    e.versions.append(v)
    return v


def create(
    store: Store,
    p: Principal,
    *,
    kind: str,
    slug: str,
    organisation: str | None,
    data: dict[str, Any],
    model_name: str | None = None,
    public: bool = False,
    note: str = "",
    changed_by: str | None = None,
) -> EntryView:
    """A new entry with its first version; Conflict if the slug is taken."""
    if kind not in KINDS:
        raise BadInput(f"kind must be one of {', '.join(KINDS)}", column="kind")
    if not SLUG.match(slug):
        raise BadInput(
            "a slug has lower-case letters, digits and hyphens (at most 100)", column="slug"
        )
    try:
        with store.session() as s, s.begin():
            oid = org_id(s, organisation if organisation else p.organisation)
            if changed_by != PLATFORM:
                require_edit(p, oid, f"{kind} entries of this organisation")
            if s.scalar(select(GovEntry.id).where(GovEntry.slug == slug)) is not None:
                raise Conflict(f"the slug {slug!r} is taken")
            e = GovEntry(
                kind=kind,
                slug=slug,
                organisation_id=oid,
                model_name=model_name,
                public=public,
                created_by=changed_by or p.label(),
            )
            s.add(e)
            s.flush()
            v = add_version(s, e, data, changed_by or p.label(), note or "created")
            s.refresh(e, ["organisation"])
            return EntryView.of(e, v)
    except IntegrityError as exc:
        raise Conflict(f"the slug {slug!r} was taken at the same time; retry") from exc


def update(
    store: Store,
    p: Principal,
    slug: str,
    kind: str,
    changes: dict[str, Any],
    *,
    public: bool | None = None,
    note: str = "",
) -> tuple[EntryView, bool]:
    """Merge ``changes`` (None clears a field) into a new version; returns (view, changed).

    Nothing is written when nothing changes (the same content is not a new version)."""
    try:
        with store.session() as s, s.begin():
            e = load(s, slug, kind)
            require_edit(p, e.organisation_id, f"{kind} entry {slug!r}")
            current = _latest(e)
            data = dict(current.data or {})
            for key, value in changes.items():
                if value is None:
                    data.pop(key, None)
                else:
                    data[key] = value
            flip = public is not None and bool(public) != bool(e.public)
            if data == (current.data or {}) and not flip:
                return EntryView.of(e, current), False
            if flip:
                e.public = bool(public)
                note = note or ("published" if public else "withdrawn from publication")
            v = add_version(s, e, data, p.label(), note)
            return EntryView.of(e, v), True
    except IntegrityError as exc:
        raise Conflict(f"entry {slug!r} was changed at the same time; retry") from exc


def history(store: Store, p: Principal, slug: str, kind: str | None = None) -> list[dict[str, Any]]:
    with store.session() as s:
        e = load(s, slug, kind)
        if not visible(p, e):
            raise NotFound(f"no {kind or 'governance'} entry {slug!r}")
        return [
            {
                "version": v.number,
                "changed_by": v.changed_by,
                "changed_at": _utc(v.changed_at).isoformat(),
                "note": v.note or "",
                "data": dict(v.data or {}),
            }
            for v in e.versions
        ]


def diff_data(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Fields that differ between two versions' data: key, before, after."""
    keys = sorted(set(a) | set(b))
    return [
        {"field": k, "before": a.get(k), "after": b.get(k)} for k in keys if a.get(k) != b.get(k)
    ]


def diff(
    store: Store, p: Principal, slug: str, a: int, b: int, kind: str | None = None
) -> list[dict[str, Any]]:
    versions = {h["version"]: h for h in history(store, p, slug, kind)}
    for n in (a, b):
        if n not in versions:
            raise NotFound(f"entry {slug!r} has no version {n}")
    return diff_data(versions[a]["data"], versions[b]["data"])
