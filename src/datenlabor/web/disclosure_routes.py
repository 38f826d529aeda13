"""Disclosure-control rules of a dataset: read by whoever sees it, set by its stewards."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, FastAPI, Request

from datenlabor.access.principal import Principal
from datenlabor.service import confidential
from datenlabor.web.api import gate_of
from datenlabor.web.auth import client_of, principal
from datenlabor.web.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)


@router.get("/datasets/{slug}/disclosure")
def get_rules(slug: str, request: Request, p: Principal = Depends(principal)) -> dict[str, Any]:
    """The dataset's rules (null when it is not confidential) and whether the caller reads
    its protected table or its microdata."""
    d, view = gate_of(request).dataset(p, slug)
    return {"dataset": slug, "rules": d.disclosure, "protected": view.protected}


@router.put("/datasets/{slug}/disclosure")
def put_rules(
    slug: str,
    request: Request,
    rules: dict[str, Any] = Body(...),
    p: Principal = Depends(principal),
) -> dict[str, Any]:
    stored = confidential.set_rules(gate_of(request), p, slug, rules, client=client_of(request))
    return {"dataset": slug, "rules": stored}


@router.delete("/datasets/{slug}/disclosure")
def delete_rules(slug: str, request: Request, p: Principal = Depends(principal)) -> dict[str, Any]:
    confidential.set_rules(gate_of(request), p, slug, None, client=client_of(request))
    return {"dataset": slug, "rules": None}


def install(app: FastAPI) -> None:
    app.include_router(router)
