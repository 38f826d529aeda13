"""CLI: ``datenlabor backup FILE`` and ``datenlabor restore-backup FILE``. Parsing and printing only."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from datenlabor.errors import BadInput

if TYPE_CHECKING:
    from datenlabor.pool.pool import Pool

err = Console(stderr=True)


def _bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def register(app: typer.Typer, open_pool: Callable[[], Pool], state: Any) -> None:
    @app.command()
    def backup(
        file: Annotated[Path, typer.Argument(help="Backup file to write (e.g. pool.dlbackup)")],
        force: Annotated[bool, typer.Option("--force", help="Replace FILE if it exists")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
    ) -> None:
        """Back up the pool and its metadata store, consistently, while the service runs.

        The file holds the pool's secret keys and every dataset: keep it as safe as the pool.
        """
        from datenlabor.backup import create_backup

        pool = open_pool()
        with _bar() as bar:
            task = bar.add_task("Sicherung / backup", total=None)
            result = create_backup(
                pool.root,
                pool.settings.metadata_url,
                file,
                lock_timeout_s=pool.settings.lock_timeout_s,
                force=force,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        pool.store.dispose()
        if as_json:
            sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        else:
            err.print(
                f"[green]✓[/] {result.path}: {result.bytes / 1024**2:,.1f} MiB, "
                f"{result.files} pool files, {sum(result.tables.values())} store rows, "
                f"schema {result.revision}, audit chain {result.audit['entries']} entries "
                f"({result.seconds:.1f} s)"
            )
        for w in result.warnings:
            err.print(f"[yellow]![/] {w}")

    # ``restore SLUG`` already undoes a soft delete (cli_admin), hence the longer name.
    @app.command("restore-backup")
    def restore_backup(
        file: Annotated[Path, typer.Argument(help="Backup file made by `datenlabor backup`")],
        force: Annotated[
            bool,
            typer.Option("--force", help="Replace a non-empty pool folder and metadata store"),
        ] = False,
        check: Annotated[
            bool, typer.Option("--check", help="Only verify the file (SHA-256 of every member)")
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
    ) -> None:
        """Restore a backup into the pool folder (--pool) and the metadata store
        (--database-url / DATENLABOR_DATABASE_URL, default: SQLite in the pool).

        Every file is verified before anything is written; an older schema is upgraded.
        """
        from datenlabor.backup import restore_backup
        from datenlabor.config import load_settings

        if state.pool_dir is None:
            raise BadInput("no pool given: pass --pool DIR or set DATENLABOR_POOL")
        settings = load_settings(pool=state.pool_dir, database_url=state.database_url)
        with _bar() as bar:
            tasks: dict[str, Any] = {}

            def progress(phase: str, done: int, total: int) -> None:
                if phase not in tasks:
                    label = {"verify": "Prüfen / verify", "restore": "Wiederherstellen / restore"}
                    tasks[phase] = bar.add_task(label.get(phase, phase), total=total)
                bar.update(tasks[phase], completed=done)

            result = restore_backup(
                file, settings, force=force, check_only=check, progress=progress
            )
        if as_json:
            sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        elif result.checked_only:
            err.print(
                f"[green]✓[/] {file}: every file matches its SHA-256 ({result.files} pool files, "
                f"{sum(result.tables.values())} store rows, schema {result.backup_revision}, "
                f"made {result.created_at})"
            )
        else:
            up = f", schema upgraded to {result.revision}" if result.upgraded else ""
            err.print(
                f"[green]✓[/] restored into {result.pool} and {result.database}: "
                f"{result.files} files, {sum(result.tables.values())} store rows, "
                f"{result.versions_checked} dataset versions checked, audit chain "
                f"{result.audit['entries']} entries verified{up} ({result.seconds:.1f} s)"
            )
        for w in result.warnings:
            err.print(f"[yellow]![/] {w}")
