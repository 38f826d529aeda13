"""Who is calling: bearer token, session cookie, or nobody; and CSRF for cookie callers."""

from __future__ import annotations

import hmac

from fastapi import Request, Response

from datenlabor.access.accounts import SESSION_HOURS
from datenlabor.access.principal import ANONYMOUS, Principal
from datenlabor.errors import Forbidden, Unauthenticated

SESSION_COOKIE = "dl_session"
CSRF_HEADER = "x-csrf-token"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def resolve(request: Request) -> tuple[Principal, str | None]:
    """(principal, CSRF token of the browser session or None)."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached, request.state.csrf
    gate = request.app.state.gate
    principal, csrf = ANONYMOUS, None
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        principal = gate.accounts.resolve_token(token.strip())
    elif sid := request.cookies.get(SESSION_COOKIE):
        found = gate.accounts.resolve_session(sid)
        if found is not None:
            principal, csrf = found
    request.state.principal, request.state.csrf = principal, csrf
    return principal, csrf


def principal(request: Request) -> Principal:
    """FastAPI dependency: the caller; cookie callers must send the CSRF token to change things."""
    p, csrf = resolve(request)
    if request.method in UNSAFE and csrf is not None:
        check_csrf(csrf, request.headers.get(CSRF_HEADER))
    return p


def check_csrf(expected: str | None, given: str | None) -> None:
    if expected is None:
        return
    if not given or not hmac.compare_digest(expected, given):
        raise Forbidden("the form is outdated or was not sent from this site (CSRF check)")


def client_of(request: Request) -> str | None:
    return request.client.host if request.client else None


def start_browser_session(request: Request, response: Response, username: str) -> None:
    """Sign ``username`` in on this browser: a fresh session id in an HttpOnly cookie.

    Used by the password form and the OpenID Connect callback alike; the audit entry
    for the login is written by the caller, who knows how the user signed in.
    """
    gate = request.app.state.gate
    sid, _csrf = gate.accounts.start_session(username)
    response.set_cookie(
        SESSION_COOKIE,
        sid,
        httponly=True,
        samesite="lax",
        secure=gate.pool.settings.secure_cookies,
        max_age=SESSION_HOURS * 3600,
        path="/",
    )


def end_browser_session(request: Request, response: Response) -> None:
    sid = request.cookies.get(SESSION_COOKIE)
    if sid:
        request.app.state.gate.accounts.end_session(sid)
    response.delete_cookie(SESSION_COOKIE, path="/")
