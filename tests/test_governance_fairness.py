"""Fairness audits: a planted bias must be found, an unbiased control must not be flagged;
error rates, intervals, small groups, intersections; the CLI; re-runs with alerts.

No real data with protected attributes is on this machine (../shared/data holds statistics,
catalogue records and a permit event log without personal attributes), and fairlearn's
dataset loaders download from the internet; so the data here is constructed with a known
effect."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import datenlabor
from datenlabor.access.principal import Principal
from datenlabor.errors import BadInput
from datenlabor.governance import audits, entries, register
from datenlabor.governance.fairness import Thresholds, audit
from datenlabor.pool.catalog import DatasetMeta
from datenlabor.service.gate import Gate

runner = CliRunner()
ADMIN = Principal("root", "admin", via="local")


def planted(n: int, rates: dict[str, float], *, seed: int = 7, fpr_gap: float = 0.0) -> dict[str, list[Any]]:
    """Rows per region with the given selection rates; language independent of the outcome.
    Labels are drawn first; with ``fpr_gap`` region 'Süd' gets extra false positives."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list[Any]] = {"region": [], "sprache": [], "vorschlag": [], "tatsaechlich": []}
    for region, rate in rates.items():
        label = rng.random(n) < 0.5
        pred = rng.random(n) < rate
        if fpr_gap:
            extra = (~label) & (rng.random(n) < fpr_gap) if region == "Süd" else np.zeros(n, bool)
            pred = pred | extra
        rows["region"] += [region] * n
        rows["sprache"] += list(rng.choice(["de", "tr", "uk"], n))
        rows["vorschlag"] += ["ja" if p else "nein" for p in pred]
        rows["tatsaechlich"] += ["ja" if t else "nein" for t in label]
    return rows


def write(path: Path, rows: dict[str, list[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(rows)
        w.writerows(zip(*rows.values(), strict=True))
    return path


def test_planted_bias_is_found_and_control_is_not() -> None:
    biased = planted(600, {"Nord": 0.5, "Mitte": 0.5, "Süd": 0.3})
    pred = [v == "ja" for v in biased["vorschlag"]]
    r = audit(pred, {"region": biased["region"]}, None, Thresholds(n_boot=200))
    region = r["attributes"]["region"]
    assert r["flagged"] and region["flagged"]
    assert region["metrics"]["selection_rate"]["min_group"] == "Süd"
    assert 0.5 < region["min_ratio"] < 0.7  # planted 0.3 / 0.5 = 0.6
    lo, hi = region["metrics"]["selection_rate"]["ratio_ci"]
    assert lo < region["min_ratio"] < hi < 0.8  # the interval excludes the threshold
    sud = next(g for g in region["groups"] if g["group"] == "Süd")
    ci = sud["selection_rate_ci"]
    assert ci[0] < sud["selection_rate"] < ci[1] and ci[1] - ci[0] < 0.1  # n=600: about ±0.04
    control = planted(600, {"Nord": 0.5, "Mitte": 0.5, "Süd": 0.5}, seed=8)
    r = audit([v == "ja" for v in control["vorschlag"]], {"region": control["region"]}, None,
              Thresholds(n_boot=200))  # fmt: skip
    assert not r["flagged"] and r["min_ratio"] > 0.85


def test_error_rates_thresholds_intersections_and_small_groups() -> None:
    rows = planted(500, {"Nord": 0.4, "Süd": 0.4}, fpr_gap=0.4, seed=3)
    pred = [v == "ja" for v in rows["vorschlag"]]
    label = [v == "ja" for v in rows["tatsaechlich"]]
    groups = {"region": rows["region"], "sprache": rows["sprache"]}
    r = audit(pred, groups, label, Thresholds(n_boot=100, min_ratio=0.5,
                                             max_error_difference=0.15))  # fmt: skip
    fpr = r["attributes"]["region"]["metrics"]["fpr"]
    assert fpr["max_group"] == "Süd" and fpr["difference"] > 0.15
    assert any("FPR" in reason for reason in r["reasons"]) and r["flagged"]
    assert "region × sprache" in r["attributes"]  # intersectional groups
    inter = r["attributes"]["region × sprache"]["groups"]
    assert len(inter) == 6 and sum(g["n"] for g in inter) == 1000
    # Without the error threshold and with a lenient ratio nothing is flagged.
    assert not audit(pred, groups, label, Thresholds(n_boot=0, min_ratio=0.5))["flagged"]
    # A tiny group is reported, warned about, and kept out of the flag.
    small = {"region": ["A"] * 200 + ["B"] * 200 + ["C"] * 5}
    pred2 = [True] * 100 + [False] * 100 + [True] * 100 + [False] * 100 + [False] * 5
    r = audit(pred2, small, None, Thresholds(n_boot=50))
    c = next(g for g in r["attributes"]["region"]["groups"] if g["group"] == "C")
    assert c["small"] and c["selection_rate"] == 0
    assert not r["flagged"] and any("'C' has 5 rows" in w for w in r["warnings"])


@pytest.fixture
def pool_dir(tmp_path: Path) -> Any:
    root = tmp_path / "pool"
    pool = datenlabor.open(root, user="admin")
    yield root, pool
    pool.store.dispose()


def _cli(root: Path, *args: str) -> Any:
    return runner.invoke(__import__("datenlabor.cli", fromlist=["app"]).app,
                         ["--pool", str(root), "--user", "admin", *args])  # fmt: skip


def test_cli_fairness_json(pool_dir: Any, tmp_path: Path) -> None:
    root, pool = pool_dir
    pool.ingest(write(tmp_path / "b.csv", planted(300, {"Nord": 0.5, "Süd": 0.25})),
                dataset="bewertung", meta=DatasetMeta(visibility="restricted"))  # fmt: skip
    res = _cli(root, "governance", "fairness", "bewertung", "--prediction", "vorschlag",
               "--group", "region", "--label", "tatsaechlich", "--n-boot", "100", "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["flagged"] is True and out["min_ratio"] < 0.8
    groups = {g["group"]: g for g in out["attributes"]["region"]["groups"]}
    assert set(groups) == {"Nord", "Süd"} and groups["Süd"]["selection_rate"] < 0.35
    assert "fpr" in groups["Nord"] and "fnr" in groups["Nord"]
    assert groups["Süd"]["ratio_to_best"] == out["attributes"]["region"]["min_ratio"]
    bad = _cli(root, "governance", "fairness", "bewertung", "--prediction", "region",
               "--group", "sprache", "--json")  # fmt: skip
    assert isinstance(bad.exception, BadInput) and "not boolean" in str(bad.exception)
    missing = _cli(root, "governance", "fairness", "bewertung", "--prediction", "nix",
                   "--group", "region", "--json")  # fmt: skip
    assert isinstance(missing.exception, BadInput) and missing.exception.column == "nix"


def test_rerun_alerts_when_a_new_version_drifts(pool: Any, tmp_path: Path) -> None:
    gate = Gate(pool)
    meta = DatasetMeta(visibility="restricted")
    pool.ingest(write(tmp_path / "v1.csv", planted(300, {"Nord": 0.5, "Süd": 0.5})),
                dataset="bewertung", meta=meta)  # fmt: skip
    view = register.create(pool.store, ADMIN, {"name": "Vorprüfung", "short_description":
                           "Prüft vor.", "status": "in_use"})  # fmt: skip
    t = Thresholds(n_boot=50)
    result, version = audits.run_dataset(gate, ADMIN, "bewertung", prediction="vorschlag",
                                         groups=["region"], thresholds=t)  # fmt: skip
    assert version == 1 and not result["flagged"]
    first = audits.store(gate, ADMIN, result, entry=view.slug, schedule=True, thresholds=t)
    e = register.entry_dict(entries.get(pool.store, ADMIN, view.slug, "register"))
    assert e["fairness_metrics"]["audit"] == first and e["fairness_metrics"]["flagged"] is False
    assert e["last_audit_at"] is not None
    pool.ingest(write(tmp_path / "v2.csv", planted(300, {"Nord": 0.5, "Süd": 0.2})),
                dataset="bewertung", meta=meta, mode="replace")  # fmt: skip
    gate.forget()
    runs = audits.rerun(gate, ADMIN)
    assert len(runs) == 1 and runs[0]["alert"] and runs[0]["flagged"]
    stored = audits.get(gate, ADMIN, runs[0]["audit"])
    assert stored["dataset_version"] == 2 and stored["flagged"]
    alerts = gate.audit.entries(action="governance-alert")
    assert len(alerts) == 1
    e = register.entry_dict(entries.get(pool.store, ADMIN, view.slug, "register"))
    assert e["fairness_metrics"]["flagged"] is True  # the flag shows on the entry
    assert audits.alerts(gate)[view.id] is True
    # Still flagged on the next run: no second alert.
    assert audits.rerun(gate, ADMIN)[0]["alert"] is False
    with pytest.raises(BadInput):
        audits.run_dataset(gate, ADMIN, "bewertung", prediction="vorschlag", groups=[])


def test_decision_log_audit_finds_planted_override_bias(tmp_path: Path) -> None:
    """Real decision log: requests through the assist API with a trained model, decided by a
    caseworker who overrides suggestions on Turkish requests far more often."""
    from fastapi.testclient import TestClient

    from datenlabor.assist import review
    from datenlabor.web.app import create_app
    from test_assist_triage import install_model

    pool = datenlabor.open(tmp_path / "pool", user="admin")
    pool.settings.assist_min_confidence = 0.0  # every request gets a routing to accept
    app = create_app(pool)
    gate = app.state.gate
    gate.accounts.add_org("amt", "Bürgeramt")
    gate.accounts.add_user("sb", org="amt", role="steward", password="governance-test-pw-1")
    token = gate.accounts.create_token("sb", scope="write")
    install_model(pool)
    text = "Ich möchte Wohngeld beantragen, meine Miete ist gestiegen. Anfrage {i}"
    reqs = [{"text": text.format(i=i), "language": lang, "ags": "05315"}
            for i in range(30) for lang in ("de", "tr")]  # fmt: skip
    with TestClient(app) as client:
        r = client.post("/api/v1/assist/requests", json={"requests": reqs},
                        headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert r.status_code == 201, r.text
    language = dict(zip(r.json()["ids"], (q["language"] for q in reqs), strict=True))
    sb = gate.accounts.resolve_token(token)
    rng = np.random.default_rng(5)
    for item in review.queue(gate, sb, status="open", limit=1000):
        sg = item["suggestions"][0]
        lang = language[sg["request_id"]]
        accept = rng.random() < (0.9 if lang == "de" else 0.5)
        review.decide(gate, sb, sg["id"], "accepted" if accept else "rejected")
    result = audits.run_decisions(gate, sb, "triage", groups=["language", "land"],
                                  thresholds=Thresholds(n_boot=100, min_group_size=20))  # fmt: skip
    lang = result["attributes"]["language"]
    assert lang["flagged"] and lang["metrics"]["selection_rate"]["min_group"] == "tr"
    rates = {g["group"]: g for g in lang["groups"]}
    assert rates["tr"]["override_rate"] > rates["de"]["override_rate"]
    assert result["attributes"]["land"]["groups"][0]["group"] == "Nordrhein-Westfalen"  # AGS 05…
    assert len(result["attributes"]["land"]["groups"]) == 1  # one Land: nothing to compare
    pool.store.dispose()


def test_report_pdf_has_the_numbers() -> None:
    import shutil

    if shutil.which("chromium") is None:
        pytest.skip("chromium not installed")
    from pypdf import PdfReader

    from datenlabor.governance import report

    rows = planted(200, {"Nord": 0.5, "Süd": 0.25})
    r = audit([v == "ja" for v in rows["vorschlag"]], {"region": rows["region"]}, None,
              Thresholds(n_boot=50))  # fmt: skip
    data = {"id": 7, "params": {"kind": "dataset"}, "dataset": "bewertung", "dataset_version": 1,
            "created_at": "2026-01-01", "created_by": "t", "flagged": r["flagged"], "result": r}  # fmt: skip
    body = report.pdf(report.standalone_html(data, "de"))
    assert body.startswith(b"%PDF")
    text = PdfReader(__import__("io").BytesIO(body)).pages[0].extract_text()
    assert "Fairness-Prüfung 7" in text and "Süd" in text and "auffällig" in text
