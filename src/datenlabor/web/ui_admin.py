"""Administration (organisations, users, own API tokens) and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from datenlabor.access.audit import ACTIONS, entry_dict
from datenlabor.access.principal import Principal
from datenlabor.errors import BadInput, DatenlaborError, Forbidden, Unauthenticated
from datenlabor.store.models import ROLES
from datenlabor.web.auth import client_of
from datenlabor.web.errors import status_of
from datenlabor.web.ui_core import caller, field, form_of, gate_of, login_redirect, redirect, render

router = APIRouter(include_in_schema=False)
AUDIT_PAGE = 50
AUDIT_FILTERS = ("actor", "action", "dataset", "since", "until")


# -- administration -------------------------------------------------------------------------
def _admin_page(request: Request, *, status: int = 200, **ctx: Any) -> Response:
    p, _ = caller(request)
    if not p.authenticated:
        return login_redirect(request)
    accounts = gate_of(request).accounts
    users = []
    if p.is_admin:
        users = accounts.users()
    elif p.role == "steward" and p.organisation:
        users = accounts.users(p.organisation)
    ctx.setdefault("admin_error", None)
    ctx.setdefault("new_token", None)
    return render(
        request,
        "admin.html",
        status=status,
        section="admin",
        orgs=accounts.orgs(),
        users=users,
        roles=ROLES,
        tokens=accounts.tokens(p.username or ""),
        **ctx,
    )


@router.get("/admin")
def admin(request: Request) -> Response:
    return _admin_page(request)


def _admin_failed(request: Request, exc: DatenlaborError) -> Response:
    if isinstance(exc, Unauthenticated):
        raise exc
    return _admin_page(request, status=status_of(exc), admin_error=str(exc))


def _require_admin(p: Principal) -> None:
    p.require_write()
    p.require_role("admin")


@router.post("/admin/orgs")
async def add_org(request: Request) -> Response:
    p, form = await form_of(request)
    try:
        _require_admin(p)
        slug, name = field(form, "slug"), field(form, "name")
        gate_of(request).accounts.add_org(slug, name)
        gate_of(request).audit.log(p, "account", detail={"org": slug}, client=client_of(request))
    except DatenlaborError as exc:
        return _admin_failed(request, exc)
    return redirect("/admin?done=org#organisationen")


@router.post("/admin/users")
async def add_user(request: Request) -> Response:
    p, form = await form_of(request)
    try:
        _require_admin(p)
        username, role = field(form, "username"), field(form, "role")
        gate = gate_of(request)
        gate.accounts.add_user(
            username,
            org=field(form, "org"),
            role=role,
            password=field(form, "password") or None,
            display_name=field(form, "display_name"),
            email=field(form, "email") or None,
        )
        gate.audit.log(
            p, "account", detail={"user": username, "role": role}, client=client_of(request)
        )
    except DatenlaborError as exc:
        return _admin_failed(request, exc)
    return redirect("/admin?done=user#benutzer")


@router.post("/admin/users/{username}")
async def update_user(request: Request, username: str) -> Response:
    p, form = await form_of(request)
    try:
        _require_admin(p)
        changes: dict[str, Any] = {}
        if field(form, "role"):
            changes["role"] = field(form, "role")
        if field(form, "active") in ("true", "false"):
            changes["active"] = field(form, "active") == "true"
        if not changes:
            raise BadInput("nothing to change")
        if username == p.username and (
            changes.get("active") is False or changes.get("role", "admin") != "admin"
        ):
            raise Forbidden("you cannot deactivate yourself or give up your own admin role here")
        gate = gate_of(request)
        gate.accounts.update_user(username, **changes)
        gate.audit.log(
            p,
            "account",
            detail={"user": username, "changed": sorted(changes)},
            client=client_of(request),
        )
    except DatenlaborError as exc:
        return _admin_failed(request, exc)
    return redirect("/admin?done=user-changed#benutzer")


@router.post("/admin/tokens")
async def create_token(request: Request) -> Response:
    p, form = await form_of(request)
    try:
        p.require_write()
        scope = field(form, "scope") or "read"
        raw_days = field(form, "days")
        days = int(raw_days) if raw_days.isdigit() else None
        if raw_days and days is None:
            raise BadInput("the validity is a number of days", column="days")
        gate = gate_of(request)
        token = gate.accounts.create_token(
            p.username or "", scope=scope, days=days, name=field(form, "name")
        )
        gate.audit.log(
            p, "token", detail={"created": token[:10], "scope": scope}, client=client_of(request)
        )
    except DatenlaborError as exc:
        return _admin_failed(request, exc)
    # Shown once, on this answer only (never cached: see ui_core.secure).
    return _admin_page(request, status=201, new_token=token)


@router.post("/admin/tokens/{token_id}/revoke")
async def revoke_token(request: Request, token_id: int) -> Response:
    p, _form = await form_of(request)
    try:
        p.require_write()
        gate = gate_of(request)
        gate.accounts.revoke_token(p.username or "", token_id)
        gate.audit.log(p, "token", detail={"revoked": token_id}, client=client_of(request))
    except DatenlaborError as exc:
        return _admin_failed(request, exc)
    return redirect("/admin?done=token-revoked#schluessel")


# -- audit log ------------------------------------------------------------------------------
def _when(raw: str, name: str) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        raise BadInput(f"{raw!r} is not an ISO date (YYYY-MM-DD)", column=name) from None


@router.get("/audit")
def audit(request: Request) -> Response:
    p, _ = caller(request)
    if not p.authenticated:
        return login_redirect(request)
    p.require_role("admin", "steward")
    qp = request.query_params
    chosen = {k: qp.get(k, "").strip() for k in AUDIT_FILTERS}
    before = qp.get("before", "")
    error = None
    entries: list[dict[str, Any]] = []
    try:
        found = gate_of(request).audit.entries(
            publisher=None if p.is_admin else p.organisation,
            actor=chosen["actor"] or None,
            action=chosen["action"] or None,
            dataset=chosen["dataset"] or None,
            since=_when(chosen["since"], "since"),
            until=_when(chosen["until"], "until"),
            before_id=int(before) if before.isdigit() else None,
            limit=AUDIT_PAGE + 1,
        )
        entries = [entry_dict(e) for e in found]
    except BadInput as exc:
        error = str(exc)
    more = len(entries) > AUDIT_PAGE
    entries = entries[:AUDIT_PAGE]
    given = [(k, v) for k, v in chosen.items() if v]
    older = (
        "/audit?" + urlencode([*given, ("before", str(entries[-1]["id"]))])
        if more and entries
        else None
    )
    return render(
        request,
        "audit.html",
        status=400 if error else 200,
        section="audit",
        entries=entries,
        chosen=chosen,
        actions=ACTIONS,
        error=error,
        older=older,
        newest="/audit?" + urlencode(given) if before else None,
        export={
            fmt: "/api/v1/audit/export?" + urlencode([*given, ("format", fmt)])
            for fmt in ("csv", "jsonl")
        },
    )
