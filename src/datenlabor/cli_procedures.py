"""CLI: event logs of administrative procedures (import, key figures, simulator). Thin."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from datenlabor.errors import BadInput

if TYPE_CHECKING:
    from datenlabor.pool.pool import Pool
    from datenlabor.procedures import Filters, Result

ANALYSES = (
    "volumes",
    "throughput",
    "histogram",
    "waiting",
    "rework",
    "workload",
    "variants",
    "dfg",
    "bottlenecks",
)

DatasetOpt = Annotated[str, typer.Option("--dataset", "-d", help="Event log dataset (slug)")]
VersionOpt = Annotated[int | None, typer.Option(help="Version (default: current)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]
FromOpt = Annotated[
    str | None, typer.Option("--from", help="Period start YYYY-MM-DD (log time zone)")
]
ToOpt = Annotated[str | None, typer.Option("--to", help="Period end YYYY-MM-DD, exclusive")]
ModeOpt = Annotated[
    str, typer.Option("--period-mode", help="started|completed|intersecting|events")
]
WhereOpt = Annotated[
    list[str] | None,
    typer.Option("--where", help="Keep cases with COLUMN=VALUE[,VALUE…] (repeatable)"),
]
LifecycleOpt = Annotated[
    list[str] | None, typer.Option("--lifecycle", help="Keep only these transitions")
]
EngineOpt = Annotated[
    str | None,
    typer.Option("--engine", help="duckdb or spark (default: the global --engine / setting)"),
]
EndOpt = Annotated[
    list[str] | None,
    typer.Option("--end-activity", help="Activity that closes a case (repeatable)"),
]


def _date(value: str | None, field: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise BadInput(f"not a date (YYYY-MM-DD): {value!r}", column=field) from exc


def _filters(
    start: str | None,
    end: str | None,
    mode: str,
    where: list[str] | None,
    lifecycle: list[str] | None,
) -> Filters:
    from datenlabor.procedures import Filters

    attributes: dict[str, list[Any]] = {}
    for item in where or []:
        col, sep, values = item.partition("=")
        if not sep or not col:
            raise BadInput(f"--where needs COLUMN=VALUE, got {item!r}", column="where")
        attributes.setdefault(col, []).extend(v for v in values.split(","))
    return Filters(
        start=_date(start, "from"),
        end=_date(end, "to"),
        period_mode=mode,
        attributes=attributes,
        lifecycle=list(lifecycle) if lifecycle else None,
    )


def _engine(engine: str | None) -> str | None:
    """--engine of the command, else the global one (None: the configured default)."""
    from datenlabor.cli import state

    return engine or state.engine


def _print_result(result: Result, as_json: bool, limit: int = 50) -> None:
    from rich.table import Table

    from datenlabor.cli import _print_json, err, out

    if as_json:
        _print_json(result.to_dict())
        return
    table = Table(*result.table.column_names, title=result.name)
    for row in result.table.slice(0, limit).to_pylist():
        table.add_row(*(_cell(k, v) for k, v in row.items()))
    out.print(table)
    if result.table.num_rows > limit:
        err.print(f"({result.table.num_rows:,} rows, first {limit} shown; use --json for all)")
    totals = {k: v for k, v in result.totals.items() if not isinstance(v, dict)}
    if totals:
        out.print(", ".join(f"{k}: {_cell(k, v)}" for k, v in totals.items()), markup=False)
    prov = result.provenance
    err.print(f"Quelle / source: {prov['dataset']} version {prov['version']}", markup=False)


def _cell(name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and name.endswith("_s"):
        return _duration(value)
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:,.0f}"
    if isinstance(value, list):
        return " → ".join(str(v) for v in value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return str(value)


def _duration(seconds: float) -> str:
    """Seconds as a readable duration: 45 s, 12.5 min, 3.2 h, 4.1 d."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def register(app: typer.Typer, open_pool: Callable[[], Pool]) -> None:
    procedures = typer.Typer(
        help="Event logs of administrative procedures: import, key figures, simulator",
        no_args_is_help=True,
    )
    app.add_typer(procedures, name="procedures")

    @procedures.command("import")
    def import_(
        file: Annotated[Path, typer.Argument(help="CSV, XES (.xes, .xes.gz) or Parquet file")],
        dataset: DatasetOpt,
        fmt: Annotated[str, typer.Option("--format", "-f", help="auto|csv|xes|parquet")] = "auto",
        case: Annotated[str | None, typer.Option("--case", help="Case id column")] = None,
        activity: Annotated[str | None, typer.Option(help="Activity column")] = None,
        timestamp: Annotated[str | None, typer.Option(help="Timestamp column")] = None,
        resource: Annotated[str | None, typer.Option(help="Resource column")] = None,
        lifecycle: Annotated[str | None, typer.Option(help="Lifecycle column")] = None,
        attr: Annotated[
            list[str] | None,
            typer.Option("--attr", help="Keep only these attribute columns (repeatable)"),
        ] = None,
        timestamp_format: Annotated[
            str | None, typer.Option(help="strptime format, e.g. %d.%m.%Y %H:%M")
        ] = None,
        timezone: Annotated[
            str, typer.Option(help="Time zone of timestamps without one")
        ] = "Europe/Berlin",
        encoding: Annotated[str | None, typer.Option(help="CSV encoding (default: detect)")] = None,
        delimiter: Annotated[str | None, typer.Option(help="CSV delimiter")] = None,
        title: Annotated[str | None, typer.Option(help="Dataset title")] = None,
        org: Annotated[str | None, typer.Option("--org", help="Publisher organisation")] = None,
        visibility: Annotated[str | None, typer.Option(help="public|internal|restricted")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Import an event log file as a new version of a dataset."""
        from datenlabor.cli import _print_json, err
        from datenlabor.pool.catalog import DatasetMeta
        from datenlabor.pool.ingest import CsvOptions
        from datenlabor.procedures import Mapping, import_log

        mapping = Mapping(
            case=case,
            activity=activity,
            timestamp=timestamp,
            resource=resource,
            lifecycle=lifecycle,
            attributes=list(attr) if attr else None,
            timestamp_format=timestamp_format,
        )
        pool = open_pool()
        info = import_log(
            pool,
            file,
            dataset=dataset,
            fmt=fmt,
            mapping=mapping,
            timezone=timezone,
            csv=CsvOptions(encoding=encoding, delimiter=delimiter),
            meta=DatasetMeta(title=title, publisher=org, visibility=visibility),
        )
        origin = pool.origin(dataset) or {}
        if as_json:
            _print_json({**info.to_dict(), "eventlog": origin})
        else:
            err.print(
                f"[green]✓[/] {info.dataset} version {info.version}: {origin.get('events', 0):,} "
                f"events, {origin.get('cases', 0):,} cases, {origin.get('activities', 0)} "
                f"activities ({origin.get('format')})"
            )

    @procedures.command("import-dataset")
    def import_dataset_(
        source: Annotated[str, typer.Argument(help="Pool dataset holding the events")],
        dataset: DatasetOpt,
        version: Annotated[int | None, typer.Option(help="Source version (default: current)")] = None,
        case: Annotated[str | None, typer.Option("--case", help="Case id column")] = None,
        activity: Annotated[str | None, typer.Option(help="Activity column")] = None,
        timestamp: Annotated[str | None, typer.Option(help="Timestamp column")] = None,
        resource: Annotated[str | None, typer.Option(help="Resource column")] = None,
        attr: Annotated[list[str] | None, typer.Option("--attr", help="Attribute column")] = None,
        timezone: Annotated[str, typer.Option(help="Time zone of naive times")] = "Europe/Berlin",
    ) -> None:
        """Make an event log from a dataset already in the pool."""
        from datenlabor.cli import err
        from datenlabor.procedures import Mapping, import_dataset

        info = import_dataset(
            open_pool(),
            source,
            dataset=dataset,
            version=version,
            mapping=Mapping(
                case=case,
                activity=activity,
                timestamp=timestamp,
                resource=resource,
                attributes=list(attr) if attr else None,
            ),
            timezone=timezone,
        )
        err.print(f"[green]✓[/] {info.dataset} version {info.version}: {info.rows:,} events")

    @procedures.command("kpis")
    def kpis(
        slug: Annotated[str, typer.Argument(help="Event log dataset")],
        version: VersionOpt = None,
        start: FromOpt = None,
        end: ToOpt = None,
        period_mode: ModeOpt = "started",
        where: WhereOpt = None,
        lifecycle: LifecycleOpt = None,
        end_activity: EndOpt = None,
        dfg_limit: Annotated[int | None, typer.Option(help="Edges shown (default: all)")] = None,
        engine: EngineOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Main figures: cases, events, variants, throughput time, directly-follows graph."""
        from datenlabor.cli import _print_json, out
        from datenlabor.procedures import open_log

        filters = _filters(start, end, period_mode, where, lifecycle)
        with open_log(
            open_pool(),
            slug,
            version,
            filters=filters,
            end_activities=end_activity,
            engine=_engine(engine),
        ) as log:
            summary = log.summary(dfg_limit=dfg_limit)
        if as_json:
            _print_json(summary)
            return
        for key in ("cases", "events", "activities", "variants", "open_cases"):
            out.print(f"[bold]{key}[/]: {summary[key]:,}")
        for key in ("throughput_median_s", "throughput_mean_s", "throughput_p90_s"):
            value = summary[key]
            out.print(f"[bold]{key}[/]: {_duration(value) if value is not None else '–'}")
        out.print(f"[bold]period[/]: {summary['first_event']} – {summary['last_event']}")
        out.print("[bold]directly-follows graph[/] (most frequent first):")
        for e in summary["dfg"][: dfg_limit or 15]:
            out.print(
                f"  {e['from']} → {e['to']}: {e['count']:,} × median {_duration(e['median_s'])}",
                markup=False,
            )
        out.print(f"Quelle / source: {slug} version {summary['version']}", markup=False)

    @procedures.command("show")
    def show(
        slug: Annotated[str, typer.Argument(help="Event log dataset")],
        kind: Annotated[str, typer.Argument(help=" | ".join(ANALYSES))],
        version: VersionOpt = None,
        by: Annotated[str | None, typer.Option(help="Segment column (throughput)")] = None,
        freq: Annotated[
            str | None, typer.Option(help="day|week|month|quarter|year (volumes, workload)")
        ] = None,
        limit: Annotated[int | None, typer.Option(help="Rows (variants, bottlenecks)")] = None,
        start: FromOpt = None,
        end: ToOpt = None,
        period_mode: ModeOpt = "started",
        where: WhereOpt = None,
        lifecycle: LifecycleOpt = None,
        end_activity: EndOpt = None,
        engine: EngineOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """One analysis as a table (or JSON with provenance)."""
        from datenlabor.procedures import open_log

        if kind not in ANALYSES:
            raise BadInput(f"unknown analysis {kind!r}; choose {', '.join(ANALYSES)}")
        filters = _filters(start, end, period_mode, where, lifecycle)
        with open_log(
            open_pool(),
            slug,
            version,
            filters=filters,
            end_activities=end_activity,
            engine=_engine(engine),
        ) as log:
            calls: dict[str, Callable[[], Result]] = {
                "volumes": lambda: log.cases_over_time(freq or "month"),
                "throughput": lambda: log.throughput(by),
                "histogram": lambda: log.histogram(limit or 20),
                "waiting": log.waiting_times,
                "rework": log.rework,
                "workload": lambda: log.workload(freq),
                "variants": lambda: log.variants(limit),
                "dfg": log.dfg,
                "bottlenecks": lambda: log.bottlenecks(limit or 10),
            }
            result = calls[kind]()
        _print_result(result, as_json)

    @procedures.command("deadline")
    def deadline(
        slug: Annotated[str, typer.Argument(help="Event log dataset")],
        rule: Annotated[
            str, typer.Argument(help="'FROM -> TO within 3 months' (@start/@end for the case)")
        ],
        version: VersionOpt = None,
        by: Annotated[str | None, typer.Option(help="Segment column")] = None,
        freq: Annotated[str | None, typer.Option(help="Per period of the FROM event")] = None,
        start: FromOpt = None,
        end: ToOpt = None,
        period_mode: ModeOpt = "started",
        where: WhereOpt = None,
        end_activity: EndOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Deadline breaches: met, breached, overdue, open and the breach rate."""
        from datenlabor.procedures import open_log

        filters = _filters(start, end, period_mode, where, None)
        with open_log(
            open_pool(), slug, version, filters=filters, end_activities=end_activity
        ) as log:
            result = log.deadline(rule, by=by, freq=freq)
        _print_result(result, as_json)

    @procedures.command("simulate")
    def simulate_(
        cases: Annotated[int, typer.Option(help="Number of cases")] = 10_000,
        output: Annotated[
            Path | None, typer.Option("--output", "-o", help="Parquet or CSV file to write")
        ] = None,
        dataset: Annotated[
            str | None, typer.Option("--dataset", "-d", help="Store as this pool dataset")
        ] = None,
        seed: Annotated[int, typer.Option(help="Random seed (same seed, same log)")] = 0,
        start: Annotated[str, typer.Option(help="First arrival day YYYY-MM-DD")] = "2024-01-01",
        arrivals_per_day: Annotated[float, typer.Option(help="Mean arrivals per day")] = 400.0,
        seasonal_amplitude: Annotated[float, typer.Option(help="Yearly swing (0..1)")] = 0.2,
        laender: Annotated[
            str | None, typer.Option(help="Only Kreise of these Länder, e.g. 05,09")
        ] = None,
        deadline_: Annotated[
            str, typer.Option("--deadline", help="Statutory period, e.g. '3 months'")
        ] = "3 months",
        observe_until: Annotated[
            str | None, typer.Option(help="Cut events from this day on (open cases)")
        ] = None,
        fmt: Annotated[str | None, typer.Option("--format", help="parquet|csv")] = None,
    ) -> None:
        """Simulate a benefit procedure's event log (for demos and benchmarks)."""
        import tempfile

        from datenlabor.cli import err
        from datenlabor.pool.cleanup import work_prefix
        from datenlabor.procedures.deadline import parse_duration
        from datenlabor.procedures.simulate import Simulation, simulate, write_log

        if output is None and dataset is None:
            raise BadInput("give --output FILE and/or --dataset SLUG")
        parse_duration(deadline_)
        first = _date(start, "start")
        until = _date(observe_until, "observe_until")
        sim = Simulation(
            cases=cases,
            seed=seed,
            start=first.date() if first else dt.date(2024, 1, 1),
            arrivals_per_day=arrivals_per_day,
            seasonal_amplitude=seasonal_amplitude,
            laender=tuple(x.strip() for x in laender.split(",")) if laender else None,
            deadline=deadline_,
            observe_until=until.date() if until else None,
        )
        table = simulate(sim)
        if output is not None:
            write_log(table, output, fmt)
            err.print(f"[green]✓[/] wrote {output}: {table.num_rows:,} events, {cases:,} cases")
        if dataset is not None:
            pool = open_pool()
            with tempfile.TemporaryDirectory(dir=pool.root / "tmp", prefix=work_prefix()) as tmp:
                path = write_log(table, Path(tmp) / f"simulated-{dataset}.parquet")
                info = pool.ingest(path, dataset=dataset, format="parquet")
            pool.set_origin(
                dataset,
                {
                    "kind": "eventlog",
                    "format": "simulated",
                    "version": info.version,
                    "events": table.num_rows,
                    "cases": cases,
                    "seed": seed,
                    "deadline_rule": sim.deadline_rule(),
                },
            )
            err.print(f"[green]✓[/] {dataset} version {info.version}: {table.num_rows:,} events")
        err.print(f"Fristregel / deadline rule: {sim.deadline_rule()}", markup=False)
