"""Security headers on every response: pages, JSON, downloads, errors, redirects, static files.

Pages set their own headers in :func:`datenlabor.web.ui_core.secure`; this middleware adds
whatever a response lacks, so that no route (JSON API, CKAN API, downloads, Swagger UI,
error handlers) can forget them. Pure ASGI: streamed downloads stay streamed.

Scripts run only from our own files (``script-src 'self'``, no inline script, no eval).
Inline *styles* stay allowed: Plotly sets element styles from JavaScript, which a strict
``style-src`` would break; styles cannot run code.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
# Anything that is not a page (JSON, CSV, Parquet, PDF, …) may not run or load anything,
# even when a browser is tricked into rendering it.
DATA_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"
HSTS = "max-age=31536000; includeSubDomains"
ALWAYS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
# Our own and the packaged front-end files may be cached; everything else carries data.
CACHEABLE = ("/static/",)


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, https: bool = False) -> None:
        self.app = app
        self.https = https  # served to users over HTTPS (behind a TLS-terminating proxy)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in ALWAYS.items():
                    headers.setdefault(name, value)
                ctype = headers.get("content-type", "")
                csp = PAGE_CSP if ctype.startswith("text/html") else DATA_CSP
                headers.setdefault("content-security-policy", csp)
                if not path.startswith(CACHEABLE):
                    headers.setdefault("cache-control", "no-store")
                if self.https:
                    headers.setdefault("strict-transport-security", HSTS)
            await send(message)

        await self.app(scope, receive, send_with_headers)
