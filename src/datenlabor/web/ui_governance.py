"""Pages of the AI governance: register (public), entry with history and diff, impact
assessment form, fairness report with plots, marketplace with comments and interest.

Thin: the functions of :mod:`datenlabor.governance` do the work. Forms post with the CSRF
token; the only script draws the report's plots from a JSON block (no inline script).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, Response

from datenlabor.governance import (
    activation,
    assessment,
    audits,
    entries,
    marketplace,
    register,
    report,
)
from datenlabor.governance.definitions import DATA, register_fields, usecase_fields
from datenlabor.web.ui_core import caller, field, form_of, gate_of, lang_of, redirect, render

router = APIRouter(include_in_schema=False)


def install(app: FastAPI) -> None:
    app.include_router(router)


@router.get("/governance/static/fairness.js")
def fairness_js() -> Response:
    return FileResponse(DATA / "fairness.js", media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=3600"})  # fmt: skip


@router.get("/governance")
def register_page(request: Request) -> Response:
    p, _ = caller(request)
    gate = gate_of(request)
    rows = register.listing(gate.pool.store, p)
    flags = audits.alerts(gate)
    ids = {v.slug: v.id for v in entries.entries(gate.pool.store, p, "register")}
    return render(request, "governance_register.html", section="governance", rows=rows,
                  flagged={s for s, i in ids.items() if flags.get(i)},
                  fields=register_fields().by_key)  # fmt: skip


@router.get("/governance/register/{slug}")
def entry_page(slug: str, request: Request) -> Response:
    p, _ = caller(request)
    gate = gate_of(request)
    view = entries.get(gate.pool.store, p, slug, "register")
    status = activation.measure_status(gate, view.model_name) if view.model_name else None
    return render(
        request, "governance_entry.html", section="governance", e=register.entry_dict(view),
        fields=register_fields(), can_edit=entries.can_edit(p, view.organisation_id),
        assessments=assessment.assessments(gate, p, slug), audits=audits.for_entry(gate, p, slug),
        measure_state=status, annex=register.annex_viii(gate.pool.store, p, slug),
    )  # fmt: skip


@router.post("/governance/register/{slug}/edit")
async def entry_edit(slug: str, request: Request) -> Response:
    p, form = await form_of(request)
    values = {f.key: field(form, f.key) for f in register_fields().fields
              if f.source == "steward" and f.type != "object" and f.key in form}  # fmt: skip
    register.edit(gate_of(request).pool.store, p, slug, values,
                  public=field(form, "public") == "1", note=field(form, "note"))  # fmt: skip
    return redirect(f"/governance/register/{slug}?done=gov_saved")


@router.get("/governance/register/{slug}/history")
def history_page(slug: str, request: Request) -> Response:
    p, _ = caller(request)
    store = gate_of(request).pool.store
    hist = entries.history(store, p, slug, "register")
    last = hist[-1]["version"]
    try:
        a = int(request.query_params.get("a", max(1, last - 1)))
        b = int(request.query_params.get("b", last))
    except ValueError:
        a, b = max(1, last - 1), last
    changes = entries.diff(store, p, slug, a, b, "register")
    return render(request, "governance_history.html", section="governance", slug=slug,
                  history=hist, a=a, b=b, changes=changes,
                  fields=register_fields().by_key)  # fmt: skip


@router.get("/governance/register/{slug}/assess")
def assess_page(slug: str, request: Request) -> Response:
    p, _ = caller(request)
    view = entries.get(gate_of(request).pool.store, p, slug, "register")
    return render(request, "governance_assess.html", section="governance", slug=slug,
                  name=view.data.get("name", slug), qn=assessment.questionnaire())  # fmt: skip


@router.post("/governance/register/{slug}/assess")
async def assess_form(slug: str, request: Request) -> Response:
    p, form = await form_of(request)
    qn = assessment.questionnaire(field(form, "questionnaire") or None)
    answers: dict[str, Any] = {}
    for q in qn.questions:
        if q.type == "multi":
            answers[q.id] = [v for v in form.getlist(q.id) if isinstance(v, str)]
        elif q.type == "boolean":
            answers[q.id] = field(form, q.id) == "1"
        elif field(form, q.id):
            answers[q.id] = field(form, q.id)
    assessment.assess(gate_of(request), p, slug, answers, ref=qn.ref)
    return redirect(f"/governance/register/{slug}?done=gov_assessed#bewertung")


@router.get("/governance/audits/{audit_id}")
def audit_page(audit_id: int, request: Request) -> Response:
    p, _ = caller(request)
    data = audits.get(gate_of(request), p, audit_id)
    figs = json.dumps(report.figures(data["result"], lang_of(request)))
    return render(request, "governance_audit.html", section="governance", audit=data,
                  figures=figs)  # fmt: skip


@router.get("/governance/marktplatz")
def market_page(request: Request) -> Response:
    p, _ = caller(request)
    qp = request.query_params
    filters = {k: qp.get(k) or None for k in marketplace.FILTERS}
    rows = marketplace.search(gate_of(request).pool.store, p, qp.get("q"), **filters)
    return render(request, "governance_marketplace.html", section="governance", rows=rows,
                  q=qp.get("q", ""), filters=filters, fields=usecase_fields().by_key)  # fmt: skip


@router.get("/governance/marktplatz/neu")
def market_new(request: Request) -> Response:
    p, _ = caller(request)
    p.require_login()
    return render(request, "governance_usecase_new.html", section="governance",
                  fields=usecase_fields())  # fmt: skip


@router.post("/governance/marktplatz/neu")
async def market_create(request: Request) -> Response:
    p, form = await form_of(request)
    values = {f.key: field(form, f.key) for f in usecase_fields().fields if field(form, f.key)}
    view = marketplace.create(gate_of(request).pool.store, p, values)
    return redirect(f"/governance/marktplatz/{view.slug}?done=gov_saved")


@router.get("/governance/marktplatz/{slug}")
def usecase_page(slug: str, request: Request) -> Response:
    p, _ = caller(request)
    prof = marketplace.profile(gate_of(request).pool.store, p, slug)
    return render(request, "governance_usecase.html", section="governance", u=prof,
                  fields=usecase_fields())  # fmt: skip


@router.post("/governance/marktplatz/{slug}/reaktion")
async def usecase_react(slug: str, request: Request) -> Response:
    p, form = await form_of(request)
    marketplace.react(gate_of(request).pool.store, p, slug, field(form, "kind"), field(form, "text"))
    return redirect(f"/governance/marktplatz/{slug}?done=gov_reacted#beteiligung")
