"""Marketplace of AI use cases ("Marktplatz der KI-Möglichkeiten") across authorities.

A use case is a versioned entry of kind ``usecase`` whose profile fields are data
(``usecase-fields.yaml``): problem, authority, status, administrative level, policy area,
technique, data used, reuse potential, contact, linked register entry. Use cases of the
platform's own AI services are created from their register entries and show live metrics
(model version, suggestions, override rate, last fairness audit, impact level, risk class);
others are typed or imported (JSON/CSV).

Participation (``gov_reactions``): signed-in users comment; an authority declares interest in
reuse or cooperation, which the owners (and the declaring authority) see with names, everyone
else as a count.

Public value of a proposed use case: four scores 0–3 (benefit for citizens, reach among
affected groups, availability of data, risks — counted inverted) give
``value = (citizens + reach + data + (3 - risks)) / 12``; "pursue" from 0.66, "consider"
from 0.4, else "defer". Missing scores: no value.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from sqlalchemy import select

from datenlabor.access.principal import Principal
from datenlabor.errors import BadInput, Conflict, NotFound
from datenlabor.governance import entries, register
from datenlabor.governance.definitions import missing_required, usecase_fields, validate_values
from datenlabor.governance.entries import EntryView
from datenlabor.store.db import Store
from datenlabor.store.models import GovEntry, GovReaction, Organisation

KIND = "usecase"
REACTIONS = ("comment", "reuse", "cooperation")
FILTERS = ("status", "level", "policy_area", "technique", "risk_class")
_STATUS_FROM_REGISTER = {"development": "pilot", "in_use": "in_use", "out_of_use": "retired"}
_VALUE_KEYS = ("value_citizens", "value_affected_reach", "value_data_availability", "value_risks")


def public_value(data: dict[str, Any]) -> dict[str, Any] | None:
    scores = [data.get(k) for k in _VALUE_KEYS]
    if any(s is None for s in scores):
        return None
    citizens, reach, avail, risks = (float(s) for s in scores)  # type: ignore[arg-type]
    value = round((citizens + reach + avail + (3 - risks)) / 12, 3)
    advice = "pursue" if value >= 0.66 else "consider" if value >= 0.4 else "defer"
    return {"value": value, "advice": advice}


def _checked(values: dict[str, Any], *, line: int | None = None, file: str | None = None,
             partial: bool = False) -> dict[str, Any]:  # fmt: skip
    data = validate_values(usecase_fields(), values, file=file, line=line)
    if not partial:
        data = {k: v for k, v in data.items() if v is not None}
        missing = missing_required(usecase_fields(), data)
        if missing:
            raise BadInput(f"required fields missing: {', '.join(missing)}", file=file,
                           line=line, column=missing[0])  # fmt: skip
    return data


def create(store: Store, p: Principal, values: dict[str, Any], *, slug: str | None = None,
           organisation: str | None = None, public: bool = True) -> EntryView:  # fmt: skip
    data = _checked(values)
    if data.get("register_entry"):
        entries.get(store, p, data["register_entry"], "register")  # must exist and be visible
    return entries.create(store, p, kind=KIND, slug=slug or entries.slugify(data["title"]),
                          organisation=organisation, data=data, public=public)  # fmt: skip


def from_register(store: Store, p: Principal, register_slug: str, *, level: str,
                  slug: str | None = None, public: bool = True) -> EntryView:  # fmt: skip
    """A use case profile of one of the platform's register entries (the platform's own)."""
    r = entries.get(store, p, register_slug, "register")
    d = r.data
    values = {
        "title": d.get("name"),
        "problem": d.get("goal_impact") or d.get("short_description"),
        "authority": d.get("organisation") or r.organisation_name or "Datenlabor",
        "status": _STATUS_FROM_REGISTER.get(str(d.get("status")), "idea"),
        "level": level,
        "policy_area": d.get("theme"),
        "technique": "classification" if r.model_name == "triage" else None,
        "data_used": d.get("data") or d.get("training_data"),
        "contact": d.get("contact"),
        "register_entry": register_slug,
    }
    return create(store, p, {k: v for k, v in values.items() if v is not None},
                  slug=slug or f"nutzung-{register_slug}"[:100], organisation=r.organisation,
                  public=public)  # fmt: skip


def edit(store: Store, p: Principal, slug: str, values: dict[str, Any], *,
         public: bool | None = None, note: str = "") -> tuple[EntryView, bool]:  # fmt: skip
    changes = _checked(values, partial=True)
    current = entries.get(store, p, slug, KIND)
    merged = {**current.data, **changes}
    missing = missing_required(usecase_fields(), {k: v for k, v in merged.items() if v is not None})
    if missing:
        raise BadInput(f"required fields cannot be emptied: {', '.join(missing)}",
                       column=missing[0])  # fmt: skip
    return entries.update(store, p, slug, KIND, changes, public=public, note=note)


def _live(store: Store, p: Principal, register_slug: str | None) -> dict[str, Any] | None:
    """Live metrics of the linked register entry (None without a visible link)."""
    if not register_slug:
        return None
    try:
        r = entries.get(store, p, register_slug, "register")
    except NotFound:
        return None
    d = r.data
    a = register.latest_assessment(store, r.id)
    fairness = d.get("fairness_metrics") or {}
    return {
        "register_entry": r.slug,
        "model_version": d.get("model_version"),
        "suggestions": d.get("suggestions"),
        "override_rate": d.get("override_rate"),
        "evaluation_metrics": d.get("evaluation_metrics"),
        "last_audit_at": d.get("last_audit_at"),
        "fairness_flagged": fairness.get("flagged") if fairness else None,
        "level": a.level if a else None,
        "risk_class": a.risk_class if a else None,
    }


def profile_dict(store: Store, p: Principal, view: EntryView) -> dict[str, Any]:
    data = dict(view.data)
    live = _live(store, p, data.get("register_entry"))
    return {
        "slug": view.slug,
        "organisation": view.organisation,
        "public": view.public,
        "version": view.version,
        "changed_at": view.changed_at.isoformat(),
        "changed_by": view.changed_by,
        **{f.key: data.get(f.key) for f in usecase_fields().fields},
        "public_value": public_value(data),
        "risk_class": (live or {}).get("risk_class"),
        "live": live,
        "can_edit": entries.can_edit(p, view.organisation_id),
    }


def search(store: Store, p: Principal, q: str | None = None, **filters: str | None) -> list[dict[str, Any]]:
    """Use cases matching every given filter and, with ``q``, containing all its words in
    title, problem, authority, data or technique (case-insensitive). The catalogue is small
    (hundreds of profiles), so this filters the newest versions in Python."""
    unknown = set(filters) - set(FILTERS)
    if unknown:
        raise BadInput(f"unknown filter(s): {', '.join(sorted(unknown))}", column=sorted(unknown)[0])
    words = [w for w in (q or "").lower().split() if w]
    out = []
    for view in entries.entries(store, p, KIND):
        prof = profile_dict(store, p, view)
        if any(v and prof.get(k) != v for k, v in filters.items()):
            continue
        text = " ".join(str(prof.get(k) or "") for k in
                        ("title", "problem", "authority", "data_used", "technique", "policy_area")).lower()  # fmt: skip
        if all(w in text for w in words):
            out.append(prof)
    return out


def profile(store: Store, p: Principal, slug: str) -> dict[str, Any]:
    out = profile_dict(store, p, entries.get(store, p, slug, KIND))
    out["reactions"] = reactions(store, p, slug)
    return out


# -- participation ------------------------------------------------------------------------
def react(store: Store, p: Principal, slug: str, kind: str, text: str = "") -> dict[str, Any]:
    """A comment, or the caller's authority's interest in reuse or cooperation."""
    p.require_write()
    if kind not in REACTIONS:
        raise BadInput(f"kind must be one of {', '.join(REACTIONS)}", column="kind")
    text = (text or "").strip()
    if kind == "comment" and not text:
        raise BadInput("a comment needs a text", column="text")
    if len(text) > 4000:
        raise BadInput(f"the text has {len(text)} characters; at most 4000", column="text")
    if kind != "comment" and p.organisation_id is None:
        raise BadInput("interest is declared for an authority; your account has none",
                       column="kind")  # fmt: skip
    with store.session() as s, s.begin():
        e = entries.load(s, slug, KIND)
        if not entries.visible(p, e):
            raise NotFound(f"no usecase entry {slug!r}")
        if kind != "comment" and s.scalar(select(GovReaction.id).where(
                GovReaction.entry_id == e.id, GovReaction.kind == kind,
                GovReaction.organisation_id == p.organisation_id)) is not None:  # fmt: skip
            raise Conflict(f"your authority has declared {kind} interest already")
        r = GovReaction(entry_id=e.id, kind=kind, organisation_id=p.organisation_id,
                        author=p.label(), text=text)  # fmt: skip
        s.add(r)
        s.flush()
        return {"id": r.id, "kind": kind, "author": r.author, "text": text}


def reactions(store: Store, p: Principal, slug: str) -> dict[str, Any]:
    """Comments for everyone who sees the use case; interests with names for the owners and
    the declaring authority, as counts for everyone else."""
    with store.session() as s:
        e = entries.load(s, slug, KIND)
        if not entries.visible(p, e):
            raise NotFound(f"no usecase entry {slug!r}")
        owner = entries.can_edit(p, e.organisation_id) or (
            p.organisation_id is not None and p.organisation_id == e.organisation_id)
        rows = s.scalars(select(GovReaction).where(GovReaction.entry_id == e.id)
                         .order_by(GovReaction.created_at, GovReaction.id)).all()  # fmt: skip
        orgs = dict(s.execute(select(Organisation.id, Organisation.name)).all())
        comments, interests, counts = [], [], {"reuse": 0, "cooperation": 0}
        for r in rows:
            item = {"id": r.id, "kind": r.kind, "author": r.author, "text": r.text,
                    "organisation": orgs.get(r.organisation_id) if r.organisation_id else None,
                    "created_at": entries._utc(r.created_at).isoformat()}  # fmt: skip
            if r.kind == "comment":
                comments.append(item)
                continue
            counts[r.kind] += 1
            if owner or (p.organisation_id is not None and r.organisation_id == p.organisation_id):
                interests.append(item)
        return {"comments": comments, "interests": interests, "interest_counts": counts,
                "owner_view": owner}  # fmt: skip


# -- import and export --------------------------------------------------------------------
EXPORT_META = ("slug", "organisation", "public")


def export(store: Store, p: Principal, fmt: str = "json") -> str:
    rows = [profile_dict(store, p, v) for v in entries.entries(store, p, KIND)]
    keys = [*EXPORT_META, *(f.key for f in usecase_fields().fields)]
    plain = [{k: r.get(k) for k in keys} for r in rows]
    if fmt == "json":
        return json.dumps(plain, ensure_ascii=False, indent=2)
    if fmt == "csv":
        return register.to_csv(plain, keys)
    raise BadInput("format must be json or csv", column="format")


def _records(text: str, fmt: str, name: str) -> list[tuple[int, dict[str, Any]]]:
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadInput(f"not valid JSON: {exc.msg}", file=name, line=exc.lineno) from exc
        if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
            raise BadInput("expected a JSON array of objects", file=name)
        return [(i + 1, x) for i, x in enumerate(data)]  # "line" = position in the array
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if reader.fieldnames is None:
            raise BadInput("the CSV file is empty", file=name)
        return [(reader.line_num, {k: v for k, v in row.items() if k is not None})
                for row in reader]  # fmt: skip
    raise BadInput("format must be json or csv", column="format")


def import_(store: Store, p: Principal, text: str, fmt: str, *, name: str = "import",
            organisation: str | None = None) -> dict[str, list[str]]:  # fmt: skip
    """Create or update use cases from JSON/CSV in one transaction: every row is checked
    first; one bad row (named by line and field) imports nothing."""
    p.require_write()
    planned = []
    for line, rec in _records(text, fmt, name):
        rec = dict(rec)
        slug = str(rec.pop("slug", "") or "").strip()
        org = str(rec.pop("organisation", "") or "").strip() or organisation
        pub = rec.pop("public", True)
        public = pub if isinstance(pub, bool) else str(pub).strip().lower() not in ("false", "0", "nein", "no")
        rec = {k: v for k, v in rec.items() if k not in ("public_value", "risk_class", "live")}
        data = _checked({k: v for k, v in rec.items() if v not in ("", None)}, line=line, file=name)
        slug = slug or entries.slugify(data["title"])
        if not entries.SLUG.match(slug):
            raise BadInput(f"invalid slug {slug!r}", file=name, line=line, column="slug")
        planned.append((line, slug, org, public, data))
    slugs = [x[1] for x in planned]
    dup = sorted({x for x in slugs if slugs.count(x) > 1})
    if dup:
        raise BadInput(f"slug(s) occur more than once: {', '.join(dup)}", file=name, column="slug")
    created, updated = [], []
    with store.session() as s, s.begin():
        for line, slug, org, public, data in planned:
            e = s.scalar(entries._query().where(GovEntry.slug == slug))
            if e is not None:
                if e.kind != KIND:
                    raise BadInput(f"{slug!r} is a register entry", file=name, line=line, column="slug")
                entries.require_edit(p, e.organisation_id, f"use case {slug!r}")
                if dict(e.versions[-1].data or {}) != data or bool(e.public) != public:
                    e.public = public
                    entries.add_version(s, e, data, p.label(), f"imported from {name}")
                    updated.append(slug)
                continue
            oid = entries.org_id(s, org or p.organisation)
            entries.require_edit(p, oid, "use cases of this organisation")
            e = GovEntry(kind=KIND, slug=slug, organisation_id=oid, public=public,
                         created_by=p.label())  # fmt: skip
            s.add(e)
            s.flush()
            entries.add_version(s, e, data, p.label(), f"imported from {name}")
            created.append(slug)
    return {"created": created, "updated": updated}
