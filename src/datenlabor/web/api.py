"""JSON API, version 1. Routes are thin: parse, call a service function, shape the answer."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import pyarrow as pa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.routing import Route

from datenlabor.access.audit import entry_dict
from datenlabor.access.principal import Principal
from datenlabor.config import usable_cpus
from datenlabor.errors import BadInput, Forbidden
from datenlabor.pool.catalog import DatasetMeta
from datenlabor.service import grants as grant_ops
from datenlabor.service import publishing
from datenlabor.service.catalogue import FACETS, search
from datenlabor.service.gate import Gate, RowsResult, Source
from datenlabor.web.auth import check_csrf, client_of, principal
from datenlabor.web.errors import ERROR_RESPONSES
from datenlabor.web.upload_flow import ingest_upload, received_upload

router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)

MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "json": "application/json",
}


def gate_of(request: Request) -> Gate:
    return request.app.state.gate


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def _json_default(value: Any) -> Any:
    out = jsonable(value)
    if out is value:
        raise TypeError(f"{type(value).__name__} values cannot be sent as JSON")
    return out


def rows_of(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as plain Python values; dates, decimals and bytes are converted when encoded
    (:func:`DataJSONResponse`), not here: a per-value Python call cost more than the query."""
    return table.to_pylist()


class DataJSONResponse(Response):
    """JSON as Starlette's JSONResponse writes it (UTF-8, compact, no NaN), plus dates,
    times, decimals and bytes (:func:`jsonable`) at any depth, in one C-encoder pass."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(
            content,
            ensure_ascii=False,
            allow_nan=False,
            separators=(",", ":"),
            default=_json_default,
        ).encode()


def provenance(sources: list[Source], **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"datasets": [_source_provenance(s) for s in sources]}
    out.update(extra)
    return out


def _source_provenance(s: Source) -> dict[str, Any]:
    out: dict[str, Any] = {"slug": s.slug, "version": s.version, "partial": not s.view.whole}
    if s.disclosure is not None:
        from datenlabor.service.confidential import public_report

        out["disclosure"] = public_report(s.disclosure)
    return out


# -- datasets ----------------------------------------------------------------------------
@router.get("/datasets")
def list_datasets(
    request: Request, q: str = "", p: Principal = Depends(principal)
) -> dict[str, Any]:
    filters = {name: request.query_params.getlist(name) for name in FACETS}
    result = search(gate_of(request), p, q, filters)
    return {"datasets": [h.to_dict() for h in result.hits], "facets": result.facets}


class MetadataIn(BaseModel):
    title: str | None = None
    description: str | None = None
    publisher: str | None = None
    licence: str | None = None
    keywords: list[str] | None = None
    themes: list[str] | None = None
    spatial: list[str] | None = None
    temporal_start: date | None = None
    temporal_end: date | None = None
    contact_point: str | None = None
    visibility: str | None = None


async def _upload(request: Request, p: Principal, slug: str | None) -> dict[str, Any]:
    p.require_write()
    async with received_upload(request) as upload:
        if request.state.csrf is not None:
            given = request.headers.get("x-csrf-token") or upload.fields.get("csrf_token")
            check_csrf(request.state.csrf, given)
        version = await ingest_upload(request, p, upload, slug=slug)
    return {"version": version.to_dict(), "provenance": provenance([], uploaded=upload.filename)}


@router.post("/datasets", status_code=201)
async def create_dataset(request: Request, p: Principal = Depends(principal)) -> dict[str, Any]:
    """Multipart upload: a ``file`` part and fields ``dataset``, ``org``, metadata, ``mode``."""
    return await _upload(request, p, None)


@router.post("/datasets/{slug}/versions", status_code=201)
async def add_version(
    slug: str, request: Request, p: Principal = Depends(principal)
) -> dict[str, Any]:
    return await _upload(request, p, slug)


@router.get("/datasets/{slug}")
def get_dataset(slug: str, request: Request, p: Principal = Depends(principal)) -> dict[str, Any]:
    info, view = gate_of(request).info(p, slug)
    out = info.to_dict()
    out["partial"] = not view.whole
    return out


@router.patch("/datasets/{slug}")
def patch_dataset(
    slug: str, body: MetadataIn, request: Request, p: Principal = Depends(principal)
) -> dict[str, Any]:
    meta = DatasetMeta(**body.model_dump(exclude_unset=True))
    info = publishing.update_metadata(gate_of(request), p, slug, meta, client=client_of(request))
    return info.to_dict()


@router.delete("/datasets/{slug}")
def delete_dataset(
    slug: str, request: Request, p: Principal = Depends(principal)
) -> dict[str, Any]:
    purge = publishing.delete(gate_of(request), p, slug, client=client_of(request))
    return {"deleted": slug, "purge_after": purge}


@router.get("/datasets/{slug}/versions")
def list_versions(slug: str, request: Request, p: Principal = Depends(principal)) -> dict[str, Any]:
    return {"versions": [v.to_dict() for v in gate_of(request).versions(p, slug)]}


@router.get("/datasets/{slug}/versions/{number}")
def get_version(
    slug: str, number: int, request: Request, p: Principal = Depends(principal)
) -> dict[str, Any]:
    return gate_of(request).version(p, slug, number).to_dict()


@router.get("/datasets/{slug}/schema")
def get_schema(
    slug: str, request: Request, version: int | None = None, p: Principal = Depends(principal)
) -> dict[str, Any]:
    v = gate_of(request).version(p, slug, version)
    return {"schema": v.schema, "provenance": {"datasets": [{"slug": slug, "version": v.version}]}}


@router.get("/datasets/{slug}/quality")
def get_quality(
    slug: str, request: Request, version: int | None = None, p: Principal = Depends(principal)
) -> dict[str, Any]:
    gate = gate_of(request)
    src = gate.source(p, slug, version)
    report = gate.quality(p, slug, version)
    return {"quality": report, "provenance": provenance([src])}


@router.get("/datasets/{slug}/diff")
def get_diff(
    slug: str,
    request: Request,
    from_: int | None = Query(None, alias="from", ge=1, description="older version"),
    to: int | None = Query(None, ge=1, description="newer version (default: latest)"),
    limit: int = Query(20, ge=1, le=1000, description="example rows per kind of change"),
    p: Principal = Depends(principal),
) -> dict[str, Any]:
    """Differences between two versions (default: the latest and the one before)."""
    gate = gate_of(request)
    b = to or gate.versions(p, slug)[-1].version
    a = from_ or max(1, b - 1)
    result = gate.diff(p, slug, a, b, limit=limit, client=client_of(request))
    result = json.loads(json.dumps(result, default=jsonable))
    return {
        "diff": result,
        "provenance": {"datasets": [{"slug": slug, "version": a}, {"slug": slug, "version": b}]},
    }


@router.get("/datasets/{slug}/rows", response_class=DataJSONResponse)
def get_rows(slug: str, request: Request) -> Response:
    """Filtered, sorted, paged rows (query parameters: docs/service.md).

    Documents the route; requests are served by :func:`rows_endpoint`, which
    :func:`install_fast_routes` puts in front of the router.
    """
    result = gate_of(request).rows(
        principal(request),
        slug,
        list(request.query_params.multi_items()),
        client=client_of(request),
    )
    return Response(_rows_body(result), media_type="application/json")


def _rows_body(result: RowsResult) -> bytes:
    """The answer of a rows request; the rows part is encoded once per cached page."""
    rows = result.memo.get("rows_json")
    if rows is None:
        rows = DataJSONResponse(rows_of(result.table)).body
        result.memo["rows_json"] = rows
    rest = DataJSONResponse(
        {
            "columns": result.table.column_names,
            "next": result.next,
            "provenance": provenance([result.source]),
        }
    ).body
    return b'{"rows":' + rows + b"," + rest[1:]


def _rows_in_thread(request: Request) -> RowsResult:
    return gate_of(request).rows(
        principal(request),
        request.path_params["slug"],
        list(request.query_params.multi_items()),
        client=client_of(request),
        defer_audit=True,
    )


async def rows_endpoint(request: Request) -> Response:
    """``GET /api/v1/datasets/{slug}/rows`` without FastAPI's per-request machinery.

    The hottest read route. Under load (py-spy, bench/api.py) FastAPI's dependency and
    parameter solving and anyio's thread hand-off took about a fifth of the CPU of a rows
    request answered from the result cache. Here the request goes to a small executor of
    its own in one hop; the
    thread is free again while the audit entry commits (awaited here: no answer leaves
    before its access is on record). Errors reach the app's exception handlers as usual.
    """
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(_executor(), _rows_in_thread, request)
    assert result.audited is not None
    await asyncio.wrap_future(result.audited)
    return Response(_rows_body(result), media_type="application/json")


_EXECUTOR: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _EXECUTOR
    if _EXECUTOR is None:
        # A query releases the GIL while DuckDB works, a slow one (a sort of a big version)
        # must not hold up the rest: a few threads per usable CPU.
        _EXECUTOR = ThreadPoolExecutor(4 * usable_cpus() + 4, thread_name_prefix="rows")
    return _EXECUTOR


def install_fast_routes(app: Starlette) -> None:
    """Serve the hot read routes ahead of every other route (their FastAPI twins stay in
    the OpenAPI document)."""
    route = Route("/api/v1/datasets/{slug}/rows", rows_endpoint, methods=["GET"])
    route.methods = {"GET"}  # as its twin: Starlette would add HEAD
    app.router.routes.insert(0, route)


@router.get(
    "/datasets/{slug}/download",
    responses={
        200: {"description": "the file", "content": {m.split(";")[0]: {} for m in MEDIA.values()}}
    },
)
def download(
    slug: str,
    request: Request,
    format: str = "csv",
    version: int | None = None,
    dialect: str = "de",
    p: Principal = Depends(principal),
) -> FileResponse:
    path, src, rows = gate_of(request).download(
        p, slug, version=version, fmt=format, dialect=dialect, client=client_of(request)
    )
    name = f"{slug}-v{src.version}.{format}"
    headers = {
        "X-Datenlabor-Provenance": json.dumps(provenance([src], rows=rows)),
    }
    return FileResponse(
        path,
        media_type=MEDIA[format],
        filename=name,
        headers=headers,
        background=BackgroundTask(path.unlink, missing_ok=True),
    )


# -- grants ------------------------------------------------------------------------------
class GrantIn(BaseModel):
    org: str | None = None
    user: str | None = None
    hide_columns: list[str] = Field(default_factory=list)
    rows: str | None = None
    microdata: bool = False  # microdata of a confidential dataset


@router.get("/datasets/{slug}/grants")
def list_grants(slug: str, request: Request, p: Principal = Depends(principal)) -> dict[str, Any]:
    return {"grants": [g.to_dict() for g in grant_ops.grants_of(gate_of(request), p, slug)]}


@router.post("/datasets/{slug}/grants", status_code=201)
def create_grant(
    slug: str, body: GrantIn, request: Request, p: Principal = Depends(principal)
) -> dict[str, Any]:
    g = grant_ops.add_grant(
        gate_of(request),
        p,
        slug,
        org=body.org,
        user=body.user,
        hide_columns=body.hide_columns,
        rows=body.rows,
        microdata=body.microdata,
        client=client_of(request),
    )
    return g.to_dict()


@router.delete("/datasets/{slug}/grants/{grant_id}")
def delete_grant(
    slug: str, grant_id: int, request: Request, p: Principal = Depends(principal)
) -> dict[str, Any]:
    grant_ops.revoke_grant(gate_of(request), p, slug, grant_id, client=client_of(request))
    return {"revoked": grant_id}


# -- SQL ---------------------------------------------------------------------------------
class SqlIn(BaseModel):
    sql: str = Field(max_length=100_000)
    max_rows: int | None = Field(default=None, ge=1)


@router.post("/sql", response_class=DataJSONResponse)
def run_sql(body: SqlIn, request: Request, p: Principal = Depends(principal)) -> Response:
    # a dependency, not a call in the body: sign-in and the CSRF check come before the
    # body is validated, so a forged cross-site call learns nothing about the API
    result = gate_of(request).sql(p, body.sql, max_rows=body.max_rows, client=client_of(request))
    return DataJSONResponse(
        {
            "rows": rows_of(result.table),
            "columns": result.table.column_names,
            "truncated": result.truncated,
            "elapsed_s": round(result.elapsed_s, 4),
            "provenance": provenance(result.sources, query=body.sql),
        }
    )


# -- accounts ----------------------------------------------------------------------------
@router.get("/me")
def me(p: Principal = Depends(principal)) -> dict[str, Any]:
    return {
        "username": p.username,
        "role": p.role,
        "organisation": p.organisation,
        "authenticated": p.authenticated,
        "via": p.via,
    }


class OrgIn(BaseModel):
    slug: str
    name: str


@router.get("/orgs")
def list_orgs(request: Request, p: Principal = Depends(principal)) -> dict[str, Any]:
    p.require_login()
    return {"orgs": [{"slug": o.slug, "name": o.name} for o in gate_of(request).accounts.orgs()]}


@router.post("/orgs", status_code=201)
def create_org(body: OrgIn, request: Request, p: Principal = Depends(principal)) -> dict[str, Any]:
    p.require_write()
    p.require_role("admin")
    gate = gate_of(request)
    org = gate.accounts.add_org(body.slug, body.name)
    gate.audit.log(p, "account", detail={"org": body.slug}, client=client_of(request))
    return {"slug": org.slug, "name": org.name}


class UserIn(BaseModel):
    username: str
    org: str
    role: str
    password: str | None = None
    display_name: str = ""
    email: str | None = None


class UserPatch(BaseModel):
    role: str | None = None
    org: str | None = None
    active: bool | None = None
    password: str | None = None


@router.get("/users")
def list_users(request: Request, p: Principal = Depends(principal)) -> dict[str, Any]:
    p.require_role("admin", "steward")
    org = None if p.is_admin else p.organisation
    return {"users": [u.__dict__ for u in gate_of(request).accounts.users(org)]}


@router.post("/users", status_code=201)
def create_user(
    body: UserIn, request: Request, p: Principal = Depends(principal)
) -> dict[str, Any]:
    p.require_write()
    p.require_role("admin")
    gate = gate_of(request)
    info = gate.accounts.add_user(
        body.username,
        org=body.org,
        role=body.role,
        password=body.password,
        display_name=body.display_name,
        email=body.email,
    )
    gate.audit.log(
        p, "account", detail={"user": body.username, "role": body.role}, client=client_of(request)
    )
    return info.__dict__


@router.patch("/users/{username}")
def update_user(
    username: str, body: UserPatch, request: Request, p: Principal = Depends(principal)
) -> dict[str, Any]:
    p.require_write()
    if not (
        p.is_admin
        or (
            p.username == username
            and body.role is None
            and body.org is None
            and body.active is None
        )
    ):
        raise Forbidden("only admins change other accounts, roles and organisations")
    gate = gate_of(request)
    info = gate.accounts.update_user(username, **body.model_dump(exclude_unset=True))
    changed = sorted(k for k in body.model_dump(exclude_unset=True) if k != "password")
    gate.audit.log(
        p, "account", detail={"user": username, "changed": changed}, client=client_of(request)
    )
    return info.__dict__


class TokenIn(BaseModel):
    scope: str = "read"
    days: int | None = 90
    name: str = ""


@router.get("/tokens")
def list_tokens(request: Request, p: Principal = Depends(principal)) -> dict[str, Any]:
    p.require_login()
    tokens = gate_of(request).accounts.tokens(p.username or "")
    return {"tokens": [jsonable_dict(t.__dict__) for t in tokens]}


def jsonable_dict(d: dict[str, Any]) -> dict[str, Any]:
    return {k: jsonable(v) for k, v in d.items()}


@router.post("/tokens", status_code=201)
def create_token(
    body: TokenIn, request: Request, p: Principal = Depends(principal)
) -> dict[str, Any]:
    p.require_write()
    gate = gate_of(request)
    token = gate.accounts.create_token(
        p.username or "", scope=body.scope, days=body.days, name=body.name
    )
    gate.audit.log(
        p, "token", detail={"created": token[:10], "scope": body.scope}, client=client_of(request)
    )
    return {"token": token, "scope": body.scope}


@router.delete("/tokens/{token_id}")
def revoke_token(
    token_id: int, request: Request, p: Principal = Depends(principal)
) -> dict[str, Any]:
    p.require_write()
    gate = gate_of(request)
    gate.accounts.revoke_token(p.username or "", token_id)
    gate.audit.log(p, "token", detail={"revoked": token_id}, client=client_of(request))
    return {"revoked": token_id}


# -- audit -------------------------------------------------------------------------------
def _audit_entries(request: Request, p: Principal, limit: int) -> list[dict[str, Any]]:
    p.require_role("admin", "steward")
    qp = request.query_params

    def when(name: str) -> datetime | None:
        raw = qp.get(name)
        if not raw:
            return None
        try:
            return datetime.fromisoformat(raw)
        except ValueError:
            raise BadInput(f"{raw!r} is not an ISO date/time", column=name) from None

    before = qp.get("before")
    entries = gate_of(request).audit.entries(
        publisher=None if p.is_admin else p.organisation,
        actor=qp.get("actor") or None,
        action=qp.get("action") or None,
        dataset=qp.get("dataset") or None,
        since=when("since"),
        until=when("until"),
        before_id=int(before) if before and before.isdigit() else None,
        limit=limit,
    )
    return [entry_dict(e) for e in entries]


@router.get("/audit")
def audit(request: Request, limit: int = 100, p: Principal = Depends(principal)) -> dict[str, Any]:
    entries = _audit_entries(request, p, min(max(limit, 1), 1000))
    return {"entries": entries, "next_before": entries[-1]["id"] if entries else None}


@router.get(
    "/audit/export",
    responses={
        200: {"description": "the log", "content": {"text/csv": {}, "application/x-ndjson": {}}}
    },
)
def audit_export(
    request: Request, format: str = "csv", p: Principal = Depends(principal)
) -> StreamingResponse:
    entries = _audit_entries(request, p, 1_000_000)
    gate_of(request).audit.log(p, "audit-export", rows=len(entries), client=client_of(request))
    if format == "jsonl":
        body = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries)
        return StreamingResponse(iter([body]), media_type="application/x-ndjson")
    if format != "csv":
        raise BadInput("export format is csv or jsonl", column="format")
    buf = io.StringIO()
    cols = [
        "id",
        "at",
        "actor",
        "organisation",
        "action",
        "datasets",
        "query",
        "rows",
        "outcome",
        "detail",
        "client",
        "hash",
    ]
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    for e in entries:
        w.writerow(
            {
                k: json.dumps(v, ensure_ascii=False) if isinstance(v, dict) else v
                for k, v in e.items()
            }
        )
    return StreamingResponse(
        iter([buf.getvalue()]),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
    )
