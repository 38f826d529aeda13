"""The SQL workbench and the upload wizard."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
from fastapi import APIRouter, Request
from fastapi.responses import Response

from datenlabor.access.principal import Principal
from datenlabor.errors import BadInput, DatenlaborError, Unauthenticated
from datenlabor.pool.catalog import LICENCES, VISIBILITIES
from datenlabor.pool.pool import MODES
from datenlabor.web.auth import check_csrf, client_of
from datenlabor.web.errors import status_of
from datenlabor.web.ui_core import (
    caller,
    field,
    form_of,
    gate_of,
    login_redirect,
    redirect,
    render,
    safe_next,
)
from datenlabor.web.upload_flow import ingest_upload, received_upload

router = APIRouter(include_in_schema=False)
SQL_ROWS = 1000


# -- SQL ------------------------------------------------------------------------------------
def _numeric(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def _chart_data(table: pa.Table) -> str:
    """The result as JSON for the chart script (numbers stay numbers, the rest text)."""
    columns = []
    for name, col in zip(table.column_names, table.columns, strict=True):
        numeric = _numeric(col.type)
        values = [
            (float(v) if numeric and v is not None else (None if v is None else str(v)))
            for v in col.to_pylist()
        ]
        columns.append({"name": name, "numeric": numeric, "values": values})
    # </script> inside a value must not end the JSON block early.
    return json.dumps({"columns": columns}, ensure_ascii=False).replace("</", "<\\/")


def _sql_page(request: Request, *, sql: str = "", status: int = 200, **ctx: Any) -> Response:
    p, _ = caller(request)
    if not p.authenticated:
        return login_redirect(request)
    tables = [(d.slug, d.title, d.versions[-1].number) for d, _view in gate_of(request).visible(p)]
    if not sql and tables:
        sql = f'SELECT *\nFROM "{tables[0][0]}"\nLIMIT 100'
    ctx.setdefault("result", None)
    ctx.setdefault("sql_error", None)
    return render(
        request,
        "sql.html",
        status=status,
        section="sql",
        sql=sql,
        tables=tables,
        may_query=p.role in ("admin", "steward", "analyst"),
        max_rows=SQL_ROWS,
        **ctx,
    )


@router.get("/sql")
def sql_form(request: Request) -> Response:
    return _sql_page(request)


@router.post("/sql")
async def sql_run(request: Request) -> Response:
    p, form = await form_of(request)
    p.require_login()
    sql = field(form, "sql")
    try:
        if not sql:
            raise BadInput("write a query first (SELECT …)")
        result = gate_of(request).sql(p, sql, max_rows=SQL_ROWS, client=client_of(request))
    except Unauthenticated:
        raise
    except DatenlaborError as exc:
        return _sql_page(request, sql=sql, status=status_of(exc), sql_error=str(exc))
    table = result.table
    numeric = [
        n for n, c in zip(table.column_names, table.columns, strict=True) if _numeric(c.type)
    ]
    others = [n for n in table.column_names if n not in numeric]
    return _sql_page(
        request,
        sql=sql,
        result={
            "columns": table.column_names,
            "rows": [list(r.values()) for r in table.to_pylist()],
            "truncated": result.truncated,
            "elapsed": result.elapsed_s,
            "sources": [(s.slug, s.version, not s.view.whole) for s in result.sources],
            "chart": _chart_data(table),
            "numeric": numeric,
            "x": (others or table.column_names or [""])[0],
            "y": numeric[0] if numeric else "",
        },
    )


# -- upload ---------------------------------------------------------------------------------
def _publishable_orgs(request: Request, p: Principal) -> list[tuple[str, str]]:
    orgs = gate_of(request).accounts.orgs()
    if p.is_admin:
        return [(o.slug, o.name) for o in orgs]
    if p.role == "steward":
        return [(o.slug, o.name) for o in orgs if o.slug == p.organisation]
    return []


def _upload_page(request: Request, *, status: int = 200, **ctx: Any) -> Response:
    p, _ = caller(request)
    if not p.authenticated:
        return login_redirect(request)
    ctx.setdefault("upload_error", None)
    ctx.setdefault("values", {})
    return render(
        request,
        "upload.html",
        status=status,
        section="upload",
        orgs=_publishable_orgs(request, p),
        licences=LICENCES,
        visibilities=VISIBILITIES,
        modes=MODES,
        dataset=request.query_params.get("dataset", ""),
        max_bytes=gate_of(request).pool.settings.max_upload_bytes,
        **ctx,
    )


@router.get("/upload")
def upload_form(request: Request) -> Response:
    return _upload_page(request)


@router.post("/upload")
async def upload(request: Request) -> Response:
    """The wizard without JavaScript: the same streaming receiver and ingest as the API."""
    p, csrf = caller(request)
    p.require_write()
    try:
        async with received_upload(request) as received:
            fields = {k: v.strip() for k, v in received.fields.items()}
            check_csrf(csrf, fields.get("csrf_token"))  # a failure is an error page (403)
            try:
                version = await ingest_upload(request, p, received)
            except DatenlaborError as exc:
                return _upload_page(
                    request, status=status_of(exc), upload_error=str(exc), values=fields
                )
    except BadInput as exc:  # the upload itself was refused (size, form)
        return _upload_page(request, status=status_of(exc), upload_error=str(exc))
    return redirect(safe_next(f"/datasets/{version.dataset}?done=uploaded"))
