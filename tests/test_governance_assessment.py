"""Impact assessment from the questionnaire YAML: scores, levels, AI Act classes, measures;
and enforcement: a model cannot be activated while a required measure is unmet."""

from __future__ import annotations

from typing import Any

import pytest

from datenlabor.access.principal import Principal
from datenlabor.errors import BadInput, Forbidden
from datenlabor.governance import activation, assessment, register
from datenlabor.governance.fairness import Thresholds
from datenlabor.service.gate import Gate
from datenlabor.store.models import AssistModel

LOW = {"decision_effect": "internal", "affected_rights": "none", "reversibility": "reversible",
       "personal_data": "none", "opacity": "rules", "scale": "few"}  # fmt: skip
HIGH = {"decision_effect": "recommends", "affected_rights": "high", "reversibility": "hard",
        "vulnerable_groups": True, "personal_data": "personal", "opacity": "interpretable",
        "scale": "many", "proxy_attributes": True}  # fmt: skip
ALL_MITIGATION = {q.id: True for q in assessment.questionnaire().questions
                  if q.section == "mitigation"}  # fmt: skip


def test_scores_and_levels_follow_the_yaml() -> None:
    qn = assessment.questionnaire()
    risk = [q for q in qn.questions if q.section == "risk"]
    max_raw = sum(q.max_points for q in risk)
    low = assessment.score(qn, LOW)
    assert (low["raw_score"], low["level"], low["risk_class"]) == (0, 1, "minimal")
    assert low["measures"] == []
    high = assessment.score(qn, HIGH)
    expected = sum(
        next(o.points for o in q.options if o.value == HIGH[q.id]) if q.type == "choice"
        else q.points * bool(HIGH.get(q.id)) for q in risk
    )  # fmt: skip
    assert high["raw_score"] == expected and high["max_raw_score"] == max_raw
    share = expected / max_raw
    assert high["level"] == next(lv.level for lv in qn.levels if share <= lv.max_share)
    assert high["level"] == 3 and not high["mitigation_applied"]
    # Full mitigation (>= 80 % of its maximum) reduces the raw score by 15 %.
    mitigated = assessment.score(qn, {**HIGH, **ALL_MITIGATION})
    assert mitigated["mitigation_applied"]
    assert mitigated["adjusted_score"] == pytest.approx(expected * (1 - qn.mitigation.reduction))
    assert mitigated["principles"] == {"participation": True, "risk_assessment": True,
                                       "bias": True, "transparency": True}  # fmt: skip
    ids = {m["id"] for m in high["measures"]}
    assert {"human_review", "fairness_audit", "public_register_entry", "responsible_person"} <= ids
    worst = assessment.score(qn, {**HIGH, "decision_effect": "decides", "reversibility":
                                  "irreversible", "personal_data": "special", "opacity": "opaque",
                                  "scale": "mass"})  # fmt: skip
    assert worst["level"] == 4 and "risk_analysis" in {m["id"] for m in worst["measures"]}


def test_ai_act_classes() -> None:
    qn = assessment.questionnaire()
    assert assessment.score(qn, {**LOW, "annex_iii": ["5a"]})["risk_class"] == "high"
    narrow = {**LOW, "annex_iii": ["5a"], "art6_3_exception": True}
    assert assessment.score(qn, narrow)["risk_class"] == "minimal"
    assert assessment.score(qn, {**narrow, "profiling": True})["risk_class"] == "high"
    assert assessment.score(qn, {**LOW, "interacts": True})["risk_class"] == "limited"
    r = assessment.score(qn, {**LOW, "prohibited": ["social_scoring"]})
    assert r["risk_class"] == "prohibited" and r["measures"][0]["id"] == "prohibited"
    high = assessment.score(qn, {**LOW, "annex_iii": ["5a"]})
    assert {"fria", "eu_registration", "transparency_notice"} <= {m["id"] for m in high["measures"]}


def test_bad_answers_name_the_question() -> None:
    qn = assessment.questionnaire()
    with pytest.raises(BadInput) as err:
        assessment.score(qn, {k: v for k, v in LOW.items() if k != "scale"})
    assert err.value.column == "scale"
    with pytest.raises(BadInput) as err:
        assessment.score(qn, {**LOW, "annex_iii": ["99"]})
    assert err.value.column == "annex_iii"
    with pytest.raises(BadInput) as err:
        assessment.score(qn, {**LOW, "colour": "blue"})
    assert err.value.column == "colour"
    assert assessment.questionnaire("ki-folgenabschaetzung@1").version == 1


def _triage_model(pool: Any) -> None:
    with pool.store.session() as s, s.begin():
        s.add(AssistModel(name="triage", version=1, kind="sklearn", dataset="d",
                          dataset_version=1, params={}, metrics={}, active=False,
                          created_by="t"))  # fmt: skip


def test_activation_blocked_until_measures_are_met(pool: Any) -> None:
    gate = Gate(pool)
    admin = Principal("root", "admin", via="local")
    _triage_model(pool)
    # Before governance starts: nothing blocks, unless an assessment is required.
    assert activation.activation_blockers(gate, "triage") == []
    assert activation.activation_blockers(gate, "triage", require_assessment=True) == [
        "no register entry describes the AI service 'triage'"]  # fmt: skip
    view = register.create(pool.store, admin, {"name": "Zuordnung", "short_description":
                           "Schlägt die zuständige Stelle vor.", "status": "development"},
                           model_name="triage")  # fmt: skip
    with pytest.raises(Forbidden):
        assessment.assess(gate, Principal("ana", "analyst", organisation_id=99), view.slug, HIGH)
    result = assessment.assess(gate, admin, view.slug, {**HIGH, "annex_iii": ["5a"]})
    assert result["level"] == 3 and result["risk_class"] == "high"
    blockers = activation.activation_blockers(gate, "triage")
    ids = sorted(b.split(":")[0] for b in blockers)
    assert ids == ["eu_registration", "fairness_audit", "fria", "human_review",
                   "public_register_entry", "responsible_person", "transparency_notice"]  # fmt: skip
    assert any("no fairness audit has been run" in b for b in blockers)
    with pytest.raises(activation.ActivationBlocked) as err:
        activation.require_activation_allowed(gate, "triage")
    assert err.value.reasons == blockers
    # ... and the model registry, which every activation goes through, refuses it too
    from datenlabor.assist import registry

    with pytest.raises(activation.ActivationBlocked):
        registry.activate(pool, "triage", 1)
    assert registry.active(pool, "triage") is None
    # Meet them one by one; a flagged audit still blocks, a passed one does not.
    register.edit(pool.store, admin, view.slug, {
        "responsible_person": "Referatsleitung 21", "fria_summary": "siehe Anlage",
        "eu_registration": "EU-DB 2026-0042", "transparency_notice": "Hinweis im Bescheid",
        "human_intervention": "Jeder Vorschlag wird geprüft."},
        public=True)  # fmt: skip
    from datenlabor.governance import audits

    t = Thresholds(n_boot=0)
    biased = {"kind": "dataset", "dataset": None, "version": None}
    flagged = {"flagged": True, "min_ratio": 0.5, "attributes": {}, "reasons": ["x"],
               "warnings": [], "rows": 10, "thresholds": t.to_dict(), "source": biased}  # fmt: skip
    audits.store(gate, admin, flagged, entry=view.slug, schedule=False, thresholds=t)
    assert [b.split(":")[0] for b in activation.activation_blockers(gate, "triage")] == [
        "fairness_audit"]  # fmt: skip
    audits.store(gate, admin, {**flagged, "flagged": False, "min_ratio": 0.95, "reasons": []},
                 entry=view.slug, schedule=False, thresholds=t)  # fmt: skip
    assert activation.activation_blockers(gate, "triage") == []
    activation.require_activation_allowed(gate, "triage")
    assert registry.activate(pool, "triage", 1).active
    # A prohibited practice can never be activated.
    assessment.assess(gate, admin, view.slug, {**LOW, "prohibited": ["social_scoring"]})
    assert activation.activation_blockers(gate, "triage")[0].startswith("prohibited:")
