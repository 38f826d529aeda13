"""CLI: the catalogue in interoperable formats (DCAT-AP.de)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from datenlabor.errors import BadInput

if TYPE_CHECKING:
    from datenlabor.pool.pool import Pool


def register(app: typer.Typer, open_pool: Callable[[], Pool]) -> None:
    catalog = typer.Typer(help="The catalogue as DCAT-AP.de", no_args_is_help=True)
    app.add_typer(catalog, name="catalog")

    @catalog.command("export")
    def export(
        fmt: Annotated[str, typer.Option("--format", "-f", help="ttl, rdf or jsonld")] = "ttl",
        output: Annotated[
            Path | None, typer.Option("--output", "-o", help="File (default: standard output)")
        ] = None,
        base_url: Annotated[
            str | None,
            typer.Option("--base-url", help="Public URL (default: DATENLABOR_PUBLIC_URL)"),
        ] = None,
    ) -> None:
        """Write the DCAT-AP.de catalogue of the public datasets (what anyone may see)."""
        from datenlabor.access.principal import ANONYMOUS
        from datenlabor.interop import dcat
        from datenlabor.service.gate import Gate

        if fmt not in dcat.SERIALISATIONS:
            raise BadInput(
                f"unknown format {fmt!r}; choose one of {', '.join(dcat.SERIALISATIONS)}"
            )
        pool = open_pool()
        graph = dcat.catalog_graph(
            Gate(pool),
            ANONYMOUS,
            base_url or pool.settings.public_url,
            contributor_id=pool.settings.dcat_contributor_id,
        )
        body, _media = dcat.serialize(graph, fmt)
        if output is None:
            sys.stdout.buffer.write(body)
            return
        partial = output.with_name(f".{output.name}.partial")
        partial.write_bytes(body)
        partial.replace(output)  # never a half-written catalogue file
