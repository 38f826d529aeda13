"""The web interface: server-rendered pages over the same service functions as the API.

Pages work without JavaScript; scripts only add the upload progress bar and the SQL chart.
Every route here is thin: it reads the request, calls the gate or a service function and
renders a template. The pages of one area live in ``ui_*.py`` next to this module.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from datenlabor.access.principal import ANONYMOUS
from datenlabor.errors import Unauthenticated
from datenlabor.pool.catalog import LICENCES
from datenlabor.service.catalogue import FACETS, search
from datenlabor.web import i18n
from datenlabor.web.auth import client_of, end_browser_session, start_browser_session
from datenlabor.web.ui_core import (
    caller,
    field,
    form_of,
    gate_of,
    lang_of,
    redirect,
    render,
    safe_next,
)

router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).parent / "static"
LOGIN_COOKIE = "dl_login"  # double-submit token of the sign-in form (no session yet)


def install(app: FastAPI) -> None:
    """Mount the pages, our static files and Plotly's bundle from the installed package."""
    from datenlabor.web import ui_admin, ui_dataset, ui_tools

    app.mount("/static/ui", StaticFiles(directory=STATIC), name="ui-static")
    app.include_router(router)
    app.include_router(ui_dataset.router)
    app.include_router(ui_tools.router)
    app.include_router(ui_admin.router)


def error_page(request: Request, status: int, message: str) -> Response:
    """HTML answer for an error; signed-out callers are sent to the sign-in page instead."""
    from datenlabor.web.ui_core import login_redirect

    p, _csrf = caller(request)
    if status == 401 and not request.url.path.startswith(("/login", "/auth/")):
        return login_redirect(request)
    key = f"error.{status}" if i18n.has(f"error.{status}.title") else "error.other"
    return render(
        request,
        "error.html",
        status=status,
        code=status,
        key=key,
        message=message,
        anonymous=not p.authenticated,
    )


# -- static ---------------------------------------------------------------------------------
@router.get("/static/plotly/plotly.min.js")
def plotly_js() -> Response:
    """Plotly's JavaScript from the installed ``plotly`` wheel: no CDN, nothing copied."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return FileResponse(
        path,
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )


# -- signing in and out ---------------------------------------------------------------------
def _login_page(request: Request, *, error: str | None = None, status: int = 200) -> Response:
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        status=status,
        section="login",
        error=error,
        next=safe_next(request.query_params.get("next")),
        login_token=token,
        oidc_url=_oidc_url(request),
    )
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", path="/login")
    return response


def _oidc_url(request: Request) -> str | None:
    """The "sign in with organisation account" link when OpenID Connect is set up."""
    target = safe_next(request.query_params.get("next"))
    try:
        from datenlabor.web import oidc
    except ImportError:  # pragma: no cover - the OIDC module is optional
        return None
    return oidc.login_path(target) if oidc.enabled(request.app) else None


@router.get("/login")
def login_form(request: Request) -> Response:
    p, _ = caller(request)
    if p.authenticated:
        return redirect(safe_next(request.query_params.get("next")))
    return _login_page(request)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    username, password = field(form, "username"), form.get("password")
    expected = request.cookies.get(LOGIN_COOKIE)
    given = field(form, "login_token")
    if not expected or not secrets.compare_digest(expected, given):
        return _login_page(request, error=i18n.t("login.expired", lang_of(request)), status=403)
    gate = gate_of(request)
    try:
        if not username or not isinstance(password, str) or not password:
            raise Unauthenticated("missing user name or password")
        p = gate.accounts.authenticate(username, password)
    except Unauthenticated:
        gate.audit.log(
            ANONYMOUS,
            "login-failed",
            outcome="failed",
            detail={"username": username[:100], "method": "password"},
            client=client_of(request),
        )
        return _login_page(request, error=i18n.t("login.failed", lang_of(request)), status=401)
    gate.audit.log(p, "login", detail={"method": "password"}, client=client_of(request))
    response = redirect(safe_next(field(form, "next")))
    start_browser_session(request, response, p.username or "")
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    p, _form = await form_of(request)
    response = redirect("/?done=logout")
    if p.authenticated:
        gate_of(request).audit.log(p, "logout", client=client_of(request))
        end_browser_session(request, response)
    return response


# -- catalogue ------------------------------------------------------------------------------
def facet_label(name: str, value: str, lang: str, orgs: dict[str, str]) -> str:
    if name == "organisation":
        return orgs.get(value, value)
    if name == "licence":
        return LICENCES[value][0] if value in LICENCES else value
    if name in ("visibility", "spatial_level") and i18n.has(f"{name}.{value}"):
        return i18n.t(f"{name}.{value}", lang)
    if name == "format":
        return value.upper()
    return value


@router.get("/")
def catalogue(request: Request, q: str = "") -> Response:
    p, _ = caller(request)
    lang = lang_of(request)
    filters = {name: request.query_params.getlist(name) for name in FACETS}
    result = search(gate_of(request), p, q, filters)
    orgs = {o.slug: o.name for o in gate_of(request).accounts.orgs()}
    facets: list[dict[str, Any]] = []
    for name in FACETS:
        counts = dict(result.facets.get(name, {}))
        for chosen in filters[name]:
            counts.setdefault(chosen, 0)  # a chosen value stays visible to un-choose it
        if not counts:
            continue
        facets.append(
            {
                "name": name,
                "values": [
                    {
                        "value": value,
                        "count": count,
                        "label": facet_label(name, value, lang, orgs),
                        "checked": value in filters[name],
                    }
                    for value, count in counts.items()
                ],
            }
        )
    return render(
        request,
        "catalogue.html",
        section="catalogue",
        q=q,
        hits=result.hits,
        facets=facets,
        filtered=any(filters.values()) or bool(q),
        licences=LICENCES,
    )
