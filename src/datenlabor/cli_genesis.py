"""CLI: tables from the GENESIS web service (GENESIS-Online, Regionaldatenbank, Zensus 2022)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from datenlabor.interop.genesis_import import Outcome
    from datenlabor.pool.pool import Pool

err = Console(stderr=True)

_ACTIONS = {
    "created": "[green]✓[/] neu angelegt / created",
    "new-version": "[green]✓[/] neue Version / new version",
    "unchanged": "[dim]=[/] unverändert / unchanged",
    "failed": "[red]✗[/] fehlgeschlagen / failed",
}


def _print(outcomes: list[Outcome], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(
            json.dumps([o.to_dict() for o in outcomes], ensure_ascii=False, indent=2) + "\n"
        )
        return
    for o in outcomes:
        version = f" version {o.version}" if o.version is not None else ""
        rows = f", {o.rows:,} rows" if o.rows is not None else ""
        detail = f" ({o.message})" if o.message else ""
        err.print(
            f"{_ACTIONS.get(o.action, o.action)}: {o.dataset}{version}{rows} "
            f"← {o.database} {o.table}{detail}",
            highlight=False,
        )


def register(app: typer.Typer, open_pool: Callable[[], Pool]) -> None:
    genesis = typer.Typer(
        help="Tables from the GENESIS web service (Destatis, Regionaldatenbank, Zensus 2022)",
        no_args_is_help=True,
    )
    app.add_typer(genesis, name="genesis")

    @genesis.command("import")
    def import_(
        table: Annotated[str, typer.Argument(help="Table code, e.g. 12411-0001")],
        dataset: Annotated[
            str | None, typer.Option("--dataset", "-d", help="Dataset name (default: genesis-CODE)")
        ] = None,
        database: Annotated[
            str | None,
            typer.Option(help="destatis, regionalstatistik or zensus (default: setting)"),
        ] = None,
        fmt: Annotated[
            str, typer.Option("--format", "-f", help="ffcsv (flat, default) or csv (classic)")
        ] = "ffcsv",
        org: Annotated[
            str | None, typer.Option("--org", help="Publisher organisation (default: the office)")
        ] = None,
        visibility: Annotated[
            str | None, typer.Option(help="public, internal (default) or restricted")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON")] = False,
    ) -> None:
        """Import a GENESIS table as a dataset (a new version only if it changed)."""
        from datenlabor.interop.genesis_import import import_table

        outcome = import_table(
            open_pool(),
            table,
            dataset=dataset,
            database=database,
            fmt=fmt,
            publisher=org,
            visibility=visibility,
        )
        if as_json:
            sys.stdout.write(json.dumps(outcome.to_dict(), ensure_ascii=False, indent=2) + "\n")
        else:
            _print([outcome], False)

    @genesis.command("refresh")
    def refresh(
        datasets: Annotated[
            list[str] | None, typer.Argument(help="Datasets (default: all GENESIS datasets)")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the outcomes as JSON")] = False,
    ) -> None:
        """Check GENESIS datasets for updates; a changed table becomes a new version."""
        from datenlabor.interop.genesis_import import refresh as run

        outcomes = run(open_pool(), list(datasets or []))
        _print(outcomes, as_json)
        if not outcomes and not as_json:
            err.print("Keine GENESIS-Datensätze / no GENESIS datasets")
        if any(o.action == "failed" for o in outcomes):
            raise typer.Exit(1)
