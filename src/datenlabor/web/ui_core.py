"""Shared pieces of the HTML interface: templates, language, the caller, forms, formatting."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.datastructures import FormData

from datenlabor import __version__
from datenlabor.access.principal import ANONYMOUS, Principal
from datenlabor.service.gate import Gate
from datenlabor.web import i18n
from datenlabor.web.auth import check_csrf, resolve
from datenlabor.web.errors import store_unavailable
from datenlabor.web.headers import PAGE_CSP

LANG_COOKIE = "dl_lang"
# Nothing on a page may come from elsewhere; inline styles only for what Plotly injects.
CSP = PAGE_CSP

env = Environment(
    loader=PackageLoader("datenlabor.web", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

try:
    from zoneinfo import ZoneInfo

    _LOCAL: Any = ZoneInfo("Europe/Berlin")
except Exception:  # no time zone data installed: show UTC
    _LOCAL = UTC


def gate_of(request: Request) -> Gate:
    gate: Gate = request.app.state.gate
    return gate


def caller(request: Request) -> tuple[Principal, str | None]:
    """The principal and CSRF token; anonymous when the credentials cannot be resolved."""
    if getattr(request.state, "store_down", False):  # the page saying so needs no store
        return ANONYMOUS, None
    try:
        return resolve(request)
    except Exception as exc:  # a broken Authorization header: show the page as to anyone
        if store_unavailable(exc):  # not "anyone": the page would wrongly say "not found"
            raise
        return ANONYMOUS, None


def lang_of(request: Request) -> str:
    """``?lang=`` first, then the ``dl_lang`` cookie, then Accept-Language; German by default."""
    asked = request.query_params.get("lang")
    if asked in i18n.LANGS:
        return asked
    cookie = request.cookies.get(LANG_COOKIE)
    if cookie in i18n.LANGS:
        return cookie
    return i18n.negotiate(request.headers.get("accept-language", ""))


def safe_next(value: str | None) -> str:
    """A local path to go to after signing in; anything else becomes ``/``."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    if any(ch in value for ch in "\r\n\t\\") or ":" in value.split("?", 1)[0]:
        return "/"
    return value


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path
    if request.method == "GET" and request.url.query:
        target += "?" + request.url.query
    return RedirectResponse("/login?next=" + quote(safe_next(target), safe=""), status_code=303)


def url_with(request: Request, drop: Iterable[str] = (), **params: str) -> str:
    """The current path with query parameters replaced (relative URL)."""
    drop = set(drop) | set(params)
    items = [(k, v) for k, v in request.query_params.multi_items() if k not in drop]
    items += [(k, v) for k, v in params.items()]
    query = urlencode(items)
    return request.url.path + ("?" + query if query else "")


async def form_of(request: Request) -> tuple[Principal, FormData]:
    """The caller and the posted form, after the CSRF check of signed-in browsers."""
    p, csrf = resolve(request)
    form = await request.form()
    given = form.get("csrf_token")
    check_csrf(csrf, given if isinstance(given, str) else None)
    return p, form


def field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


_GERMAN_DIGITS = str.maketrans(",.", ".,")


# -- formatting -----------------------------------------------------------------------------
def fmt_num(value: Any, lang: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        text = f"{value:,}"
    elif isinstance(value, float):
        if value != value:  # NaN
            return "NaN"
        if value.is_integer() and abs(value) < 1e15:
            text = f"{int(value):,}"
        else:
            text = f"{value:,.6f}".rstrip("0").rstrip(".")
    else:
        return str(value)
    if lang == "de":
        text = text.translate(_GERMAN_DIGITS)
    return text


def fmt_pct(share: Any, lang: str) -> str:
    if share is None:
        return "–"
    number = f"{float(share) * 100:.1f}".removesuffix(".0")
    if lang == "de":
        return number.replace(".", ",") + " %"
    return number + "%"


def fmt_when(value: Any, lang: str) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        local = value.astimezone(_LOCAL)
        pattern = "%d.%m.%Y, %H:%M %Z" if lang == "de" else "%Y-%m-%d %H:%M %Z"
        return local.strftime(pattern)
    if isinstance(value, date):
        return value.strftime("%d.%m.%Y" if lang == "de" else "%Y-%m-%d")
    return str(value)


def fmt_cell(value: Any, lang: str) -> str:
    """A table cell: numbers in the page language, dates readable, NULL as empty."""
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return fmt_num(value, lang)
    if isinstance(value, datetime | date):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


# -- rendering ------------------------------------------------------------------------------
def render(
    request: Request, template: str, *, status: int = 200, section: str = "", **ctx: Any
) -> HTMLResponse:
    """Render a page with the layout's context; no caching, no framing, no foreign sources."""
    p, csrf = caller(request)
    lang = lang_of(request)

    def t(msgid: str, /, **kw: Any) -> str:
        return i18n.t(msgid, lang, **kw)

    done = request.query_params.get("done", "")
    context: dict[str, Any] = {
        "request": request,
        "lang": lang,
        "t": t,
        "p": p,
        "csrf": csrf or "",
        "section": section,
        "version": __version__,
        "lang_url": {code: url_with(request, lang=code) for code in i18n.LANGS},
        "num": lambda v: fmt_num(v, lang),
        "pct": lambda v: fmt_pct(v, lang),
        "when": lambda v: fmt_when(v, lang),
        "cell": lambda v: fmt_cell(v, lang),
        "done": t("done." + done) if i18n.has("done." + done) else None,
        "error": None,
        "is_manager": p.role in ("admin", "steward"),
    }
    context.update(ctx)
    html = env.get_template(template).render(context)
    response = HTMLResponse(html, status_code=status)
    secure(response)
    if request.query_params.get("lang") in i18n.LANGS:
        response.set_cookie(
            LANG_COOKIE, lang, max_age=365 * 24 * 3600, samesite="lax", path="/", httponly=True
        )
    return response


def secure(response: Any) -> None:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)
