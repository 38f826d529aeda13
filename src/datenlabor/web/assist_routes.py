"""JSON API of the AI assistance: inbox, triage, review queue, decisions, decision log.

Caseworkers (admins; stewards and analysts of the receiving organisation) use all of it;
viewers and anonymous callers get 403/401: requests carry personal data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel, Field

from datenlabor.access.principal import Principal
from datenlabor.assist import inbox, registry, review
from datenlabor.errors import BadInput, NotFound
from datenlabor.web.api import gate_of
from datenlabor.web.auth import check_csrf, client_of, principal
from datenlabor.web.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1/assist", tags=["assist"], responses=ERROR_RESPONSES)


class RequestIn(BaseModel):
    text: str = Field(min_length=1, max_length=inbox.MAX_TEXT)
    request_id: str | None = None
    channel: str = "api"
    received_at: datetime | None = None
    subject: str | None = None
    sender: str | None = None
    ags: str | None = None
    language: str | None = None
    category: str | None = None


class RequestsIn(BaseModel):
    requests: list[RequestIn] = Field(min_length=1, max_length=10_000)
    org: str | None = None
    triage: bool = True


class TriageIn(BaseModel):
    text: str = Field(min_length=1, max_length=inbox.MAX_TEXT)
    llm: bool | None = None


class DecisionIn(BaseModel):
    decision: str
    label: str | None = None
    unit: str | None = None
    urgency: str | None = None
    text: str | None = None
    reason: str | None = None


def _added(a: inbox.Added) -> dict[str, Any]:
    return {"dataset": a.dataset, "version": a.version, "ids": a.ids,
            "suggestions": a.suggestions, "note": a.note}  # fmt: skip


@router.post("/requests", status_code=201)
def submit(body: RequestsIn, request: Request, p: Principal = Depends(principal)) -> dict[str, Any]:
    """Add requests to the inbox (a new version of the inbox dataset) and triage them."""
    items = [
        inbox.from_record(r.model_dump(), channel=r.channel, source="api", line=i + 1)
        for i, r in enumerate(body.requests)
    ]
    added = inbox.add(
        gate_of(request), p, items, org=body.org, triage=body.triage, client=client_of(request)
    )
    return _added(added)


@router.post("/requests/upload", status_code=201)
async def upload(request: Request, p: Principal = Depends(principal)) -> dict[str, Any]:
    """Multipart ``file``: an .eml, .csv or .ndjson file of requests."""
    from datenlabor.web.upload_flow import received_upload

    inbox.require_caseworker(gate_of(request), p)
    async with received_upload(request) as up:
        if request.state.csrf is not None:
            check_csrf(
                request.state.csrf,
                request.headers.get("x-csrf-token") or up.fields.get("csrf_token"),
            )
        if up.path is None or not up.filename:
            raise BadInput("choose a file", column="file")
        named = up.path.with_name(up.filename)
        up.path.rename(named)
        up.path = named
        gate = gate_of(request)

        def run() -> inbox.Added:
            return inbox.add(gate, p, inbox.read_files([named]), org=up.fields.get("org") or None,
                             client=client_of(request))  # fmt: skip

        added = await to_thread.run_sync(run)
    return _added(added)


@router.post("/triage")
def triage_text(
    body: TriageIn, request: Request, p: Principal = Depends(principal)
) -> dict[str, Any]:
    """Triage one text with the active model; nothing is stored."""
    from datenlabor.assist.triage import Triager

    gate = gate_of(request)
    inbox.require_caseworker(gate, p)
    [result] = Triager.for_pool(gate.pool).triage([body.text], use_llm=body.llm)
    return result.to_dict()


@router.get("/queue")
def get_queue(
    request: Request,
    status: str = Query("open", description="open, accepted, edited, rejected or all"),
    limit: int = Query(100, ge=1, le=1000),
    p: Principal = Depends(principal),
) -> dict[str, Any]:
    return {"requests": review.queue(gate_of(request), p, status=status, limit=limit)}


@router.get("/requests/{request_id}")
def get_request(
    request_id: str, request: Request, p: Principal = Depends(principal)
) -> dict[str, Any]:
    """The request, its suggestions and the decisions on them."""
    view = review.request_view(gate_of(request), p, request_id)
    row = dict(view["request"])
    if isinstance(row.get("received_at"), datetime):
        row["received_at"] = row["received_at"].isoformat()
    return {**view, "request": row}


@router.post("/requests/{request_id}/answer", status_code=201)
def draft_answer(
    request_id: str, request: Request, p: Principal = Depends(principal)
) -> dict[str, Any]:
    """An answer draft from the knowledge base, stored as an open suggestion."""
    gate = gate_of(request)
    sid = make_answer(gate, p, request_id)
    return {"suggestion": sid}


def make_answer(gate: Any, p: Principal, request_id: str) -> int:
    """Draft an answer for a request (part 2's :mod:`datenlabor.assist.answer`)."""
    try:
        from datenlabor.assist.answer import draft_answer as draft
    except ImportError:
        raise NotFound("answer drafts are not available (no knowledge base module)") from None
    inbox.require_caseworker(gate, p)
    p.require_write()
    view = review.request_view(gate, p, request_id)
    req = view["request"]
    question = "\n\n".join(x for x in (req.get("subject"), req.get("text")) if x)
    # The stored draft is read by every caseworker of the receiving organisation, so it may
    # cite and quote only what all of them may read, not what its drafter (an admin, or a
    # user with a personal grant) reads beyond that (authorisation matrix, issue 10).
    d = draft(gate, _audience(gate, p), question)
    triage = [s for s in view["suggestions"] if s["kind"] == "triage"]
    dataset = triage[-1]["dataset"] if triage else gate.pool.settings.assist_inbox_dataset
    version = triage[-1]["dataset_version"] if triage else None
    return review.record_answer(gate, p, request_id, d, dataset=dataset, version=version)


def _audience(gate: Any, p: Principal) -> Principal:
    """The drafter, seeing only what the inbox organisation's caseworkers all see."""
    d = gate.load(inbox.inbox_slug(gate))
    org = d.publisher if d is not None else None
    return Principal(
        username=p.username,
        role="analyst",  # stewards and analysts of an organisation see the same datasets
        user_id=None,  # personal grants of the drafter are not shared with the others
        organisation_id=org.id if org is not None else None,
        organisation=org.slug if org is not None else None,
        via=p.via,
    )


@router.post("/suggestions/{suggestion_id}/decision")
def decide(
    suggestion_id: int, body: DecisionIn, request: Request, p: Principal = Depends(principal)
) -> dict[str, Any]:
    """accepted | edited | rejected; the final routing or answer is the caseworker's."""
    final = body.model_dump(exclude={"decision"})
    done = review.decide(gate_of(request), p, suggestion_id, body.decision, final=final,
                         client=client_of(request))  # fmt: skip
    return {"suggestion": done.suggestion, "decision": done.decision}


@router.get("/decisions")
def get_decisions(
    request: Request,
    since: datetime | None = None,
    until: datetime | None = None,
    kind: str | None = None,
    p: Principal = Depends(principal),
) -> dict[str, Any]:
    """The decision log: one row per decision with model, data versions and group attributes."""
    rows = review.decisions(gate_of(request), p, since=since, until=until, kind=kind)
    for r in rows:
        for k in ("suggested_at", "decided_at"):
            if isinstance(r[k], datetime):
                r[k] = r[k].isoformat()
    return {"decisions": rows}


@router.get("/models")
def get_models(request: Request, p: Principal = Depends(principal)) -> dict[str, Any]:
    gate = gate_of(request)
    inbox.require_caseworker(gate, p)
    return {"models": [m.to_dict() for m in registry.models(gate.pool)]}


def install(app: FastAPI) -> None:
    app.include_router(router)
    try:
        from datenlabor.web import ui_assist
    except ImportError:  # API-only deployments without the UI package
        return
    app.include_router(ui_assist.router)
