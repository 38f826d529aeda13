"""Computing a dashboard for a caller: filters from the request, every tile through the
procedures library or the SQL sandbox, a cache keyed by what determines the numbers.

>>> state = parse_filters(spec, {"region": ["05"]})  # doctest: +SKIP
>>> tiles = render(gate, p, dashboard, state)  # doctest: +SKIP

(``parse_filters`` is in :mod:`datenlabor.dashboards.filters`.)

The cache key is (dashboard, version, tile, filters, and for each dataset read: its version
and the caller's view of it — hidden columns, row filters, protection). Two callers with the
same view share entries; a new dataset version or a changed grant gives a new key. Entries
hold no titles (those depend on the page language) and are never handed out to a caller
whose view differs.
"""

from __future__ import annotations

import calendar
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from datenlabor.dashboards import boundaries
from datenlabor.dashboards.access import (
    Protected,
    log_source,
    open_gated_log,
    sql_sources,
    view_signature,
)
from datenlabor.dashboards.filters import FilterState, _date, log_filters
from datenlabor.dashboards.spec import CHARTS, Spec, Tile, text_of
from datenlabor.dashboards.suppression import Control, Withheld, control_for, small, withhold
from datenlabor.dashboards.tile import TileData
from datenlabor.errors import BadInput, DatenlaborError, Forbidden, NotFound
from datenlabor.procedures.log import Filters

if TYPE_CHECKING:
    from datenlabor.access.principal import Principal
    from datenlabor.dashboards.access import GatedLog
    from datenlabor.dashboards.versions import DashboardVersion
    from datenlabor.service.gate import Gate
    from datenlabor.service.gate import Source as GateSource

CACHE_ENTRIES = 2048


# -- cache -----------------------------------------------------------------------------------
class _Cache:
    def __init__(self, entries: int) -> None:
        self.entries = entries
        self._data: OrderedDict[tuple[Any, ...], TileData] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> TileData | None:
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
            return hit

    def put(self, key: tuple[Any, ...], value: TileData) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.entries:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


CACHE = _Cache(CACHE_ENTRIES)


# -- rendering -------------------------------------------------------------------------------
class _Session:
    """Opened logs and resolved sources of one render call (closed at the end)."""

    def __init__(self, gate: Gate, p: Principal, spec: Spec) -> None:
        self.gate, self.p, self.spec = gate, p, spec
        self.sources: dict[str, list[GateSource] | DatenlaborError] = {}
        self.logs: dict[tuple[str, str], GatedLog] = {}
        self.read: dict[str, GateSource] = {}
        self.controls: dict[str, Control | None] = {}

    def control(self, name: str, gsources: list[GateSource]) -> Control | None:
        """The disclosure control the caller's tiles over source ``name`` need."""
        if name not in self.controls:
            self.controls[name] = control_for(self.gate, self.p, self.spec, gsources)
        return self.controls[name]

    def resolve(self, name: str) -> list[GateSource]:
        if name not in self.sources:
            src = self.spec.sources[name]
            try:
                if src.kind == "log":
                    self.sources[name] = [log_source(self.gate, self.p, src)]
                elif src.kind == "dataset":
                    assert src.dataset is not None
                    self.sources[name] = [self.gate.source(self.p, src.dataset, src.version)]
                else:
                    assert src.sql is not None
                    self.sources[name] = sql_sources(self.gate, self.p, src.sql)
            except (NotFound, Forbidden, Protected, BadInput) as exc:
                self.sources[name] = exc
        got = self.sources[name]
        if isinstance(got, DatenlaborError):
            raise got
        return got

    def log(self, name: str, filters: Filters) -> GatedLog:
        key = (name, json.dumps(filters.to_dict(), sort_keys=True, default=str))
        if key not in self.logs:
            (gsrc,) = self.resolve(name)
            self.logs[key] = open_gated_log(self.gate, gsrc, self.spec.sources[name], filters)
            self.read[gsrc.slug] = gsrc
        return self.logs[key]

    def close(self) -> None:
        for log in self.logs.values():
            log.close()
        self.logs.clear()


def _title(tile: Tile, lang: str) -> str:
    return text_of(tile.title, lang) or tile.id


def render(
    gate: Gate,
    p: Principal,
    dash: DashboardVersion,
    state: FilterState,
    *,
    tiles: Sequence[str] | None = None,
    lang: str = "de",
    client: str | None = None,
    use_cache: bool = True,
) -> list[TileData]:
    """Compute (or take from the cache) the tiles of ``dash`` for caller ``p``."""
    spec = dash.spec
    chosen = [spec.tile(t) for t in tiles] if tiles is not None else list(spec.tiles)
    session = _Session(gate, p, spec)
    out: list[TileData] = []
    used: dict[str, GateSource] = {}
    # KPI tiles last: a deadline KPI then takes its totals from a chart or map of the same
    # rule already computed on the opened log (every deadline result carries the totals).
    order = sorted(range(len(chosen)), key=lambda i: chosen[i].type == "kpi")
    try:
        for tile in (chosen[i] for i in order):
            name, _src = spec.source_of(tile)
            blank = TileData(tile.id, tile.type, _title(tile, lang))
            try:
                gsources = session.resolve(name)
            except (NotFound, Forbidden) as exc:
                out.append(replace(blank, status="no_access", message=str(exc)))
                continue
            except Protected as exc:
                out.append(replace(blank, status="protected", message=str(exc)))
                continue
            except BadInput as exc:
                out.append(replace(blank, status="error", message=str(exc)))
                continue
            for s in gsources:
                used[s.slug] = s
            try:
                control = session.control(name, gsources)
            except DatenlaborError as exc:
                out.append(replace(blank, status="error", message=str(exc)))
                continue
            key = (
                dash.slug,
                dash.version,
                tile.id,
                state.key(),
                tuple(view_signature(s) for s in gsources),
                control.key() if control is not None else None,
            )
            hit = CACHE.get(key) if use_cache else None
            if hit is None:
                started = time.perf_counter()
                try:
                    hit = _compute(session, tile, name, state, client, control)
                except DatenlaborError as exc:
                    hit = TileData(tile.id, tile.type, "", status="error", message=str(exc))
                hit.provenance["computed_s"] = round(time.perf_counter() - started, 4)
                CACHE.put(key, hit)
            out.append(replace(hit, title=_title(tile, lang)))
    finally:
        session.close()
    if used:
        gate.record(
            p,
            "read",
            list(used.values()),
            client=client,
            detail={"dashboard": dash.slug, "version": dash.version, "filters": state.describe()},
        )
    by_id = {t.id: t for t in out}
    return [by_id[t.id] for t in chosen]


def _compute(
    session: _Session,
    tile: Tile,
    name: str,
    state: FilterState,
    client: str | None,
    control: Control | None = None,
) -> TileData:
    from datenlabor.dashboards import datatiles, logtiles

    spec = session.spec
    src = spec.sources[name]
    out = TileData(tile.id, tile.type, "")
    out.provenance = {"source": name}
    if control is not None:
        out.provenance["disclosure"] = control.provenance()
    if src.kind != "log":
        return datatiles.compute(
            session.gate, session.p, spec, tile, src, state, out, client=client, control=control
        )
    filters = log_filters(spec, state)
    if control is not None and tile.metric == "cases" and tile.type == "table":
        return withhold(out, control, WITHHELD_CASES)
    log = session.log(name, filters)
    out.provenance.update(
        datasets=[{"slug": log.slug, "version": log.version, "partial": not log.source.view.whole}],
        filters=filters.to_dict(),
    )
    if tile.type == "kpi":
        value, kind, basis = logtiles.kpi_value(log, tile)
        hidden = []
        if control is not None and any(small(n, control) for n in basis):
            value, hidden = None, ["value"]
        out.kpi = {"value": value, "kind": kind}
        prev_period = state.previous_period()
        if tile.trend and prev_period is not None:
            prev_log = session.log(name, log_filters(spec, state, prev_period))
            previous, _k, prev_basis = logtiles.kpi_value(prev_log, tile)
            if control is not None and any(small(n, control) for n in prev_basis):
                previous = None
                hidden.append("previous")
            change = (value - previous) / previous if value is not None and previous else None
            if hidden:
                change = None
                hidden.append("change")
            out.kpi.update(previous=previous, change=change)
            out.provenance["previous_period"] = [d.isoformat() for d in prev_period]
        if hidden:
            out.kpi["suppressed"] = hidden
        out.provenance["analysis"] = f"kpi {tile.measure}"
        return out
    if tile.type in (*CHARTS, "table"):
        return logtiles.chart_tile(log, tile, out, control)
    if tile.type == "histogram":
        return logtiles.histogram_tile(log, tile, out, control)
    if tile.type == "process_map":
        return logtiles.process_map_tile(log, tile, out, control)
    column = tile.key or next(f.column for f in spec.filters if f.type == "region" and f.column)
    return logtiles.map_tile(log, tile, column, out, control)


WITHHELD_CASES = "case lists are not shown to viewers without microdata access (disclosure control)"


# -- choices for the filter form -------------------------------------------------------------
def choices(gate: Gate, p: Principal, dash: DashboardVersion) -> dict[str, list[tuple[str, str]]]:
    """(value, label) options per region/select filter, from the first log source the
    caller may read (values the caller cannot see are not offered)."""
    spec = dash.spec
    out: dict[str, list[tuple[str, str]]] = {}
    log_name = next((n for n, s in spec.sources.items() if s.kind == "log"), None)
    session = _Session(gate, p, spec)
    key: tuple[Any, ...] | None = None
    if log_name is not None:
        try:
            (gsrc,) = session.resolve(log_name)
            key = (dash.slug, dash.version, "choices", view_signature(gsrc))
        except DatenlaborError:
            key = None
    if key is not None and (hit := CACHE.get(key)) is not None:
        return dict(hit.provenance["choices"])
    try:
        for f in spec.filters:
            if f.type == "period":
                continue
            if f.values is not None:
                out[f.id] = [(v, _label(f.type, f.level, v)) for v in f.values]
                continue
            if log_name is None or f.column is None:
                out[f.id] = []
                continue
            try:
                log = session.log(log_name, Filters())
                from datenlabor.dashboards import logtiles

                if f.type == "region":
                    keys = logtiles.region_choices(log, f.column, f.level)
                    out[f.id] = [(k, _label("region", f.level, k)) for k in keys]
                else:
                    out[f.id] = [(v, v) for v in logtiles.value_choices(log, f.column)]
            except DatenlaborError:
                out[f.id] = []
    finally:
        session.close()
    if key is not None:
        CACHE.put(key, TileData("choices", "choices", "", provenance={"choices": out}))
    return out


def _label(kind: str, level: str, key: str) -> str:
    if kind != "region":
        return key
    name = boundaries.names(level).get(key)
    return f"{name} ({key})" if name else key


# -- drill-down and export -------------------------------------------------------------------
def drill_filters(spec: Spec, state: FilterState, tile: Tile, drill: Mapping[str, str]) -> Filters:
    """The global filters narrowed to the clicked bar/region/period of ``tile``."""
    base = log_filters(spec, state)
    attributes = {k: list(v) for k, v in base.attributes.items()}
    start, end = base.start, base.end
    value = drill.get("value")
    if value:
        column = drill.get("column") or tile.by or tile.key
        if column is None:
            column = next((f.column for f in spec.filters if f.type == "region"), None)
        if column is None:
            raise BadInput("this tile has no column to drill down by", column="value")
        values = [value]
        if tile.type == "map" and tile.level == "land":
            values += [k for k in boundaries.names("kreis") if k[:2] == value]
        attributes[column] = values
    period = drill.get("period")
    if period:
        p0 = _date(period, "period")
        assert p0 is not None
        p1 = _period_end(p0, tile.freq)
        start = max(start, p0) if isinstance(start, date) else p0
        end = min(end, p1) if isinstance(end, date) else p1
    return Filters(start=start, end=end, period_mode=base.period_mode, attributes=attributes)


def _period_end(p0: date, freq: str) -> date:
    if freq == "day":
        return p0 + timedelta(days=1)
    if freq == "week":
        return p0 + timedelta(days=7)
    months = {"month": 1, "quarter": 3, "year": 12}[freq]
    y, m = divmod(p0.month - 1 + months, 12)
    return date(p0.year + y, m + 1, min(p0.day, calendar.monthrange(p0.year + y, m + 1)[1]))


def cases(
    gate: Gate,
    p: Principal,
    dash: DashboardVersion,
    state: FilterState,
    tile_id: str,
    drill: Mapping[str, str],
    *,
    limit: int = 200,
    client: str | None = None,
) -> tuple[TileData, dict[str, Any]]:
    """The cases behind a number of tile ``tile_id`` (a procedure-log tile)."""
    from datenlabor.dashboards import logtiles

    spec = dash.spec
    tile = spec.tile(tile_id)
    name, src = spec.source_of(tile)
    if src.kind != "log":
        raise BadInput("only tiles over a procedure log drill down to cases", column="tile")
    session = _Session(gate, p, spec)
    try:
        (gsrc,) = session.resolve(name)
        control = session.control(name, [gsrc])
        if control is not None:
            raise Withheld(
                "the cases behind a number are not shown to viewers without microdata access "
                f"to {', '.join(control.datasets) or gsrc.slug!r} (disclosure control)"
            )
        filters = drill_filters(spec, state, tile, drill)
        log = session.log(name, filters)
        spec_drill: dict[str, Any] = {}
        if drill.get("from") and drill.get("to"):
            spec_drill["edge"] = (drill["from"], drill["to"])
        if drill.get("activity"):
            spec_drill["activity"] = drill["activity"]
        if drill.get("variant"):
            try:
                spec_drill["variant"] = json.loads(drill["variant"])
            except ValueError:
                raise BadInput("variant is a JSON list of activities", column="variant") from None
        if drill.get("breach") and tile.deadline:
            spec_drill.update(breach=True, deadline=tile.deadline)
        result = logtiles.case_rows(log, spec_drill, limit=limit)
        out = TileData(tile.id, "table", text_of(tile.title, "de") or tile.id)
        from datenlabor.dashboards.tile import fill

        table = result.table
        if "case_no" in table.column_names:  # an internal number; case_id names the case
            table = table.drop(["case_no"])
        fill(out, table)
        out.provenance = dict(result.provenance, analysis=result.name, drill=dict(drill))
        total = result.totals.get("cases", len(out.rows))
        gate.record(
            p, "read", list(session.read.values()), client=client,
            detail={"dashboard": dash.slug, "drill": dict(drill), "tile": tile.id},
        )  # fmt: skip
        return out, {"total": total, "shown": len(out.rows)}
    finally:
        session.close()
