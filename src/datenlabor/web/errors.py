"""Mapping Datenlabor's errors to HTTP answers: clear 4xx, never a 500 for bad input."""

from __future__ import annotations

import logging

import duckdb
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from datenlabor.errors import (
    BadInput,
    Conflict,
    DatenlaborError,
    Forbidden,
    NotFound,
    Unauthenticated,
)

log = logging.getLogger("datenlabor.web")

STATUS = {
    BadInput: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
}


def status_of(exc: DatenlaborError) -> int:
    explicit = getattr(exc, "status_code", None)
    if isinstance(explicit, int):
        return explicit
    for cls, code in STATUS.items():
        if isinstance(exc, cls):
            return code
    return 500


def problem(status: int, message: str, **extra: object) -> JSONResponse:
    body: dict[str, object] = {"error": message, "status": status}
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def install(app: FastAPI, html_handler: object = None) -> None:
    """Register handlers; ``html_handler(request, status, message)`` renders UI pages."""

    def wants_html(request: Request) -> bool:
        if html_handler is None or request.url.path.startswith(("/api/", "/healthz")):
            return False
        accept = request.headers.get("accept", "")
        return not ("application/json" in accept and "text/html" not in accept)

    def answer(request: Request, status: int, message: str, **extra: object) -> Response:
        if wants_html(request):
            return html_handler(request, status, message)  # type: ignore[operator]
        return problem(status, message, **extra)

    @app.exception_handler(DatenlaborError)
    async def _datenlabor(request: Request, exc: DatenlaborError) -> Response:
        status = status_of(exc)
        if status >= 500:
            log.exception("error on %s", request.url.path, exc_info=exc)
        extra = {}
        if isinstance(exc, BadInput):
            extra = {"field": exc.column, "line": exc.line, "file": exc.file}
        return answer(request, status, str(exc), **extra)

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

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path, exc_info=exc)
        return answer(request, 500, "internal error; it has been logged")
