"""Dashboards in the JSON API: list, spec (read, new version), tile data, CSV, cases.

Routes are thin: every number comes from :mod:`datenlabor.dashboards.render`, which reads
data through the gate for the caller. Filters are query parameters (``period_from``,
``period_to`` — inclusive dates — and ``<filter id>=value``, repeatable); see
``docs/dashboards.md``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response

from datenlabor.access.principal import Principal
from datenlabor.dashboards import versions
from datenlabor.dashboards.filters import parse_filters
from datenlabor.dashboards.render import cases, render
from datenlabor.dashboards.tile import to_csv
from datenlabor.errors import BadInput
from datenlabor.service.gate import Gate
from datenlabor.web.auth import client_of, principal
from datenlabor.web.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1", tags=["dashboards"], responses=ERROR_RESPONSES)
MAX_SPEC_BYTES = 512 * 1024
DRILL_KEYS = ("value", "column", "period", "from", "to", "activity", "variant", "breach")


def _gate(request: Request) -> Gate:
    return request.app.state.gate


def params_of(request: Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in request.query_params.multi_items():
        out.setdefault(k, []).append(v)
    return out


def drill_of(request: Request) -> dict[str, str]:
    q = request.query_params
    return {k: q[f"d_{k}"] for k in DRILL_KEYS if q.get(f"d_{k}")}


@router.get("/dashboards", summary="Dashboards the caller may open")
def list_dashboards(request: Request, p: Principal = Depends(principal)) -> dict[str, Any]:
    lang = request.query_params.get("lang", "de")
    return {"dashboards": [d.summary(lang) for d in versions.visible(_gate(request).pool, p)]}


@router.get("/dashboards/{slug}", summary="A dashboard's spec (YAML) and versions")
def get_dashboard(
    slug: str, request: Request, version: int | None = None, p: Principal = Depends(principal)
) -> dict[str, Any]:
    pool = _gate(request).pool
    d = versions.get_for(pool, p, slug, version)
    return {
        **d.summary(request.query_params.get("lang", "de")),
        "versions": versions.version_numbers(pool, slug),
        "yaml": d.text,
        "spec": d.spec.model_dump(mode="json", exclude_none=True),
    }


@router.put(
    "/dashboards/{slug}",
    summary="Save a new version of a dashboard (YAML body; stewards and admins)",
    status_code=201,
)
async def put_dashboard(
    slug: str, request: Request, p: Principal = Depends(principal)
) -> dict[str, Any]:
    body = await request.body()
    if len(body) > MAX_SPEC_BYTES:
        raise BadInput(f"a dashboard spec has at most {MAX_SPEC_BYTES // 1024} KiB")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput("the spec must be UTF-8 text (YAML)") from None
    gate = _gate(request)
    d = versions.put(gate.pool, p, slug, text, file=f"{slug}.yaml")
    gate.audit.log(
        p, "dashboard", detail={"dashboard": slug, "version": d.version}, client=client_of(request)
    )
    return d.summary()


@router.get(
    "/dashboards/{slug}/tiles/{tile}",
    summary="One tile's data (JSON with provenance) under the filters in the query",
)
def tile_data(
    slug: str, tile: str, request: Request, p: Principal = Depends(principal)
) -> dict[str, Any]:
    gate = _gate(request)
    d = versions.get_for(gate.pool, p, slug)
    state = parse_filters(d.spec, params_of(request))
    (data,) = render(
        gate, p, d, state, tiles=[tile], lang=request.query_params.get("lang", "de"),
        client=client_of(request),
    )  # fmt: skip
    out = data.to_dict()
    if data.type == "map" and data.graph:  # the drawing is for the page; keys and values stay
        out["graph"] = {k: v for k, v in data.graph.items() if k != "regions"} | {
            "regions": [{k: v for k, v in r.items() if k != "path"} for r in data.graph["regions"]]
        }
    out["provenance"] = dict(out["provenance"], dashboard={"slug": slug, "version": d.version})
    out["filters"] = state.describe()
    return out


@router.get("/dashboards/{slug}/tiles/{tile}/csv", summary="One tile's data as CSV")
def tile_csv(
    slug: str, tile: str, request: Request, dialect: str = "de", p: Principal = Depends(principal)
) -> Response:
    gate = _gate(request)
    d = versions.get_for(gate.pool, p, slug)
    state = parse_filters(d.spec, params_of(request))
    (data,) = render(gate, p, d, state, tiles=[tile], client=client_of(request))
    if data.status != "ok":
        raise BadInput(f"tile {tile!r}: {data.message or data.status}")
    body = to_csv(data, dialect)
    encoded = ("\ufeff" + body if dialect == "de" else body).encode("utf-8")
    return Response(
        encoded,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{slug}-v{d.version}-{tile}.csv"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/dashboards/{slug}/cases", summary="The cases behind a number (drill-down)")
def drill_cases(
    slug: str, request: Request, tile: str, limit: int = 200, p: Principal = Depends(principal)
) -> dict[str, Any]:
    gate = _gate(request)
    d = versions.get_for(gate.pool, p, slug)
    state = parse_filters(d.spec, params_of(request))
    data, counts = cases(
        gate, p, d, state, tile, drill_of(request), limit=min(max(limit, 1), 1000),
        client=client_of(request),
    )  # fmt: skip
    return {**counts, "cases": data.to_dict()["rows"], "provenance": data.provenance}


def install(app: FastAPI) -> None:
    app.include_router(router)
