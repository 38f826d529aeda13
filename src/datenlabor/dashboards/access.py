"""How a dashboard tile reads data: always through the :class:`~datenlabor.service.gate.Gate`
for the caller, never around it.

- Procedure logs: :func:`open_gated_log` resolves the caller's view of the log dataset
  (``Gate.source``): a dataset the caller may not see raises ``NotFound`` (the tile shows
  "no access"); a grant's row filter narrows the events every analysis sees; hidden columns
  cannot be filtered or segmented by; a confidential log read without microdata access is
  refused with :class:`Protected` (procedure analyses need the events themselves).
- Datasets and SQL: :func:`run_sql` checks the query with the SQL sandbox and runs it over
  the caller's views exactly as ``Gate.sql`` does (confidential datasets are answered from
  their protected table), but without ``Gate.sql``'s analyst-role requirement: the SQL of a
  dashboard is written by the steward who saved it, not by the viewer, and every viewer
  still reads only what they may see. Every read is written to the audit log.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import numpy as np

from datenlabor.errors import DatenlaborError
from datenlabor.procedures.log import REQUIRED, Filters, ProcedureLog
from datenlabor.procedures.traces import Traces, load_traces
from datenlabor.query.connection import quote_literal

if TYPE_CHECKING:
    from datenlabor.access.principal import Principal
    from datenlabor.dashboards.spec import Source as SpecSource
    from datenlabor.service.gate import Gate, SqlResult
    from datenlabor.service.gate import Source as GateSource


class Protected(DatenlaborError):
    """The caller sees only the protected aggregate table of a confidential dataset."""

    exit_code = 5


def view_signature(src: GateSource) -> str:
    """What distinguishes this caller's view of a version from another caller's."""
    v = src.view
    data = [src.slug, src.version, sorted(v.hidden_columns), list(v.row_filters), v.protected]
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:16]


class GatedLog(ProcedureLog):
    """A :class:`ProcedureLog` over only the events the caller may see."""

    def __init__(
        self,
        gate: Gate,
        src: GateSource,
        *,
        filters: Filters | None,
        end_activities: list[str] | None,
        timezone: str,
    ) -> None:
        self._row_predicate = src.view.row_predicate()
        self._hidden = set(src.view.hidden_columns)
        self.source = src
        super().__init__(
            gate.pool,
            src.slug,
            src.version,
            filters=filters,
            end_activities=end_activities,
            timezone=timezone,
        )

    def _events_sql(self) -> str:
        # Called once by ProcedureLog.__init__ after it created the view ``src`` over all
        # files: narrow ``src`` itself, so every analysis and every filter sub-query (which
        # all read ``src`` or ``ev``) sees only the granted rows.
        if self._row_predicate:
            listed = ", ".join(quote_literal(str(f)) for f in self.files)
            self.con.execute(
                f"CREATE OR REPLACE TEMP VIEW src AS SELECT * FROM read_parquet([{listed}]) "
                f"WHERE ({self._row_predicate})"
            )
        self.columns = [c for c in self.columns if c not in self._hidden]
        return super()._events_sql()

    def materialise(self) -> None:
        """Keep the filtered events in a temporary table (spilled to disk when large).

        ``ev`` is a view whose filters (period per case, attribute sub-queries) DuckDB would
        evaluate again in each of the dozen queries a dashboard runs on one log; measured on
        10 M events with a Land and a channel filter, that made a cold render 4x slower.
        """
        if not self.filters.to_dict() and not self._row_predicate:
            return  # ``ev`` is the plain Parquet scan
        self.con.execute("CREATE TEMP TABLE __ev AS SELECT * FROM ev")
        self.con.execute("CREATE OR REPLACE TEMP VIEW ev AS SELECT * FROM __ev")

    def traces(self) -> Traces:
        if self._traces is None and self._row_predicate and not self.filters.to_dict():
            kept = self.con.execute("SELECT seq FROM ev").fetchnumpy()["seq"]
            self._traces = load_traces(self.files, np.sort(np.asarray(kept, dtype=np.int64)))
        return super().traces()


def log_source(gate: Gate, p: Principal, spec_source: SpecSource) -> GateSource:
    """The caller's view of a log source; ``NotFound`` or :class:`Protected` if unusable."""
    assert spec_source.log is not None
    src = gate.source(p, spec_source.log, spec_source.version)
    if src.view.protected:
        raise Protected(
            f"{spec_source.log!r} is confidential: you see its protected aggregate table only"
        )
    hidden = [c for c in REQUIRED if c in src.view.hidden_columns]
    if hidden:
        from datenlabor.errors import Forbidden

        raise Forbidden(f"your grant hides the log column(s) {', '.join(hidden)}")
    return src


def open_gated_log(
    gate: Gate, src: GateSource, spec_source: SpecSource, filters: Filters
) -> GatedLog:
    log = GatedLog(
        gate,
        src,
        filters=filters,
        end_activities=spec_source.end_activities,
        timezone=spec_source.timezone,
    )
    try:
        log.materialise()
    except BaseException:
        log.close()
        raise
    return log


def sql_sources(gate: Gate, p: Principal, sql: str) -> list[GateSource]:
    """The caller's views of the datasets ``sql`` reads (NotFound if one is not visible)."""
    from datenlabor.query.sandbox import check_select

    checked = check_select(sql)
    return [gate.source(p, t.slug, t.version) for t in checked.tables]


def run_sql(
    gate: Gate, p: Principal, sql: str, *, client: str | None = None, max_rows: int = 10_000
) -> SqlResult:
    """Run the dashboard's read-only ``sql`` over the caller's views (see the module
    documentation); the steward who saved the dashboard wrote it, so no SQL role is needed."""
    return gate.run_sql(p, sql, max_rows=max_rows, client=client, detail={"dashboard": True})


def audit_log_read(
    gate: Gate, p: Principal, sources: list[GateSource], detail: dict[str, Any], client: str | None
) -> None:
    gate.record(p, "read", sources, client=client, detail=detail)
