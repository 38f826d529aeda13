"""AI register on SQLite and PostgreSQL: auto-fill from deployed models, versions and history,
Annex VIII export, who may edit, and the CLI export of a trained triage model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import datenlabor
from datenlabor.access.principal import ANONYMOUS, Principal
from datenlabor.errors import BadInput, Forbidden, NotFound
from datenlabor.governance import entries, register
from datenlabor.pool.catalog import DatasetMeta
from datenlabor.service.gate import Gate
from datenlabor.store.models import AssistDecision, AssistModel, AssistSuggestion

runner = CliRunner()


def _people(gate: Gate) -> dict[str, Principal]:
    acc = gate.accounts
    acc.add_org("amt", "Bürgeramt Musterstadt")
    acc.add_org("kreis", "Kreisverwaltung")
    out = {}
    for name, org, role in [("admin", "amt", "admin"), ("stew", "amt", "steward"),
                            ("fremd", "kreis", "steward"), ("ana", "amt", "analyst")]:  # fmt: skip
        acc.add_user(name, org=org, role=role, password="governance-test-pw-1")
        out[name] = acc.authenticate(name, "governance-test-pw-1")
    return out


def _model(pool: Any, version: int, metrics: dict[str, Any], *, active: bool = True) -> int:
    with pool.store.session() as s, s.begin():
        if active:
            for m in s.query(AssistModel).filter_by(name="triage"):
                m.active = False
        m = AssistModel(name="triage", version=version, kind="sklearn", dataset="anfragen",
                        dataset_version=version, params={}, metrics=metrics, active=active,
                        created_by="test")  # fmt: skip
        s.add(m)
        s.flush()
        return m.id


def _decisions(pool: Any, model_id: int, decisions: list[str]) -> None:
    with pool.store.session() as s, s.begin():
        for i, d in enumerate(decisions):
            sg = AssistSuggestion(request_id=f"R{model_id}-{i}", kind="triage", model_id=model_id,
                                  suggestion={"label": "wohngeld"}, status=d)  # fmt: skip
            s.add(sg)
            s.flush()
            s.add(AssistDecision(suggestion_id=sg.id, reviewer="sb", decision=d, final={}))


def test_platform_fields_fill_and_refresh_as_versions(pool: Any) -> None:
    """AssistModel rows are created directly here (the training itself is tested with the
    CLI below); the register must carry what the store says without anyone typing it."""
    mid = _model(pool, 1, {"holdout": {"accuracy": 0.91, "macro_f1": 0.88, "per_class": {}},
                           "train_rows": 400})  # fmt: skip
    assert register.ensure_model_entries(pool.store) == ["ki-triage"]
    assert register.ensure_model_entries(pool.store) == []  # one entry per service
    assert register.refresh(pool.store) == ["ki-triage"]
    admin = Principal("root", "admin")
    e = register.entry_dict(entries.get(pool.store, admin, "ki-triage", "register"))
    assert e["model_version"] == "triage@1" and e["training_data_version"] == 1
    assert e["evaluation_metrics"] == {"accuracy": 0.91, "macro_f1": 0.88, "train_rows": 400}
    assert e["suggestions"] == 0 and e["override_rate"] is None
    assert e["changed_by"] == entries.PLATFORM
    # Nothing new: no new version.
    assert register.refresh(pool.store) == []
    # Decisions accumulate; a new model version is trained: both show up, as a new version.
    _decisions(pool, mid, ["accepted", "accepted", "edited", "rejected"])
    _model(pool, 2, {"holdout": {"accuracy": 0.93}})
    assert register.refresh(pool.store) == ["ki-triage"]
    e = register.entry_dict(entries.get(pool.store, admin, "ki-triage", "register"))
    assert e["model_version"] == "triage@2" and e["training_data_version"] == 2
    assert (e["suggestions"], e["decisions"], e["override_rate"]) == (4, 4, 0.5)
    hist = entries.history(pool.store, admin, "ki-triage", "register")
    assert [h["changed_by"] for h in hist] == ["platform"] * 3
    changed = {d["field"] for d in entries.diff(pool.store, admin, "ki-triage", 2, 3, "register")}
    assert {"model_version", "override_rate", "suggestions", "evaluation_metrics"} <= changed
    assert "name" not in changed


def test_steward_edits_are_versions_and_permissions(pool: Any) -> None:
    gate = Gate(pool)
    who = _people(gate)
    values = {"name": "Wohngeld-Vorprüfung", "short_description": "Prüft Anträge vor.",
              "status": "development"}  # fmt: skip
    with pytest.raises(Forbidden):
        register.create(pool.store, who["ana"], values)  # analysts do not write the register
    with pytest.raises(BadInput) as err:
        register.create(pool.store, who["stew"], {"name": "x", "status": "development"})
    assert err.value.column == "short_description"
    with pytest.raises(BadInput) as err:
        register.create(pool.store, who["stew"], {**values, "model_version": "fake@9"})
    assert err.value.column == "model_version"  # platform fields cannot be typed
    with pytest.raises(BadInput) as err:
        register.create(pool.store, who["stew"], {**values, "category": "Z"})
    assert err.value.column == "category"
    view = register.create(pool.store, who["stew"], values)
    assert view.slug == "wohngeld-vorpruefung" and view.organisation == "amt" and not view.public
    # Not public: anonymous callers do not see it at all.
    with pytest.raises(NotFound):
        entries.get(pool.store, ANONYMOUS, view.slug, "register")
    assert register.listing(pool.store, ANONYMOUS) == []
    with pytest.raises(Forbidden):
        register.edit(pool.store, who["fremd"], view.slug, {"contact": "x@kreis.de"})
    _v, changed = register.edit(pool.store, who["stew"], view.slug,
                                {"contact": "wohngeld@musterstadt.de", "category": "A"},
                                public=True, note="Kontakt")  # fmt: skip
    assert changed
    _v, changed = register.edit(pool.store, who["stew"], view.slug, {"category": "A"})
    assert not changed  # the same content is no new version
    with pytest.raises(BadInput):
        register.edit(pool.store, who["stew"], view.slug, {"name": ""})  # required
    public = register.listing(pool.store, ANONYMOUS)
    assert [e["slug"] for e in public] == [view.slug] and public[0]["category"] == "A"
    assert public[0]["organisation"] == "Bürgeramt Musterstadt"
    hist = entries.history(pool.store, ANONYMOUS, view.slug, "register")
    assert [(h["version"], h["changed_by"]) for h in hist] == [(1, "stew"), (2, "stew")]
    assert entries.diff(pool.store, ANONYMOUS, view.slug, 1, 2, "register") == [
        {"field": "category", "before": None, "after": "A"},
        {"field": "contact", "before": None, "after": "wohngeld@musterstadt.de"},
    ]
    csv_text = register.export(pool.store, ANONYMOUS, "csv", auto=False)
    header = csv_text.splitlines()[0].split(",")
    assert header[0] == "slug" and "model_version" in header and "fria_summary" in header


def test_annex_viii_says_what_is_missing(pool: Any) -> None:
    gate = Gate(pool)
    who = _people(gate)
    view = register.create(pool.store, who["stew"], {
        "name": "Leistungsprüfung", "short_description": "Prüft Anspruch auf Leistungen.",
        "status": "in_use", "contact": "kontakt@musterstadt.de"})  # fmt: skip
    annex = register.annex_viii(pool.store, who["stew"], view.slug)
    assert [i["item"] for i in annex["items"]] == [1, 2, 3, 4, 5]
    item1 = annex["items"][0]
    assert item1["values"]["organisation"] == "Bürgeramt Musterstadt"  # filled automatically
    assert not item1["complete"]  # the postal address is typed by a person
    assert annex["missing"] == [1, 2, 3, 4, 5] and annex["applies"] is False
    register.edit(pool.store, who["stew"], view.slug, {
        "deployer_address": "Markt 1, 12345 Musterstadt", "submitter": "A. Muster, Markt 1",
        "provider_eu_database_url": "https://ai-act.example.eu/db/123",
        "fria_summary": "Keine unverhältnismäßigen Eingriffe.", "dpia_summary": "DSFA 2026-3"})  # fmt: skip
    annex = register.annex_viii(pool.store, who["stew"], view.slug)
    assert annex["missing"] == []


def test_cli_export_carries_trained_model(tmp_path: Path) -> None:
    """Train a real triage model through the assist CLI; the register export shows it."""
    from datenlabor.assist import demo_requests
    from datenlabor.cli import app

    root = tmp_path / "pool"
    pool = datenlabor.open(root, user="admin")
    csv = demo_requests.write_csv(tmp_path / "historie.csv", 400, seed=3)
    pool.ingest(csv, dataset="anfragen", meta=DatasetMeta(visibility="restricted"))
    pool.store.dispose()
    trained = runner.invoke(app, ["--pool", str(root), "--user", "admin", "assist", "train",
                                  "anfragen", "--text", "text", "--label", "category", "--json"])  # fmt: skip
    assert trained.exit_code == 0, trained.output
    model = json.loads(trained.stdout)
    result = runner.invoke(app, ["--pool", str(root), "governance", "register", "export",
                                 "--format", "json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 1
    e = rows[0]
    assert e["model_version"] == f"triage@{model['version']}"
    assert (e["training_data"], e["training_data_version"]) == ("anfragen", 1)
    assert e["evaluation_metrics"]["accuracy"] == model["metrics"]["holdout"]["accuracy"]
    assert e["training_data_quality"]["rows"] == 400
    shown = runner.invoke(app, ["--pool", str(root), "governance", "register", "history", e["slug"]])
    assert shown.exit_code == 0 and json.loads(shown.stdout)[-1]["changed_by"] == "platform"
