"""Metadata quality (MQA-style score) in the API: one dataset, and the caller's catalogue.

Both routes describe only what the caller may see (``Gate.dataset`` / ``Gate.visible``): a
dataset the caller may not see is a 404, exactly as on the other dataset routes, and the
catalogue summary counts only visible datasets.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request

from datenlabor.access.principal import Principal
from datenlabor.pool import metadata_quality as mq
from datenlabor.service.gate import Gate
from datenlabor.web.auth import principal
from datenlabor.web.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1", tags=["metadata quality"], responses=ERROR_RESPONSES)


def _gate(request: Request) -> Gate:
    return request.app.state.gate


@router.get(
    "/datasets/{slug}/metadata-quality",
    summary="Metadata quality score of one dataset (MQA dimensions, improvements)",
)
def dataset_quality(
    slug: str, request: Request, p: Principal = Depends(principal)
) -> dict[str, Any]:
    gate = _gate(request)
    d, _view = gate.dataset(p, slug)
    return mq.assess(d, root=gate.pool.root)


@router.get("/metadata-quality", summary="Metadata quality of the catalogue the caller may see")
def catalogue_quality(request: Request, p: Principal = Depends(principal)) -> dict[str, Any]:
    gate = _gate(request)
    root = gate.pool.root
    return mq.summarise([mq.assess(d, root=root) for d, _view in gate.visible(p)])


def install(app: FastAPI) -> None:
    app.include_router(router)
