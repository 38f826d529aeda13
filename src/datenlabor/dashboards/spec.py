"""Dashboard specifications: YAML in, validated models out, errors naming line and field.

A spec declares its data sources (procedure logs, pool datasets, SQL), global filters and
tiles; ``docs/dashboards.md`` is the reference. Example::

    title: Anträge auf Wohngeld
    sources:
      log: {log: wohngeld-log}
    filters:
      - {id: period, type: period, default: {start: 2024-01-01}}
      - {id: region, type: region, column: region, level: kreis}
    tiles:
      - {id: cases, type: kpi, title: Fälle, measure: cases}
      - {id: map, type: map, title: Durchlaufzeit nach Kreis, value: throughput_median}

>>> load_spec("title: x\\nsources: {l: {log: a}}\\ntiles: [{id: k, type: kpi, measure: cases}]"
...           ).tiles[0].source
'l'
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from datenlabor.errors import BadInput

SLUG = r"^[a-z][a-z0-9_-]{0,62}$"
FREQS = ("day", "week", "month", "quarter", "year")
TILE_TYPES = ("kpi", "line", "bar", "area", "table", "histogram", "process_map", "map")
CHARTS = ("line", "bar", "area")
# What a tile over a procedure log may show (see docs/dashboards.md for each definition).
KPI_MEASURES = (
    "cases", "events", "variants", "completed_cases", "open_cases", "throughput_median",
    "throughput_mean", "throughput_p90", "breaches", "breach_rate", "rework_rate",
)  # fmt: skip
LOG_METRICS = (
    "cases_over_time", "throughput", "deadline", "waiting_times", "rework", "workload",
    "variants", "bottlenecks", "dfg", "cases",
)  # fmt: skip
MAP_VALUES = ("cases", "throughput_median", "throughput_mean", "breach_rate", "breaches")
AGGS = ("sum", "count", "avg", "min", "max", "median")

Text = str | dict[Literal["de", "en"], str]


def text_of(value: Text | None, lang: str) -> str:
    """The text in ``lang`` (German first, then whatever is there)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return value.get(lang) or value.get("de") or next(iter(value.values()), "")  # type: ignore[call-overload]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Model):
    """Exactly one of ``log`` (an event-log dataset), ``dataset`` or ``sql``."""

    log: str | None = None
    dataset: str | None = None
    sql: str | None = None
    version: int | None = Field(default=None, ge=1)
    end_activities: list[str] | None = None
    timezone: str = "Europe/Berlin"
    # filter id -> column of this source the filter applies to (datasets and SQL results)
    columns: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_kind(self) -> Source:
        given = [k for k in ("log", "dataset", "sql") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("a source has exactly one of log, dataset or sql")
        if self.sql is not None and self.version is not None:
            raise ValueError("version applies to log and dataset sources, not to sql")
        return self

    @property
    def kind(self) -> str:
        return "log" if self.log else "dataset" if self.dataset else "sql"

    @property
    def slug(self) -> str | None:
        return self.log or self.dataset


class Filter(_Model):
    id: str = Field(pattern=SLUG)
    type: Literal["period", "region", "select"]
    label: Text | None = None
    column: str | None = None  # the log column (region/select); datasets map via columns
    level: Literal["land", "kreis"] = "kreis"  # region: which keys the choices are
    values: list[str] | None = None  # select: the choices (default: values in the log)
    mode: Literal["started", "completed", "intersecting", "events"] = "started"
    default: Any = None

    @model_validator(mode="after")
    def _column(self) -> Filter:
        if self.type in ("region", "select") and not self.column:
            raise ValueError(f"a {self.type} filter needs the log column it selects (column)")
        if self.type == "period" and self.default is not None:
            if not isinstance(self.default, dict) or set(self.default) - {"start", "end"}:
                raise ValueError("a period default is {start: YYYY-MM-DD, end: YYYY-MM-DD}")
            for v in self.default.values():
                if v is not None and not isinstance(v, date | datetime | str):
                    raise ValueError("period dates are YYYY-MM-DD")
        return self


class Tile(_Model):
    id: str = Field(pattern=SLUG)
    type: Literal["kpi", "line", "bar", "area", "table", "histogram", "process_map", "map"]
    title: Text | None = None
    description: Text | None = None
    source: str | None = None  # id in sources (default: the first)
    width: Literal[1, 2, 3] = 1  # columns of the grid the tile spans
    # procedure logs
    measure: str | None = None  # kpi measure, or process map: frequency | performance
    metric: str | None = None  # chart/table: which analysis
    by: str | None = None  # segment column (throughput, deadline)
    freq: Literal["day", "week", "month", "quarter", "year"] = "month"
    deadline: str | None = None  # "FROM -> TO within 3 months"
    bins: int = Field(default=20, ge=1, le=200)
    limit: int = Field(default=20, ge=1, le=1000)
    trend: bool = True
    # datasets and SQL results
    x: str | None = None
    y: list[str] | None = None
    agg: Literal["sum", "count", "avg", "min", "max", "median"] = "sum"
    # maps
    level: Literal["land", "kreis"] = "kreis"
    key: str | None = None  # column with the region key (AGS/ARS prefix)
    value: str | None = None  # map value: a log measure, or a column (datasets)

    @field_validator("y", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


def _house_min_frequency() -> int:
    from datenlabor.disclosure import Rules

    default = Rules.__dataclass_fields__["min_frequency"].default
    assert isinstance(default, int)
    return default


class Disclosure(_Model):
    """Disclosure control of the dashboard's figures (``datenlabor.disclosure``).

    ``apply: auto`` (default) protects the figures for every viewer without microdata access
    to a tile's dataset (see :mod:`datenlabor.dashboards.suppression`); ``always`` for every
    viewer, the owners included (e.g. a dashboard meant for publication).
    """

    min_frequency: int = Field(default_factory=_house_min_frequency, ge=2, le=1000)
    apply: Literal["auto", "always"] = "auto"


class Spec(_Model):
    title: Text
    description: Text | None = None
    visibility: Literal["public", "internal"] = "internal"
    disclosure: Disclosure = Field(default_factory=Disclosure)
    sources: dict[str, Source]
    filters: list[Filter] = Field(default_factory=list)
    tiles: list[Tile]

    @field_validator("sources")
    @classmethod
    def _source_ids(cls, v: dict[str, Source]) -> dict[str, Source]:
        if not v:
            raise ValueError("at least one source is needed")
        for name in v:
            if not re.match(SLUG, name):
                raise ValueError(f"source id {name!r}: lower-case letters, digits, - and _")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Spec:
        seen: set[str] = set()
        for f in self.filters:
            if f.id in seen:
                raise ValueError(f"filter id {f.id!r} used twice")
            seen.add(f.id)
        if sum(1 for f in self.filters if f.type == "period") > 1:
            raise ValueError("at most one period filter")
        ids: set[str] = set()
        for t in self.tiles:
            if t.id in ids:
                raise ValueError(f"tile id {t.id!r} used twice")
            ids.add(t.id)
        if not self.tiles:
            raise ValueError("at least one tile is needed")
        return self

    def source_of(self, tile: Tile) -> tuple[str, Source]:
        name = tile.source or next(iter(self.sources))
        return name, self.sources[name]

    def tile(self, tile_id: str) -> Tile:
        for t in self.tiles:
            if t.id == tile_id:
                return t
        from datenlabor.errors import NotFound

        raise NotFound(f"no tile {tile_id!r}; tiles: {', '.join(t.id for t in self.tiles)}")

    def period_filter(self) -> Filter | None:
        return next((f for f in self.filters if f.type == "period"), None)


def _check_tile(spec: Spec, i: int, t: Tile) -> None:
    """Rules that depend on the tile's source kind; raises ValueError with the field."""

    def bad(field: str, message: str) -> ValueError:
        return _TileError(i, field, message)

    if t.source is not None and t.source not in spec.sources:
        raise bad("source", f"no source {t.source!r}; sources: {', '.join(spec.sources)}")
    _name, src = spec.source_of(t)
    if src.kind == "log":
        if t.type == "kpi":
            if t.measure not in KPI_MEASURES:
                raise bad("measure", f"choose one of {', '.join(KPI_MEASURES)}")
            if t.measure in ("breaches", "breach_rate") and not t.deadline:
                raise bad("deadline", "a breach measure needs a deadline rule")
        elif t.type in (*CHARTS, "table"):
            if t.metric not in LOG_METRICS:
                raise bad("metric", f"choose one of {', '.join(LOG_METRICS)}")
            if t.metric == "deadline" and not t.deadline:
                raise bad("deadline", "the deadline metric needs a deadline rule")
            if t.type in CHARTS and t.metric in ("dfg", "cases"):
                raise bad("metric", f"{t.metric} is shown as a table or process map")
        elif t.type == "process_map":
            if t.measure not in (None, "frequency", "performance"):
                raise bad("measure", "a process map shows frequency or performance")
        elif t.type == "map":
            if t.value not in MAP_VALUES:
                raise bad("value", f"choose one of {', '.join(MAP_VALUES)}")
            if t.value in ("breaches", "breach_rate") and not t.deadline:
                raise bad("deadline", "a breach value needs a deadline rule")
            if not t.key and not any(f.type == "region" for f in spec.filters):
                raise bad("key", "name the column with the region key (or add a region filter)")
        if t.deadline:
            from datenlabor.procedures.deadline import DeadlineRule

            try:
                DeadlineRule.parse(t.deadline)
            except BadInput as exc:
                raise bad("deadline", exc.reason) from None
    else:
        if t.type == "process_map":
            raise bad("type", "a process map needs a procedure log source")
        if t.type == "kpi" and not t.value and t.agg != "count":
            raise bad("value", "name the column to aggregate (or agg: count)")
        if t.type in CHARTS and (not t.x or not t.y):
            raise bad("x" if not t.x else "y", "a chart over a dataset needs x and y columns")
        if t.type == "histogram" and not t.value:
            raise bad("value", "name the numeric column to bin")
        if t.type == "map" and (not t.key or (not t.value and t.agg != "count")):
            raise bad("key" if not t.key else "value", "a map needs key and value columns")


class _TileError(ValueError):
    def __init__(self, index: int, field: str, message: str) -> None:
        super().__init__(message)
        self.loc = ("tiles", index, field)


# -- YAML with positions ---------------------------------------------------------------------
def _positions(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    """Line (1-based) of every path in the document; a mapping entry has its key's line."""
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            out[(*path, k.value)] = k.start_mark.line + 1
            _positions(v, (*path, k.value), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _positions(item, (*path, i), out)


def _line_of(positions: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in positions:
            return positions[loc[:n]]
    return None


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def load_spec(text: str, *, file: str = "dashboard.yaml") -> Spec:
    """Parse and validate a spec; :class:`BadInput` names the line and the field."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise BadInput(
            f"not valid YAML: {exc.problem or exc}", file=file, line=mark.line + 1 if mark else None
        ) from None
    except yaml.YAMLError as exc:
        raise BadInput(f"not valid YAML: {exc}", file=file) from None
    if not isinstance(data, dict) or node is None:
        raise BadInput("a dashboard spec is a YAML mapping (title, sources, tiles)", file=file)
    positions: dict[tuple[Any, ...], int] = {}
    _positions(node, (), positions)
    try:
        spec = Spec.model_validate(data)
        for i, t in enumerate(spec.tiles):
            _check_tile(spec, i, t)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and "[" in p))
        msg = first["msg"].removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise BadInput(
            f"{msg}{more}", file=file, line=_line_of(positions, loc), column=_where(loc)
        ) from None
    except _TileError as exc:
        raise BadInput(
            str(exc),
            file=file,
            line=_line_of(positions, exc.loc),
            column=_where(exc.loc),
        ) from None
    return spec
