"""Catalogue metadata of a dataset: what a publisher states about it, validated."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from datenlabor.errors import BadInput

VISIBILITIES = ("public", "internal", "restricted")
SLUG = re.compile(r"^[a-z][a-z0-9_-]{0,99}$")

# Licences of the German open-data ecosystem (ids as GovData/DCAT-AP.de use them).
LICENCES: dict[str, tuple[str, str]] = {
    "dl-de/by-2-0": (
        "Datenlizenz Deutschland – Namensnennung – Version 2.0",
        "http://dcat-ap.de/def/licenses/dl-by-de/2.0",
    ),
    "dl-de/zero-2-0": (
        "Datenlizenz Deutschland – Zero – Version 2.0",
        "http://dcat-ap.de/def/licenses/dl-zero-de/2.0",
    ),
    "CC-BY-4.0": (
        "Creative Commons Namensnennung 4.0 International",
        "http://dcat-ap.de/def/licenses/cc-by/4.0",
    ),
    "CC-BY-SA-4.0": (
        "Creative Commons Namensnennung – Weitergabe unter gleichen Bedingungen 4.0",
        "http://dcat-ap.de/def/licenses/cc-by-sa/4.0",
    ),
    "CC0-1.0": (
        "Creative Commons CC Zero License (cc-zero)",
        "http://dcat-ap.de/def/licenses/cc-zero",
    ),
    "officialWork": (
        "Amtliches Werk, lizenzfrei nach §5 Abs. 1 UrhG",
        "http://dcat-ap.de/def/licenses/officialWork",
    ),
    "other-closed": ("Nicht freie Lizenz (intern)", "http://dcat-ap.de/def/licenses/other-closed"),
}


@dataclass
class DatasetMeta:
    """Metadata a user may give at ingest or later; ``None`` leaves a field unchanged."""

    title: str | None = None
    description: str | None = None
    publisher: str | None = None  # organisation slug
    publisher_name: str | None = None
    licence: str | None = None
    keywords: list[str] | None = None
    themes: list[str] | None = None
    spatial: list[str] | None = None  # AGS/ARS keys
    temporal_start: date | None = None
    temporal_end: date | None = None
    contact_point: str | None = None  # e-mail address or URL
    visibility: str | None = None  # public | internal | restricted (see datenlabor.access)

    def given(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


#: The 14 themes of the EU data-theme vocabulary (datasets store the codes).
THEMES = frozenset(
    ["AGRI", "ECON", "EDUC", "ENER", "ENVI", "GOVE", "HEAL", "INTR", "JUST", "OP_DATPRO",
     "REGI", "SOCI", "TECH", "TRAN"]
)  # fmt: skip

# Unqualified names with these prefixes resolve to DuckDB's built-in catalogue views.
RESERVED_PREFIXES = ("duckdb_", "pg_", "pragma_", "sqlite_")


def check_slug(slug: str) -> str:
    if (slug or "").startswith(RESERVED_PREFIXES):
        raise BadInput(
            f"invalid dataset name {slug!r}: names starting with "
            f"{', '.join(RESERVED_PREFIXES)} are reserved for the SQL engine",
            column="dataset",
        )
    if not SLUG.match(slug or ""):
        raise BadInput(
            f"invalid dataset name {slug!r}: use 1-100 lower-case letters, digits, '-' or '_', "
            "starting with a letter",
            column="dataset",
        )
    return slug


def check_meta(meta: DatasetMeta) -> DatasetMeta:
    """Validate what was given; raise BadInput naming the field."""
    if meta.licence is not None and meta.licence not in LICENCES:
        raise BadInput(
            f"unknown licence {meta.licence!r}; known: {', '.join(LICENCES)}", column="licence"
        )
    if meta.publisher is not None and not SLUG.match(meta.publisher):
        raise BadInput(f"invalid organisation name {meta.publisher!r}", column="publisher")
    if meta.spatial is not None:
        from datenlabor.pool import ags

        for key in meta.spatial:
            if ags.level_of(key) is None or not ags.is_known(key):
                raise BadInput(f"{key!r} is not a known AGS/ARS key", column="spatial")
    if meta.contact_point is not None:
        cp = meta.contact_point
        if not (re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", cp) or re.match(r"https?://\S+$", cp)):
            raise BadInput(
                "contact point must be an e-mail address or an http(s) URL", column="contact_point"
            )
    if meta.temporal_start and meta.temporal_end and meta.temporal_start > meta.temporal_end:
        raise BadInput("temporal coverage ends before it starts", column="temporal_end")
    if meta.visibility is not None and meta.visibility not in VISIBILITIES:
        raise BadInput(
            f"unknown visibility {meta.visibility!r}; choose one of {', '.join(VISIBILITIES)}",
            column="visibility",
        )
    if meta.title is not None and not meta.title.strip():
        raise BadInput("title must not be empty", column="title")
    return meta
