"""JSON API of the AI governance: register, assessments, activation, audits, marketplace.

Public register entries and use cases are readable without signing in; creating and editing
is for admins and stewards of the owning organisation; comments and interest for signed-in
users with write credentials. Thin: the functions of :mod:`datenlabor.governance` do the work.
"""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from datenlabor.access.principal import Principal
from datenlabor.governance import activation, assessment, audits, entries, marketplace, register
from datenlabor.governance.fairness import Thresholds
from datenlabor.web.api import gate_of
from datenlabor.web.auth import principal
from datenlabor.web.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1/governance", tags=["governance"], responses=ERROR_RESPONSES)


def writer(p: Principal = Depends(principal)) -> Principal:
    """A caller allowed to change things (``principal`` checks the CSRF header of browsers)."""
    p.require_write()
    return p


class EntryIn(BaseModel):
    values: dict[str, Any]
    slug: str | None = None
    organisation: str | None = None
    model_name: str | None = None
    public: bool = False


class EntryEdit(BaseModel):
    values: dict[str, Any] = {}
    public: bool | None = None
    note: str = ""


class AnswersIn(BaseModel):
    answers: dict[str, Any]
    questionnaire: str | None = None


class AuditIn(BaseModel):
    dataset: str | None = None
    version: int | None = None
    prediction: str | None = None
    groups: list[str] = Field(default_factory=list)
    label: str | None = None
    positive: str | None = None
    decisions: str | None = None  # audit the decision log of this AI service instead
    min_ratio: float = 0.8
    max_error_difference: float | None = None
    min_group_size: int = 30
    n_boot: int = 500
    schedule: bool = True


class UseCaseIn(BaseModel):
    values: dict[str, Any]
    slug: str | None = None
    organisation: str | None = None
    public: bool = True


class ReactionIn(BaseModel):
    kind: str
    text: str = ""


# What the OpenAPI document declares besides JSON (checked by tests/test_schemathesis.py).
JSON_OR_CSV: dict[int | str, dict[str, Any]] = {
    200: {"description": "JSON, or CSV with format=csv", "content": {"text/csv": {}}}
}
PDF: dict[int | str, dict[str, Any]] = {
    200: {"description": "the report", "content": {"application/pdf": {}}}
}


def _csv(text: str, name: str) -> Response:
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip


# -- register -----------------------------------------------------------------------------
@router.get("/register", responses=JSON_OR_CSV)
def register_list(request: Request, format: str = Query("json", pattern="^(json|csv)$"),
                  p: Principal = Depends(principal)) -> Any:  # fmt: skip
    store = gate_of(request).pool.store
    if format == "csv":
        return _csv(register.export(store, p, "csv", auto=False), "ki-register.csv")
    return register.listing(store, p)


@router.post("/register", status_code=201)
def register_create(body: EntryIn, request: Request, p: Principal = Depends(writer)) -> Any:
    view = register.create(gate_of(request).pool.store, p, body.values, slug=body.slug,
                           organisation=body.organisation, model_name=body.model_name,
                           public=body.public)  # fmt: skip
    return register.entry_dict(view)


@router.post("/register/refresh")
def register_refresh(request: Request, p: Principal = Depends(writer)) -> Any:
    p.require_role("admin")
    store = gate_of(request).pool.store
    return {"created": register.ensure_model_entries(store), "refreshed": register.refresh(store)}


@router.get("/register/{slug}")
def register_show(slug: str, request: Request, p: Principal = Depends(principal)) -> Any:
    return register.entry_dict(entries.get(gate_of(request).pool.store, p, slug, "register"))


@router.patch("/register/{slug}")
def register_edit(slug: str, body: EntryEdit, request: Request,
                  p: Principal = Depends(writer)) -> Any:  # fmt: skip
    view, changed = register.edit(gate_of(request).pool.store, p, slug, body.values,
                                  public=body.public, note=body.note)  # fmt: skip
    return {"changed": changed, **register.entry_dict(view)}


@router.get("/register/{slug}/history")
def register_history(slug: str, request: Request, p: Principal = Depends(principal)) -> Any:
    return entries.history(gate_of(request).pool.store, p, slug, "register")


@router.get("/register/{slug}/diff")
def register_diff(slug: str, request: Request, a: int, b: int,
                  p: Principal = Depends(principal)) -> Any:  # fmt: skip
    return entries.diff(gate_of(request).pool.store, p, slug, a, b, "register")


@router.get("/register/{slug}/annex-viii")
def register_annex(slug: str, request: Request, p: Principal = Depends(principal)) -> Any:
    return register.annex_viii(gate_of(request).pool.store, p, slug)


# -- assessment and activation ------------------------------------------------------------
@router.get("/questionnaire")
def questionnaire(ref: str | None = None) -> Any:
    return assessment.questionnaire(ref).model_dump()


@router.post("/register/{slug}/assessments", status_code=201)
def assess(slug: str, body: AnswersIn, request: Request, p: Principal = Depends(writer)) -> Any:
    return assessment.assess(gate_of(request), p, slug, body.answers, ref=body.questionnaire)


@router.get("/register/{slug}/assessments")
def assessments(slug: str, request: Request, p: Principal = Depends(principal)) -> Any:
    return assessment.assessments(gate_of(request), p, slug)


@router.get("/activation/{model_name}")
def activation_status(model_name: str, request: Request, p: Principal = Depends(principal)) -> Any:
    p.require_login()
    gate = gate_of(request)
    blockers = activation.activation_blockers(gate, model_name)
    return {"model": model_name, "allowed": not blockers, "blockers": blockers,
            **activation.measure_status(gate, model_name)}  # fmt: skip


# -- fairness audits ----------------------------------------------------------------------
@router.post("/register/{slug}/audits", status_code=201)
async def audit_run(slug: str, body: AuditIn, request: Request,
                    p: Principal = Depends(writer)) -> Any:  # fmt: skip
    gate = gate_of(request)
    t = Thresholds(min_ratio=body.min_ratio, max_error_difference=body.max_error_difference,
                   min_group_size=body.min_group_size, n_boot=body.n_boot)  # fmt: skip

    def work() -> dict[str, Any]:
        entries.get(gate.pool.store, p, slug, "register")
        if body.decisions:
            result = audits.run_decisions(gate, p, body.decisions,
                                          groups=body.groups or audits.DECISION_GROUPS,
                                          thresholds=t)  # fmt: skip
        else:
            if not body.dataset or not body.prediction:
                from datenlabor.errors import BadInput

                raise BadInput("dataset and prediction are needed (or decisions)",
                               column="dataset")  # fmt: skip
            result, _v = audits.run_dataset(gate, p, body.dataset, prediction=body.prediction,
                                            groups=body.groups, label=body.label,
                                            positive=body.positive, version=body.version,
                                            thresholds=t)  # fmt: skip
        audit_id = audits.store(gate, p, result, entry=slug, schedule=body.schedule, thresholds=t)
        return audits.get(gate, p, audit_id)

    return await to_thread.run_sync(work)


@router.get("/register/{slug}/audits")
def audit_list(slug: str, request: Request, p: Principal = Depends(principal)) -> Any:
    return audits.for_entry(gate_of(request), p, slug)


@router.get("/audits/{audit_id}")
def audit_show(audit_id: int, request: Request, p: Principal = Depends(principal)) -> Any:
    return audits.get(gate_of(request), p, audit_id)


@router.get("/audits/{audit_id}/report.pdf", responses=PDF)
async def audit_pdf(audit_id: int, request: Request, lang: str = "de",
                    p: Principal = Depends(principal)) -> Response:  # fmt: skip
    from datenlabor.governance import report

    data = audits.get(gate_of(request), p, audit_id)
    body = await to_thread.run_sync(lambda: report.pdf(report.standalone_html(data, lang)))
    return Response(body, media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="fairness-{audit_id}.pdf"'})  # fmt: skip


# -- marketplace --------------------------------------------------------------------------
@router.get("/usecases", responses=JSON_OR_CSV)
def usecase_search(
    request: Request,
    q: str | None = None,
    status: str | None = None,
    level: str | None = None,
    policy_area: str | None = None,
    technique: str | None = None,
    risk_class: str | None = None,
    format: str = Query("json", pattern="^(json|csv)$"),
    p: Principal = Depends(principal),
) -> Any:
    store = gate_of(request).pool.store
    if format == "csv":
        return _csv(marketplace.export(store, p, "csv"), "ki-marktplatz.csv")
    return marketplace.search(store, p, q, status=status, level=level, policy_area=policy_area,
                              technique=technique, risk_class=risk_class)  # fmt: skip


@router.post("/usecases", status_code=201)
def usecase_create(body: UseCaseIn, request: Request, p: Principal = Depends(writer)) -> Any:
    store = gate_of(request).pool.store
    view = marketplace.create(store, p, body.values, slug=body.slug,
                              organisation=body.organisation, public=body.public)  # fmt: skip
    return marketplace.profile(store, p, view.slug)


@router.post("/usecases/import")
async def usecase_import(request: Request, format: str = Query(..., pattern="^(json|csv)$"),
                         organisation: str | None = None,
                         p: Principal = Depends(writer)) -> Any:  # fmt: skip
    text = (await request.body()).decode("utf-8-sig", errors="strict")
    return marketplace.import_(gate_of(request).pool.store, p, text, format, name="upload",
                               organisation=organisation)  # fmt: skip


@router.post("/usecases/from-register/{register_slug}", status_code=201)
def usecase_from_register(register_slug: str, request: Request,
                          level: str = Query(..., pattern="^(federal|land|municipal)$"),
                          p: Principal = Depends(writer)) -> Any:  # fmt: skip
    store = gate_of(request).pool.store
    view = marketplace.from_register(store, p, register_slug, level=level)
    return marketplace.profile(store, p, view.slug)


@router.get("/usecases/{slug}")
def usecase_show(slug: str, request: Request, p: Principal = Depends(principal)) -> Any:
    return marketplace.profile(gate_of(request).pool.store, p, slug)


@router.patch("/usecases/{slug}")
def usecase_edit(slug: str, body: EntryEdit, request: Request,
                 p: Principal = Depends(writer)) -> Any:  # fmt: skip
    store = gate_of(request).pool.store
    _view, changed = marketplace.edit(store, p, slug, body.values, public=body.public,
                                      note=body.note)  # fmt: skip
    return {"changed": changed, **marketplace.profile(store, p, slug)}


@router.post("/usecases/{slug}/reactions", status_code=201)
def usecase_react(slug: str, body: ReactionIn, request: Request,
                  p: Principal = Depends(writer)) -> Any:  # fmt: skip
    return marketplace.react(gate_of(request).pool.store, p, slug, body.kind, body.text)


def install(app: FastAPI) -> None:
    app.include_router(router)
    try:
        from datenlabor.web import ui_governance
    except ImportError:  # API-only deployments without the UI package
        return
    ui_governance.install(app)
