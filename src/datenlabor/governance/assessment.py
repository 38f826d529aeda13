"""Impact assessment: a questionnaire (YAML, versioned by name and version) scored into an
impact level I–IV, an EU AI Act risk class, the BMAS principles met, and required measures.

Scoring (the rule and the thresholds are data in the questionnaire file; see its header and
``docs/governance.md``), in the manner of Canada's Algorithmic Impact Assessment:

* raw impact score = sum of the points of the risk answers, out of ``max_raw``;
* mitigation score = sum of the points of the mitigation answers; if it reaches
  ``mitigation.threshold`` of its maximum, the raw score is reduced by ``mitigation.reduction``;
* the level is the first whose ``max_share`` is at least ``adjusted / max_raw``.

EU AI Act class: ``prohibited`` if any Art. 5 practice is ticked; ``high`` if an Annex III
area is ticked, unless the Art. 6(3) exception is claimed and nobody is profiled; ``limited``
if the AI interacts with people or writes for the public (Art. 50); else ``minimal``.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator
from sqlalchemy import select

from datenlabor.access.principal import Principal
from datenlabor.errors import BadInput, NotFound
from datenlabor.governance import entries
from datenlabor.governance.definitions import DATA, Text, parse
from datenlabor.service.gate import Gate
from datenlabor.store.models import GovAssessment

CLASSES = ("prohibited", "high", "limited", "minimal")
PRINCIPLES = ("participation", "risk_assessment", "bias", "transparency")
_ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Option(_Strict):
    value: str
    points: int = 0
    label: Text


class Question(_Strict):
    id: str
    section: Literal["risk", "mitigation", "ai_act"]
    type: Literal["choice", "boolean", "multi"]
    label: Text
    options: list[Option] = []
    points: int = 0  # of a "yes" to a boolean question
    principle: Literal["participation", "risk_assessment", "bias", "transparency"] | None = None

    @property
    def max_points(self) -> int:
        if self.type == "choice":
            return max(o.points for o in self.options)
        return self.points if self.type == "boolean" else 0


class When(_Strict):
    level_min: int | None = None
    classes: list[Literal["prohibited", "high", "limited", "minimal"]] = []


class Measure(_Strict):
    id: str
    when: When
    check: str
    label: Text


class Mitigation(_Strict):
    threshold: float
    reduction: float


class Level(_Strict):
    level: int
    max_share: float


class Questionnaire(_Strict):
    name: str
    version: int
    title: Text
    mitigation: Mitigation
    levels: list[Level]
    questions: list[Question]
    measures: list[Measure]

    @model_validator(mode="after")
    def _consistent(self) -> Questionnaire:
        ids = [q.id for q in self.questions]
        if len(ids) != len(set(ids)):
            raise ValueError("question ids must be unique")
        for q in self.questions:
            if q.type in ("choice", "multi") and not q.options:
                raise ValueError(f"question {q.id!r} needs options")
        if [lv.level for lv in self.levels] != [1, 2, 3, 4] or self.levels[-1].max_share < 1:
            raise ValueError("levels must be 1..4 with the last reaching share 1.0")
        for required in ("prohibited", "annex_iii", "art6_3_exception", "profiling", "interacts"):
            if required not in ids:
                raise ValueError(f"the AI Act question {required!r} is missing")
        return self

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def by_id(self) -> dict[str, Question]:
        return {q.id: q for q in self.questions}


@functools.cache
def _all() -> dict[tuple[str, int], Questionnaire]:
    out: dict[tuple[str, int], Questionnaire] = {}
    for path in sorted(DATA.glob("questionnaire-*.yaml")):
        q: Questionnaire = parse(Questionnaire, path)
        out[(q.name, q.version)] = q
    return out


def questionnaire(ref: str | None = None) -> Questionnaire:
    """``name@version``, ``name`` (its newest version) or None (the newest of the default)."""
    known = _all()
    if not known:
        raise NotFound(f"no questionnaire files in {DATA}")
    name, _, version = (ref or "").partition("@")
    candidates = [q for (n, _v), q in known.items() if not name or n == name]
    if version:
        candidates = [q for q in candidates if str(q.version) == version]
    if not candidates:
        raise NotFound(f"no questionnaire {ref!r}; known: {', '.join(q.ref for q in known.values())}")
    return max(candidates, key=lambda q: q.version)


def _answer(q: Question, value: Any) -> Any:
    if q.type == "boolean":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "yes", "ja", "1", "on"):
            return True
        if str(value).lower() in ("false", "no", "nein", "0", "off", ""):
            return False
        raise BadInput(f"answer to {q.id!r} must be yes or no", column=q.id)
    allowed = [o.value for o in q.options]
    if q.type == "choice":
        if value not in allowed:
            raise BadInput(f"answer to {q.id!r} must be one of {', '.join(allowed)}", column=q.id)
        return value
    values = [value] if isinstance(value, str) else list(value or [])
    bad = [v for v in values if v not in allowed]
    if bad:
        raise BadInput(f"{q.id!r}: unknown choice(s) {', '.join(map(str, bad))}", column=q.id)
    return sorted(set(values), key=allowed.index)


def normalise(qn: Questionnaire, answers: dict[str, Any]) -> dict[str, Any]:
    """Every question answered and valid (multi/boolean may be left out: none / no)."""
    unknown = sorted(set(answers) - set(qn.by_id))
    if unknown:
        raise BadInput(f"unknown question(s): {', '.join(unknown)}", column=unknown[0])
    out: dict[str, Any] = {}
    for q in qn.questions:
        if q.id not in answers or answers[q.id] is None:
            if q.type == "choice":
                raise BadInput(f"question {q.id!r} is not answered", column=q.id)
            out[q.id] = [] if q.type == "multi" else False
            continue
        out[q.id] = _answer(q, answers[q.id])
    return out


def _points(q: Question, value: Any) -> int:
    if q.type == "choice":
        return next(o.points for o in q.options if o.value == value)
    return q.points if q.type == "boolean" and value else 0


def risk_class(a: dict[str, Any]) -> str:
    if a["prohibited"]:
        return "prohibited"
    if a["annex_iii"] and not (a["art6_3_exception"] and not a["profiling"]):
        return "high"
    if a["interacts"]:
        return "limited"
    return "minimal"


def score(qn: Questionnaire, answers: dict[str, Any]) -> dict[str, Any]:
    """The full result of one set of answers (pure; nothing stored)."""
    a = normalise(qn, answers)
    risk = [q for q in qn.questions if q.section == "risk"]
    mit = [q for q in qn.questions if q.section == "mitigation"]
    raw = sum(_points(q, a[q.id]) for q in risk)
    max_raw = sum(q.max_points for q in risk)
    mitigation = sum(_points(q, a[q.id]) for q in mit)
    max_mit = sum(q.max_points for q in mit)
    reduced = max_mit > 0 and mitigation >= qn.mitigation.threshold * max_mit
    adjusted = raw * (1 - qn.mitigation.reduction) if reduced else float(raw)
    share = adjusted / max_raw if max_raw else 0.0
    level = next(lv.level for lv in qn.levels if share <= lv.max_share + 1e-9)
    cls = risk_class(a)
    principles = {
        p: all(a[q.id] for q in mit if q.principle == p)
        for p in PRINCIPLES
        if any(q.principle == p for q in mit)
    }
    measures = [
        {"id": m.id, "check": m.check, "label": m.label}
        for m in qn.measures
        if (m.when.level_min is not None and level >= m.when.level_min) or cls in m.when.classes
    ]
    return {
        "questionnaire": qn.ref,
        "answers": a,
        "raw_score": raw,
        "max_raw_score": max_raw,
        "mitigation_score": mitigation,
        "max_mitigation_score": max_mit,
        "mitigation_applied": reduced,
        "adjusted_score": round(adjusted, 2),
        "share": round(share, 4),
        "level": level,
        "level_roman": _ROMAN[level],
        "risk_class": cls,
        "annex_iii": a["annex_iii"],
        "prohibited_practices": a["prohibited"],
        "principles": principles,
        "measures": measures,
    }


def assess(
    gate: Gate, p: Principal, slug: str, answers: dict[str, Any], *, ref: str | None = None
) -> dict[str, Any]:
    """Score and store an assessment of a register entry (stewards of its organisation)."""
    qn = questionnaire(ref)
    result = score(qn, answers)
    store = gate.pool.store
    with store.session() as s, s.begin():
        e = entries.load(s, slug, "register")
        entries.require_edit(p, e.organisation_id, f"the assessment of {slug!r}")
        row = GovAssessment(
            entry_id=e.id,
            questionnaire=qn.ref,
            answers=result["answers"],
            result={k: v for k, v in result.items() if k != "answers"},
            level=result["level"],
            risk_class=result["risk_class"],
            created_by=p.label(),
        )
        s.add(row)
        s.flush()
        result["id"] = row.id
        result["entry"] = slug
    gate.audit.log(p, "governance-assess", detail={"entry": slug, "questionnaire": qn.ref,
                   "level": result["level"], "risk_class": result["risk_class"]})  # fmt: skip
    return result


def assessments(gate: Gate, p: Principal, slug: str) -> list[dict[str, Any]]:
    store = gate.pool.store
    with store.session() as s:
        e = entries.load(s, slug, "register")
        if not entries.visible(p, e):
            raise NotFound(f"no register entry {slug!r}")
        rows = s.scalars(
            select(GovAssessment)
            .where(GovAssessment.entry_id == e.id)
            .order_by(GovAssessment.created_at, GovAssessment.id)
        ).all()
        return [
            {"id": r.id, "questionnaire": r.questionnaire, "level": r.level,
             "risk_class": r.risk_class, "created_by": r.created_by,
             "created_at": entries._utc(r.created_at).isoformat(), **(r.result or {}),
             "answers": r.answers}
            for r in rows
        ]  # fmt: skip
