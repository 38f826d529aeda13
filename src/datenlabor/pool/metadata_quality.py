"""Metadata quality score of datasets and of the catalogue, after the EU data portal's MQA.

The European data portal's Metadata Quality Assessment scores DCAT-AP records along five
dimensions with fixed points per indicator (405 in all). We keep its indicators, weights and
rating bands and compute them from the catalogue record and the versions instead of from
harvested RDF: we host the data, so whether a download works is known, not probed.

==============  ===========================================  ======  ===
dimension       indicator (DCAT-AP property)                 points  max
==============  ===========================================  ======  ===
findability     keywords (dcat:keyword)                      30      100
                themes (dcat:theme, EU data-theme codes)     30
                spatial coverage (dct:spatial)               20
                temporal coverage (dct:temporal)             20
accessibility   access URL reachable (dcat:accessURL)        50      100
                download URL given (dcat:downloadURL)        20
                download URL reachable                       30
interoper-      format (dct:format)                          20      110
ability         media type (dcat:mediaType)                  10
                format/media type from a vocabulary          10
                non-proprietary format                       20
                machine-readable format                      20
                DCAT-AP.de mandatory properties              30
reusability     licence (dct:license)                        20      75
                licence from the DCAT-AP.de vocabulary       10
                access rights (dct:accessRights)             10
                access rights from the EU vocabulary         5
                contact point (dcat:contactPoint)            20
                publisher (dct:publisher)                    10
contextuality   rights (dct:rights)                          5       20
                file size (dcat:byteSize)                    5
                date of issue (dct:issued)                   5
                modification date (dct:modified)             5
==============  ===========================================  ======  ===

Rating as in the MQA: excellent 351–405, good 221–350, sufficient 121–220, bad 0–120.

Where we deviate (see docs/metadata-quality.md): reachability comes from the pool (a current
version whose files exist) instead of HTTP probes; distribution indicators are met when the
distributions we publish meet them (CSV, Parquet, JSON, XLSX of the current version, as
:mod:`datenlabor.interop.dcat` writes them); "DCAT-AP compliance" checks the properties the
DCAT-AP.de shapes make mandatory for what we export (a real description, publisher, licence)
instead of running SHACL on every request; "rights" is met by a licence from the
vocabulary, which our export states for every distribution in place of ``dct:rights``;
"file size" is met when the stored version's size is known.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from datenlabor.pool import ags
from datenlabor.pool.catalog import LICENCES, THEMES
from datenlabor.store.models import Dataset

MAX_POINTS = 405
RATINGS = ((351, "excellent"), (221, "good"), (121, "sufficient"), (0, "bad"))
RATING_LABELS = {
    "excellent": ("ausgezeichnet", "excellent"),
    "good": ("gut", "good"),
    "sufficient": ("ausreichend", "sufficient"),
    "bad": ("mangelhaft", "bad"),
}
DIMENSIONS = {
    "findability": ("Auffindbarkeit", "Findability"),
    "accessibility": ("Zugänglichkeit", "Accessibility"),
    "interoperability": ("Interoperabilität", "Interoperability"),
    "reusability": ("Wiederverwendbarkeit", "Reusability"),
    "contextuality": ("Kontext", "Contextuality"),
}
# Formats of the distributions we publish: (EU file type, non-proprietary, machine-readable).
PUBLISHED_FORMATS = {
    "csv": ("CSV", True, True),
    "parquet": ("PARQUET", True, True),
    "json": ("JSON", True, True),
    "xlsx": ("XLSX", False, True),
}
ACCESS_RIGHTS = {"public": "PUBLIC", "internal": "NON_PUBLIC", "restricted": "RESTRICTED"}
_THEME_PREFIX = "http://publications.europa.eu/resource/authority/data-theme/"


@dataclass(frozen=True)
class Indicator:
    id: str
    dimension: str
    prop: str  # the DCAT-AP property it looks at
    points: int
    label: tuple[str, str]  # German, English
    improvement: tuple[str, str]  # what to do when it is not met
    check: Callable[[Dataset, Path | None], bool]


def _themes_ok(d: Dataset, _root: Path | None) -> bool:
    return any(_theme_code(t) in THEMES for t in d.themes or [])


def _theme_code(value: Any) -> str:
    text = str(value).strip()
    return text[len(_THEME_PREFIX) :] if text.startswith(_THEME_PREFIX) else text.upper()


def _spatial_ok(d: Dataset, _root: Path | None) -> bool:
    return any(ags.level_of(str(k)) is not None for k in d.spatial or [])


def _reachable(d: Dataset, root: Path | None) -> bool:
    """A current version exists and its table folder is there (what the download serves)."""
    if not d.versions:
        return False
    return root is None or (root / d.table_path / "_delta_log").is_dir()


def _has_version(d: Dataset, _root: Path | None) -> bool:
    return bool(d.versions)


def _description_ok(d: Dataset) -> bool:
    text = (d.description or "").strip()
    return bool(text) and text != (d.title or "").strip()


def _dcat_mandatory(d: Dataset, _root: Path | None) -> bool:
    return bool(d.title) and _description_ok(d) and d.publisher is not None and _licence_known(d)


def _licence_known(d: Dataset, _root: Path | None = None) -> bool:
    return d.licence in LICENCES


def _size_known(d: Dataset, _root: Path | None) -> bool:
    return bool(d.versions) and d.versions[-1].source_bytes is not None


def _all_published(test: Callable[[tuple[str, bool, bool]], bool]) -> Callable[..., bool]:
    def check(d: Dataset, _root: Path | None) -> bool:
        return bool(d.versions) and any(test(f) for f in PUBLISHED_FORMATS.values())

    return check


INDICATORS: tuple[Indicator, ...] = (
    Indicator(
        "keywords", "findability", "dcat:keyword", 30,
        ("Schlagwörter", "Keywords"),
        ("Mindestens ein Schlagwort angeben.", "Add at least one keyword."),
        lambda d, _r: any(str(k).strip() for k in d.keywords or []),
    ),
    Indicator(
        "themes", "findability", "dcat:theme", 30,
        ("Themen", "Themes"),
        (
            "Mindestens ein Thema aus dem EU-Vokabular „Data Theme“ angeben (z. B. SOCI, ECON, REGI).",
            "Add at least one theme from the EU data theme vocabulary (e.g. SOCI, ECON, REGI).",
        ),
        _themes_ok,
    ),
    Indicator(
        "spatial", "findability", "dct:spatial", 20,
        ("Räumliche Abdeckung", "Spatial coverage"),
        (
            "Die räumliche Abdeckung als amtlichen Gemeindeschlüssel (AGS/ARS) angeben.",
            "State the spatial coverage as official municipality keys (AGS/ARS).",
        ),
        _spatial_ok,
    ),
    Indicator(
        "temporal", "findability", "dct:temporal", 20,
        ("Zeitliche Abdeckung", "Temporal coverage"),
        (
            "Beginn und/oder Ende des abgedeckten Zeitraums angeben.",
            "State the start and/or end of the period the data covers.",
        ),
        lambda d, _r: d.temporal_start is not None or d.temporal_end is not None,
    ),
    Indicator(
        "access_url", "accessibility", "dcat:accessURL", 50,
        ("Zugangs-URL erreichbar", "Access URL reachable"),
        (
            "Eine Version laden: ohne gespeicherte Version gibt es nichts herunterzuladen.",
            "Load a version: without a stored version there is nothing to download.",
        ),
        _reachable,
    ),
    Indicator(
        "download_url", "accessibility", "dcat:downloadURL", 20,
        ("Download-URL angegeben", "Download URL given"),
        ("Eine Version laden.", "Load a version."),
        _has_version,
    ),
    Indicator(
        "download_url_reachable", "accessibility", "dcat:downloadURL", 30,
        ("Download-URL erreichbar", "Download URL reachable"),
        (
            "Die Dateien der aktuellen Version fehlen im Datenpool: Version neu laden.",
            "The current version's files are missing from the pool: load the version again.",
        ),
        _reachable,
    ),
    Indicator(
        "format", "interoperability", "dct:format", 20,
        ("Format", "Format"), ("Eine Version laden.", "Load a version."), _has_version,
    ),
    Indicator(
        "media_type", "interoperability", "dcat:mediaType", 10,
        ("Medientyp", "Media type"), ("Eine Version laden.", "Load a version."), _has_version,
    ),
    Indicator(
        "format_vocabulary", "interoperability", "dct:format", 10,
        ("Format aus Vokabular", "Format from a vocabulary"),
        ("Eine Version laden.", "Load a version."),
        _has_version,
    ),
    Indicator(
        "non_proprietary", "interoperability", "dct:format", 20,
        ("Offenes Format", "Non-proprietary format"),
        ("Eine Version laden.", "Load a version."),
        _all_published(lambda f: f[1]),
    ),
    Indicator(
        "machine_readable", "interoperability", "dct:format", 20,
        ("Maschinenlesbares Format", "Machine-readable format"),
        ("Eine Version laden.", "Load a version."),
        _all_published(lambda f: f[2]),
    ),
    Indicator(
        "dcat_ap", "interoperability", "DCAT-AP.de", 30,
        ("DCAT-AP.de-Pflichtangaben", "DCAT-AP.de mandatory properties"),
        (
            "Für DCAT-AP.de Beschreibung (nicht nur den Titel), veröffentlichende Stelle und "
            "Lizenz angeben.",
            "For DCAT-AP.de, give a description (not just the title), a publisher and a licence.",
        ),
        _dcat_mandatory,
    ),
    Indicator(
        "licence", "reusability", "dct:license", 20,
        ("Lizenz", "Licence"),
        (
            "Eine Lizenz angeben, z. B. Datenlizenz Deutschland – Namensnennung 2.0.",
            "Give a licence, e.g. Data licence Germany – attribution – 2.0.",
        ),
        lambda d, _r: bool(d.licence),
    ),
    Indicator(
        "licence_vocabulary", "reusability", "dct:license", 10,
        ("Lizenz aus Vokabular", "Licence from a vocabulary"),
        (
            "Eine Lizenz aus dem DCAT-AP.de-Lizenzvokabular wählen.",
            "Choose a licence from the DCAT-AP.de licence vocabulary.",
        ),
        _licence_known,
    ),
    Indicator(
        "access_rights", "reusability", "dct:accessRights", 10,
        ("Zugriffsrechte", "Access rights"),
        ("Die Sichtbarkeit festlegen.", "Set the visibility."),
        lambda d, _r: bool(d.visibility),
    ),
    Indicator(
        "access_rights_vocabulary", "reusability", "dct:accessRights", 5,
        ("Zugriffsrechte aus Vokabular", "Access rights from a vocabulary"),
        (
            "Sichtbarkeit öffentlich, intern oder eingeschränkt wählen.",
            "Choose the visibility public, internal or restricted.",
        ),
        lambda d, _r: d.visibility in ACCESS_RIGHTS,
    ),
    Indicator(
        "contact_point", "reusability", "dcat:contactPoint", 20,
        ("Kontaktstelle", "Contact point"),
        (
            "Eine Kontaktstelle angeben (E-Mail-Adresse oder Web-Adresse).",
            "Give a contact point (e-mail address or web address).",
        ),
        lambda d, _r: bool((d.contact_point or "").strip()),
    ),
    Indicator(
        "publisher", "reusability", "dct:publisher", 10,
        ("Veröffentlichende Stelle", "Publisher"),
        ("Die veröffentlichende Stelle angeben.", "Name the publisher."),
        lambda d, _r: d.publisher is not None,
    ),
    Indicator(
        "rights", "contextuality", "dct:rights", 5,
        ("Rechte", "Rights"),
        (
            "Eine Lizenz aus dem Vokabular angeben: sie nennt die Nutzungsrechte.",
            "Give a licence from the vocabulary: it states the rights of use.",
        ),
        _licence_known,
    ),
    Indicator(
        "byte_size", "contextuality", "dcat:byteSize", 5,
        ("Dateigröße", "File size"),
        ("Eine Version laden.", "Load a version."),
        _size_known,
    ),
    Indicator(
        "issued", "contextuality", "dct:issued", 5,
        ("Veröffentlichungsdatum", "Date of issue"),
        ("Eine Version laden.", "Load a version."),
        lambda d, _r: d.created_at is not None,
    ),
    Indicator(
        "modified", "contextuality", "dct:modified", 5,
        ("Änderungsdatum", "Modification date"),
        ("Eine Version laden.", "Load a version."),
        lambda d, _r: d.updated_at is not None or bool(d.versions),
    ),
)  # fmt: skip


def rating(points: float) -> str:
    for floor, name in RATINGS:
        if points >= floor:
            return name
    return "bad"


def _bilingual(pair: tuple[str, str]) -> dict[str, str]:
    return {"de": pair[0], "en": pair[1]}


def assess(d: Dataset, *, root: Path | None = None) -> dict[str, Any]:
    """The score of one dataset (versions and publisher loaded); ``root``: the pool folder,
    to check that the current version's files are there."""
    dims: dict[str, dict[str, Any]] = {
        key: {
            "id": key,
            "label": _bilingual(label),
            "score": 0,
            "max": 0,
            "indicators": [],
        }
        for key, label in DIMENSIONS.items()
    }
    improvements: list[dict[str, Any]] = []
    for ind in INDICATORS:
        met = bool(ind.check(d, root))
        dim = dims[ind.dimension]
        dim["max"] += ind.points
        dim["score"] += ind.points if met else 0
        dim["indicators"].append(
            {
                "id": ind.id,
                "property": ind.prop,
                "label": _bilingual(ind.label),
                "weight": ind.points,
                "met": met,
                "points": ind.points if met else 0,
                "improvement": None if met else _bilingual(ind.improvement),
            }
        )
        if not met:
            improvements.append(
                {
                    "indicator": ind.id,
                    "dimension": ind.dimension,
                    "points": ind.points,
                    **_bilingual(ind.improvement),
                }
            )
    # Several indicators share one remedy ("load a version"): list it once, points summed.
    merged: dict[str, dict[str, Any]] = {}
    for imp in improvements:
        key = imp["en"]
        if key in merged:
            merged[key]["points"] += imp["points"]
            merged[key]["indicators"].append(imp["indicator"])
        else:
            merged[key] = {**imp, "indicators": [imp.pop("indicator")]}
    total = sum(dim["score"] for dim in dims.values())
    name = rating(total)
    return {
        "dataset": d.slug,
        "title": d.title,
        "score": total,
        "max": MAX_POINTS,
        "rating": name,
        "rating_label": _bilingual(RATING_LABELS[name]),
        "dimensions": list(dims.values()),
        "improvements": sorted(merged.values(), key=lambda i: -i["points"]),
    }


def summarise(assessments: list[dict[str, Any]]) -> dict[str, Any]:
    """The catalogue's score: mean points per dimension and overall, the rating of the mean,
    and per indicator the share of datasets that meet it."""
    n = len(assessments)
    dims = []
    for key, label in DIMENSIONS.items():
        inds = [i for i in INDICATORS if i.dimension == key]
        scores = [next(x for x in a["dimensions"] if x["id"] == key)["score"] for a in assessments]
        met_share = []
        for ind in inds:
            met = sum(
                1
                for a in assessments
                for x in a["dimensions"]
                if x["id"] == key
                for i in x["indicators"]
                if i["id"] == ind.id and i["met"]
            )
            met_share.append(
                {
                    "id": ind.id,
                    "label": _bilingual(ind.label),
                    "weight": ind.points,
                    "datasets_meeting": met,
                    "share": (met / n) if n else None,
                }
            )
        dims.append(
            {
                "id": key,
                "label": _bilingual(label),
                "score": round(sum(scores) / n, 1) if n else None,
                "max": sum(i.points for i in inds),
                "indicators": met_share,
            }
        )
    mean = round(sum(a["score"] for a in assessments) / n, 1) if n else None
    counts = {name: 0 for _floor, name in RATINGS}
    for a in assessments:
        counts[a["rating"]] += 1
    return {
        "datasets": n,
        "score": mean,
        "max": MAX_POINTS,
        "rating": rating(mean) if mean is not None else None,
        "ratings": counts,
        "dimensions": dims,
        "per_dataset": [
            {
                "dataset": a["dataset"],
                "title": a["title"],
                "score": a["score"],
                "rating": a["rating"],
            }
            for a in sorted(assessments, key=lambda a: (a["score"], a["dataset"]))
        ],
    }


def load(session: Any, slug: str | None = None) -> list[Dataset]:
    """Datasets with versions and publisher (all live ones, or the one named ``slug``)."""
    q = (
        select(Dataset)
        .options(selectinload(Dataset.versions), selectinload(Dataset.publisher))
        .where(Dataset.deleted_at.is_(None))
        .order_by(Dataset.slug)
    )
    if slug is not None:
        q = q.where(Dataset.slug == slug)
    return [d for d in session.scalars(q).all() if d.versions]
