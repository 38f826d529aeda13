"""CKAN Action API: ``/api/3/action/{action}`` and ``/api/action/{action}``, GET and POST.

Answers use CKAN's envelope (``{"help", "success", "result"}``; errors with ``__type`` and
CKAN's status codes) so that CKAN clients such as ``ckanapi`` work unchanged. Only read
actions exist; see :mod:`datenlabor.interop.ckan` for the mapping.

Authentication: CKAN clients send the API token in ``Authorization`` without a scheme, or
in ``X-CKAN-API-Key``; both are accepted next to ``Authorization: Bearer …`` and the browser
session of the web UI.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from datenlabor.access.principal import Principal
from datenlabor.errors import (
    BadInput,
    Conflict,
    DatenlaborError,
    Forbidden,
    NotFound,
    Unauthenticated,
)
from datenlabor.interop import ckan
from datenlabor.web import auth

router = APIRouter(tags=["ckan"])

API_KEY_HEADER = "x-ckan-api-key"


def _principal(request: Request) -> Principal:
    gate = request.app.state.gate
    header = (request.headers.get("authorization") or "").strip()
    if header and not header.lower().startswith("bearer "):
        token = header  # CKAN style: the bare key
    elif not header and (key := (request.headers.get(API_KEY_HEADER) or "").strip()):
        token = key
    else:
        return auth.principal(request)  # Bearer token, browser session (CSRF-checked), nobody
    p: Principal = gate.accounts.resolve_token(token)
    request.state.principal, request.state.csrf = p, None
    return p


async def _params(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        if key in params:  # repeated keys (facet.field=a&facet.field=b) become lists
            prev = params[key]
            params[key] = [*prev, value] if isinstance(prev, list) else [prev, value]
        else:
            params[key] = value
    if request.method == "POST":
        body = await request.body()
        ctype = request.headers.get("content-type", "")
        if body.strip():
            if "form" in ctype:
                form = await request.form()
                params.update({k: v for k, v in form.items() if isinstance(v, str)})
            else:
                try:
                    data = json.loads(body)
                except ValueError:
                    raise BadInput("the request body is not valid JSON") from None
                if not isinstance(data, dict):
                    raise BadInput("the request body must be a JSON object")
                params.update(data)
    return params


def _failure(exc: DatenlaborError) -> tuple[int, dict[str, Any]]:
    """CKAN's status code and error object for one of our errors."""
    if isinstance(exc, NotFound):
        return 404, {"__type": "Not Found Error", "message": f"Not found: {exc}"}
    if isinstance(exc, Forbidden | Unauthenticated):
        return 403, {"__type": "Authorization Error", "message": f"Access denied: {exc}"}
    if isinstance(exc, BadInput):
        # CKAN lists the messages per field next to __type.
        error: dict[str, Any] = {exc.column or "input": [exc.reason]}
        error.update({"__type": "Validation Error", "message": str(exc)})
        return 409, error
    if isinstance(exc, Conflict):
        return 409, {"__type": "Validation Error", "message": str(exc)}
    return 500, {"__type": "Internal Error", "message": str(exc)}


async def _action(action: str, request: Request, version_prefix: str) -> JSONResponse:
    base = str(request.base_url).rstrip("/")
    help_url = f"{base}{version_prefix}/help_show?name={action}"
    fn = ckan.ACTIONS.get(action)
    if fn is None:
        return JSONResponse(
            {
                "help": help_url,
                "success": False,
                "error": {"message": f"Bad request - Action name not known: {action}"},
            },
            status_code=400,
        )
    try:
        params = await _params(request)
        p = await run_in_threadpool(_principal, request)
        ctx = ckan.Context(request.app.state.gate, p, base, client=auth.client_of(request))
        if fn is ckan.datastore_search:
            result = await run_in_threadpool(
                ckan.datastore_search, ctx, params, links_base=version_prefix
            )
        else:
            result = await run_in_threadpool(fn, ctx, params)
    except DatenlaborError as exc:
        status, error = _failure(exc)
        return JSONResponse(
            {"help": help_url, "success": False, "error": error}, status_code=status
        )
    return JSONResponse({"help": help_url, "success": True, "result": result})


# CKAN answers errors with its own envelope ({"help", "success": false, "error"}); 400 is
# an unknown action, 409 CKAN's validation error.
_CKAN_ERROR = {"content": {"application/json": {"schema": {"type": "object"}}}}
CKAN_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": why, **_CKAN_ERROR}
    for code, why in [(400, "unknown action"), (403, "authorisation error"),
                      (404, "not found"), (409, "validation error")]
}  # fmt: skip


# One operation per method (one function for both would give both the same operation id).
@router.get("/api/3/action/{action}", summary="CKAN action", responses=CKAN_RESPONSES)
async def action_v3(action: str, request: Request) -> JSONResponse:
    return await _action(action, request, "/api/3/action")


@router.post(
    "/api/3/action/{action}",
    summary="CKAN action (parameters as JSON body)",
    operation_id="action_v3_post",
    responses=CKAN_RESPONSES,
)
async def action_v3_post(action: str, request: Request) -> JSONResponse:
    return await _action(action, request, "/api/3/action")


@router.get("/api/action/{action}", summary="CKAN action", responses=CKAN_RESPONSES)
async def action(action: str, request: Request) -> JSONResponse:
    return await _action(action, request, "/api/action")


@router.post(
    "/api/action/{action}",
    summary="CKAN action (parameters as JSON body)",
    operation_id="action_post",
    responses=CKAN_RESPONSES,
)
async def action_post(action: str, request: Request) -> JSONResponse:
    return await _action(action, request, "/api/action")


def install(app: FastAPI) -> None:
    """Add the CKAN routes ahead of all others (no UI route may shadow them)."""
    before = len(app.router.routes)
    app.include_router(router)
    added = app.router.routes[before:]
    del app.router.routes[before:]
    app.router.routes[0:0] = added
