"""Pages of the AI assistance: the review queue and a request with its suggestions.

Thin: the service functions of :mod:`datenlabor.assist.review` do the work. Forms post with
the CSRF token like every other form; nothing here needs JavaScript.
"""

from __future__ import annotations

import json
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response

from datenlabor.assist import inbox, review
from datenlabor.assist.taxonomy import load_taxonomy
from datenlabor.web.auth import client_of
from datenlabor.web.ui_core import caller, field, form_of, gate_of, login_redirect, redirect, render

router = APIRouter(include_in_schema=False)
STATUSES = ("open", "accepted", "edited", "rejected", "all")


def segments(text: str, evidence: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    """The text cut into (piece, is_evidence) so the template can mark evidence terms."""
    spans = sorted(
        (int(a), int(b)) for e in evidence for a, b in e.get("spans", []) if 0 <= a < b <= len(text)
    )
    out: list[tuple[str, bool]] = []
    pos = 0
    for a, b in spans:
        if a < pos:  # overlapping spans (a bigram and its word): extend the marked piece
            if b > pos:
                out[-1] = (out[-1][0] + text[pos:b], True)
                pos = b
            continue
        if a > pos:
            out.append((text[pos:a], False))
        out.append((text[a:b], True))
        pos = b
    if pos < len(text):
        out.append((text[pos:], False))
    return out


def _full_text(row: dict[str, Any]) -> str:
    return inbox.Request(
        text=row.get("text") or "",
        subject=row.get("subject"),
        attachment_text=row.get("attachment_text") or "",
    ).full_text()


@router.get("/assist")
def queue_page(request: Request) -> Response:
    p, _ = caller(request)
    if not p.authenticated:
        return login_redirect(request)
    status = request.query_params.get("status", "open")
    if status not in STATUSES:
        status = "open"
    items = review.queue(gate_of(request), p, status=status)
    return render(request, "assist_queue.html", section="assist", items=items, chosen=status,
                  statuses=STATUSES)  # fmt: skip


@router.get("/assist/requests/{request_id}")
def request_page(request_id: str, request: Request) -> Response:
    p, _ = caller(request)
    if not p.authenticated:
        return login_redirect(request)
    gate = gate_of(request)
    view = review.request_view(gate, p, request_id)
    row = view["request"]
    text = _full_text(row)
    tax = load_taxonomy(gate.pool.settings.assist_taxonomy)
    triage = [s for s in view["suggestions"] if s["kind"] == "triage"]
    answers = [s for s in view["suggestions"] if s["kind"] == "answer"]
    latest = triage[-1] if triage else None
    try:
        import datenlabor.assist.answer  # noqa: F401  (part 2 present?)

        can_draft = True
    except ImportError:
        can_draft = False
    try:
        attachments = json.loads(row.get("attachments") or "[]")
    except ValueError:
        attachments = []
    return render(
        request,
        "assist_request.html",
        section="assist",
        row=row,
        attachments=attachments,
        pieces=segments(text, latest["suggestion"].get("evidence", []) if latest else []),
        triage=triage,
        answers=answers,
        categories=tax.categories,
        cat_name={c.id: c.name for c in tax.categories},
        closed=view["closed"],
        can_draft=can_draft and not answers,
    )


@router.post("/assist/suggestions/{suggestion_id}/decision")
async def decide_form(suggestion_id: int, request: Request) -> Response:
    p, form = await form_of(request)
    p.require_login()
    final = {k: field(form, k) or None for k in ("label", "urgency", "text", "reason")}
    done = review.decide(gate_of(request), p, suggestion_id, field(form, "decision"), final=final,
                         client=client_of(request))  # fmt: skip
    rid = done.suggestion["request_id"]
    return redirect(f"/assist/requests/{rid}?done=assist_decided#entscheidung")


@router.post("/assist/requests/{request_id}/answer")
async def answer_form(request_id: str, request: Request) -> Response:
    from datenlabor.web.assist_routes import make_answer

    p, _form = await form_of(request)
    p.require_login()
    gate = gate_of(request)
    await to_thread.run_sync(lambda: make_answer(gate, p, request_id))  # may ask an LLM
    return redirect(f"/assist/requests/{request_id}?done=assist_answer#antwort")
