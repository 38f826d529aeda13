"""Mapping Datenlabor's errors to HTTP answers: clear 4xx, never a 500 for bad input."""

from __future__ import annotations

import logging
from typing import Any

import duckdb
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from datenlabor.errors import (
    BadInput,
    Conflict,
    DatenlaborError,
    Forbidden,
    NotFound,
    Unauthenticated,
)
from datenlabor.pool.diskfull import DiskFull

log = logging.getLogger("datenlabor.web")

# Seconds a client should wait before retrying while the metadata store is unavailable: long
# enough for a database restart or fail-over to finish, short enough not to lose users.
STORE_RETRY_AFTER_S = 5
STORE_DOWN = (
    "Der Metadatenspeicher ist gerade nicht erreichbar / the metadata store is not reachable "
    "at the moment; the request was not completed, please try again in a few seconds"
)

STATUS = {
    BadInput: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
}


class Problem(BaseModel):
    """The body of every error answer of the JSON API."""

    model_config = ConfigDict(extra="allow")
    error: str
    status: int
    field: str | None = None
    line: int | None = None
    file: str | None = None


_WHY = {
    400: "bad input (the message names the field, line and column)",
    401: "sign in or send an API token",
    403: "not allowed for this caller or token scope",
    404: "not there, or not visible to the caller",
    409: "conflict (a name taken, a dataset locked by another writer)",
    413: "request body too large",
    503: "the server ran out of memory or the metadata store is unavailable",
    507: "no space left on the server's disk (nothing was changed)",
}
# Documented on every JSON API router (``APIRouter(responses=ERROR_RESPONSES)``), so the
# OpenAPI document lists what clients really receive (checked by tests/test_schemathesis.py).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "description": why} for code, why in _WHY.items()
}
# Routes outside /api/ answer errors as an HTML page to browsers.
PAGE_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "description": why, "content": {"text/html": {}}}
    for code, why in _WHY.items()
}


def status_of(exc: DatenlaborError) -> int:
    explicit = getattr(exc, "status_code", None)
    if isinstance(explicit, int):
        return explicit
    for cls, code in STATUS.items():
        if isinstance(exc, cls):
            return code
    return 500


def problem(
    status: int, message: str, headers: dict[str, str] | None = None, **extra: object
) -> JSONResponse:
    body: dict[str, object] = {"error": message, "status": status}
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, headers=headers or None)


def store_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the metadata store cannot be used right now (server down or
    restarting, connection lost, pool exhausted, SQLite busy) rather than a bug."""
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and bool(exc.connection_invalidated)


def install(app: FastAPI, html_handler: object = None) -> None:
    """Register handlers; ``html_handler(request, status, message)`` renders UI pages."""

    def wants_html(request: Request) -> bool:
        if html_handler is None or request.url.path.startswith(("/api/", "/healthz")):
            return False
        accept = request.headers.get("accept", "")
        return not ("application/json" in accept and "text/html" not in accept)

    def answer(
        request: Request,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
        **extra: object,
    ) -> Response:
        if wants_html(request):
            page: Response = html_handler(request, status, message)  # type: ignore[operator]
            page.headers.update(headers or {})
            return page
        return problem(status, message, headers, **extra)

    @app.exception_handler(DatenlaborError)
    async def _datenlabor(request: Request, exc: DatenlaborError) -> Response:
        status = status_of(exc)
        if isinstance(exc, DiskFull):  # an operational state, not a bug: no traceback
            log.warning("disk full on %s: %s", request.url.path, exc)
        elif status >= 500:
            log.exception("error on %s", request.url.path, exc_info=exc)
        extra = {}
        if isinstance(exc, BadInput):
            extra = {"field": exc.column, "line": exc.line, "file": exc.file}
        return answer(request, status, str(exc), None, **extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        parts = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body", "query"))
            parts.append(f"{where}: {err.get('msg')}")
        return answer(request, 400, "invalid request: " + "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return answer(request, exc.status_code, str(exc.detail))

    @app.exception_handler(duckdb.OutOfMemoryException)
    async def _memory(request: Request, exc: duckdb.OutOfMemoryException) -> Response:
        log.warning("out of memory on %s: %s", request.url.path, exc)
        return answer(
            request,
            503,
            "the server ran out of memory for this operation (nothing was changed); try again "
            "later, or ask the administrator to raise DATENLABOR_DUCKDB_MEMORY",
        )

    @app.exception_handler(sa_exc.SQLAlchemyError)
    async def _store(request: Request, exc: sa_exc.SQLAlchemyError) -> Response:
        if not store_unavailable(exc):
            return await _unexpected(request, exc)
        # An outage is an operational state, not a bug: one line in the log, no traceback.
        log.warning("metadata store unavailable on %s: %s", request.url.path, _first_line(exc))
        request.state.store_down = True  # an error page then renders without asking the store
        return answer(request, 503, STORE_DOWN, headers={"Retry-After": str(STORE_RETRY_AFTER_S)})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path, exc_info=exc)
        return answer(request, 500, "internal error; it has been logged")


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [exc.__class__.__name__])[0]
