"""Dashboard pages: the list, one dashboard with its filters, the cases behind a number,
and the PDF export. Everything shown is computed on the server
(:mod:`datenlabor.dashboards.render`); the page works without JavaScript (maps and the
process map are SVG with links, every chart has its data table); ``dashboard.js`` only
draws the Plotly charts, follows clicks on bars to the cases behind them and saves PNGs.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from datenlabor import __version__
from datenlabor.dashboards import boundaries, versions
from datenlabor.dashboards.filters import FilterState, parse_filters
from datenlabor.dashboards.render import cases, choices, render
from datenlabor.dashboards.spec import Spec, text_of
from datenlabor.dashboards.tile import SUPPRESSED, TileData, jsonable
from datenlabor.web import i18n
from datenlabor.web.auth import client_of
from datenlabor.web.dashboard_routes import drill_of, params_of
from datenlabor.web.ui_core import (
    caller,
    env,
    fmt_num,
    fmt_pct,
    fmt_when,
    gate_of,
    lang_of,
    secure,
)
from datenlabor.web.ui_core import (
    render as render_page,
)

if TYPE_CHECKING:
    from datenlabor.access.principal import Principal
    from datenlabor.dashboards.versions import DashboardVersion
    from datenlabor.service.gate import Gate

router = APIRouter(include_in_schema=False)


# -- formatting --------------------------------------------------------------------------------
def fmt_value(value: Any, kind: str, lang: str) -> str:
    """A value as the page shows it: durations in days, rates in %, German numbers."""
    if value is None:
        return "–"
    if kind == "duration_s":
        days = float(value) / 86400
        if abs(days) < 1:  # short steps: hours or minutes say more than "0 days"
            hours = days * 24
            if abs(hours) >= 1:
                return i18n.t("dash.hours", lang, n=fmt_num(round(hours, 1), lang))
            return i18n.t("dash.minutes", lang, n=fmt_num(round(hours * 60, 1), lang))
        text = fmt_num(round(days, 1 if abs(days) < 100 else 0), lang)
        return i18n.t("dash.days", lang, n=text)
    if kind == "rate":
        return fmt_pct(value, lang)
    if kind == "number" and isinstance(value, float):
        return fmt_num(round(value, 2), lang)
    if kind in ("date", "datetime"):
        return fmt_when(value, lang)
    if kind == "list":
        return " → ".join(str(v) for v in value)
    return fmt_num(value, lang)


def column_label(name: str, lang: str) -> str:
    key = f"dash.col.{name}"
    return i18n.t(key, lang) if i18n.has(key) else name


def _json_script(data: Any) -> str:
    """JSON safe inside <script type="application/json"> (no closing tag possible)."""
    text = json.dumps(data, ensure_ascii=False, default=jsonable)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# -- drill-down links ---------------------------------------------------------------------------
def drill_href(
    slug: str, spec: Spec, state: FilterState, tile: TileData, row: dict[str, Any]
) -> str | None:
    d = tile.drill
    if not d:
        return None
    extra: dict[str, str] = {}
    kind = d.get("kind")
    if kind == "dataset":
        value = row.get(d["column"])
        if value is None:
            return None
        return f"/datasets/{d['slug']}?" + urlencode({d["column"]: str(jsonable(value))})
    if kind == "value":
        value = row.get(d["key"])
        if value is None:
            return None
        extra = {"d_value": str(value), "d_column": d["column"]}
    elif kind == "period":
        value = row.get(d["key"])
        if value is None:
            return None
        extra = {"d_period": str(jsonable(value))}
    elif kind == "activity":
        extra = {"d_activity": str(row.get("activity"))}
    elif kind == "edge":
        extra = {"d_from": str(row.get("from")), "d_to": str(row.get("to"))}
    elif kind == "variant":
        extra = {"d_variant": json.dumps(row.get("activities"), ensure_ascii=False)}
    if d.get("breach"):
        extra["d_breach"] = "1"
    query = [*state.params(spec), ("tile", tile.id), *extra.items()]
    return f"/dashboards/{slug}/cases?" + urlencode(query)


def view_model(
    slug: str, spec: Spec, state: FilterState, tile: TileData, lang: str
) -> dict[str, Any]:
    """What the template and the chart script need of a tile."""
    kinds = {c["name"]: c["kind"] for c in tile.columns}
    hrefs = [drill_href(slug, spec, state, tile, r) for r in tile.rows]

    def cell(i: int, name: str, kind: str) -> str:
        if tile.suppressed and name in tile.suppressed[i]:
            return SUPPRESSED
        return fmt_value(tile.rows[i].get(name), kind, lang)

    table = {
        "head": [column_label(c["name"], lang) for c in tile.columns],
        "rows": [
            [(cell(i, c["name"], c["kind"]), c["kind"]) for c in tile.columns]
            for i in range(len(tile.rows))
        ],
        "hrefs": hrefs,
    }
    kpi = None
    if tile.kpi is not None:
        k = tile.kpi
        change = k.get("change")
        secret = k.get("suppressed", [])

        def kpi_text(name: str) -> str:
            if name in secret:
                return SUPPRESSED
            return fmt_value(k.get(name), k.get("kind", "int"), lang)

        kpi = {
            "value": kpi_text("value"),
            "previous": kpi_text("previous") if "previous" in k else None,
            "change": None if change is None else fmt_pct(abs(change), lang),
            "direction": None
            if change is None
            else ("up" if change > 0 else "down" if change < 0 else "same"),
        }
    graph = tile.graph
    if graph is not None and tile.type == "map":
        kind = graph["kind"]
        by_key = {r["key"]: i for i, r in enumerate(tile.rows)}
        graph = dict(graph)
        graph["regions"] = [
            dict(
                reg,
                text=f"{reg['name']}: "
                + (SUPPRESSED if reg.get("suppressed") else fmt_value(reg["value"], kind, lang)),
                href=hrefs[by_key[reg["key"]]] if reg["key"] in by_key else None,
            )
            for reg in graph["regions"]
        ]
        graph["legend"] = [
            dict(item, text=(fmt_value(item["low"], kind, lang) + " – " if item["low"] is not None else "≤ ")
                 + fmt_value(item["high"], kind, lang))
            for item in graph["legend"]
        ]  # fmt: skip
    elif graph is not None and tile.type == "process_map":
        graph = dict(graph)
        edge_hrefs = {(r["from"], r["to"]): h for r, h in zip(tile.rows, hrefs, strict=True)}
        graph["edges"] = [
            dict(
                e,
                href=edge_hrefs.get((e["from"], e["to"])),
                text=i18n.t(
                    "dash.edge",
                    lang,
                    a=e["from"],
                    b=e["to"],
                    n=fmt_num(e["count"], lang),
                    d=fmt_value(e["median_s"], "duration_s", lang),
                ),
                label=fmt_num(e["count"], lang)
                if graph["measure"] == "frequency" or e["median_s"] is None
                else fmt_value(e["median_s"], "duration_s", lang),
            )
            for e in graph["edges"]
        ]
        graph["nodes"] = [
            dict(n, text=f"{n['id']}: {fmt_num(n['count'], lang)}" if n.get("count") else n["id"])
            for n in graph["nodes"]
        ]
    chart: dict[str, Any] | None = None
    if tile.type in ("line", "bar", "area", "histogram") and tile.status == "ok":
        chart = {
            "type": tile.type,
            "x": tile.x,
            "y": tile.y,
            "xLabel": column_label(tile.x or "", lang),
            "yLabels": [column_label(y, lang) for y in tile.y],
            "kinds": kinds,
            "rows": [{k: jsonable(v) for k, v in r.items()} for r in tile.rows],
            "hrefs": hrefs,
        }
        if tile.suppressed:  # shown as gaps; the data table shows "."
            chart["suppressed"] = tile.suppressed
        if tile.type == "histogram":
            chart["x2"] = "to_s" if tile.x == "from_s" else "to_value"
    secret = bool(any(tile.suppressed) or (tile.kpi or {}).get("suppressed"))
    return {
        "tile": tile,
        "secret": secret,
        "sdc": tile.provenance.get("disclosure"),
        "table": table,
        "kpi": kpi,
        "graph": graph,
        "chart_json": _json_script(chart) if chart is not None else None,
        "summary": _summary(tile, lang),
    }


def _summary(tile: TileData, lang: str) -> str:
    """A one-sentence text alternative of a chart."""
    if tile.status != "ok" or not tile.rows or not tile.y:
        return ""
    y = tile.y[0]
    kind = next((c["kind"] for c in tile.columns if c["name"] == y), "int")
    values = [(r.get(tile.x or ""), r.get(y)) for r in tile.rows if r.get(y) is not None]
    if not values:
        return ""
    top = max(values, key=lambda v: float(v[1] or 0))
    return i18n.t(
        "dash.summary", lang, n=fmt_num(len(tile.rows), lang), y=column_label(y, lang),
        x=str(jsonable(top[0])), v=fmt_value(top[1], kind, lang),
    )  # fmt: skip


# -- pages ----------------------------------------------------------------------------------------
@router.get("/dashboards")
def dashboard_list(request: Request) -> Response:
    p, _csrf = caller(request)
    gate = gate_of(request)
    lang = lang_of(request)
    items = [d.summary(lang) for d in versions.visible(gate.pool, p)]
    return render_page(request, "dashboard_list.html", section="dashboards", items=items)


def page_context(
    gate: Gate,
    p: Principal,
    d: DashboardVersion,
    state: FilterState,
    lang: str,
    *,
    client: str | None = None,
    printing: bool = False,
) -> dict[str, Any]:
    """Everything the dashboard templates show, computed for caller ``p``."""
    spec = d.spec
    tiles = render(gate, p, d, state, lang=lang, client=client)
    end = state.period[1]
    return {
        "d": d,
        "title": text_of(spec.title, lang),
        "description": text_of(spec.description, lang),
        "filters": [
            {"f": f, "label": text_of(f.label, lang) or i18n.t(f"dash.filter.{f.type}", lang)}
            for f in spec.filters
        ],
        "options": {} if printing else choices(gate, p, d),
        "state": state,
        "described": _describe_filters(spec, state, lang),
        "period_from": state.period[0].isoformat() if state.period[0] else "",
        "period_to": (end - timedelta(days=1)).isoformat() if end else "",
        "query": urlencode(state.params(spec)),
        "tiles": [
            _with_layout(view_model(d.slug, spec, state, t, lang), spec, lang) for t in tiles
        ],
        "printing": printing,
    }


def _with_layout(vm: dict[str, Any], spec: Spec, lang: str) -> dict[str, Any]:
    tile = spec.tile(vm["tile"].id)
    vm["description"] = text_of(tile.description, lang)
    vm["width"] = tile.width
    return vm


def _describe_filters(spec: Spec, state: FilterState, lang: str) -> str:
    parts = []
    for f in spec.filters:
        label = text_of(f.label, lang) or i18n.t(f"dash.filter.{f.type}", lang)
        if f.type == "period":
            start, end = state.period
            if start or end:
                a = fmt_when(start, lang) if start else "…"
                b = fmt_when(end - timedelta(days=1), lang) if end else "…"
                parts.append(f"{label}: {a} – {b}")
        elif state.values.get(f.id):
            values = state.values[f.id]
            if f.type == "region":
                names = boundaries.names(f.level)
                values = tuple(names.get(v, v) for v in values)
            parts.append(f"{label}: {', '.join(values)}")
    return "; ".join(parts) or i18n.t("dash.no_filters", lang)


def print_html(
    gate: Gate, p: Principal, d: DashboardVersion, state: FilterState, lang: str = "de"
) -> str:
    """The dashboard as a self-contained page for printing (scripts next to it)."""
    ctx = page_context(gate, p, d, state, lang, printing=True)
    return env.get_template("dashboard_print.html").render(
        ctx, lang=lang, t=lambda k, **kw: i18n.t(k, lang, **kw),
        num=lambda v: fmt_num(v, lang), when=lambda v: fmt_when(v, lang), version=__version__,
    )  # fmt: skip


@router.get("/dashboards/{slug}")
def dashboard_page(slug: str, request: Request) -> Response:
    p, _csrf = caller(request)
    gate = gate_of(request)
    d = versions.get_for(gate.pool, p, slug)
    state = parse_filters(d.spec, params_of(request))
    ctx = page_context(gate, p, d, state, lang_of(request), client=client_of(request))
    return render_page(request, "dashboard.html", section="dashboards", **ctx)


@router.get("/dashboards/{slug}/cases")
def cases_page(slug: str, request: Request) -> Response:
    p, _csrf = caller(request)
    gate = gate_of(request)
    lang = lang_of(request)
    d = versions.get_for(gate.pool, p, slug)
    state = parse_filters(d.spec, params_of(request))
    tile_id = request.query_params.get("tile", "")
    drill = drill_of(request)
    data, counts = cases(gate, p, d, state, tile_id, drill, client=client_of(request))
    tile = d.spec.tile(tile_id)
    vm = view_model(slug, d.spec, state, data, lang)
    return render_page(
        request,
        "dashboard_cases.html",
        section="dashboards",
        d=d,
        title=text_of(d.spec.title, lang),
        tile_title=text_of(tile.title, lang) or tile.id,
        drill=drill,
        described=_describe_filters(d.spec, state, lang),
        counts=counts,
        table=vm["table"],
        back=f"/dashboards/{slug}?" + urlencode(state.params(d.spec)),
    )


@router.get("/dashboards/{slug}/export.pdf")
def dashboard_pdf(slug: str, request: Request) -> Response:
    from datenlabor.dashboards.pdf import print_pdf

    p, _csrf = caller(request)
    gate = gate_of(request)
    d = versions.get_for(gate.pool, p, slug)
    state = parse_filters(d.spec, params_of(request))
    pdf = print_pdf(print_html(gate, p, d, state, lang_of(request)), gate.pool.root / "tmp")
    response = Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{slug}-v{d.version}.pdf"'},
    )
    secure(response)
    return response


def install(app: FastAPI) -> None:
    app.include_router(router)
