"""CLI: harvest a DCAT-AP catalogue or a CKAN portal into the pool.

Exit codes: 0 every record was harvested, found unchanged or skipped for a stated reason;
1 at least one record failed or collided with a dataset from elsewhere (see the report);
8 a catalogue page could not be read — the run stopped there and the next run resumes at
that page; 2 bad arguments (as every command).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from datenlabor.pool.pool import Pool

err = Console(stderr=True)

_STYLE = {
    "created": "green",
    "updated": "green",
    "metadata": "cyan",
    "unchanged": "dim",
    "skipped": "yellow",
    "collision": "red",
    "failed": "red",
}


def register(app: typer.Typer, open_pool: Callable[[], Pool]) -> None:
    @app.command("harvest")
    def harvest(
        source: Annotated[str, typer.Argument(help="Catalogue URL or RDF/JSON file")],
        kind: Annotated[
            str | None, typer.Option("--type", help="dcat or ckan (default: detected)")
        ] = None,
        org: Annotated[
            str | None,
            typer.Option("--org", help="Publish all under this organisation (default: publisher)"),
        ] = None,
        visibility: Annotated[
            str | None, typer.Option(help="public, internal or restricted")
        ] = None,
        limit: Annotated[
            int | None, typer.Option(help="At most N records; the next run continues")
        ] = None,
        report: Annotated[
            Path | None, typer.Option("--report", help="Write the report as JSON here")
        ] = None,
        restart: Annotated[
            bool, typer.Option("--restart", help="Start from the first page, not where it stopped")
        ] = False,
        page_size: Annotated[int, typer.Option(help="CKAN packages per request")] = 100,
        timeout: Annotated[
            float, typer.Option(help="Seconds one read may wait for the server")
        ] = 60.0,
        download_timeout: Annotated[
            float, typer.Option(help="Seconds one download may take, retries included")
        ] = 1800.0,
        max_bytes: Annotated[int, typer.Option(help="Largest download accepted (bytes)")] = 2
        * 1024**3,
        retries: Annotated[int, typer.Option(help="Retries on 5xx and connection errors")] = 3,
    ) -> None:
        """Harvest SOURCE (DCAT-AP catalogue or CKAN portal) into datasets of the pool.

        Exit code 0: all records harvested, unchanged or skipped with a reason; 1: records
        failed or collided (see the report); 8: a catalogue page could not be read (the next
        run resumes there). Details: docs/harvesting.md.
        """
        from datenlabor.errors import BadInput
        from datenlabor.interop.harvest import Harvester, Options
        from datenlabor.interop.harvest_fetch import Limits

        if page_size < 1 or page_size > 1000:
            raise BadInput("--page-size must be between 1 and 1000", column="page_size")
        if timeout <= 0 or download_timeout <= 0 or max_bytes <= 0 or retries < 0:
            raise BadInput("timeouts and --max-bytes must be positive, --retries at least 0")
        limits = Limits(
            read_timeout_s=timeout,
            connect_timeout_s=min(10.0, timeout),
            download_timeout_s=download_timeout,
            page_timeout_s=max(timeout * 5, 60.0),
            max_download_bytes=max_bytes,
            retries=retries,
        )
        options = Options(
            kind=kind,
            org=org,
            visibility=visibility,
            limit=limit,
            page_size=page_size,
            restart=restart,
            limits=limits,
        )
        pool = open_pool()
        with _Bar() as on_record:
            result = Harvester(pool, on_record=on_record).run(source, options)
        data = result.to_dict()
        if report is not None:
            partial = report.with_name(f".{report.name}.partial")
            partial.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", "utf-8")
            partial.replace(report)
        _summary(data)
        if result.exit_code:
            raise typer.Exit(result.exit_code)


def _summary(data: dict[str, Any]) -> None:
    counts = (
        ", ".join(f"[{_STYLE[k]}]{k} {v}[/]" for k, v in data["counts"].items() if v)
        or "no records"
    )
    how = "resumed run" if data["resumed"] else "run"
    err.print(
        f"Harvest / Ernte ({data['kind']}) {how} {data['run']}: {counts}",
        highlight=False,
        soft_wrap=True,
    )
    for f in data["failures"]:
        err.print(
            f"  [red]✗[/] {escape(f['identifier'])}  {escape(f.get('url') or '')}\n"
            f"      {escape(str(f['error']))}",
            highlight=False,
            markup=True,
            soft_wrap=True,
        )
    if data["gone"]:
        slugs = escape(", ".join(g["slug"] for g in data["gone"][:10]))
        more = f" and {len(data['gone']) - 10} more" if len(data["gone"]) > 10 else ""
        err.print(
            f"{len(data['gone'])} harvested datasets are no longer in the source (kept): "
            f"{slugs}{more}",
            highlight=False,
            soft_wrap=True,
        )
    if data["source_error"]:
        e = data["source_error"]
        err.print(
            f"[red]Fehler / error:[/] catalogue page {escape(e['url'])} could not be read: "
            f"{escape(e['error'])}\n"
            "  the next run continues at this page",
            highlight=False,
            soft_wrap=True,
        )
    elif data["stopped_at_limit"]:
        err.print("stopped at --limit; the next run continues after these records")


class _Bar:
    """A Rich progress bar over records on stderr when it is a terminal; silent otherwise."""

    def __enter__(self) -> Callable[[int, int | None, dict[str, Any]], None]:
        if not err.is_terminal:
            return lambda _n, _total, _entry: None
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        )
        self.bar.start()
        self.task = self.bar.add_task("Ernten / harvesting", total=None)

        def report(n: int, total: int | None, entry: dict[str, Any]) -> None:
            outcome = entry.get("outcome", "")
            label = entry.get("slug") or entry.get("identifier") or ""
            self.bar.update(
                self.task,
                completed=n,
                total=total,
                description=f"[{_STYLE.get(outcome, 'white')}]{outcome:>9}[/] {label[:40]}",
            )

        return report

    def __exit__(self, *exc: object) -> None:
        if hasattr(self, "bar"):
            self.bar.stop()
