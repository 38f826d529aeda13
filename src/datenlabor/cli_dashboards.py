"""CLI: dashboards — save a spec as a new version, list, compute a tile, print a PDF."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from datenlabor.errors import BadInput

if TYPE_CHECKING:
    from datenlabor.pool.pool import Pool


def _filter_params(filters: list[str]) -> dict[str, list[str]]:
    """``--filter region=05 --filter period_from=2024-01-01`` as query parameters."""
    out: dict[str, list[str]] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadInput(f"--filter {item!r}: write NAME=VALUE", column="filter")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def register(app: typer.Typer, open_pool: Callable[[], Pool]) -> None:
    dash = typer.Typer(help="Procedure dashboards (YAML specs, tiles, PDF)", no_args_is_help=True)
    app.add_typer(dash, name="dashboards")

    def admin() -> tuple[Pool, object]:
        from datenlabor.access.principal import local_admin

        pool = open_pool()
        return pool, local_admin(pool.settings.user or "cli")

    @dash.command("put")
    def put(
        file: Annotated[Path, typer.Argument(help="Dashboard spec (YAML)")],
        slug: Annotated[
            str | None, typer.Option("--slug", help="Name (default: the file name)")
        ] = None,
    ) -> None:
        """Validate FILE and save it as the next version of the dashboard."""
        from datenlabor.dashboards import versions

        if not file.is_file():
            raise BadInput("file not found", file=str(file))
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise BadInput("the spec must be UTF-8 text", file=str(file)) from None
        pool, p = admin()
        name = slug or file.stem.lower().replace(" ", "-")
        d = versions.put(pool, p, name, text, file=str(file))  # type: ignore[arg-type]
        typer.echo(f"{d.slug}: version {d.version} ({len(d.spec.tiles)} tiles)")

    @dash.command("list")
    def list_(
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    ) -> None:
        """The dashboards of the pool with their current version."""
        from datenlabor.dashboards import versions

        pool, _p = admin()
        items = [d.summary() for d in versions.all_latest(pool)]
        if as_json:
            typer.echo(json.dumps(items, ensure_ascii=False, indent=2))
            return
        for d in items:
            typer.echo(f"{d['slug']}\tv{d['version']}\t{d['tiles']} tiles\t{d['title']}")

    @dash.command("render")
    def render_(
        slug: Annotated[str, typer.Argument(help="Dashboard")],
        tile: Annotated[
            list[str] | None, typer.Option("--tile", help="Tile id (repeatable)")
        ] = None,
        filters: Annotated[
            list[str] | None,
            typer.Option("--filter", help="NAME=VALUE, e.g. period_from=2024-01-01 or region=05"),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the tiles as JSON")] = False,
    ) -> None:
        """Compute tiles (all, or --tile) as the pool administrator sees them."""
        from datenlabor.dashboards import versions
        from datenlabor.dashboards.filters import parse_filters
        from datenlabor.dashboards.render import render
        from datenlabor.service.gate import Gate

        pool, p = admin()
        d = versions.get(pool, slug)
        state = parse_filters(d.spec, _filter_params(filters or []))
        tiles = render(Gate(pool), p, d, state, tiles=tile or None)  # type: ignore[arg-type]
        if as_json:
            data = [t.to_dict() for t in tiles]
            body = data[0] if tile and len(tile) == 1 else data
            typer.echo(json.dumps(body, ensure_ascii=False, indent=2, default=str))
            return
        for t in tiles:
            head = f"{t.id} ({t.type}) {t.status}"
            if t.kpi is not None:
                head += f": {t.kpi.get('value')}"
            elif t.status == "ok":
                head += f": {len(t.rows)} rows"
            typer.echo(head if t.status == "ok" else f"{head}: {t.message}")

    @dash.command("pdf")
    def pdf(
        slug: Annotated[str, typer.Argument(help="Dashboard")],
        output: Annotated[Path, typer.Option("--output", "-o", help="PDF file to write")],
        filters: Annotated[list[str] | None, typer.Option("--filter", help="NAME=VALUE")] = None,
        lang: Annotated[str, typer.Option("--lang", help="de or en")] = "de",
    ) -> None:
        """Print the whole dashboard to PDF with headless chromium."""
        from datenlabor.dashboards import versions
        from datenlabor.dashboards.filters import parse_filters
        from datenlabor.dashboards.pdf import print_pdf
        from datenlabor.service.gate import Gate
        from datenlabor.web.ui_dashboards import print_html

        pool, p = admin()
        d = versions.get(pool, slug)
        state = parse_filters(d.spec, _filter_params(filters or []))
        body = print_pdf(print_html(Gate(pool), p, d, state, lang), pool.root / "tmp")  # type: ignore[arg-type]
        partial = output.with_name(f".{output.name}.partial")
        partial.write_bytes(body)
        partial.replace(output)  # never a half-written PDF
        sys.stderr.write(f"{output}: {len(body):,} bytes\n")
