"""Enforcement: an AI service is not activated while a measure its assessment requires is
unmet, and the platform says which.

The AI assistance calls :func:`require_activation_allowed` before it makes a model version
the active one (``datenlabor.assist.registry.register(..., activate=True)`` and
``registry.activate``)::

    from datenlabor.governance.activation import require_activation_allowed
    require_activation_allowed(gate, "triage")   # raises ActivationBlocked with the reasons

The measures are those of the newest impact assessment of the register entry describing the
service. A service that has never been assessed is not blocked unless
``require_assessment=True`` (a pool that has not started governance keeps working; once an
assessment exists its measures bind).
"""

from __future__ import annotations

from typing import Any

from datenlabor.errors import Forbidden, NotFound
from datenlabor.governance import facts, register
from datenlabor.service.gate import Gate


class ActivationBlocked(Forbidden):
    """Activation refused: ``reasons`` lists every unmet measure."""

    def __init__(self, model_name: str, reasons: list[str]) -> None:
        self.reasons = reasons
        super().__init__(
            f"the AI service {model_name!r} cannot be activated: " + "; ".join(reasons)
        )


def _filled(data: dict[str, Any], key: str) -> bool:
    value = data.get(key)
    return value is not None and str(value).strip() != ""


def measure_status(gate: Gate, model_name: str) -> dict[str, Any]:
    """The register entry, newest assessment and each required measure with met/unmet and
    why (for the UI and the API); ``entry`` is None when no entry describes the service."""
    store = gate.pool.store
    try:
        entry = register.by_model(store, model_name)
    except NotFound:
        return {"entry": None, "assessment": None, "measures": []}
    a = register.latest_assessment(store, entry.id)
    if a is None:
        return {"entry": entry.slug, "assessment": None, "measures": []}
    data = entry.data
    out = []
    for m in (a.result or {}).get("measures", []):
        check = str(m.get("check", ""))
        met, why = True, ""
        if check == "never":
            met, why = False, "a prohibited practice (AI Act Art. 5) is never activated"
        elif check == "register_entry":
            met = _filled(data, "short_description")
            why = "" if met else "the register entry has no plain-language short description"
        elif check == "register_public":
            met, why = entry.public, "" if entry.public else "the register entry is not public"
        elif check == "human_review":
            auto = bool(getattr(gate.pool.settings, "assist_auto_accept", False))
            met = _filled(data, "human_intervention") and not auto
            why = "" if met else (
                "suggestions are accepted automatically (assist_auto_accept)" if auto
                else "the register does not document human intervention"
            )
        elif check == "fairness_passed":
            last = facts.last_audit(store, entry.id, model_name)
            met = last is not None and not last.flagged
            why = "" if met else (
                "no fairness audit has been run" if last is None
                else f"the last fairness audit (#{last.id}) was flagged"
            )
        elif check.startswith("field:"):
            key = check.split(":", 1)[1]
            met = _filled(data, key)
            why = "" if met else f"the register field {key!r} is empty"
        else:
            met, why = False, f"unknown check {check!r} in the questionnaire"
        out.append({"id": m["id"], "label": m.get("label", {}), "met": met, "why": why})
    return {
        "entry": entry.slug,
        "assessment": {"id": a.id, "questionnaire": a.questionnaire, "level": a.level,
                       "risk_class": a.risk_class},
        "measures": out,
    }  # fmt: skip


def activation_blockers(
    gate: Gate, model_name: str, *, require_assessment: bool = False
) -> list[str]:
    """Every unmet required measure of ``model_name`` as a sentence; empty = may activate."""
    status = measure_status(gate, model_name)
    if status["assessment"] is None:
        if not require_assessment:
            return []
        if status["entry"] is None:
            return [f"no register entry describes the AI service {model_name!r}"]
        return [f"register entry {status['entry']!r} has no impact assessment"]
    return [
        f"{m['id']}: {m['label'].get('en', m['id'])} – {m['why']}"
        for m in status["measures"]
        if not m["met"]
    ]


def require_activation_allowed(
    gate: Gate, model_name: str, *, require_assessment: bool = False
) -> None:
    """The guard for activating a model: raises :class:`ActivationBlocked` with the reasons."""
    reasons = activation_blockers(gate, model_name, require_assessment=require_assessment)
    if reasons:
        raise ActivationBlocked(model_name, reasons)
