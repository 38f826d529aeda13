"""The AI register: an entry per AI application, kept current from what is deployed.

Fields are data (``register-fields.yaml``): the Dutch Algorithm Register standard's content,
grouped into the UK ATRS tiers (public / specialist). Stewards type the descriptive fields;
the technical fields of the platform's own AI services (model version, training data version
and its quality, evaluation and fairness metrics, last audit, suggestions and override rate)
are filled by :func:`refresh`, which writes a new version by ``"platform"`` whenever one of
them changed. :func:`annex_viii` maps an entry onto the deployer registration data of the EU
AI Act (Annex VIII section C) and says which items are still missing.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from datenlabor.access.principal import Principal
from datenlabor.errors import BadInput, NotFound
from datenlabor.governance import entries, facts
from datenlabor.governance.definitions import (
    missing_required,
    register_fields,
    validate_values,
)
from datenlabor.governance.entries import PLATFORM, EntryView
from datenlabor.store.db import Store
from datenlabor.store.models import GovAssessment, GovEntry

KIND = "register"
META = ("slug", "register_version", "organisation_slug", "model_name", "public",
        "changed_at", "changed_by")  # fmt: skip

# What an automatically created entry says until a steward writes the real text.
_DEFAULT_TEXT = {
    "triage": (
        "Zuordnung eingehender Anfragen",
        "Ein Modell schlägt vor, welche Stelle eine eingehende Anfrage bearbeitet. Eine "
        "Sachbearbeiterin oder ein Sachbearbeiter prüft jeden Vorschlag und entscheidet.",
    ),
}


def create(
    store: Store,
    p: Principal,
    values: dict[str, Any],
    *,
    slug: str | None = None,
    organisation: str | None = None,
    model_name: str | None = None,
    public: bool = False,
) -> EntryView:
    """A new register entry typed by a steward; platform fields filled when ``model_name``
    names one of the platform's AI services."""
    fields = register_fields()
    data = {k: v for k, v in validate_values(fields, values).items() if v is not None}
    missing = missing_required(fields, data)
    if missing:
        raise BadInput(f"required fields missing: {', '.join(missing)}", column=missing[0])
    view = entries.create(
        store, p, kind=KIND, slug=slug or entries.slugify(data["name"]),
        organisation=organisation, data=data, model_name=model_name, public=public,
    )  # fmt: skip
    if model_name:
        refresh(store, view.slug)  # the technical fields: a second version, by "platform"
    return entries.get(store, p, view.slug, KIND)


def edit(
    store: Store,
    p: Principal,
    slug: str,
    values: dict[str, Any],
    *,
    public: bool | None = None,
    note: str = "",
) -> tuple[EntryView, bool]:
    """A steward's edit: typed fields only (platform fields are refused by name)."""
    fields = register_fields()
    changes = validate_values(fields, values)
    current = entries.get(store, p, slug, KIND)
    merged = {**current.data, **{k: v for k, v in changes.items() if v is not None}}
    for k, v in changes.items():
        if v is None:
            merged.pop(k, None)
    missing = missing_required(fields, merged)
    if missing:
        raise BadInput(f"required fields cannot be emptied: {', '.join(missing)}",
                       column=missing[0])  # fmt: skip
    return entries.update(store, p, slug, KIND, changes, public=public, note=note)


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def refresh(store: Store, slug: str | None = None) -> list[str]:
    """Refresh the platform fields of one entry (or all): every technical field for entries of
    the platform's AI services, the fairness fields for the others. Returns the slugs that got
    a new version; unchanged facts write nothing."""
    all_keys = register_fields().platform_keys
    changed: list[str] = []
    with store.session() as s:
        q = select(GovEntry.id, GovEntry.slug, GovEntry.model_name).where(GovEntry.kind == KIND)
        if slug is not None:
            q = q.where(GovEntry.slug == slug)
        targets = s.execute(q.order_by(GovEntry.slug)).all()
    for entry_id, entry_slug, model_name in targets:
        if model_name:
            keys, now = all_keys, _clean(facts.platform_fields(store, model_name, entry_id))
        else:
            keys = list(facts.AUDIT_KEYS)
            now = _clean(facts.audit_fields(store, entry_id, None))
        try:
            if _refresh_one(store, entry_slug, keys, now):
                changed.append(entry_slug)
        except IntegrityError:
            continue  # another process wrote a version of this entry at the same moment
    return changed


def _refresh_one(store: Store, slug: str, keys: list[str], now: dict[str, Any]) -> bool:
    with store.session() as s, s.begin():
        e = entries.load(s, slug, KIND)
        data = dict(e.versions[-1].data or {})
        before = {k: data.get(k) for k in keys if data.get(k) is not None}
        if json.dumps(before, sort_keys=True, default=str) == json.dumps(
            now, sort_keys=True, default=str
        ):
            return False
        for k in keys:
            data.pop(k, None)
        data.update(now)
        what = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        entries.add_version(s, e, data, PLATFORM, "refreshed: " + ", ".join(what))
        return True


def ensure_model_entries(store: Store) -> list[str]:
    """Create a (non-public) entry for every AI service of the platform that has none, so
    that no deployed model is missing from the register; returns the new slugs."""
    created = []
    with store.session() as s:
        described = set(s.scalars(select(GovEntry.model_name).where(
            GovEntry.kind == KIND, GovEntry.model_name.is_not(None))))  # fmt: skip
    for name in facts.model_names(store):
        if name in described:
            continue
        model = facts.current_model(store, name)
        title, text = _DEFAULT_TEXT.get(
            name, (f"KI-Dienst {name}", f"KI-Dienst {name!r} der Datenlabor-Plattform.")
        )
        data = {
            "name": title,
            "short_description": text,
            "status": "in_use" if model is not None and model.active else "development",
            "human_intervention": "Jeder Vorschlag bleibt offen, bis eine Person entscheidet.",
        }
        slug = _free_slug(store, entries.slugify(f"ki-{name}"))
        entries.create(store, _platform(), kind=KIND, slug=slug, organisation=None, data=data,
                       model_name=name, changed_by=PLATFORM,
                       note="created for a deployed AI service")  # fmt: skip
        created.append(slug)
    return created


def _platform() -> Principal:
    return Principal(username=PLATFORM, role="admin", via="local")


def _free_slug(store: Store, base: str) -> str:
    with store.session() as s:
        taken = set(s.scalars(select(GovEntry.slug).where(GovEntry.slug.like(f"{base}%"))))
    n, slug = 1, base
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    return slug


# -- reading and export -------------------------------------------------------------------
def entry_dict(view: EntryView) -> dict[str, Any]:
    """A flat record: entry metadata, then every field of both tiers (None when empty)."""
    out: dict[str, Any] = {
        "slug": view.slug,
        "register_version": view.version,
        "organisation_slug": view.organisation,
        "model_name": view.model_name,
        "public": view.public,
        "changed_at": view.changed_at.isoformat(),
        "changed_by": view.changed_by,
    }
    data = dict(view.data)
    if not data.get("organisation") and view.organisation_name:
        data["organisation"] = view.organisation_name
    for f in register_fields().fields:
        out[f.key] = data.get(f.key)
    out["tiers"] = {t: [f.key for f in register_fields().tier(t)] for t in ("public", "specialist")}
    return out


def listing(store: Store, p: Principal) -> list[dict[str, Any]]:
    return [entry_dict(v) for v in entries.entries(store, p, KIND)]


def export(store: Store, p: Principal, fmt: str = "json", *, auto: bool = True) -> str:
    """All entries the caller may see as JSON (an array) or CSV; with ``auto`` the platform's
    AI services get their entries and every platform field is refreshed first."""
    if fmt not in ("json", "csv"):
        raise BadInput("format must be json or csv", column="format")
    if auto:
        ensure_model_entries(store)
        refresh(store)
    rows = listing(store, p)
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, indent=2, default=str)
    return to_csv(rows, [*META, *(f.key for f in register_fields().fields)])


def to_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\r\n")
    w.writeheader()
    for r in rows:
        w.writerow({
            k: json.dumps(v, ensure_ascii=False, sort_keys=True) if isinstance(v, dict | list)
            else ("" if v is None else v)
            for k, v in r.items()
        })  # fmt: skip
    return buf.getvalue()


def latest_assessment(store: Store, entry_id: int) -> GovAssessment | None:
    with store.session() as s:
        a = s.scalar(
            select(GovAssessment)
            .where(GovAssessment.entry_id == entry_id)
            .order_by(GovAssessment.created_at.desc(), GovAssessment.id.desc())
            .limit(1)
        )
        if a is not None:
            s.expunge(a)
        return a


def annex_viii(store: Store, p: Principal, slug: str) -> dict[str, Any]:
    """The deployer registration data of AI Act Annex VIII section C for one entry."""
    view = entries.get(store, p, slug, KIND)
    record = entry_dict(view)
    items = []
    for item in register_fields().annex_viii_c:
        values = {k: record.get(k) for k in item.fields}
        items.append({
            "item": item.item,
            "label": item.label,
            "values": values,
            "complete": all(v not in (None, "") for v in values.values()),
            "automatic": item.automatic,
            "note": item.note,
        })  # fmt: skip
    a = latest_assessment(store, view.id)
    assessment = None
    if a is not None:
        assessment = {"questionnaire": a.questionnaire, "level": a.level,
                      "risk_class": a.risk_class,
                      "measures": [m["id"] for m in (a.result or {}).get("measures", [])]}  # fmt: skip
    return {
        "entry": slug,
        "applies": bool(a is not None and a.risk_class == "high"),
        "basis": "Regulation (EU) 2024/1689, Art. 49(3), Annex VIII section C",
        "items": items,
        "missing": [i["item"] for i in items if not i["complete"]],
        "assessment": assessment,
    }


def by_model(store: Store, model_name: str) -> EntryView:
    """The register entry describing a platform AI service (NotFound if none)."""
    with store.session() as s:
        e = s.scalar(
            entries._query(KIND).where(GovEntry.model_name == model_name).order_by(GovEntry.id)
        )
        if e is None or not e.versions:
            raise NotFound(f"no register entry describes the AI service {model_name!r}")
        return EntryView.of(e, e.versions[-1])
