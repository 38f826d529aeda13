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

    @catalog.command("quality")
    def quality(
        slug: Annotated[
            str | None, typer.Argument(help="Dataset (default: the whole catalogue)")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
        lang: Annotated[str, typer.Option(help="Language of the texts: de or en")] = "de",
    ) -> None:
        """Metadata quality score (after the EU data portal's MQA) with improvements."""
        import json

        from rich.console import Console

        from datenlabor.errors import NotFound
        from datenlabor.pool import metadata_quality as mq

        if lang not in ("de", "en"):
            raise BadInput(f"unknown language {lang!r}; choose de or en", column="lang")
        pool = open_pool()
        with pool.store.session() as s:
            datasets = mq.load(s, slug)
            if slug is not None and not datasets:
                raise NotFound(f"no dataset {slug!r}")
            scores = [mq.assess(d, root=pool.root) for d in datasets]
        result = scores[0] if slug is not None else mq.summarise(scores)
        if as_json:
            sys.stdout.write(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
            return
        out = Console(highlight=False)
        rating = result["rating"] or "–"
        label = mq.RATING_LABELS.get(rating, (rating, rating))[0 if lang == "de" else 1]
        score = "–" if result["score"] is None else result["score"]
        head = slug if slug is not None else f"{result['datasets']} datasets (mean)"
        out.print(f"[bold]{head}[/]: {score} / {result['max']} ({label})")
        for dim in result["dimensions"]:
            dim_score = "–" if dim["score"] is None else dim["score"]
            out.print(f"  {dim['label'][lang]}: {dim_score} / {dim['max']}")
        if slug is not None:
            for imp in result["improvements"]:
                out.print(f"  • {imp[lang]} (+{imp['points']})")
        else:
            for row in result["per_dataset"]:
                out.print(f"  {row['dataset']}: {row['score']} ({row['rating']})")
