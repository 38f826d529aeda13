"""What the platform knows about one of its AI services, read from the store.

Read-only queries over the assistance tables (``assist_models``, ``assist_suggestions``,
``assist_decisions``), the pool's version records (quality report of the training data) and
the fairness audits. These are written here instead of calling :mod:`datenlabor.assist` so
that governance never changes assistance state and needs no caseworker role: the facts are
counts and metrics, no personal data.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from datenlabor.store.db import Store
from datenlabor.store.models import (
    AssistDecision,
    AssistModel,
    AssistSuggestion,
    Dataset,
    GovAudit,
    Version,
)


def _iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).isoformat(timespec="seconds")


def current_model(store: Store, name: str) -> AssistModel | None:
    """The active version of ``name``, else the newest one."""
    with store.session() as s:
        m = s.scalar(
            select(AssistModel)
            .where(AssistModel.name == name)
            .order_by(AssistModel.active.desc(), AssistModel.version.desc())
            .limit(1)
        )
        if m is not None:
            s.expunge(m)
        return m


def model_names(store: Store) -> list[str]:
    with store.session() as s:
        return list(s.scalars(select(AssistModel.name).distinct().order_by(AssistModel.name)))


def _quality(store: Store, slug: str | None, number: int | None) -> dict[str, Any] | None:
    if not slug or not number:
        return None
    with store.session() as s:
        v = s.scalar(
            select(Version)
            .join(Dataset, Version.dataset_id == Dataset.id)
            .where(Dataset.slug == slug, Version.number == number)
        )
        if v is None:
            return None
        summary = dict((v.quality or {}).get("summary") or {})
        return {"rows": v.row_count, **summary}


def _evaluation(metrics: dict[str, Any]) -> dict[str, Any]:
    """The held-out metrics worth publishing (numbers only; per-class tables stay inside)."""
    held = metrics.get("holdout") if isinstance(metrics.get("holdout"), dict) else metrics
    out = {k: v for k, v in (held or {}).items() if isinstance(v, int | float)}
    for key in ("train_rows", "skipped_rows"):
        if isinstance(metrics.get(key), int | float):
            out[key] = metrics[key]
    return out


def usage(store: Store, name: str) -> dict[str, Any]:
    """Suggestions of every version of ``name``, decisions on them, and the override rate
    (share of decisions where the person did not accept the suggestion as it was)."""
    with store.session() as s:
        ids = select(AssistModel.id).where(AssistModel.name == name)
        suggestions = s.scalar(
            select(func.count()).select_from(AssistSuggestion).where(
                AssistSuggestion.model_id.in_(ids)
            )
        )
        rows = s.execute(
            select(AssistDecision.decision, func.count())
            .join(AssistSuggestion, AssistDecision.suggestion_id == AssistSuggestion.id)
            .where(AssistSuggestion.model_id.in_(ids))
            .group_by(AssistDecision.decision)
        ).all()
    by = {d: int(n) for d, n in rows}
    decided = sum(by.values())
    overridden = decided - by.get("accepted", 0)
    return {
        "suggestions": int(suggestions or 0),
        "decisions": decided,
        "override_rate": round(overridden / decided, 4) if decided else None,
    }


def last_audit(store: Store, entry_id: int | None, model_name: str | None) -> GovAudit | None:
    with store.session() as s:
        q = select(GovAudit).order_by(GovAudit.created_at.desc(), GovAudit.id.desc()).limit(1)
        if entry_id is not None:
            q = q.where(GovAudit.entry_id == entry_id)
        elif model_name:
            q = q.where(GovAudit.model_id.in_(
                select(AssistModel.id).where(AssistModel.name == model_name)))  # fmt: skip
        else:
            return None
        a = s.scalar(q)
        if a is not None:
            s.expunge(a)
        return a


def audit_summary(a: GovAudit) -> dict[str, Any]:
    r = a.result or {}
    return {
        "audit": a.id,
        "source": (a.params or {}).get("source"),
        "min_ratio": r.get("min_ratio"),
        "flagged": bool(a.flagged),
        "attributes": sorted((r.get("attributes") or {}).keys()),
    }


def platform_fields(store: Store, model_name: str, entry_id: int | None) -> dict[str, Any]:
    """The register's platform fields for a model name (None where nothing is known)."""
    m = current_model(store, model_name)
    out: dict[str, Any] = {
        "model_version": None,
        "model_trained_at": None,
        "training_data": None,
        "training_data_version": None,
        "training_data_quality": None,
        "evaluation_metrics": None,
    }
    if m is not None:
        out.update(
            model_version=f"{m.name}@{m.version}",
            model_trained_at=_iso(m.created_at),
            training_data=m.dataset,
            training_data_version=m.dataset_version,
            training_data_quality=_quality(store, m.dataset, m.dataset_version),
            evaluation_metrics=_evaluation(dict(m.metrics or {})) or None,
        )
    out.update(usage(store, model_name))
    out.update(audit_fields(store, entry_id, model_name))
    return out


AUDIT_KEYS = ("fairness_metrics", "last_audit_at")


def audit_fields(store: Store, entry_id: int | None, model_name: str | None) -> dict[str, Any]:
    """Fairness summary and date of the newest audit (also for entries without a model)."""
    a = last_audit(store, entry_id, model_name)
    return {
        "fairness_metrics": audit_summary(a) if a is not None else None,
        "last_audit_at": _iso(a.created_at) if a is not None else None,
    }
