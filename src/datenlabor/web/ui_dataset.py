"""The dataset page: metadata, versions, schema, quality, preview, downloads, diff, managing."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from datenlabor.access.policy import can_manage
from datenlabor.errors import BadInput, DatenlaborError, NotFound
from datenlabor.pool import metadata_quality
from datenlabor.pool.catalog import LICENCES, VISIBILITIES
from datenlabor.service import grants as grant_ops
from datenlabor.service import publishing
from datenlabor.service.gate import CSV_DIALECTS, DOWNLOAD_FORMATS
from datenlabor.web.auth import client_of
from datenlabor.web.errors import status_of
from datenlabor.web.ui_core import caller, field, form_of, gate_of, redirect, render, url_with
from datenlabor.web.upload_flow import meta_from_fields

router = APIRouter(include_in_schema=False)

# Query parameters of the dataset page that are not row filters of the preview.
PAGE_PARAMS = ("lang", "done", "add_col", "add_op", "add_val")
OPERATORS = ("eq", "ne", "lt", "lte", "gt", "gte", "contains", "startswith", "in", "isnull")
PREVIEW_LIMIT = "25"


def _preview_params(request: Request) -> list[tuple[str, str]]:
    return [(k, v) for k, v in request.query_params.multi_items() if k not in PAGE_PARAMS]


def _filters(params: list[tuple[str, str]], slug: str) -> list[dict[str, str]]:
    """The row filters in the URL, each with a link that removes it (and the paging)."""
    out = []
    for i, (k, v) in enumerate(params):
        if k in ("sort", "after", "limit", "version", "columns"):
            continue
        rest = [(a, b) for j, (a, b) in enumerate(params) if j != i and a != "after"]
        column, _, op = k.partition("__")
        out.append(
            {
                "column": column,
                "op": op or "eq",
                "value": v,
                "remove": f"/datasets/{slug}?{urlencode(rest)}#vorschau",
            }
        )
    return out


def _preview(request: Request, slug: str) -> dict[str, Any]:
    """Rows for the preview table with the API's parameter syntax, or the error they gave."""
    gate = gate_of(request)
    p, _ = caller(request)
    params = _preview_params(request)
    asked = params if any(k == "limit" for k, _ in params) else [*params, ("limit", PREVIEW_LIMIT)]
    out: dict[str, Any] = {
        "params": params,
        "filters": _filters(params, slug),
        "sort": next((v for k, v in params if k == "sort"), ""),
        "columns": [],
        "rows": [],
        "next": None,
        "error": None,
        "paged": any(k == "after" for k, _ in params),
        "first": None,
    }
    try:
        result = gate.rows(p, slug, asked, client=client_of(request))
    except BadInput as exc:
        out["error"] = str(exc)
        return out
    out["columns"] = result.table.column_names
    out["rows"] = [list(r.values()) for r in result.table.to_pylist()]
    if result.source.disclosure is not None:
        out["rows"] = _suppressed_as_dots(out["columns"], out["rows"])
    out["version"] = result.source.version
    keep = [(k, v) for k, v in params if k != "after"]
    if result.next:
        out["next"] = f"/datasets/{slug}?{urlencode([*keep, ('after', result.next)])}#vorschau"
    if out["paged"]:
        out["first"] = f"/datasets/{slug}?{urlencode(keep)}#vorschau"
    return out


def _suppressed_as_dots(columns: list[str], rows: list[list[Any]]) -> list[list[Any]]:
    """Suppressed cells of a protected table shown as "." (the official German symbol)."""
    if "status" not in columns:
        return rows
    status = columns.index("status")
    out = []
    for row in rows:
        if row[status] in ("primary", "secondary"):
            row = ["." if v is None else v for v in row]
        out.append(row)
    return out


def dataset_page(
    request: Request, slug: str, *, manage_error: str | None = None, status: int = 200
) -> Response:
    gate = gate_of(request)
    p, _ = caller(request)
    d, view = gate.dataset(p, slug)
    info, _view = gate.info(p, slug)
    versions = gate.versions(p, slug)
    latest = versions[-1]
    visible = [f["name"] for f in latest.schema.get("fields", [])]
    quality = gate.quality(p, slug)
    manager = can_manage(p, d)
    grants = grant_ops.grants_of(gate, p, slug) if manager else []
    orgs = [(o.slug, o.name) for o in gate.accounts.orgs()] if manager else []
    return render(
        request,
        "dataset.html",
        status=status,
        section="catalogue",
        info=info,
        partial=not view.whole and not view.protected,
        protected=view.protected,
        primary_key=[k for k in info.primary_key if k in visible],
        versions=list(reversed(versions)),
        latest=latest,
        fields=latest.schema.get("fields", []),
        quality=quality,
        metadata_quality=metadata_quality.assess(d, root=gate.pool.root),
        preview=_preview(request, slug),
        operators=OPERATORS,
        formats=DOWNLOAD_FORMATS,
        dialects=CSV_DIALECTS,
        manager=manager,
        grants=grants,
        orgs=orgs,
        all_columns=visible,
        licences=LICENCES,
        visibilities=VISIBILITIES,
        manage_error=manage_error,
    )


@router.get("/datasets/{slug}")
def dataset(request: Request, slug: str) -> Response:
    qp = request.query_params
    if "add_col" in qp or "add_op" in qp:  # the filter form: turn it into the API syntax
        params = [(k, v) for k, v in _preview_params(request) if k != "after"]
        column, op, value = qp.get("add_col", ""), qp.get("add_op", "eq"), qp.get("add_val", "")
        if op == "isnull" and not value:
            value = "true"
        if column and op in OPERATORS and value != "":
            params.append((column if op == "eq" else f"{column}__{op}", value))
        query = urlencode([(k, v) for k, v in params if not (k == "sort" and not v)])
        return redirect(f"/datasets/{slug}" + (f"?{query}" if query else "") + "#vorschau")
    return dataset_page(request, slug)


@router.get("/datasets/{slug}/diff")
def diff(request: Request, slug: str) -> Response:
    gate = gate_of(request)
    p, _ = caller(request)
    versions = gate.versions(p, slug)
    numbers = [v.version for v in versions]

    def number(name: str, default: int) -> int:
        raw = request.query_params.get(name, "")
        return int(raw) if raw.isdigit() and int(raw) in numbers else default

    b = number("to", numbers[-1])
    a = number("from", numbers[-2] if len(numbers) > 1 else numbers[-1])
    result = gate.diff(p, slug, a, b, limit=50, client=client_of(request))
    info, _ = gate.info(p, slug)
    return render(
        request,
        "diff.html",
        section="catalogue",
        info=info,
        numbers=numbers,
        a=a,
        b=b,
        diff=result,
        back=url_with(request, drop=("from", "to")),
    )


# -- managing (admins and the publisher's stewards) -----------------------------------------
def _failed(request: Request, slug: str, exc: DatenlaborError) -> Response:
    status = status_of(exc)
    if status in (401, 404):
        raise exc
    return dataset_page(request, slug, manage_error=str(exc), status=status)


@router.post("/datasets/{slug}/metadata")
async def edit_metadata(request: Request, slug: str) -> Response:
    p, form = await form_of(request)
    try:
        names = ("title", "description", "licence", "keywords", "themes", "spatial",
                 "temporal_start", "temporal_end", "contact_point", "visibility")  # fmt: skip
        meta = meta_from_fields({n: field(form, n) for n in names}, editing=True)
        publishing.update_metadata(gate_of(request), p, slug, meta, client=client_of(request))
    except DatenlaborError as exc:
        return _failed(request, slug, exc)
    return redirect(f"/datasets/{slug}?done=metadata#verwaltung")


@router.post("/datasets/{slug}/grants")
async def add_grant(request: Request, slug: str) -> Response:
    p, form = await form_of(request)
    target = field(form, "target")
    try:
        grant_ops.add_grant(
            gate_of(request),
            p,
            slug,
            org=field(form, "org") or None if target == "org" else None,
            user=field(form, "user") or None if target == "user" else None,
            hide_columns=[c for c in form.getlist("hide") if isinstance(c, str)],
            rows=field(form, "rows") or None,
            client=client_of(request),
        )
    except DatenlaborError as exc:
        return _failed(request, slug, exc)
    return redirect(f"/datasets/{slug}?done=grant#freigaben")


@router.post("/datasets/{slug}/grants/{grant_id}/revoke")
async def revoke_grant(request: Request, slug: str, grant_id: int) -> Response:
    p, _form = await form_of(request)
    try:
        grant_ops.revoke_grant(gate_of(request), p, slug, grant_id, client=client_of(request))
    except DatenlaborError as exc:
        return _failed(request, slug, exc)
    return redirect(f"/datasets/{slug}?done=revoked#freigaben")


@router.post("/datasets/{slug}/delete")
async def delete(request: Request, slug: str) -> Response:
    p, form = await form_of(request)
    try:
        if field(form, "confirm") != slug:
            raise BadInput("type the dataset name to confirm the deletion", column="confirm")
        publishing.delete(gate_of(request), p, slug, client=client_of(request))
    except NotFound:
        raise
    except DatenlaborError as exc:
        return _failed(request, slug, exc)
    return redirect("/?done=deleted")
