"""DCAT-AP.de out: the catalogue and each dataset as Turtle, RDF/XML and JSON-LD.

``/catalog.ttl|rdf|jsonld`` and ``/datasets/{slug}.ttl|rdf|jsonld``; both describe only what
the caller may see (anonymous callers: public datasets), a hidden dataset is a 404.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Request, Response

from datenlabor.access.principal import Principal
from datenlabor.errors import NotFound
from datenlabor.interop import dcat
from datenlabor.service.gate import Gate
from datenlabor.web.auth import principal
from datenlabor.web.errors import PAGE_ERROR_RESPONSES

router = APIRouter(tags=["dcat"], responses=PAGE_ERROR_RESPONSES)


def _gate(request: Request) -> Gate:
    return request.app.state.gate


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _contributor_id(gate: Gate) -> str | None:
    # The setting ``dcat_contributor_id`` (an IRI GovData assigned) is optional.
    value = getattr(gate.pool.settings, "dcat_contributor_id", None)
    return str(value) if value else None


def _suffix(fmt: str) -> str:
    if fmt not in dcat.SERIALISATIONS:
        raise NotFound(f"no serialisation {fmt!r}; choose one of {', '.join(dcat.SERIALISATIONS)}")
    return fmt


@router.get("/catalog.{fmt}", summary="The catalogue as DCAT-AP.de (ttl, rdf, jsonld)")
def catalog(fmt: str, request: Request, p: Principal = Depends(principal)) -> Response:
    suffix = _suffix(fmt)
    gate = _gate(request)
    g = dcat.catalog_graph(gate, p, _base_url(request), contributor_id=_contributor_id(gate))
    body, media = dcat.serialize(g, suffix)
    return Response(body, media_type=media)


@router.get("/datasets/{slug}.{fmt}", summary="One dataset as DCAT-AP.de (ttl, rdf, jsonld)")
def dataset(slug: str, fmt: str, request: Request, p: Principal = Depends(principal)) -> Response:
    suffix = _suffix(fmt)
    gate = _gate(request)
    g = dcat.dataset_graph(gate, p, _base_url(request), slug, contributor_id=_contributor_id(gate))
    body, media = dcat.serialize(g, suffix)
    return Response(body, media_type=media)


def install(app: FastAPI) -> None:
    """Add the routes ahead of all others.

    The dataset page ``/datasets/{slug}`` of the UI would otherwise match
    ``/datasets/{slug}.ttl`` first (Starlette takes the first matching route).
    """
    before = len(app.router.routes)
    app.include_router(router)
    added = app.router.routes[before:]
    del app.router.routes[before:]
    app.router.routes[0:0] = added
