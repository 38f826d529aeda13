"""Fairness audit runs: over a pool dataset or over the decision log; stored, re-run, alerted.

* :func:`run_dataset` reads prediction, group and optional label columns of a dataset version
  through the gate (the caller's view, audited) and audits them;
* :func:`run_decisions` audits the decision log of an AI service: "selected" means the
  reviewer accepted the suggestion as it was, so the per-group selection rate is the
  acceptance rate and ``1 - rate`` the override rate;
* every run is a ``gov_audits`` row; :func:`rerun` repeats the newest run of every scheduled
  configuration on the newest data (for cron / systemd timers) and raises an alert (audit-log
  event ``governance-alert``; the entry shows the flag) when a run crosses a threshold.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from datenlabor.access.principal import Principal
from datenlabor.errors import BadInput, NotFound
from datenlabor.governance import entries, register
from datenlabor.governance.fairness import Thresholds, audit, positives
from datenlabor.query.connection import quote_ident
from datenlabor.service.gate import Gate
from datenlabor.store.models import AssistModel, GovAudit

DECISION_GROUPS = ("land", "language", "channel")


def run_dataset(
    gate: Gate,
    p: Principal,
    slug: str,
    *,
    prediction: str,
    groups: Sequence[str],
    label: str | None = None,
    positive: str | None = None,
    version: int | None = None,
    thresholds: Thresholds | None = None,
) -> tuple[dict[str, Any], int]:
    """Audit columns of a dataset version; returns (result, version audited)."""
    if not groups:
        raise BadInput("name at least one group column", column="group")
    src = gate.source(p, slug, version)
    wanted = [prediction, *groups, *([label] if label else [])]
    for col in wanted:
        if col not in src.schema.names:
            raise BadInput(f"dataset {slug!r} version {src.version} has no column {col!r}",
                           column=col)  # fmt: skip
    select_list = ", ".join(f"CAST({quote_ident(c)} AS VARCHAR) AS {quote_ident(c)}"
                            for c in dict.fromkeys(wanted))  # fmt: skip
    not_null = " AND ".join(f"{quote_ident(c)} IS NOT NULL" for c in [prediction, *([label] if label else [])])
    with gate.connection() as con:
        gate.register(con, "audited", src)
        total = con.execute("SELECT count(*) FROM audited").fetchone()[0]  # type: ignore[index]
        table = con.execute(f"SELECT {select_list} FROM audited WHERE {not_null}").to_arrow_table()
    gate.record(p, "read", [src], rows=table.num_rows, detail={"purpose": "fairness-audit"})
    data = table.to_pydict()
    pred = positives(data[prediction], positive, prediction)
    lab = positives(data[label], positive, label) if label else None
    result = audit(pred, {g: data[g] for g in groups}, lab, thresholds)
    if total != table.num_rows:
        result["warnings"].insert(0, f"{total - table.num_rows} row(s) without prediction or "
                                  "label were left out")  # fmt: skip
    result["source"] = {"kind": "dataset", "dataset": slug, "version": src.version,
                        "prediction": prediction, "groups": list(groups), "label": label,
                        "positive": positive}  # fmt: skip
    return result, src.version


def _land(ags: Any) -> str | None:
    from datenlabor.pool.ags import LAENDER

    if not ags:
        return None
    return LAENDER.get(str(ags)[:2], str(ags)[:2])


def run_decisions(
    gate: Gate,
    p: Principal,
    model_name: str,
    *,
    groups: Sequence[str] = DECISION_GROUPS,
    thresholds: Thresholds | None = None,
    since: datetime | None = None,
) -> dict[str, Any]:
    """Audit the reviewers' decisions on the suggestions of ``model_name``."""
    try:
        from datenlabor.assist import review
    except ImportError as exc:  # the assistance package is not installed
        raise BadInput("the AI assistance is not installed; no decision log") from exc
    rows = [
        r for r in review.decisions(gate, p, since=since)
        if r["model"] and r["model"].split("@")[0] == model_name
    ]  # fmt: skip
    if not rows:
        raise BadInput(f"the decision log has no decisions on suggestions of {model_name!r}")
    attrs: dict[str, list[Any]] = {}
    for g in groups:
        if g == "land":
            attrs[g] = [_land(r["groups"].get("ags")) for r in rows]
        elif g in ("model",):
            attrs[g] = [r["model"] for r in rows]
        else:
            attrs[g] = [r["groups"].get(g) for r in rows]
    accepted = [not r["override"] for r in rows]
    result = audit(accepted, attrs, None, thresholds)
    for a in result["attributes"].values():
        for row in a["groups"]:
            rate = row["selection_rate"]
            row["override_rate"] = None if rate is None else round(1 - rate, 6)
    result["source"] = {"kind": "decisions", "model": model_name, "groups": list(groups),
                        "selected": "accepted as suggested"}  # fmt: skip
    result["overall_override_rate"] = round(1 - sum(accepted) / len(accepted), 6)
    return result


def store(
    gate: Gate,
    p: Principal,
    result: dict[str, Any],
    *,
    entry: str | None,
    schedule: bool,
    thresholds: Thresholds,
) -> int:
    """Keep a run (linked to a register entry and model where known); returns its id."""
    src = result["source"]
    with gate.pool.store.session() as s, s.begin():
        entry_id = None
        if entry:
            e = entries.load(s, entry, "register")
            entries.require_edit(p, e.organisation_id, f"audits of {entry!r}")
            entry_id = e.id
        model_name = src.get("model")
        if model_name is None and entry_id is not None:
            model_name = s.scalar(select(entries.GovEntry.model_name).where(
                entries.GovEntry.id == entry_id))  # fmt: skip
        model_id = None
        if model_name:
            model_id = s.scalar(select(AssistModel.id).where(AssistModel.name == model_name)
                                .order_by(AssistModel.active.desc(), AssistModel.version.desc())
                                .limit(1))  # fmt: skip
        row = GovAudit(
            entry_id=entry_id,
            model_id=model_id,
            dataset=src.get("dataset"),
            dataset_version=src.get("version"),
            params={**src, "thresholds": thresholds.to_dict(), "schedule": schedule},
            result=result,
            flagged=bool(result["flagged"]),
            created_by=p.label(),
        )
        s.add(row)
        s.flush()
        audit_id = row.id
    gate.audit.log(
        p,
        "governance-audit",
        datasets={src["dataset"]: src["version"]} if src.get("dataset") else {},
        detail={"audit": audit_id, "entry": entry, "flagged": bool(result["flagged"]),
                "min_ratio": result["min_ratio"]},
    )  # fmt: skip
    if entry:
        register.refresh(gate.pool.store, entry)  # fairness fields and date of the last audit
    return audit_id


def get(gate: Gate, p: Principal, audit_id: int) -> dict[str, Any]:
    with gate.pool.store.session() as s:
        a = s.get(GovAudit, audit_id)
        if a is None:
            raise NotFound(f"no fairness audit {audit_id}")
        entry = None
        if a.entry_id is not None:
            e = s.get(entries.GovEntry, a.entry_id)
            if e is not None and not entries.visible(p, e):
                raise NotFound(f"no fairness audit {audit_id}")
            entry = e.slug if e is not None else None
        elif not p.authenticated:
            raise NotFound(f"no fairness audit {audit_id}")
        return _dict(a, entry)


def _dict(a: GovAudit, entry: str | None) -> dict[str, Any]:
    return {"id": a.id, "entry": entry, "dataset": a.dataset,
            "dataset_version": a.dataset_version, "params": a.params, "result": a.result,
            "flagged": bool(a.flagged), "created_by": a.created_by,
            "created_at": entries._utc(a.created_at).isoformat()}  # fmt: skip


def for_entry(gate: Gate, p: Principal, slug: str) -> list[dict[str, Any]]:
    with gate.pool.store.session() as s:
        e = entries.load(s, slug, "register")
        if not entries.visible(p, e):
            raise NotFound(f"no register entry {slug!r}")
        rows = s.scalars(select(GovAudit).where(GovAudit.entry_id == e.id)
                         .order_by(GovAudit.created_at.desc(), GovAudit.id.desc())).all()  # fmt: skip
        return [_dict(a, slug) for a in rows]


def _config_key(a: GovAudit) -> str:
    params = {k: v for k, v in (a.params or {}).items() if k not in ("version",)}
    return json.dumps([a.entry_id, params], sort_keys=True, default=str)


def rerun(gate: Gate, p: Principal) -> list[dict[str, Any]]:
    """Repeat the newest run of every scheduled configuration on the newest data."""
    with gate.pool.store.session() as s:
        runs = s.scalars(select(GovAudit).order_by(GovAudit.created_at, GovAudit.id)).all()
        latest: dict[str, GovAudit] = {}
        for a in runs:
            if (a.params or {}).get("schedule"):
                latest[_config_key(a)] = a
        plans = [(a.id, a.entry_id, dict(a.params), bool(a.flagged)) for a in latest.values()]
        slugs = {e.id: e.slug for e in s.scalars(select(entries.GovEntry))}
    out = []
    for prev_id, entry_id, params, was_flagged in plans:
        t = Thresholds(**params.get("thresholds", {}))
        entry = slugs.get(entry_id) if entry_id else None
        try:
            if params.get("kind") == "decisions":
                result = run_decisions(gate, p, params["model"], groups=params["groups"],
                                       thresholds=t)  # fmt: skip
            else:
                result, _v = run_dataset(gate, p, params["dataset"], prediction=params["prediction"],
                                         groups=params["groups"], label=params.get("label"),
                                         positive=params.get("positive"), thresholds=t)  # fmt: skip
        except (BadInput, NotFound) as exc:
            out.append({"previous": prev_id, "entry": entry, "error": str(exc)})
            continue
        new_id = store(gate, p, result, entry=entry, schedule=True, thresholds=t)
        alert = bool(result["flagged"]) and not was_flagged
        if alert:
            gate.audit.log(p, "governance-alert", outcome="alert",
                           detail={"entry": entry, "audit": new_id, "previous": prev_id,
                                   "reasons": result["reasons"]})  # fmt: skip
        out.append({"previous": prev_id, "audit": new_id, "entry": entry,
                    "flagged": bool(result["flagged"]), "alert": alert,
                    "min_ratio": result["min_ratio"], "reasons": result["reasons"]})  # fmt: skip
    return out


def alerts(gate: Gate) -> dict[int, bool]:
    """Entry id -> whether its newest audit is flagged (the flag shown on the entry)."""
    out: dict[int, bool] = {}
    with gate.pool.store.session() as s:
        for entry_id, flagged in s.execute(
            select(GovAudit.entry_id, GovAudit.flagged)
            .where(GovAudit.entry_id.is_not(None))
            .order_by(GovAudit.created_at, GovAudit.id)
        ):
            if entry_id is not None:
                out[entry_id] = bool(flagged)
    return out

