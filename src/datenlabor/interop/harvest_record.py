"""A harvested catalogue record, whatever its source, and how it maps onto the pool.

The DCAT and CKAN readers (``harvest_dcat``, ``harvest_ckan``) each turn their source's
records into :class:`Record`; everything after that (slug, metadata, which distribution to
load) is decided here, once, for both.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from urllib.parse import urlsplit

from datenlabor.interop import licences
from datenlabor.pool import ags
from datenlabor.pool.catalog import THEMES, DatasetMeta

#: Tabular formats the ingest reads, by preference when a record offers several.
TABULAR = ("csv", "parquet", "xlsx", "json")

#: Stated formats (EU file-type codes, IANA media types, CKAN format strings, file suffixes),
#: lower-cased, mapped to the ingest format.
_FORMAT_WORDS = {
    "csv": "csv",
    "text/csv": "csv",
    "tsv": "csv",
    "text/tab-separated-values": "csv",
    "xlsx": "xlsx",
    "ms_xlsx": "xlsx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "parquet": "parquet",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "json": "json",
    "application/json": "json",
    "ndjson": "json",
    "application/x-ndjson": "json",
}
_ZIP_WORDS = {"zip", "application/zip", "application/x-zip-compressed"}

#: GovData's categories before DCAT-AP.de (CKAN group names) -> EU data theme. Our reading of
#: the category names, one theme each; GovData itself switched to the EU themes in 2018.
GOVDATA_GROUPS = {
    "bevoelkerung": "SOCI",
    "bildung_wissenschaft": "EDUC",
    "geo": "REGI",
    "gesetze_justiz": "JUST",
    "gesundheit": "HEAL",
    "infrastruktur_bauen_wohnen": "REGI",
    "kultur_freizeit_sport_tourismus": "EDUC",
    "politik_wahlen": "GOVE",
    "soziales": "SOCI",
    "transport_verkehr": "TRAN",
    "umwelt_klima": "ENVI",
    "verbraucher": "ECON",
    "verwaltung": "GOVE",
    "wirtschaft_arbeit": "ECON",
}
_GEOCODING = re.compile(
    r"^https?://dcat-ap\.de/def/politicalGeocoding/"
    r"(?:stateKey|governmentDistrictKey|districtKey|municipalityKey|municipalAssociationKey"
    r"|regionalKey)/(\d+)$"
)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass
class Distribution:
    url: str  # download URL, else access URL
    stated_format: str = ""  # as the source says (for the report)
    format: str | None = None  # csv | parquet | xlsx | json, None when not tabular
    zipped: bool = False
    title: str | None = None
    modified: str | None = None


@dataclass
class Record:
    identifier: str
    title: str | None = None
    description: str | None = None
    publisher_name: str | None = None
    licence: str | None = None  # URI or CKAN id as stated
    keywords: list[str] = field(default_factory=list)
    themes: list[str] = field(default_factory=list)  # theme URIs / codes / group names
    geocoding: list[str] = field(default_factory=list)  # politicalGeocoding URIs or keys
    temporal_start: str | None = None
    temporal_end: str | None = None
    contact: str | None = None
    landing_page: str | None = None
    modified: str | None = None
    distributions: list[Distribution] = field(default_factory=list)
    not_a_dataset: str | None = None  # e.g. a CKAN harvest source: why it is no dataset


def format_of(*stated: str | None) -> tuple[str | None, bool]:
    """(ingest format, zipped) from stated formats, media types or a URL's suffix."""
    fmt: str | None = None
    zipped = False
    for raw in stated:
        if not raw:
            continue
        word = raw.strip().lower()
        if word.startswith(("http://", "https://")):
            try:
                path = urlsplit(word).path
            except ValueError:  # e.g. "Invalid IPv6 URL": says nothing about a format
                continue
            # IANA media type URIs end in type/subtype, EU file-type URIs and URLs in a name
            word = path.split("/media-types/", 1)[1] if "/media-types/" in path else path
            if "/media-types/" not in path:
                word = word.rsplit("/", 1)[-1]
        word = word.split(";", 1)[0].strip()
        if word.endswith("+zip"):  # e.g. text/csv+zip (DCAT-AP.de 1.1 examples)
            zipped, word = True, word[: -len("+zip")]
        if word in _ZIP_WORDS or word.endswith(".zip"):
            zipped = True
            continue
        if fmt is None:
            fmt = _FORMAT_WORDS.get(word) or _FORMAT_WORDS.get(word.rsplit(".", 1)[-1])
    return fmt, zipped


def choose(record: Record) -> Distribution | None:
    """The distribution to load: the first tabular one by format preference, then order."""
    tabular = [d for d in record.distributions if d.format in TABULAR and d.url]
    if not tabular:
        return None
    ranked = sorted(enumerate(tabular), key=lambda i: (TABULAR.index(i[1].format or ""), i[0]))
    return ranked[0][1]


def slug_for(identifier: str) -> str:
    """A stable dataset slug from a record identifier: readable tail plus a short hash.

    The hash of the whole identifier keeps records apart whose tails read alike
    (``…/a/data`` and ``…/b/data``); the same identifier always gives the same slug.
    """
    digest = hashlib.sha256(identifier.encode("utf-8")).hexdigest()[:8]
    path = identifier.split("#", 1)[0].rstrip("/")
    tail = path.rsplit("/", 1)[-1] if "/" in path else path
    words = slugify(tail, sep="-")[:80].strip("-_")
    if not words or not words[0].isalpha():
        words = f"h-{words}" if words else "h"
    return f"{words}-{digest}"


def slugify(text: str, *, sep: str = "-") -> str:
    """Lower-case ASCII letters, digits and ``sep``; German umlauts and ß transcribed."""
    text = text.strip().lower()
    for a, b in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss")):
        text = text.replace(a, b)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", sep, text).strip(sep)


def org_slug(name: str) -> str:
    """Organisation slug from a publisher name (at most 100 characters, starts with a letter)."""
    words = slugify(name)[:90].strip("-")
    if not words or not words[0].isalpha():
        words = f"org-{words}".strip("-")
    return words


def _date(value: str | None) -> date | None:
    if not value:
        return None
    text = value.strip()
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        try:
            return datetime.fromisoformat(text).date()
        except ValueError:
            return None


def _theme(value: str) -> str | None:
    text = value.strip()
    if "/data-theme/" in text:
        text = text.rsplit("/", 1)[-1]
    code = text.upper()
    if code in THEMES:
        return code
    return GOVDATA_GROUPS.get(text.lower())


def geocoding_key(value: str) -> str | None:
    """The AGS/ARS key of a political geocoding URI (``…/districtKey/08128`` -> ``08128``)."""
    m = _GEOCODING.match(value.strip())
    return m.group(1) if m else None


def to_meta(
    record: Record,
    *,
    publisher: str | None,
    publisher_name: str | None,
    visibility: str | None,
) -> tuple[DatasetMeta, list[str]]:
    """Catalogue metadata for the pool, and notes on what could not be taken over."""
    notes: list[str] = []
    licence = licences.code_of(record.licence)
    if record.licence and licence is None:
        notes.append(f"licence {record.licence} is not one the pool offers; left empty")
    themes: list[str] = []
    for raw in record.themes:
        code = _theme(raw)
        if code is None:
            notes.append(f"theme {raw} is not an EU data theme; dropped")
        elif code not in themes:
            themes.append(code)
    spatial: list[str] = []
    for raw in record.geocoding:
        key = geocoding_key(raw) or (raw if ags.level_of(raw) else None)
        if key is None or not ags.is_known(key):
            notes.append(f"spatial {raw} is not a known AGS/ARS key; dropped")
        elif key not in spatial:
            spatial.append(key)
    contact = _contact(record.contact)
    if record.contact and contact is None:
        notes.append(f"contact point {record.contact!r} is neither e-mail nor URL; dropped")
    start, end = _date(record.temporal_start), _date(record.temporal_end)
    if start and end and start > end:
        notes.append("temporal coverage ends before it starts; dropped")
        start = end = None
    keywords: list[str] = []
    for kw in record.keywords:
        if kw.strip() and kw.strip() not in keywords:
            keywords.append(kw.strip())
    title = (record.title or "").strip() or record.identifier
    meta = DatasetMeta(
        title=title[:500],
        description=(record.description or "").strip(),
        publisher=publisher,
        publisher_name=publisher_name,
        licence=licence,
        keywords=keywords,
        themes=themes,
        spatial=spatial,
        temporal_start=start,
        temporal_end=end,
        contact_point=contact,
        visibility=visibility,
    )
    return meta, notes


def _contact(value: str | None) -> str | None:
    if not value:
        return None
    text = value.strip()
    if text.lower().startswith("mailto:"):
        text = text[len("mailto:") :]
    if _EMAIL.fullmatch(text) or re.match(r"https?://\S+$", text):
        return text
    return None
