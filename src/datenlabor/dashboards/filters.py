"""The global filters of a dashboard: their values from a request, and what they mean for
the procedures library (``Filters``) and for dataset queries (``datatiles.conditions``)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from datenlabor.dashboards import boundaries
from datenlabor.dashboards.spec import Spec
from datenlabor.errors import BadInput
from datenlabor.procedures.log import Filters


@dataclass(frozen=True)
class FilterState:
    """The global filters' current values: the period (end exclusive) and chosen values."""

    period: tuple[date | None, date | None] = (None, None)
    values: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def key(self) -> str:
        start, end = self.period
        return json.dumps(
            [str(start), str(end), sorted((k, sorted(v)) for k, v in self.values.items() if v)]
        )

    def previous_period(self) -> tuple[date, date] | None:
        """The period of the same length just before the selected one (KPI trends)."""
        start, end = self.period
        if start is None or end is None:
            return None
        return start - (end - start), start

    def params(self, spec: Spec) -> list[tuple[str, str]]:
        """Query parameters that reproduce this state (``period_to`` is inclusive)."""
        out: list[tuple[str, str]] = [("f", "1")]
        pf = spec.period_filter()
        if pf is not None:
            start, end = self.period
            if start:
                out.append((f"{pf.id}_from", start.isoformat()))
            if end:
                out.append((f"{pf.id}_to", (end - timedelta(days=1)).isoformat()))
        for fid, values in self.values.items():
            out += [(fid, v) for v in values]
        return out

    def describe(self) -> dict[str, Any]:
        start, end = self.period
        out: dict[str, Any] = {k: list(v) for k, v in self.values.items() if v}
        if start or end:
            out["period"] = [start.isoformat() if start else None, end.isoformat() if end else None]
        return out


def _date(text: Any, name: str) -> date | None:
    if text in (None, ""):
        return None
    if isinstance(text, date):
        return text
    try:
        return date.fromisoformat(str(text)[:10])
    except ValueError:
        raise BadInput(f"not a date (YYYY-MM-DD): {text!r}", column=name) from None


def _last(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name)
    return values[-1] if values else None


def parse_filters(spec: Spec, params: Mapping[str, Sequence[str]]) -> FilterState:
    """Filter values from query parameters: ``<id>_from``/``<id>_to`` (inclusive dates) for
    the period, ``<id>=value`` (repeatable) otherwise. Without ``f=1`` (a submitted filter
    form) the spec's defaults apply to filters not given."""
    submitted = bool(params.get("f"))
    period: tuple[date | None, date | None] = (None, None)
    values: dict[str, tuple[str, ...]] = {}
    for f in spec.filters:
        if f.type == "period":
            start = _date(_last(params, f"{f.id}_from"), f"{f.id}_from")
            to = _date(_last(params, f"{f.id}_to"), f"{f.id}_to")
            given = f"{f.id}_from" in params or f"{f.id}_to" in params
            if not given and not submitted and f.default:
                start = _date(f.default.get("start"), f"{f.id}.default.start")
                to = _date(f.default.get("end"), f"{f.id}.default.end")
                to = to - timedelta(days=1) if to else None  # defaults: end exclusive
            if start and to and to < start:
                raise BadInput("the period ends before it starts", column=f"{f.id}_to")
            period = (start, to + timedelta(days=1) if to else None)
        else:
            chosen = [v for v in params.get(f.id, []) if v != ""]
            if not chosen and not submitted and f.default:
                chosen = [
                    str(v) for v in (f.default if isinstance(f.default, list) else [f.default])
                ]
            if f.type == "region":
                digits = boundaries.key_length(f.level)
                for v in chosen:
                    if len(v) != digits or not v.isdigit():
                        raise BadInput(f"{f.id}: {v!r} is not a {digits}-digit key", column=f.id)
            if chosen:
                values[f.id] = tuple(dict.fromkeys(chosen))
    return FilterState(period, values)


def log_filters(spec: Spec, state: FilterState, period: Any = None) -> Filters:
    """The procedures library's filters for ``state`` (optionally another period)."""
    start, end = period if period is not None else state.period
    pf = spec.period_filter()
    attributes: dict[str, list[Any]] = {}
    for f in spec.filters:
        chosen = state.values.get(f.id)
        if f.type == "period" or not chosen or f.column is None:
            continue
        values = list(chosen)
        if f.type == "region" and f.level == "land":
            # The column may hold Land or Kreis keys: a Land selects its Kreise too.
            values += [k for k in boundaries.names("kreis") if k[:2] in chosen]
        if f.column in attributes:  # two filters on one column: both must hold
            values = [v for v in attributes[f.column] if v in values]
        attributes[f.column] = values
    return Filters(
        start=start,
        end=end,
        period_mode=pf.mode if pf is not None else "started",
        attributes=attributes,
    )
