"""An event log version opened for analysis: filters, the case table and provenance.

>>> from datenlabor.procedures import Filters, open_log
>>> with open_log(pool, "receipt", filters=Filters(attributes={"case:channel": ["Internet"]})
...               ) as log:                                        # doctest: +SKIP
...     log.summary()["throughput_median_s"]
...     log.dfg().table                                            # pyarrow.Table

Every analysis is one DuckDB query over the version's Parquet files; the filtered events are
the view ``ev`` and the per-case table ``cases`` (materialised once per opened log).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from datenlabor.errors import BadInput
from datenlabor.pool.cleanup import work_prefix
from datenlabor.procedures.eventlog import DEFAULT_TIMEZONE
from datenlabor.procedures.traces import Traces, load_traces
from datenlabor.query.connection import connect, quote_ident, quote_literal

if TYPE_CHECKING:
    from datenlabor.pool.pool import Pool
    from datenlabor.procedures.deadline import DeadlineRule

PERIOD_MODES = ("started", "completed", "intersecting", "events")
REQUIRED = ("seq", "case_no", "case_id", "activity", "timestamp")


@dataclass(frozen=True)
class Filters:
    """What a dashboard's global filters select; applied the same way by every analysis.

    - ``start``/``end``: a period (``end`` exclusive), dates in the log's time zone.
      ``period_mode`` says which cases it selects: ``started`` (first event in the period,
      default), ``completed`` (last event in it), ``intersecting`` (active in it), or
      ``events`` (only the events in the period; traces are cut).
    - ``attributes``: column -> allowed values; a case is kept when one of its events has
      an allowed value (so case attributes like region select cases, and a resource selects
      the cases it touched). Values are compared as text.
    - ``lifecycle``: keep only events with these lifecycle transitions (e.g. ``["complete"]``);
      events without a lifecycle are always kept.
    """

    start: date | datetime | None = None
    end: date | datetime | None = None
    period_mode: str = "started"
    attributes: dict[str, list[Any]] = field(default_factory=dict)
    lifecycle: list[str] | None = None

    def __post_init__(self) -> None:
        if self.period_mode not in PERIOD_MODES:
            raise BadInput(
                f"unknown period mode {self.period_mode!r}; choose {', '.join(PERIOD_MODES)}",
                column="period_mode",
            )

    @property
    def whole_cases(self) -> bool:
        """True if the filters keep or drop whole cases (no event of a kept case is lost)."""
        return self.lifecycle is None and not (
            self.period_mode == "events" and (self.start or self.end)
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("start", "end"):
            if d[k] is not None:
                d[k] = d[k].isoformat()
        if self.start is None and self.end is None:
            d.pop("period_mode")
        return {k: v for k, v in d.items() if v not in (None, {}, [])}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Filters:
        data = dict(data or {})
        for k in ("start", "end"):
            if isinstance(data.get(k), str):
                try:
                    data[k] = datetime.fromisoformat(data[k])
                except ValueError as exc:
                    raise BadInput(f"not a date or time: {data[k]!r}", column=k) from exc
        unknown = set(data) - {"start", "end", "period_mode", "attributes", "lifecycle"}
        if unknown:
            raise BadInput(f"unknown filter(s): {', '.join(sorted(unknown))}")
        return cls(**data)


@dataclass
class Result:
    """One analysis result: rows for a table/chart, headline figures, and where it comes from.

    ``provenance`` names the dataset slug and version number, the filters and settings, so a
    dashboard can show where each number comes from.
    """

    name: str
    table: pa.Table
    provenance: dict[str, Any]
    totals: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        return self.table.to_pylist()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rows": self.rows(),
            "totals": self.totals,
            "provenance": self.provenance,
        }


def _literal(value: date | datetime) -> str:
    if isinstance(value, datetime):
        text = value.isoformat(sep=" ")
    else:
        text = f"{value.isoformat()} 00:00:00"
    return f"CAST({quote_literal(text)} AS TIMESTAMPTZ)"


class ProcedureLog:
    """A version of an event-log dataset with filters applied, ready for analyses.

    ``end_activities``: activities that close a case. Cases whose last event is not one of
    them count as open (no completion time). ``None`` (default) treats every case as
    completed at its last event, as pm4py does.
    """

    def __init__(
        self,
        pool: Pool,
        slug: str,
        version: int | None = None,
        *,
        filters: Filters | None = None,
        end_activities: list[str] | None = None,
        timezone: str = DEFAULT_TIMEZONE,
        engine: str | None = None,
    ) -> None:
        from datenlabor.engines import check_engine

        self.engine = check_engine(engine, pool.settings)
        handle = pool.dataset(slug)
        info = handle.version(version)
        self.slug, self.version = slug, info.version
        self.filters = filters or Filters()
        self.end_activities = list(end_activities) if end_activities else None
        self.timezone = timezone
        files, schema = handle.files(info.version)
        missing = [c for c in REQUIRED if c not in schema.names]
        if missing:
            raise BadInput(
                f"dataset {slug!r} version {info.version} is not an event log (missing "
                f"{', '.join(missing)}); import it with `datenlabor procedures import`",
                column=missing[0],
            )
        self.columns = list(schema.names)
        self.files = files
        # A temp folder of its own: DuckDB connections sharing one spill folder overwrite
        # each other's spill files.
        self._tmp = Path(tempfile.mkdtemp(dir=pool.root / "tmp", prefix=work_prefix() + "log-"))
        self.con: Any
        if self.engine == "spark":
            from datenlabor.engines.spark import SparkConnection

            self.con = SparkConnection(pool.settings, timezone=timezone)
        else:
            self.con = connect(temp_dir=self._tmp, memory_limit=pool.settings.duckdb_memory)
        try:
            self.con.execute(f"SET TimeZone = {quote_literal(timezone)}")
            if self.engine == "spark":
                self.con.register_files("src", files, schema)
            else:
                listed = ", ".join(quote_literal(str(f)) for f in files)
                self.con.execute(f"CREATE TEMP VIEW src AS SELECT * FROM read_parquet([{listed}])")
            self.con.execute(f"CREATE TEMP VIEW ev AS {self._events_sql()}")
        except BaseException as exc:
            self.close()
            if isinstance(exc, duckdb.Error):
                raise BadInput(f"cannot apply the filters: {exc}") from exc
            raise
        self._traces: Traces | None = None
        self._registered: dict[str, pa.Table] = {}
        self.segments: dict[str, str] = {}  # column -> temp table of each case's segment

    # -- set-up -------------------------------------------------------------------------
    def _events_sql(self) -> str:
        f = self.filters
        where: list[str] = []
        if f.lifecycle is not None:
            if "lifecycle" not in self.columns:
                raise BadInput("the log has no lifecycle column", column="lifecycle")
            allowed = ", ".join(quote_literal(v) for v in f.lifecycle)
            where.append(f"(lifecycle IS NULL OR lifecycle IN ({allowed}))")
        for col, values in f.attributes.items():
            if col not in self.columns:
                raise BadInput(
                    f"filter column {col!r} not in the log; columns: {', '.join(self.columns)}",
                    column=col,
                )
            if not values:
                where.append("false")
                continue
            allowed = ", ".join(quote_literal(str(v)) for v in values)
            where.append(
                f"case_no IN (SELECT case_no FROM src WHERE "
                f"CAST({quote_ident(col)} AS VARCHAR) IN ({allowed}))"
            )
        lo = _literal(f.start) if f.start is not None else None
        hi = _literal(f.end) if f.end is not None else None
        if lo or hi:
            if f.period_mode == "events":
                if lo:
                    where.append(f"timestamp >= {lo}")
                if hi:
                    where.append(f"timestamp < {hi}")
            else:
                conds = []
                first, last = "min(timestamp)", "max(timestamp)"
                if f.period_mode == "started":
                    conds += [f"{first} >= {lo}"] if lo else []
                    conds += [f"{first} < {hi}"] if hi else []
                elif f.period_mode == "completed":
                    conds += [f"{last} >= {lo}"] if lo else []
                    conds += [f"{last} < {hi}"] if hi else []
                else:
                    conds += [f"{last} >= {lo}"] if lo else []
                    conds += [f"{first} < {hi}"] if hi else []
                where.append(
                    "case_no IN (SELECT case_no FROM src GROUP BY case_no "
                    f"HAVING {' AND '.join(conds)})"
                )
        return "SELECT * FROM src" + (f" WHERE {' AND '.join(where)}" if where else "")

    def traces(self) -> Traces:
        """The (filtered) events in ``seq`` order with case boundaries (read once)."""
        if self.engine != "duckdb":
            # Only the start/end counts exist off DuckDB (the Python trace arrays would pull
            # every event to the driver); see start_end_counts.
            return _SqlTraces(self)  # type: ignore[return-value]
        if self._traces is None:
            self._traces = load_traces(self.con, "ev")
        return self._traces

    def start_end_counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """Cases per first activity and per last activity, most frequent first."""
        if self.engine == "duckdb":
            return self.traces().start_end_counts()
        return _SqlTraces(self).start_end_counts()

    def _define(self, name: str, sql: str) -> str:
        """Off DuckDB: the relation ``name`` from SQL instead of the Python traces (the same
        columns and values as the traces' tables; computed once per opened log)."""
        if name not in self._registered:
            self.con.execute(f"CREATE TEMP TABLE {name} AS {sql}")
            self._registered[name] = pa.table({})
        return name

    def _register(self, name: str, make: Callable[[], pa.Table]) -> str:
        if name not in self._registered:
            self._registered[name] = make()  # DuckDB reads it in place; keep it alive
            self.con.register(name, self._registered[name])
        return name

    def ensure_cases(self) -> str:
        """The per-case table ``cases`` (built once); returns its name.

        Columns: case_no, start, end, events, duration_s (first to last event),
        last_activity, completed_at (NULL for open cases, see ``end_activities``).
        """
        if "cases" not in self._registered:
            if self.engine != "duckdb":
                self._define("cases_base", _CASES_SQL)
            else:
                self._register("cases_base", lambda: self.traces().cases_table())
            if self.end_activities is None:
                completed = '"end"'
            else:
                ends = ", ".join(quote_literal(a) for a in self.end_activities)
                completed = f'CASE WHEN last_activity IN ({ends}) THEN "end" END'
            self.con.execute(
                f"CREATE TEMP VIEW cases AS SELECT *, {completed} AS completed_at FROM cases_base"
            )
            self._registered["cases"] = self._registered["cases_base"]
        return "cases"

    def ensure_pairs(self) -> str:
        """``pairs``: directly-follows pairs (case_no, a, b activity codes, d seconds);
        ``activity_names`` (code, name) names the codes."""
        if self.engine != "duckdb":
            self._define("activity_names", _NAMES_SQL)
            return self._define("pairs", _PAIRS_SQL)
        self._register("activity_names", lambda: self.traces().names_table())
        return self._register("pairs", lambda: self.traces().pairs_table())

    def ensure_edges(self) -> str:
        """``edges``: per directly-follows edge (a, b codes) count and duration statistics."""
        if self.engine != "duckdb":
            from datenlabor.procedures.kpis import duration_stats

            return self._define(
                "edges",
                f"SELECT a, b, count(*) AS count, {duration_stats('d')}, sum(d) AS total_s "
                f"FROM {self.ensure_pairs()} GROUP BY a, b",
            )
        self._register("activity_names", lambda: self.traces().names_table())
        if "edges" not in self._registered:
            table = self.traces().edges_table()
            if table is None:  # very many distinct edges: aggregate the pairs in SQL
                from datenlabor.procedures.kpis import UNPACK_STATS, duration_stats_grouped

                self.con.execute(
                    f"CREATE TEMP TABLE edges AS SELECT a, b, count, {UNPACK_STATS}, total_s "
                    f"FROM (SELECT a, b, count(*) AS count, {duration_stats_grouped('d')}, "
                    f"sum(d) AS total_s FROM {self.ensure_pairs()} GROUP BY a, b)"
                )
                self._registered["edges"] = pa.table({})
            else:
                self._register("edges", lambda: table)
        return "edges"

    def ensure_variants(self) -> str:
        """``case_variants`` (case_no, variant, duration_s) and ``variant_codes`` (variant,
        codes list); returns the name of the first."""
        if self.engine != "duckdb":
            seqs, cases = self.ensure_sequences(), self.ensure_cases()
            self._define(
                "variant_codes",
                "SELECT row_number() OVER (ORDER BY codes) - 1 AS variant, codes "
                f"FROM (SELECT DISTINCT codes FROM {seqs})",
            )
            return self._define(
                "case_variants",
                "SELECT s.case_no, v.variant, c.duration_s FROM "
                f"{seqs} s JOIN variant_codes v USING (codes) JOIN {cases} c USING (case_no)",
            )
        self._register("activity_names", lambda: self.traces().names_table())
        if "case_variants" not in self._registered:
            tables = self.traces().variants_table()
            if tables is None:  # a hash collision: group the sequences in SQL instead
                seqs = self.ensure_sequences()
                cases = self.ensure_cases()
                self.con.execute(
                    "CREATE TEMP TABLE variant_codes AS SELECT row_number() OVER "
                    f"(ORDER BY codes) - 1 AS variant, codes FROM (SELECT DISTINCT codes FROM {seqs})"
                )
                self.con.execute(
                    "CREATE TEMP TABLE case_variants AS SELECT s.case_no, v.variant, c.duration_s "
                    f"FROM {seqs} s JOIN variant_codes v USING (codes) JOIN {cases} c USING (case_no)"
                )
                self._registered["case_variants"] = self._registered["variant_codes"] = pa.table({})
            else:
                self._register("case_variants", lambda: tables[0])
                self._register("variant_codes", lambda: tables[1])
        return "case_variants"

    def ensure_sequences(self) -> str:
        """``sequences``: case_no and the case's activity codes as a list, in order;
        ``activity_names`` (code, name) names the codes."""
        if self.engine != "duckdb":
            self._define("activity_names", _NAMES_SQL)
            return self._define("sequences", _SEQUENCES_SQL)
        self._register("activity_names", lambda: self.traces().names_table())
        return self._register("sequences", lambda: self.traces().traces_table())

    def ensure_segment(self, by: str) -> str:
        """A temp table (case_no, segment): each case's value of column ``by`` at its first
        event where it is set. Built once per column and opened log: a dashboard groups
        several tiles by the same column, and each grouping of all events costs about as
        much as the tile's own query."""
        if by not in self.segments:
            from datenlabor.procedures.kpis import segment_query

            name = f"__segment_{len(self.segments)}"
            self.con.execute(f"CREATE TEMP TABLE {name} AS {segment_query(self.check_column(by))}")
            self.segments[by] = name
        return self.segments[by]

    def case_ids_sql(self, cases: str) -> str:
        """SQL mapping the case_no of relation ``cases`` (a few rows) to their case ids."""
        return (
            f"SELECT DISTINCT case_no, case_id FROM src WHERE case_no IN "
            f"(SELECT case_no FROM {cases})"
        )

    def check_column(self, col: str) -> str:
        if col not in self.columns:
            raise BadInput(
                f"column {col!r} not in the log; columns: {', '.join(self.columns)}", column=col
            )
        return quote_ident(col)

    # -- plumbing -----------------------------------------------------------------------
    @property
    def provenance(self) -> dict[str, Any]:
        p: dict[str, Any] = {"dataset": self.slug, "version": self.version}
        if self.filters.to_dict():
            p["filters"] = self.filters.to_dict()
        if self.end_activities is not None:
            p["end_activities"] = self.end_activities
        p["timezone"] = self.timezone
        return p

    def arrow(self, sql: str) -> pa.Table:
        return self.con.execute(sql).to_arrow_table()

    def result(self, name: str, sql: str, **totals: Any) -> Result:
        return Result(name=name, table=self.arrow(sql), provenance=self.provenance, totals=totals)

    def close(self) -> None:
        self.con.close()
        self._registered = {}
        self.segments = {}
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> ProcedureLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- analyses (thin delegations; see the modules for definitions) -------------------
    def summary(self, *, dfg_limit: int | None = None) -> dict[str, Any]:
        from datenlabor.procedures.kpis import summary

        return summary(self, dfg_limit=dfg_limit)

    def cases_over_time(self, freq: str = "month") -> Result:
        from datenlabor.procedures.kpis import cases_over_time

        return cases_over_time(self, freq)

    def backlog(self, freq: str = "month") -> Result:
        from datenlabor.procedures.kpis import cases_over_time

        return cases_over_time(self, freq)

    def throughput(self, by: str | None = None) -> Result:
        from datenlabor.procedures.kpis import throughput

        return throughput(self, by)

    def histogram(self, bins: int = 20) -> Result:
        from datenlabor.procedures.kpis import histogram

        return histogram(self, bins)

    def waiting_times(self) -> Result:
        from datenlabor.procedures.kpis import waiting_times

        return waiting_times(self)

    def rework(self) -> Result:
        from datenlabor.procedures.kpis import rework

        return rework(self)

    def workload(self, freq: str | None = None) -> Result:
        from datenlabor.procedures.kpis import workload

        return workload(self, freq)

    def variants(self, limit: int | None = None) -> Result:
        from datenlabor.procedures.variants import variants

        return variants(self, limit)

    def dfg(self) -> Result:
        from datenlabor.procedures.dfg import dfg

        return dfg(self)

    def bottlenecks(self, limit: int | None = 10) -> Result:
        from datenlabor.procedures.dfg import bottlenecks

        return bottlenecks(self, limit)

    def deadline(
        self, rule: DeadlineRule | str, *, by: str | None = None, freq: str | None = None
    ) -> Result:
        from datenlabor.procedures.deadline import check_deadline

        return check_deadline(self, rule, by=by, freq=freq)

    def cases(self, **drill: Any) -> Result:
        from datenlabor.procedures.kpis import case_list

        return case_list(self, **drill)


def open_log(
    pool: Pool,
    slug: str,
    version: int | None = None,
    *,
    filters: Filters | dict[str, Any] | None = None,
    end_activities: list[str] | None = None,
    timezone: str = DEFAULT_TIMEZONE,
    engine: str | None = None,
) -> ProcedureLog:
    """Open version ``version`` (default: current) of event log ``slug`` for analysis
    on ``engine`` (default: the configured one, DuckDB unless set)."""
    if isinstance(filters, dict):
        filters = Filters.from_dict(filters)
    return ProcedureLog(
        pool,
        slug,
        version,
        filters=filters,
        end_activities=end_activities,
        timezone=timezone,
        engine=engine,
    )


# The per-case and per-pair relations in SQL, for engines other than DuckDB (where they come
# from the Python traces, faster on one machine). Same columns, types and values: events in
# ``seq`` order, activity codes numbering the activity names alphabetically from 0.
_NAMES_SQL = (
    "SELECT CAST(row_number() OVER (ORDER BY activity) - 1 AS INTEGER) AS code, activity AS name "
    "FROM (SELECT DISTINCT activity FROM ev WHERE activity IS NOT NULL)"
)
_CASES_SQL = (
    'SELECT case_no, arg_min(timestamp, seq) AS start, arg_max(timestamp, seq) AS "end", '
    "count(*) AS events, date_diff('microsecond', arg_min(timestamp, seq), "
    "arg_max(timestamp, seq)) / 1e6 AS duration_s, arg_max(activity, seq) AS last_activity "
    "FROM ev GROUP BY case_no"
)
_PAIRS_SQL = (
    "SELECT case_no, a, b, d FROM (SELECT e.case_no, lag(n.code) OVER w AS a, n.code AS b, "
    "date_diff('microsecond', lag(e.timestamp) OVER w, e.timestamp) / 1e6 AS d "
    "FROM ev e JOIN activity_names n ON n.name = e.activity "
    "WINDOW w AS (PARTITION BY e.case_no ORDER BY e.seq)) WHERE a IS NOT NULL"
)
_SEQUENCES_SQL = (
    "SELECT e.case_no, list(n.code ORDER BY e.seq) AS codes FROM ev e "
    "JOIN activity_names n ON n.name = e.activity GROUP BY e.case_no"
)


class _SqlTraces:
    """What the analyses need of :class:`Traces` off DuckDB, computed in SQL."""

    def __init__(self, log: ProcedureLog) -> None:
        self.log = log

    def start_end_counts(self) -> tuple[dict[str, int], dict[str, int]]:
        ends = (
            "SELECT arg_min(activity, seq) AS first_activity, "
            "arg_max(activity, seq) AS last_activity "
            "FROM ev GROUP BY case_no"
        )
        counts = []
        for col in ("first_activity", "last_activity"):
            rows = self.log.con.execute(
                f"SELECT {col}, count(*) AS n FROM ({ends}) WHERE {col} IS NOT NULL "
                f"GROUP BY {col} ORDER BY n DESC, {col}"
            ).fetchall()
            counts.append({str(name): int(n) for name, n in rows})
        return counts[0], counts[1]
