"""The FastAPI application over one pool."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse

from datenlabor import __version__
from datenlabor.pool.pool import Pool
from datenlabor.service.gate import Gate
from datenlabor.web import (
    api,
    ckan_routes,
    dcat_routes,
    disclosure_routes,
    errors,
    mqa_routes,
    oidc,
)
from datenlabor.web.headers import SecurityHeaders
from datenlabor.web.limits import BodyLimit


def create_app(pool: Pool) -> FastAPI:
    app = FastAPI(
        title="Datenlabor",
        version=__version__,
        description="Datenpool of the data lab: versioned datasets, SQL, downloads, audit log.",
        docs_url=None,  # served below from installed files instead of a CDN
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    app.add_middleware(BodyLimit)
    https = pool.settings.public_url.startswith("https://") or pool.settings.secure_cookies
    app.add_middleware(SecurityHeaders, https=https)  # outermost: also on 413 and 500 answers
    app.state.gate = Gate(pool)
    app.state.pool = pool
    html_handler = None
    try:
        from datenlabor.web import ui
    except ImportError:  # the UI module is optional for API-only deployments
        ui = None  # type: ignore[assignment]
    if ui is not None:
        ui.install(app)
        html_handler = ui.error_page
    errors.install(app, html_handler)
    oidc.install(app)
    app.include_router(api.router)
    disclosure_routes.install(app)
    dcat_routes.install(app)  # ahead of the UI's /datasets/{slug}: /datasets/x.ttl is RDF
    ckan_routes.install(app)  # /api/3/action/… for CKAN tools
    __import__("datenlabor.web.assist_routes", fromlist=["install"]).install(app)
    __import__("datenlabor.web.kb_routes", fromlist=["install"]).install(app)  # assist kb
    mqa_routes.install(app)  # /api/v1/…/metadata-quality
    __import__("datenlabor.web.governance_routes", fromlist=["install"]).install(app)
    __import__("datenlabor.web.dashboard_routes", fromlist=["install"]).install(app)
    __import__("datenlabor.web.ui_dashboards", fromlist=["install"]).install(app)
    _offline_docs(app)
    api.install_fast_routes(app)  # last: goes in front of all others

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Any:
        problems = []
        try:
            with pool.store.session() as s:
                from sqlalchemy import text

                s.execute(text("SELECT 1"))
        except Exception as exc:  # any store failure means unhealthy
            problems.append(f"metadata store: {exc.__class__.__name__}")
        for sub in ("tables", "tmp"):
            if not (pool.root / sub).is_dir():
                problems.append(f"pool folder {sub}/ missing")
        if problems:
            return JSONResponse({"status": "unhealthy", "problems": problems}, status_code=503)
        return {"status": "ok"}

    return app


def _offline_docs(app: FastAPI) -> None:
    """Swagger UI from the swagger-ui-py package's files (air-gapped installations)."""
    from pathlib import Path

    import swagger_ui
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    static = Path(swagger_ui.__file__).parent / "static"
    app.mount("/static/swagger", StaticFiles(directory=static), name="swagger")

    @app.get("/docs", include_in_schema=False)
    def docs() -> Any:
        # FastAPI's page starts Swagger UI from an inline script, which our CSP forbids:
        # the same page with the start-up code in a static file (static/swagger-init.js).
        page = get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Datenlabor API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/swagger/favicon-32x32.png",
        )
        html = bytes(page.body).decode()
        start = html.rindex("<script>")
        end = html.index("</script>", start) + len("</script>")
        html = html[:start] + '<script src="/static/ui/swagger-init.js"></script>' + html[end:]
        return HTMLResponse(html)


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers: the pool from DATENLABOR_* settings."""
    import gc

    from datenlabor.pool.pool import open as open_pool

    app = create_app(open_pool())
    # Everything built so far (modules, routes, ORM mappers, templates) lives as long as the
    # process. Frozen, the cycle collector no longer walks it: under load a full collection
    # otherwise stopped every request for ~250 ms (max 460 ms) every second or two, which
    # made the whole p99 of the rows API (bench/api.py). Server processes only: tests
    # create many apps in one process, and frozen garbage would never be collected.
    gc.collect()
    gc.freeze()
    return app
