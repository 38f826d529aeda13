"""Plain, JSON-ready descriptions of datasets and versions handed to API, CLI and UI."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from datenlabor.store.models import Dataset, Version


@dataclass
class VersionInfo:
    dataset: str
    version: int
    delta_version: int
    mode: str
    rows: int
    columns: int
    created_at: datetime
    created_by: str
    source_name: str | None
    source_sha256: str | None
    source_bytes: int | None
    format: str
    detection: dict[str, Any]
    schema: dict[str, Any]

    @classmethod
    def of(cls, slug: str, v: Version) -> VersionInfo:
        return cls(
            dataset=slug,
            version=v.number,
            delta_version=v.delta_version,
            mode=v.mode,
            rows=v.row_count,
            columns=len(v.table_schema.get("fields", [])),
            created_at=v.created_at,
            created_by=v.created_by,
            source_name=v.source_name,
            source_sha256=v.source_sha256,
            source_bytes=v.source_bytes,
            format=v.source_format,
            detection=v.detection,
            schema=v.table_schema,
        )

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass
class DatasetInfo:
    slug: str
    title: str
    description: str
    publisher: str | None
    publisher_name: str | None
    licence: str | None
    keywords: list[str]
    themes: list[str]
    spatial: list[str]
    temporal_start: date | None
    temporal_end: date | None
    contact_point: str | None
    primary_key: list[str]
    visibility: str
    created_at: datetime
    updated_at: datetime
    current_version: int | None
    rows: int | None

    @classmethod
    def of(cls, d: Dataset) -> DatasetInfo:
        latest = d.versions[-1] if d.versions else None
        return cls(
            slug=d.slug,
            title=d.title,
            description=d.description,
            publisher=d.publisher.slug if d.publisher else None,
            publisher_name=d.publisher.name if d.publisher else None,
            licence=d.licence,
            keywords=list(d.keywords),
            themes=list(d.themes),
            spatial=list(d.spatial),
            temporal_start=d.temporal_start,
            temporal_end=d.temporal_end,
            contact_point=d.contact_point,
            primary_key=list(d.primary_key),
            visibility=d.visibility,
            created_at=d.created_at,
            updated_at=d.updated_at,
            current_version=latest.number if latest else None,
            rows=latest.row_count if latest else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
