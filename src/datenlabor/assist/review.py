"""Human review and the decision log: the AI suggests, a caseworker decides.

Every suggestion is stored (``assist_suggestions``) with the request id, the request's pool
dataset version, the model version (and through it the training data version), template
version, retrieved passages, the suggestion itself and its confidence; it stays ``open``
until a person accepts, edits or rejects it (``assist_decisions``: reviewer, decision,
final routing or answer, edits, time). Nothing in this package closes a suggestion by
itself: :func:`decide` is the only place a status changes, and it needs a caseworker.

:func:`decisions` is the query API for evaluation and the fairness audit: one row per
decision with what was suggested, what was decided, whether the person overrode the AI,
and the request's group attributes (region, language, channel).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from datenlabor.access.principal import Principal
from datenlabor.assist.inbox import require_caseworker
from datenlabor.assist.registry import ModelInfo
from datenlabor.errors import BadInput, Conflict, NotFound
from datenlabor.query.connection import quote_literal
from datenlabor.service.gate import Gate
from datenlabor.store.models import AssistDecision, AssistSuggestion

DECISIONS = ("accepted", "edited", "rejected")
GROUP_COLUMNS = ("ags", "language", "channel")
ROUTING_FIELDS = ("label", "unit", "urgency")


def _utc(ts: datetime | None) -> datetime | None:
    return ts if ts is None or ts.tzinfo else ts.replace(tzinfo=UTC)


def record_triage(
    gate: Gate,
    p: Principal,
    request_ids: Sequence[str],
    results: Sequence[Any],
    *,
    dataset: str | None,
    version: int | None,
    model: ModelInfo | None,
) -> list[int]:
    """Store triage results as open suggestions; returns their ids."""
    from datenlabor.assist.triage import TEMPLATE

    rows = []
    for rid, res in zip(request_ids, results, strict=True):
        data = res.to_dict()
        template = res.taxonomy + "/" + TEMPLATE
        if res.engine == "llm":
            from datenlabor.assist.triage_llm import TEMPLATE as LLM_TEMPLATE

            template = res.taxonomy + "/" + LLM_TEMPLATE
        rows.append(
            AssistSuggestion(
                request_id=rid,
                dataset=dataset,
                dataset_version=version,
                kind="triage",
                model_id=model.id if model is not None else None,
                template_version=template,
                retrieved=[],
                suggestion=data,
                confidence=res.confidence,
                status="open",
            )
        )
    with gate.pool.store.session() as s, s.begin():
        s.add_all(rows)
        s.flush()
        ids = [r.id for r in rows]
    gate.audit.log(
        p,
        "assist-suggest",
        datasets={dataset: version} if dataset and version else {},
        rows=len(ids),
        detail={"kind": "triage", "model": model.ref if model else None, "suggestions": ids[:50]},
    )
    return ids


def record_answer(
    gate: Gate,
    p: Principal,
    request_id: str,
    draft: Any,
    *,
    dataset: str | None,
    version: int | None,
) -> int:
    """Store an answer draft of :mod:`datenlabor.assist.answer` as an open suggestion."""
    sentences = [
        s if isinstance(s, dict) else getattr(s, "__dict__", {"text": str(s)})
        for s in getattr(draft, "sentences", [])
    ]
    supported = [bool(s.get("supported")) for s in sentences if s.get("claim", True)]
    row = AssistSuggestion(
        request_id=request_id,
        dataset=dataset,
        dataset_version=version,
        kind="answer",
        model_id=None,
        template_version=str(getattr(draft, "template_version", "") or "") or None,
        retrieved=list(getattr(draft, "retrieved", []) or []),
        suggestion={
            "text": draft.text,
            "citations": list(draft.citations),
            "sentences": sentences,
            "model": getattr(draft, "model", None),
        },
        confidence=(sum(supported) / len(supported)) if supported else None,
        status="open",
    )
    with gate.pool.store.session() as s, s.begin():
        s.add(row)
        s.flush()
        sid = row.id
    gate.audit.log(
        p, "assist-suggest", detail={"kind": "answer", "suggestion": sid, "request": request_id}
    )
    return sid


# -- reading ------------------------------------------------------------------------------
def suggestion_dict(sg: AssistSuggestion) -> dict[str, Any]:
    m = sg.model
    return {
        "id": sg.id,
        "request_id": sg.request_id,
        "dataset": sg.dataset,
        "dataset_version": sg.dataset_version,
        "kind": sg.kind,
        "model": _model_ref(sg),
        "training_data": {"dataset": m.dataset, "version": m.dataset_version} if m else None,
        "template_version": sg.template_version,
        "retrieved": sg.retrieved,
        "suggestion": sg.suggestion,
        "confidence": sg.confidence,
        "status": sg.status,
        "created_at": _utc(sg.created_at).isoformat(),  # type: ignore[union-attr]
        "decisions": [decision_dict(d) for d in sg.decisions],
    }


def _model_ref(sg: AssistSuggestion) -> str | None:
    """What made the suggestion: ``triage@N``, ``llm:<model>`` or the answer's model; None
    when no model was available (the request went to a person as it was)."""
    m = sg.model
    shown = (sg.suggestion or {}).get("model") or (f"{m.name}@{m.version}" if m else None)
    return None if shown in (None, "none") else str(shown)


def decision_dict(d: AssistDecision) -> dict[str, Any]:
    return {
        "id": d.id,
        "reviewer": d.reviewer,
        "decision": d.decision,
        "final": d.final,
        "edits": d.edits,
        "decided_at": _utc(d.decided_at).isoformat(),  # type: ignore[union-attr]
    }


def _load(s: Any) -> Any:
    return select(AssistSuggestion).options(
        selectinload(AssistSuggestion.model), selectinload(AssistSuggestion.decisions)
    )


def queue(
    gate: Gate, p: Principal, *, status: str = "open", limit: int = 200
) -> list[dict[str, Any]]:
    """Requests with suggestions in ``status`` (``open`` = waiting for a person), oldest first,
    one entry per request with its suggestions."""
    require_caseworker(gate, p)
    if status not in ("open", *DECISIONS, "all"):
        raise BadInput(f"unknown status {status!r}", column="status")
    with gate.pool.store.session() as s:
        q = _load(s).order_by(AssistSuggestion.id)
        if status != "all":
            q = q.where(AssistSuggestion.status == status)
        rows = s.scalars(q.limit(limit * 3)).all()
        items: dict[str, dict[str, Any]] = {}
        for sg in rows:
            entry = items.setdefault(
                sg.request_id, {"request_id": sg.request_id, "suggestions": []}
            )
            entry["suggestions"].append(suggestion_dict(sg))
    return list(items.values())[:limit]


def suggestions_for(gate: Gate, p: Principal, request_id: str) -> list[dict[str, Any]]:
    require_caseworker(gate, p)
    with gate.pool.store.session() as s:
        rows = s.scalars(
            _load(s).where(AssistSuggestion.request_id == request_id).order_by(AssistSuggestion.id)
        ).all()
        return [suggestion_dict(sg) for sg in rows]


def request_rows(
    gate: Gate, p: Principal, slug: str, version: int | None, ids: Sequence[str], *, purpose: str
) -> dict[str, dict[str, Any]]:
    """Rows of the inbox dataset by request id, read through the gate (audited)."""
    if not ids:
        return {}
    src = gate.source(p, slug, version)
    listed = ", ".join(quote_literal(i) for i in ids)
    with gate.connection() as con:
        gate.register(con, "requests", src)
        table = con.execute(
            f"SELECT * FROM requests WHERE request_id IN ({listed})"
        ).to_arrow_table()
    gate.record(p, "read", [src], rows=table.num_rows, detail={"purpose": purpose})
    return {r["request_id"]: r for r in table.to_pylist()}


def request_view(gate: Gate, p: Principal, request_id: str) -> dict[str, Any]:
    """The request (from its pool version) and all suggestions and decisions on it."""
    sugg = suggestions_for(gate, p, request_id)
    slug = sugg[-1]["dataset"] if sugg else gate.pool.settings.assist_inbox_dataset
    version = sugg[-1]["dataset_version"] if sugg else None
    rows = request_rows(gate, p, slug, version, [request_id], purpose="assist-review")
    if request_id not in rows:
        raise NotFound(f"no request {request_id!r}")
    return {"request": rows[request_id], "suggestions": sugg, "closed": bool(sugg) and all(
        x["status"] != "open" for x in sugg)}  # fmt: skip


# -- deciding -----------------------------------------------------------------------------
def _final_routing(
    sg: AssistSuggestion, decision: str, given: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    suggested = {k: (sg.suggestion or {}).get(k) for k in ROUTING_FIELDS}
    if decision == "accepted":
        if suggested["label"] is None:
            raise BadInput(
                "this request was routed to a person without a suggestion: edit it with a routing",
                column="label",
            )
        return suggested, {}
    given = {
        k: v
        for k, v in (given or {}).items()
        if k in (*ROUTING_FIELDS, "reason") and v not in (None, "")
    }
    if decision == "edited" and not given.get("label"):
        raise BadInput("an edited routing needs the category (label)", column="label")
    final: dict[str, Any] = {}
    if given.get("label"):  # checked against the taxonomy by decide()
        final = {
            "label": given["label"],
            "unit": given.get("unit"),
            "urgency": given.get("urgency") or suggested["urgency"],
        }
    edits = {
        k: {"from": suggested.get(k), "to": final.get(k)}
        for k in ROUTING_FIELDS
        if final and final.get(k) != suggested.get(k)
    }
    if given.get("reason"):
        edits["reason"] = given["reason"]
    return final, edits


def _final_answer(
    sg: AssistSuggestion, decision: str, given: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    draft = str((sg.suggestion or {}).get("text") or "")
    if decision == "accepted":
        return {"text": draft}, {}
    text = str((given or {}).get("text") or "").strip()
    if decision == "edited" and not text:
        raise BadInput("an edited answer needs its text", column="text")
    if decision == "rejected" and not text:
        return {}, {"reason": (given or {}).get("reason")} if (given or {}).get("reason") else {}
    diff = "\n".join(
        difflib.unified_diff(draft.splitlines(), text.splitlines(), "draft", "final", lineterm="")
    )
    return {"text": text}, {"diff": diff}


@dataclass
class Decided:
    suggestion: dict[str, Any]
    decision: dict[str, Any]


def decide(
    gate: Gate,
    p: Principal,
    suggestion_id: int,
    decision: str,
    *,
    final: dict[str, Any] | None = None,
    client: str | None = None,
) -> Decided:
    """A caseworker's decision on an open suggestion; Conflict if it was decided already."""
    require_caseworker(gate, p)
    p.require_write()
    if decision not in DECISIONS:
        raise BadInput(f"decision must be one of {', '.join(DECISIONS)}", column="decision")
    with gate.pool.store.session() as s, s.begin():
        sg = s.scalar(_load(s).where(AssistSuggestion.id == suggestion_id))
        if sg is None:
            raise NotFound(f"no suggestion {suggestion_id}")
        if sg.kind == "triage":
            result, edits = _final_routing(sg, decision, final)
            label = result.get("label")
            if label is not None:
                _check_label(gate, label)
                if not result.get("unit"):
                    result["unit"] = _unit_of(gate, label)
        else:
            result, edits = _final_answer(sg, decision, final)
        # Only an open suggestion can be decided: a concurrent decision makes this a no-op.
        changed = s.execute(  # type: ignore[attr-defined]
            update(AssistSuggestion)
            .where(AssistSuggestion.id == suggestion_id, AssistSuggestion.status == "open")
            .values(status=decision)
        ).rowcount
        if changed != 1:
            raise Conflict(f"suggestion {suggestion_id} was decided already ({sg.status})")
        d = AssistDecision(
            suggestion_id=suggestion_id,
            reviewer=p.label(),
            decision=decision,
            final=result,
            edits=edits,
        )
        s.add(d)
        s.flush()
        s.refresh(sg)
        out = Decided(suggestion_dict(sg), decision_dict(d))
    gate.audit.log(
        p,
        "assist-decide",
        datasets={sg.dataset: sg.dataset_version} if sg.dataset and sg.dataset_version else {},
        detail={"suggestion": suggestion_id, "request": sg.request_id, "decision": decision,
                "kind": sg.kind},
        client=client,
    )  # fmt: skip
    return out


def _check_label(gate: Gate, label: str) -> None:
    from datenlabor.assist.taxonomy import load_taxonomy

    load_taxonomy(gate.pool.settings.assist_taxonomy).category(label)


def _unit_of(gate: Gate, label: str) -> str:
    from datenlabor.assist.taxonomy import load_taxonomy

    return load_taxonomy(gate.pool.settings.assist_taxonomy).category(label).unit["de"]


# -- the decision log as data -------------------------------------------------------------
def decisions(
    gate: Gate,
    p: Principal,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    kind: str | None = None,
    groups: Sequence[str] = GROUP_COLUMNS,
) -> list[dict[str, Any]]:
    """One row per decision, oldest first: request, model, training data, template,
    suggested vs final, ``override`` (the person did not take the suggestion as it was),
    reviewer, times, and the request's group attributes."""
    require_caseworker(gate, p)
    with gate.pool.store.session() as s:
        q = (
            select(AssistDecision, AssistSuggestion)
            .join(AssistSuggestion, AssistDecision.suggestion_id == AssistSuggestion.id)
            .options(selectinload(AssistSuggestion.model))
            .order_by(AssistDecision.decided_at, AssistDecision.id)
        )
        if since is not None:
            q = q.where(AssistDecision.decided_at >= since)
        if until is not None:
            q = q.where(AssistDecision.decided_at < until)
        if kind is not None:
            q = q.where(AssistSuggestion.kind == kind)
        pairs = s.execute(q).all()
        out: list[dict[str, Any]] = []
        for d, sg in pairs:
            m = sg.model
            suggested = (sg.suggestion or {}).get("label") if sg.kind == "triage" else None
            final_label = (d.final or {}).get("label") if sg.kind == "triage" else None
            out.append(
                {
                    "decision_id": d.id,
                    "suggestion_id": sg.id,
                    "request_id": sg.request_id,
                    "request_dataset": sg.dataset,
                    "request_version": sg.dataset_version,
                    "kind": sg.kind,
                    "model": _model_ref(sg),
                    "model_kind": (sg.suggestion or {}).get("engine") or (m.kind if m else None),
                    "training_dataset": m.dataset if m else None,
                    "training_version": m.dataset_version if m else None,
                    "template_version": sg.template_version,
                    "retrieved": sg.retrieved,
                    "suggested": suggested,
                    "suggestion": sg.suggestion,
                    "confidence": sg.confidence,
                    "routed_to_person": bool((sg.suggestion or {}).get("routed_to_person")),
                    "decision": d.decision,
                    "final": d.final,
                    "final_label": final_label,
                    "override": d.decision != "accepted",
                    "edits": d.edits,
                    "reviewer": d.reviewer,
                    "suggested_at": _utc(sg.created_at),
                    "decided_at": _utc(d.decided_at),
                }
            )
    by_version: dict[tuple[str, int], list[str]] = {}
    for r in out:
        if r["request_dataset"] and r["request_version"]:
            by_version.setdefault((r["request_dataset"], r["request_version"]), []).append(
                r["request_id"]
            )
    attrs: dict[str, dict[str, Any]] = {}
    for (slug, version), ids in by_version.items():
        try:
            attrs.update(
                request_rows(gate, p, slug, version, sorted(set(ids)), purpose="assist-decisions")
            )
        except NotFound:
            continue  # the request dataset was deleted: the log stays, without groups
    for r in out:
        row = attrs.get(r["request_id"], {})
        r["groups"] = {g: row.get(g) for g in groups}
    return out
