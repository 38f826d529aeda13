"""Command line: ``datenlabor --pool DIR COMMAND``. Thin: parsing and printing only."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pyarrow as pa
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from datenlabor.errors import BadInput, DatenlaborError

if TYPE_CHECKING:
    from datenlabor.pool.pool import Pool

app = typer.Typer(
    name="datenlabor",
    help="Datenlabor: versioned data pool for public-sector data labs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err = Console(stderr=True)
out = Console()


class _State:
    pool_dir: Path | None = None
    database_url: str | None = None
    user: str | None = None
    engine: str | None = None


state = _State()


@app.callback()
def _global(
    pool: Annotated[
        Path | None, typer.Option("--pool", envvar="DATENLABOR_POOL", help="Pool directory")
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", envvar="DATENLABOR_DATABASE_URL", help="Metadata store URL"),
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", envvar="DATENLABOR_USER", help="Who acts")
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option("--engine", envvar="DATENLABOR_ENGINE", help="duckdb (default) or spark"),
    ] = None,
) -> None:
    state.pool_dir, state.database_url, state.user = pool, database_url, user
    state.engine = engine


def _pool() -> Pool:
    from datenlabor.pool.pool import open as open_pool

    if state.pool_dir is None:
        raise BadInput("no pool given: pass --pool DIR or set DATENLABOR_POOL")
    return open_pool(state.pool_dir, database_url=state.database_url, user=state.user)


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=_json_default) + "\n")


@app.command()
def ingest(
    file: Annotated[Path, typer.Argument(help="File to load")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name (slug)")],
    mode: Annotated[str, typer.Option(help="replace, append or upsert")] = "replace",
    key: Annotated[str | None, typer.Option(help="Key column(s), comma-separated")] = None,
    format: Annotated[
        str, typer.Option("--format", "-f", help="auto|csv|genesis|xlsx|parquet|json")
    ] = "auto",
    sheet: Annotated[str | None, typer.Option(help="XLSX sheet name (default: first)")] = None,
    encoding: Annotated[str | None, typer.Option(help="Override detected encoding")] = None,
    delimiter: Annotated[str | None, typer.Option(help="Override detected delimiter")] = None,
    decimal_sep: Annotated[
        str | None, typer.Option("--decimal", help="Decimal separator , or .")
    ] = None,
    date_format: Annotated[
        str | None, typer.Option(help="strptime date format, e.g. %d.%m.%Y")
    ] = None,
    no_header: Annotated[bool, typer.Option("--no-header", help="CSV has no header row")] = False,
    null: Annotated[
        list[str] | None, typer.Option(help="Extra text meaning NULL (repeatable)")
    ] = None,
    schema: Annotated[
        Path | None, typer.Option(help="Table Schema (JSON/YAML) to check against")
    ] = None,
    title: Annotated[str | None, typer.Option(help="Dataset title")] = None,
    description: Annotated[str | None, typer.Option(help="Dataset description")] = None,
    publisher: Annotated[
        str | None, typer.Option("--org", "--publisher", help="Publisher organisation (slug)")
    ] = None,
    visibility: Annotated[
        str | None, typer.Option(help="public, internal (default) or restricted")
    ] = None,
    publisher_name: Annotated[str | None, typer.Option(help="Publisher display name")] = None,
    licence: Annotated[str | None, typer.Option(help="Licence id, e.g. dl-de/by-2-0")] = None,
    keyword: Annotated[list[str] | None, typer.Option(help="Keyword (repeatable)")] = None,
    theme: Annotated[list[str] | None, typer.Option(help="Theme (repeatable)")] = None,
    spatial: Annotated[
        list[str] | None, typer.Option(help="AGS/ARS key covered (repeatable)")
    ] = None,
    temporal_start: Annotated[str | None, typer.Option(help="Coverage start YYYY-MM-DD")] = None,
    temporal_end: Annotated[str | None, typer.Option(help="Coverage end YYYY-MM-DD")] = None,
    contact: Annotated[str | None, typer.Option(help="Contact point (e-mail or URL)")] = None,
    allow_duplicate: Annotated[
        bool, typer.Option("--allow-duplicate", help="Append a file already loaded before")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the new version as JSON")] = False,
) -> None:
    """Load FILE as a new version of a dataset."""
    from datenlabor.pool.catalog import DatasetMeta
    from datenlabor.pool.ingest import CsvOptions

    csv = CsvOptions(
        encoding=encoding,
        delimiter=delimiter,
        decimal=decimal_sep,
        date_format=date_format,
        header=False if no_header else None,
        null_values=["", *(null or [])],
    )
    meta = DatasetMeta(
        title=title,
        description=description,
        publisher=publisher,
        publisher_name=publisher_name,
        licence=licence,
        keywords=keyword,
        themes=theme,
        spatial=spatial,
        temporal_start=_date(temporal_start, "temporal_start"),
        temporal_end=_date(temporal_end, "temporal_end"),
        contact_point=contact,
        visibility=visibility,
    )
    pool = _pool()
    with _progress() as report:
        info = pool.ingest(
            file,
            dataset=dataset,
            mode=mode,
            key=key,
            format=format,
            csv=csv,
            sheet=sheet,
            schema=schema,
            meta=meta,
            allow_duplicate=allow_duplicate,
            progress=report,
        )
    if as_json:
        _print_json(info.to_dict())
    else:
        err.print(
            f"[green]✓[/] {info.dataset} version {info.version}: {info.rows:,} rows, "
            f"{info.columns} columns ({info.format}, {info.detection.get('encoding') or 'binary'})"
        )


def _date(value: str | None, field: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise BadInput(f"not a date (YYYY-MM-DD): {value!r}", column=field) from exc


class _progress:
    """A Rich progress bar on stderr when it is a terminal; silent otherwise."""

    def __enter__(self) -> Any:
        if not err.is_terminal:
            return lambda _phase, _fraction: None
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        )
        self.bar.start()
        self.task = self.bar.add_task("Lesen / reading", total=1.0)
        labels = {
            "read": "Lesen / reading",
            "parse": "Einlesen / parsing",
            "commit": "Prüfen + Speichern / checking + saving",
        }

        def report(phase: str, fraction: float | None) -> None:
            self.bar.update(
                self.task,
                description=labels.get(phase, phase),
                completed=fraction if fraction is not None else 0,
                total=1.0,
            )

        return report

    def __exit__(self, *exc: object) -> None:
        if hasattr(self, "bar"):
            self.bar.stop()


@app.command()
def datasets(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the datasets in the pool."""
    items = _pool().datasets()
    if as_json:
        _print_json([d.to_dict() for d in items])
        return
    table = Table(title="Datenpool")
    table.add_column("dataset", no_wrap=True, style="bold")
    table.add_column("version", justify="right")
    table.add_column("rows", justify="right")
    table.add_column("publisher", no_wrap=True)
    table.add_column("licence", no_wrap=True)
    table.add_column("title")
    for d in items:
        table.add_row(
            d.slug,
            str(d.current_version),
            f"{d.rows:,}",
            d.publisher or "",
            d.licence or "",
            d.title,
        )
    out.print(table)


@app.command()
def versions(slug: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the versions of a dataset."""
    items = _pool().dataset(slug).versions()
    if as_json:
        _print_json([v.to_dict() for v in items])
        return
    table = Table("version", "created", "by", "mode", "rows", "source", "sha256")
    for v in items:
        table.add_row(
            str(v.version),
            v.created_at.isoformat(timespec="seconds"),
            v.created_by,
            v.mode,
            f"{v.rows:,}",
            v.source_name or "",
            (v.source_sha256 or "")[:12],
        )
    out.print(table)


@app.command()
def show(slug: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show a dataset's metadata and current schema."""
    handle = _pool().dataset(slug)
    info, version = handle.info(), handle.version()
    if as_json:
        _print_json({**info.to_dict(), "schema": version.schema})
        return
    for k, v in info.to_dict().items():
        out.print(f"[bold]{k}[/]: {v}")
    table = Table("column", "type", "title")
    for f in version.schema.get("fields", []):
        table.add_row(f["name"], f.get("type", ""), f.get("title", ""))
    out.print(table)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="One SELECT statement")],
    format: Annotated[str, typer.Option("--format", "-f", help="table|csv|json")] = "table",
) -> None:
    """Run read-only SQL; datasets are tables, "slug@N" is version N."""
    from datenlabor.query.sql import SqlSession

    if format not in ("table", "csv", "json"):
        raise BadInput(f"unknown format {format!r}; choose table, csv or json")
    pool = _pool()
    if _engine(pool) != "duckdb":
        from datenlabor.engines.shared import query as engine_query

        table = engine_query(pool, query, _engine(pool))
        _write_rows(pa.RecordBatchReader.from_batches(table.schema, table.to_batches()), format)
        return
    with SqlSession(pool) as session:
        reader = session.batches(query)
        _write_rows(reader, format)


def _engine(pool: Pool) -> str:
    """The engine chosen with --engine / DATENLABOR_ENGINE / the config file."""
    from datenlabor.engines import check_engine

    return check_engine(state.engine, pool.settings)


def _write_rows(reader: Any, fmt: str) -> None:
    if fmt == "csv":
        import csv as pycsv

        import pyarrow.csv as pacsv

        # The header is written like the rows: quoted only where needed (pyarrow would
        # quote every header name).
        pycsv.writer(sys.stdout, lineterminator="\n").writerow(reader.schema.names)
        sys.stdout.flush()
        sink = sys.stdout.buffer
        options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
        for batch in reader:
            pacsv.write_csv(pa.Table.from_batches([batch]), sink, write_options=options)
        sink.flush()
    elif fmt == "json":
        write = sys.stdout.write
        write("[")
        first = True
        for batch in reader:
            for row in batch.to_pylist():
                write(
                    ("\n" if first else ",\n")
                    + json.dumps(row, ensure_ascii=False, default=_json_default)
                )
                first = False
        write("\n]\n" if not first else "]\n")
    else:
        table = Table(*reader.schema.names)
        shown = 0
        for batch in reader:
            for row in batch.to_pylist():
                if shown < 200:
                    table.add_row(*("" if v is None else str(v) for v in row.values()))
                shown += 1
        out.print(table)
        if shown > 200:
            err.print(f"({shown:,} rows, first 200 shown; use --format csv for all)")


@app.command()
def quality(
    slug: str,
    version: Annotated[int | None, typer.Option(help="Version (default: current)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show the quality report of a version (recomputed on the engine if one is chosen)."""
    from datenlabor.pool.quality import render_text

    pool = _pool()
    if state.engine is None and pool.settings.engine == "duckdb":
        report = pool.dataset(slug).quality(version)  # the report stored at ingest
    else:
        from datenlabor.engines.shared import quality as engine_quality

        report = engine_quality(pool, slug, version, _engine(pool))
    if as_json:
        _print_json(report)
    else:
        out.print(render_text(report), markup=False, highlight=False)


@app.command()
def diff(
    slug: str,
    a: Annotated[int, typer.Argument(help="Older version")],
    b: Annotated[int, typer.Argument(help="Newer version")],
    limit: Annotated[int, typer.Option(help="Example rows per kind")] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Compare two versions: schema changes and rows added, removed, changed."""
    result = _pool().dataset(slug).diff(a, b, limit=limit)
    if as_json:
        _print_json(result)
        return
    s = result["schema"]
    out.print(f"[bold]{slug}[/]: version {a} → {b} (matched by {result['method']})")
    for c in s["added"]:
        out.print(f"  + column {c['name']} ({c['type']})")
    for c in s["removed"]:
        out.print(f"  - column {c['name']} ({c['type']})")
    for c in s["type_changed"]:
        out.print(f"  ~ column {c['name']}: {c['from']} → {c['to']}")
    r = result["rows"]
    out.print(
        f"  rows added {r['added']:,}, removed {r['removed']:,}"
        + (f", changed {r['changed']:,}" if r["changed"] is not None else "")
    )


@app.command()
def export(
    slug: str,
    output: Annotated[Path, typer.Option("-o", "--output", help="Target file")],
    version: Annotated[int | None, typer.Option(help="Version (default: current)")] = None,
    format: Annotated[str | None, typer.Option("--format", "-f", help="csv|parquet|xlsx")] = None,
) -> None:
    """Write a version to a CSV, Parquet or XLSX file."""
    path = _pool().dataset(slug).export(output, version=version, fmt=format)
    err.print(f"[green]✓[/] wrote {path}")


@app.command()
def cleanup(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Remove leftovers of killed or failed operations (never a version's data)."""
    report = _pool().cleanup()
    if as_json:
        _print_json(report.to_dict())
        return
    err.print(
        f"removed {len(report.work_folders)} work folders, {len(report.orphan_files)} "
        f"unreferenced data files, {len(report.orphan_tables)} unrecorded tables "
        f"({report.bytes_freed / 1e6:,.1f} MB)"
    )


@app.command()
def demo() -> None:
    """Load the demo data into the pool and print what is in it."""
    from datenlabor.demo import DEMO_PASSWORD, DEMO_USERS, load_demo, load_demo_accounts

    pool = _pool()
    load_demo(pool, log=lambda msg: err.print(msg))
    load_demo_accounts(pool, log=lambda msg: err.print(msg))
    datasets(as_json=False)
    where = f"--pool {state.pool_dir}"
    out.print(
        "\nTry:\n"
        f"  datenlabor {where} versions antraege\n"
        f"  datenlabor {where} diff antraege 1 2\n"
        f"  datenlabor {where} quality antraege\n"
        f'  datenlabor {where} sql \'SELECT "Kreisschlüssel", sum("Anträge") AS antraege '
        "FROM antraege GROUP BY 1 ORDER BY 1'",
        highlight=False,
        markup=False,
    )
    out.print(
        f"\nDemo sign-in (web UI, `datenlabor {where} serve`): user "
        f"{' / '.join(DEMO_USERS)}, password {DEMO_PASSWORD}",
        highlight=False,
        markup=False,
    )


def _register_admin_commands() -> None:
    from datenlabor import cli_admin

    cli_admin.register(app, _pool, state)
    from datenlabor import cli_catalog

    cli_catalog.register(app, _pool)
    __import__("datenlabor.cli_sdc", fromlist=["register"]).register(app, _pool)
    from datenlabor import cli_harvest

    cli_harvest.register(app, _pool)
    from datenlabor import cli_genesis

    cli_genesis.register(app, _pool)
    __import__("datenlabor.cli_assist", fromlist=["register"]).register(app, _pool)
    __import__("datenlabor.cli_governance", fromlist=["register"]).register(app, _pool)
    __import__("datenlabor.cli_dashboards", fromlist=["register"]).register(app, _pool)
    __import__("datenlabor.cli_procedures", fromlist=["register"]).register(app, _pool)
    __import__("datenlabor.cli_backup", fromlist=["register"]).register(app, _pool, state)


_register_admin_commands()


def main() -> None:
    import duckdb

    from datenlabor.config import load_settings
    from datenlabor.pool.diskfull import DiskFull, disk_full_cause

    try:
        app()
    except Exception as exc:
        # A full disk, in whatever layer's words (also inside another error): one message.
        cause = None if isinstance(exc, DiskFull) else disk_full_cause(exc)
        if cause is not None:
            sys.stderr.write(
                f"Fehler / error: no space left on device ({str(cause).strip().splitlines()[0]});"
                " nothing was changed — free space and try again\n"
            )
            raise SystemExit(1) from None
        if isinstance(exc, DatenlaborError):
            sys.stderr.write(f"Fehler / error: {exc}\n")
            raise SystemExit(exc.exit_code) from None
        if isinstance(exc, duckdb.OutOfMemoryException):
            sys.stderr.write(
                "Fehler / error: out of memory (nothing was changed); raise "
                f"DATENLABOR_DUCKDB_MEMORY (now {load_settings().duckdb_memory}): "
                f"{str(exc).splitlines()[0]}\n"
            )
            raise SystemExit(1) from None
        raise


if __name__ == "__main__":
    main()
