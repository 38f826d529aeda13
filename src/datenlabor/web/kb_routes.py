"""JSON API of the knowledge bases: upload documents, list them, ask for an answer draft.

Permissions are those of datasets (a KB is a set of pool datasets, see
:mod:`datenlabor.assist.kb`): stewards of an organisation and admins upload; everyone sees
and retrieves what the visibility and grants of each KB partition allow them.
"""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from datenlabor.access.principal import Principal
from datenlabor.assist import kb as kbmod
from datenlabor.assist.answer import draft_answer
from datenlabor.errors import BadInput
from datenlabor.web.api import gate_of
from datenlabor.web.auth import check_csrf, client_of, principal
from datenlabor.web.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1/assist/kb", tags=["assist-kb"], responses=ERROR_RESPONSES)
MAX_QUESTION = 20_000


class AskIn(BaseModel):
    question: str = Field(min_length=1, max_length=MAX_QUESTION)
    k: int = Field(default=5, ge=1, le=20)
    llm: bool | None = Field(
        default=None, description="false: extractive draft even if an LLM is configured"
    )


@router.get("")
def list_kbs(request: Request, p: Principal = Depends(principal)) -> dict[str, Any]:
    """Knowledge bases with at least one partition the caller may see."""
    names: dict[str, list[str]] = {}
    for d, _view in gate_of(request).visible(p):
        parsed = kbmod.parse_slug(d.slug)
        if parsed is not None:
            names.setdefault(parsed[0], []).append(d.slug)
    return {
        "knowledge_bases": [{"name": n, "datasets": sorted(s)} for n, s in sorted(names.items())]
    }


@router.get("/{kb}/documents")
def list_documents(kb: str, request: Request, p: Principal = Depends(principal)) -> dict[str, Any]:
    return {"kb": kb, "documents": kbmod.list_documents(gate_of(request), p, kb)}


@router.post("/{kb}/documents", status_code=201)
async def upload_document(
    kb: str, request: Request, p: Principal = Depends(principal)
) -> dict[str, Any]:
    """Multipart: a ``file`` part (PDF, DOCX, HTML, Markdown, text) and optional fields
    ``visibility`` (public | internal | restricted, default internal) and ``org``."""
    from datenlabor.web.upload_flow import received_upload

    p.require_write()
    kbmod.check_kb_name(kb)
    gate = gate_of(request)
    async with received_upload(request) as up:
        if request.state.csrf is not None:
            check_csrf(
                request.state.csrf,
                request.headers.get("x-csrf-token") or up.fields.get("csrf_token"),
            )
        if up.path is None or not up.filename:
            raise BadInput("choose a file", column="file")
        path, name = up.path, up.filename
        visibility = (up.fields.get("visibility") or "internal").strip()
        org = (up.fields.get("org") or "").strip() or None

        def add() -> list[kbmod.AddedDocument]:
            return kbmod.add_documents(
                gate, p, [(name, path)], kb=kb, visibility=visibility, org=org,
                client=client_of(request),
            )  # fmt: skip

        added = await to_thread.run_sync(add)
    return {"kb": kb, "documents": [a.__dict__ for a in added]}


@router.post("/{kb}/ask")
def ask(
    kb: str, body: AskIn, request: Request, p: Principal = Depends(principal)
) -> dict[str, Any]:
    """An answer draft with verified citations from what the caller may see of ``kb``."""
    draft = draft_answer(
        gate_of(request), p, body.question, kb=kb, k=body.k,
        llm=False if body.llm is False else None, client=client_of(request),
    )  # fmt: skip
    return draft.to_dict()


# -- a small page to ask a KB (the review queue of part 1 shows drafts of requests) --------
pages = APIRouter(include_in_schema=False)


def _kb_names(request: Request, p: Principal) -> list[str]:
    names = {
        parsed[0]
        for d, _view in gate_of(request).visible(p)
        if (parsed := kbmod.parse_slug(d.slug)) is not None
    }
    return sorted(names)


@pages.get("/assist/kb")
def ask_page(request: Request) -> Response:
    from datenlabor.web.ui_core import caller, render

    p, _ = caller(request)
    return render(request, "kb_ask.html", section="assist", kbs=_kb_names(request, p),
                  chosen="default", question="", draft=None, blocks=[])  # fmt: skip


@pages.post("/assist/kb")
async def ask_form(request: Request) -> Response:
    from datenlabor.web.ui_core import field, form_of, render

    p, form = await form_of(request)
    kb, question = field(form, "kb") or "default", field(form, "question")
    if not question:
        raise BadInput("enter a question", column="question")
    if len(question) > MAX_QUESTION:
        raise BadInput(f"the question is longer than {MAX_QUESTION} characters", column="question")
    gate = gate_of(request)
    draft = await to_thread.run_sync(
        lambda: draft_answer(gate, p, question, kb=kb, client=client_of(request))
    )
    blocks: dict[int, list[dict[str, Any]]] = {}
    for sentence in draft.sentences:
        blocks.setdefault(sentence["block"], []).append(sentence)
    return render(request, "kb_ask.html", section="assist", kbs=_kb_names(request, p),
                  chosen=kb, question=question, draft=draft,
                  blocks=[b for _, b in sorted(blocks.items())])  # fmt: skip


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.include_router(pages)
