"""Field definitions and questionnaires as data: YAML in ``datenlabor/data/governance``.

Each file is validated with Pydantic when it is loaded; a broken file fails with the file and
the field path, never with a half-read definition. Values typed by people are checked
against the definitions by :func:`validate_values`.

>>> fields = register_fields()
>>> fields.by_key["name"].label["en"]
'Name'
"""

from __future__ import annotations

import functools
import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from datenlabor.errors import BadInput

DATA = Path(__file__).resolve().parents[1] / "data" / "governance"
Text = dict[Literal["de", "en"], str]
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldDef(_Strict):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    tier: Literal["public", "specialist"]
    type: Literal["text", "longtext", "enum", "date", "url", "integer", "number", "object"]
    label: Text
    help: Text | None = None
    required: bool = False
    max_length: int | None = None
    min: float | None = None
    max: float | None = None
    options: list[str] = []
    option_labels: dict[str, Text] = {}
    source: Literal["steward", "platform"] = "steward"
    dutch: str | None = None  # the field of the Dutch Algorithm Register standard
    atrs: str | None = None  # the UK ATRS attribute where it is not a Dutch one
    annex_viii: list[int] = []  # items of AI Act Annex VIII section C it feeds

    @model_validator(mode="after")
    def _enum_has_options(self) -> FieldDef:
        if self.type == "enum" and not self.options:
            raise ValueError(f"enum field {self.key!r} needs options")
        return self


class AnnexItem(_Strict):
    item: int
    label: Text
    fields: list[str]
    automatic: Literal["yes", "partly", "no"]
    note: str


class FieldSet(_Strict):
    name: str
    version: int
    fields: list[FieldDef]
    annex_viii_c: list[AnnexItem] = []

    @model_validator(mode="after")
    def _unique(self) -> FieldSet:
        keys = [f.key for f in self.fields]
        dup = {k for k in keys if keys.count(k) > 1}
        if dup:
            raise ValueError(f"duplicate field keys: {sorted(dup)}")
        for item in self.annex_viii_c:
            missing = set(item.fields) - set(keys)
            if missing:
                raise ValueError(f"Annex VIII item {item.item} names unknown fields {missing}")
        return self

    @property
    def by_key(self) -> dict[str, FieldDef]:
        return {f.key: f for f in self.fields}

    def tier(self, tier: str) -> list[FieldDef]:
        return [f for f in self.fields if f.tier == tier]

    @property
    def platform_keys(self) -> list[str]:
        return [f.key for f in self.fields if f.source == "platform"]


def load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise BadInput(
            f"not valid YAML: {getattr(exc, 'problem', exc)}",
            file=str(path),
            line=mark.line + 1 if mark is not None else None,
        ) from exc


def parse(model: type[BaseModel], path: Path) -> Any:
    """``path`` read and validated as ``model``; BadInput names the file and the field path."""
    raw = load_yaml(path)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise BadInput(
            f"{first['msg']} ({len(exc.errors())} problem(s))", file=str(path), column=where
        ) from exc


@functools.cache
def register_fields() -> FieldSet:
    result: FieldSet = parse(FieldSet, DATA / "register-fields.yaml")
    return result


@functools.cache
def usecase_fields() -> FieldSet:
    result: FieldSet = parse(FieldSet, DATA / "usecase-fields.yaml")
    return result


def _check(f: FieldDef, value: Any) -> Any:
    """One value checked and normalised; raises ValueError with the reason."""
    if f.type in ("text", "longtext"):
        if not isinstance(value, str):
            raise ValueError("must be text")
        value = value.strip()
        if f.type == "text" and "\n" in value:
            raise ValueError("must be a single line")
        if f.max_length and len(value) > f.max_length:
            raise ValueError(f"is {len(value)} characters long; at most {f.max_length} allowed")
        return value
    if f.type == "enum":
        if value not in f.options:
            raise ValueError(f"must be one of {', '.join(f.options)}")
        return value
    if f.type == "date":
        try:
            return date.fromisoformat(str(value)).isoformat()
        except ValueError:
            raise ValueError("must be a date YYYY-MM-DD") from None
    if f.type == "url":
        if not isinstance(value, str) or not _URL.match(value.strip()):
            raise ValueError("must be an http(s) URL")
        return value.strip()
    if f.type in ("integer", "number"):
        if isinstance(value, bool):
            raise ValueError("must be a number")
        try:
            number: float = int(str(value)) if f.type == "integer" else float(value)
        except (TypeError, ValueError):
            kind = "a whole number" if f.type == "integer" else "a number"
            raise ValueError(f"must be {kind}") from None
        if f.min is not None and number < f.min:
            raise ValueError(f"must be at least {f.min:g}")
        if f.max is not None and number > f.max:
            raise ValueError(f"must be at most {f.max:g}")
        return number
    return value  # object: platform facts, stored as given


def validate_values(
    fields: FieldSet,
    values: dict[str, Any],
    *,
    allow_platform: bool = False,
    file: str | None = None,
    line: int | None = None,
) -> dict[str, Any]:
    """Typed values checked against the definitions; empty strings/None clear a field.

    Unknown fields and platform fields (unless ``allow_platform``) are refused by name.
    """
    out: dict[str, Any] = {}
    defs = fields.by_key
    for key, value in values.items():
        f = defs.get(key)
        if f is None:
            raise BadInput(f"unknown field {key!r}", file=file, line=line, column=key)
        if f.source == "platform" and not allow_platform:
            raise BadInput(
                f"field {key!r} is filled by the platform from what is deployed; it cannot be "
                "typed",
                file=file,
                line=line,
                column=key,
            )
        if value is None or (isinstance(value, str) and not value.strip()):
            out[key] = None
            continue
        try:
            out[key] = _check(f, value)
        except ValueError as exc:
            raise BadInput(f"{key} {exc}", file=file, line=line, column=key) from None
    return out


def missing_required(fields: FieldSet, data: dict[str, Any]) -> list[str]:
    return [f.key for f in fields.fields if f.required and data.get(f.key) in (None, "")]
