"""Disclosure rules of a dataset: dimensions with hierarchies, measures, primary rules, method.

``Rules`` is what ``datasets.disclosure`` stores (as :meth:`Rules.to_json`); every field is
validated with a :class:`~datenlabor.errors.BadInput` naming it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from datenlabor.errors import BadInput

TOTAL = "Insgesamt"
METHODS = ("fast", "optimal", "cellkey")
HIERARCHY_KINDS = ("flat", "ags", "time")
ZERO_CELLS = ("safe", "rules")
COSTS = ("value", "cells")

Hierarchy = str | dict[str, str | None]


@dataclass(frozen=True)
class Dim:
    """A dimension column and its hierarchy.

    ``hierarchy`` is ``"flat"`` (codes below the total), ``"ags"`` (Land > Regierungsbezirk >
    Kreis > Gemeindeverband > Gemeinde by key prefix), ``"time"`` (year > quarter > month) or a
    code list ``{code: parent code or None}``.
    """

    name: str
    hierarchy: Hierarchy = "flat"

    def to_json(self) -> dict[str, Any]:
        h = self.hierarchy
        return {"name": self.name, "hierarchy": dict(h) if isinstance(h, dict) else h}


@dataclass(frozen=True)
class Rules:
    """Primary rules, protection levels and the secondary method (see docs/disclosure.md)."""

    dims: list[Dim]
    measures: list[str] = field(default_factory=list)
    contributor: str | None = None
    min_frequency: int = 3
    dominance: tuple[int, float] | None = (2, 85.0)
    p_percent: float | None = None
    zero_cells: str = "safe"
    method: str = "fast"
    #: protection of a magnitude cell that is primary by the frequency rule, in % of its value
    safety_range: float = 10.0
    #: require the lower protection level too (magnitude tables; frequency tables need none)
    protect_lower: bool = True
    #: what secondary suppression minimises: the suppressed "value" or the number of "cells"
    cost: str = "value"
    #: cell-key method: maximum deviation D and variance V of the perturbation table
    cellkey_max_deviation: int = 2
    cellkey_variance: float = 1.5
    #: the optimal method refuses tables with more cells than this
    optimal_max_cells: int = 5000

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def frequency_table(self) -> bool:
        return not self.measures

    @property
    def dim_names(self) -> list[str]:
        return [d.name for d in self.dims]

    def to_json(self) -> dict[str, Any]:
        return {
            "dims": [d.to_json() for d in self.dims],
            "measures": list(self.measures),
            "contributor": self.contributor,
            "min_frequency": self.min_frequency,
            "dominance": list(self.dominance) if self.dominance else None,
            "p_percent": self.p_percent,
            "zero_cells": self.zero_cells,
            "method": self.method,
            "safety_range": self.safety_range,
            "protect_lower": self.protect_lower,
            "cost": self.cost,
            "cellkey_max_deviation": self.cellkey_max_deviation,
            "cellkey_variance": self.cellkey_variance,
            "optimal_max_cells": self.optimal_max_cells,
        }

    @classmethod
    def from_json(cls, data: Any) -> Rules:
        """Rules from their JSON form; unknown or malformed fields raise BadInput."""
        if not isinstance(data, dict):
            raise BadInput("disclosure rules must be a JSON object", column="disclosure")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise BadInput(f"unknown field(s) {', '.join(unknown)}", column="disclosure")
        if "dims" not in data:
            raise BadInput("missing field", column="dims")
        raw_dims = data["dims"]
        if not isinstance(raw_dims, list):
            raise BadInput("must be a list of dimensions", column="dims")
        dims = []
        for i, d in enumerate(raw_dims):
            if isinstance(d, str):
                dims.append(Dim(d))
            elif isinstance(d, dict) and set(d) <= {"name", "hierarchy"} and "name" in d:
                dims.append(Dim(d["name"], d.get("hierarchy", "flat")))
            else:
                raise BadInput("each dimension is a name or {name, hierarchy}", column=f"dims[{i}]")
        kwargs = {k: v for k, v in data.items() if k != "dims"}
        if isinstance(kwargs.get("dominance"), list):
            kwargs["dominance"] = tuple(kwargs["dominance"])
        try:
            return cls(dims=dims, **kwargs)
        except TypeError as exc:  # a field of the wrong shape the validators did not reach
            raise BadInput(str(exc), column="disclosure") from exc


def _number(value: Any, name: str, *, lo: float, hi: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise BadInput(f"must be a number in [{lo}, {hi}], got {value!r}", column=name)
    return float(value)


def _validate(r: Rules) -> None:
    if not isinstance(r.dims, list) or not r.dims:
        raise BadInput("at least one dimension is needed", column="dims")
    names: list[str] = []
    for i, d in enumerate(r.dims):
        if not isinstance(d, Dim) or not isinstance(d.name, str) or not d.name:
            raise BadInput("a dimension needs a column name", column=f"dims[{i}]")
        h = d.hierarchy
        if isinstance(h, str):
            if h not in HIERARCHY_KINDS:
                raise BadInput(
                    f"unknown hierarchy {h!r}; choose {', '.join(HIERARCHY_KINDS)} or a code list",
                    column=f"dims[{i}].hierarchy",
                )
        elif isinstance(h, dict):
            for code, parent in h.items():
                if not isinstance(code, str) or not (parent is None or isinstance(parent, str)):
                    raise BadInput(
                        f"code list entries are text codes with a text parent or null, got "
                        f"{code!r}: {parent!r}",
                        column=f"dims[{i}].hierarchy",
                    )
                if TOTAL in (code, parent):
                    raise BadInput(
                        f"{TOTAL!r} is reserved for the total", column=f"dims[{i}].hierarchy"
                    )
        else:
            raise BadInput("must be a name or a code list", column=f"dims[{i}].hierarchy")
        names.append(d.name)
    if len(set(names)) != len(names):
        raise BadInput("a column is used twice as a dimension", column="dims")
    if not isinstance(r.measures, list) or not all(isinstance(m, str) for m in r.measures):
        raise BadInput("must be a list of column names", column="measures")
    for m in r.measures:
        if m in names or m in ("n", "status"):
            raise BadInput(f"{m!r} cannot be a measure and a dimension or n/status", column=m)
    if r.contributor is not None and (not isinstance(r.contributor, str) or not r.contributor):
        raise BadInput("must be a column name or null", column="contributor")
    if isinstance(r.min_frequency, bool) or not isinstance(r.min_frequency, int):
        raise BadInput("must be a whole number", column="min_frequency")
    _number(r.min_frequency, "min_frequency", lo=1)
    if r.dominance is not None:
        if not isinstance(r.dominance, tuple) or len(r.dominance) != 2:
            raise BadInput("must be [n, k] or null", column="dominance")
        n, k = r.dominance
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise BadInput("n must be a whole number >= 1", column="dominance")
        _number(k, "dominance", lo=0.0, hi=100.0)
        if k <= 0:
            raise BadInput("k must be above 0 %", column="dominance")
    if r.p_percent is not None:
        _number(r.p_percent, "p_percent", lo=0.0, hi=100.0)
        if r.p_percent <= 0:
            raise BadInput("must be above 0 % or null", column="p_percent")
    for name, value, choices in (
        ("zero_cells", r.zero_cells, ZERO_CELLS),
        ("method", r.method, METHODS),
        ("cost", r.cost, COSTS),
    ):
        if value not in choices:
            raise BadInput(f"unknown value {value!r}; choose {', '.join(choices)}", column=name)
    _number(r.safety_range, "safety_range", lo=0.0, hi=100.0)
    if not isinstance(r.protect_lower, bool):
        raise BadInput("must be true or false", column="protect_lower")
    if isinstance(r.cellkey_max_deviation, bool) or not isinstance(r.cellkey_max_deviation, int):
        raise BadInput("must be a whole number", column="cellkey_max_deviation")
    _number(r.cellkey_max_deviation, "cellkey_max_deviation", lo=1, hi=20)
    _number(r.cellkey_variance, "cellkey_variance", lo=0.1, hi=100.0)
    if isinstance(r.optimal_max_cells, bool) or not isinstance(r.optimal_max_cells, int):
        raise BadInput("must be a whole number", column="optimal_max_cells")
    if r.method == "cellkey" and r.measures:
        raise BadInput(
            "the cell-key method here perturbs counts only; use fast or optimal for measures",
            column="method",
        )
