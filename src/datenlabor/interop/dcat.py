"""DCAT-AP.de 3.0 descriptions of the catalogue, built with rdflib.

Only what the caller may see is described: :func:`catalog_graph` lists the datasets of
``gate.visible(principal)``, :func:`dataset_graph` raises ``NotFound`` for a dataset the caller
may not see (through ``gate.dataset``). The graphs carry catalogue metadata only, never rows.

Choices, with the parts of DCAT-AP.de 3.0 they follow:

* Dataset IRI ``{base}/datasets/{slug}#dataset``; its landing page is the dataset page
  ``{base}/datasets/{slug}``; ``dct:identifier`` is the dataset IRI as a literal.
* One ``dcat:Distribution`` per download format for the current version, with the download
  URL of the API as ``dcat:accessURL`` and ``dcat:downloadURL`` (Konvention 39), the EU
  file-type as ``dct:format``, the IANA media type as ``dcat:mediaType`` and the licence.
* The version number as ``dcat:version`` (DCAT 3; ``owl:versionInfo`` is deprecated in
  DCAT-AP.de 3.0 and ``adms:version`` does not exist).
* AGS/ARS keys become political geocoding URIs in ``dct:spatial`` (Konvention 11; in 3.0
  this replaces ``dcatde:politicalGeocodingURI``, which is still written for 2.0 consumers
  unless ``legacy_geocoding=False``) and one ``dcatde:politicalGeocodingLevelURI``: the
  broadest level among the keys.
* ``dcatde:contributorID`` only when an IRI is configured: the valid values are the entries
  GovData assigns in ``http://dcat-ap.de/def/contributors/``; an invented IRI in that
  namespace would claim an entry that does not exist.
* Visibility as ``dct:accessRights``: public PUBLIC, internal NON_PUBLIC, restricted
  RESTRICTED (EU access-right vocabulary).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, SKOS, XSD
from rdflib.term import Node

from datenlabor.access.policy import DatasetView
from datenlabor.access.principal import Principal
from datenlabor.interop import licences
from datenlabor.pool import ags
from datenlabor.pool.catalog import THEMES
from datenlabor.service.gate import DOWNLOAD_FORMATS, Gate
from datenlabor.store.models import Dataset, Organisation, Version

DCATDE = Namespace("http://dcat-ap.de/def/dcatde/")
DCATAP = Namespace("http://data.europa.eu/r5r/")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
DCAT_VERSION = URIRef(str(DCAT) + "version")  # DCAT 3; rdflib's DCAT namespace is DCAT 2

EU = "http://publications.europa.eu/resource/authority/"
THEME = Namespace(EU + "data-theme/")
FILE_TYPE = Namespace(EU + "file-type/")
LANGUAGE = Namespace(EU + "language/")
ACCESS_RIGHT = Namespace(EU + "access-right/")
IANA = "https://www.iana.org/assignments/media-types/"
GEOCODING = "http://dcat-ap.de/def/politicalGeocoding/"
GEOCODING_LEVEL = Namespace(GEOCODING + "Level/")


#: Download format -> (EU file-type code, IANA media type).
FORMATS: dict[str, tuple[str, str]] = {
    "csv": ("CSV", "text/csv"),
    "parquet": ("PARQUET", "application/vnd.apache.parquet"),
    "xlsx": ("XLSX", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "json": ("JSON", "application/json"),
}

ACCESS_RIGHTS = {"public": "PUBLIC", "internal": "NON_PUBLIC", "restricted": "RESTRICTED"}

#: Key length -> (geocoding level, key list), following the DCAT-AP.de vocabularies.
#: The level vocabulary has no Regierungsbezirk level: a Regierungsbezirk is part of the
#: Land administration, so its datasets are on the ``state`` level.
_GEOCODING = {
    2: ("state", "stateKey"),
    3: ("state", "governmentDistrictKey"),
    5: ("administrativeDistrict", "districtKey"),
    8: ("municipality", "municipalityKey"),
    9: ("municipality", "municipalAssociationKey"),
    12: ("municipality", "regionalKey"),
}
_LEVEL_ORDER = ("federal", "state", "administrativeDistrict", "municipality")

#: Serialisations: URL suffix -> (rdflib format, media type).
SERIALISATIONS: dict[str, tuple[str, str]] = {
    "ttl": ("turtle", "text/turtle; charset=utf-8"),
    "rdf": ("xml", "application/rdf+xml"),
    "jsonld": ("json-ld", "application/ld+json"),
}

CATALOG_TITLE = "Datenlabor – Datenkatalog"
CATALOG_DESCRIPTION = "Versionierte Datensätze des Datenlabors mit Downloads und SQL-Zugang."
CATALOG_PUBLISHER = "Datenlabor"


def geocoding(key: str) -> tuple[URIRef, URIRef] | None:
    """(level IRI, key IRI) of an AGS/ARS key, or None for a malformed key."""
    if ags.level_of(key) is None:
        return None
    level, scheme = _GEOCODING[len(key)]
    return GEOCODING_LEVEL[level], URIRef(f"{GEOCODING}{scheme}/{key}")


def broadest_level(keys: Iterable[str]) -> URIRef | None:
    """The broadest geocoding level among the keys (None without valid keys)."""
    levels = [_GEOCODING[len(k)][0] for k in keys if ags.level_of(k) is not None]
    if not levels:
        return None
    return GEOCODING_LEVEL[min(levels, key=_LEVEL_ORDER.index)]


#: Prefixes of the serialisations (also the JSON-LD context).
PREFIXES: dict[str, str] = {
    "dcat": str(DCAT),
    "dct": str(DCTERMS),
    "foaf": str(FOAF),
    "vcard": str(VCARD),
    "skos": str(SKOS),
    "xsd": str(XSD),
    "dcatde": str(DCATDE),
    "dcatap": str(DCATAP),
}


def new_graph() -> Graph:
    g = Graph(bind_namespaces="core")
    for prefix, ns in PREFIXES.items():
        g.bind(prefix, Namespace(ns), override=True)
    return g


def serialize(g: Graph, suffix: str) -> tuple[bytes, str]:
    """The graph as bytes in the serialisation named by a URL suffix, and its media type."""
    fmt, media = SERIALISATIONS[suffix]
    kw: dict[str, Any] = {"context": PREFIXES} if fmt == "json-ld" else {}
    return g.serialize(format=fmt, encoding="utf-8", **kw), media


class _Builder:
    def __init__(
        self,
        g: Graph,
        base_url: str,
        *,
        contributor_id: str | None,
        legacy_geocoding: bool,
    ) -> None:
        self.g = g
        self.base = base_url.rstrip("/")
        self.contributor = URIRef(contributor_id) if contributor_id else None
        self.legacy_geocoding = legacy_geocoding
        self._agents: dict[str, BNode] = {}

    def add(self, s: Node, p: Node, o: Node) -> None:
        self.g.add((s, p, o))

    def agent(self, name: str, key: str) -> BNode:
        node = self._agents.get(key)
        if node is None:
            node = self._agents[key] = BNode()
            self.add(node, RDF.type, FOAF.Agent)
            self.add(node, FOAF.name, Literal(name))
        return node

    def publisher(self, org: Organisation | None) -> BNode:
        if org is None:
            return self.agent(CATALOG_PUBLISHER, "")
        return self.agent(org.name or org.slug, f"org:{org.slug}")

    def dataset_iri(self, slug: str) -> URIRef:
        return URIRef(f"{self.base}/datasets/{slug}#dataset")

    def catalog(self, datasets: list[tuple[Dataset, DatasetView]], **text: str) -> URIRef:
        cat = URIRef(f"{self.base}/catalog")
        self.add(cat, RDF.type, DCAT.Catalog)
        self.add(cat, DCTERMS.title, Literal(text["title"], lang="de"))
        self.add(cat, DCTERMS.description, Literal(text["description"], lang="de"))
        self.add(cat, DCTERMS.publisher, self.agent(text["publisher"], ""))
        self.add(cat, DCTERMS.language, LANGUAGE.DEU)
        self.add(cat, FOAF.homepage, URIRef(f"{self.base}/"))
        changed = [_modified(d) for d, _view in datasets]
        if changed:
            self.add(cat, DCTERMS.modified, _dt(max(changed)))
        for d, _view in datasets:
            self.add(cat, DCAT.dataset, self.dataset(d))
        return cat

    def dataset(self, d: Dataset) -> URIRef:
        add = self.add
        ds = self.dataset_iri(d.slug)
        page = f"{self.base}/datasets/{d.slug}"
        add(ds, RDF.type, DCAT.Dataset)
        add(ds, DCTERMS.title, Literal(d.title, lang="de"))
        # DCAT-AP requires a description; the title stands in when none was given.
        add(ds, DCTERMS.description, Literal(d.description or d.title, lang="de"))
        add(ds, DCTERMS.identifier, Literal(str(ds)))
        add(ds, DCAT.landingPage, URIRef(page))
        add(ds, DCTERMS.publisher, self.publisher(d.publisher))
        add(ds, DCTERMS.issued, _dt(d.created_at))
        add(ds, DCTERMS.modified, _dt(_modified(d)))
        if d.visibility in ACCESS_RIGHTS:
            add(ds, DCTERMS.accessRights, ACCESS_RIGHT[ACCESS_RIGHTS[d.visibility]])
        if self.contributor is not None:
            add(ds, DCATDE.contributorID, self.contributor)
        for kw in d.keywords or []:
            if str(kw).strip():
                add(ds, DCAT.keyword, Literal(str(kw).strip(), lang="de"))
        for theme in d.themes or []:
            iri = _theme(str(theme))
            if iri is not None:
                add(ds, DCAT.theme, iri)
        self._spatial(ds, [str(k) for k in d.spatial or []])
        self._temporal(ds, d.temporal_start, d.temporal_end)
        if d.contact_point:
            add(ds, DCAT.contactPoint, self._contact(d))
        licence = _licence(d.licence)
        if licence is not None:
            add(ds, DCTERMS.license, licence)
            add(licence, RDF.type, DCTERMS.LicenseDocument)
        if d.versions:
            current = d.versions[-1]
            add(ds, DCAT_VERSION, Literal(str(current.number)))
            for fmt in DOWNLOAD_FORMATS:
                add(ds, DCAT.distribution, self._distribution(d, current, fmt, licence))
        return ds

    def _spatial(self, ds: URIRef, keys: list[str]) -> None:
        for key in keys:
            coded = geocoding(key)
            if coded is None:
                continue
            _level, iri = coded
            self.add(ds, DCTERMS.spatial, iri)
            if self.legacy_geocoding:
                self.add(ds, DCATDE.politicalGeocodingURI, iri)
        level = broadest_level(keys)
        if level is not None:
            self.add(ds, DCATDE.politicalGeocodingLevelURI, level)

    def _temporal(self, ds: URIRef, start: date | None, end: date | None) -> None:
        if start is None and end is None:
            return
        period = BNode()
        self.add(ds, DCTERMS.temporal, period)
        self.add(period, RDF.type, DCTERMS.PeriodOfTime)
        if start is not None:
            self.add(period, DCAT.startDate, Literal(start.isoformat(), datatype=XSD.date))
        if end is not None:
            self.add(period, DCAT.endDate, Literal(end.isoformat(), datatype=XSD.date))

    def _contact(self, d: Dataset) -> BNode:
        cp = d.contact_point or ""
        node = BNode()
        self.add(node, RDF.type, VCARD.Kind)
        name = d.publisher.name if d.publisher is not None else CATALOG_PUBLISHER
        self.add(node, VCARD.fn, Literal(name))
        if cp.startswith(("http://", "https://")):
            self.add(node, VCARD.hasURL, URIRef(cp))
        else:
            self.add(node, VCARD.hasEmail, URIRef(f"mailto:{cp}"))
        return node

    def _distribution(self, d: Dataset, v: Version, fmt: str, licence: URIRef | None) -> URIRef:
        add = self.add
        dist = URIRef(f"{self.base}/datasets/{d.slug}#distribution-{fmt}")
        url = URIRef(
            f"{self.base}/api/v1/datasets/{d.slug}/download?format={fmt}&version={v.number}"
        )
        add(dist, RDF.type, DCAT.Distribution)
        add(dist, DCTERMS.title, Literal(f"{d.slug}.{fmt} (Version {v.number})"))
        add(dist, DCAT.accessURL, url)
        add(dist, DCAT.downloadURL, url)
        add(dist, DCTERMS.issued, _dt(v.created_at))
        add(dist, DCTERMS.modified, _dt(v.created_at))
        file_type, media = FORMATS[fmt]
        add(dist, DCTERMS.format, FILE_TYPE[file_type])
        add(FILE_TYPE[file_type], RDF.type, DCTERMS.MediaTypeOrExtent)
        add(dist, DCAT.mediaType, URIRef(IANA + media))
        add(URIRef(IANA + media), RDF.type, DCTERMS.MediaType)
        if licence is not None:
            add(dist, DCTERMS.license, licence)
        return dist


def _dt(value: datetime) -> Literal:
    if value.tzinfo is None:  # SQLite hands back naive datetimes; the store writes UTC
        value = value.replace(tzinfo=UTC)
    return Literal(value.astimezone(UTC).isoformat(timespec="seconds"), datatype=XSD.dateTime)


def _modified(d: Dataset) -> datetime:
    stamps = [d.updated_at, *(v.created_at for v in d.versions)]
    return max(s if s.tzinfo else s.replace(tzinfo=UTC) for s in stamps)


def _theme(code: str) -> URIRef | None:
    if code.startswith(str(THEME)):
        code = code[len(str(THEME)) :]
    code = code.strip().upper()
    return THEME[code] if code in THEMES else None


def _licence(licence: str | None) -> URIRef | None:
    uri = licences.uri_of(licence)
    return URIRef(uri) if uri is not None else None


def catalog_graph(
    gate: Gate,
    principal: Principal,
    base_url: str,
    datasets: list[tuple[Dataset, DatasetView]] | None = None,
    *,
    contributor_id: str | None = None,
    legacy_geocoding: bool = True,
    title: str = CATALOG_TITLE,
    description: str = CATALOG_DESCRIPTION,
    publisher: str = CATALOG_PUBLISHER,
) -> Graph:
    """The catalogue with every dataset the principal may see.

    ``datasets`` defaults to ``gate.visible(principal)``; a caller passing its own list is
    responsible for having filtered it the same way.
    """
    if datasets is None:
        datasets = gate.visible(principal)
    g = new_graph()
    b = _Builder(g, base_url, contributor_id=contributor_id, legacy_geocoding=legacy_geocoding)
    b.catalog(datasets, title=title, description=description, publisher=publisher)
    return g


def dataset_graph(
    gate: Gate,
    principal: Principal,
    base_url: str,
    slug: str,
    *,
    contributor_id: str | None = None,
    legacy_geocoding: bool = True,
) -> Graph:
    """One dataset; raises ``NotFound`` when the principal may not see it."""
    d, _view = gate.dataset(principal, slug)
    g = new_graph()
    b = _Builder(g, base_url, contributor_id=contributor_id, legacy_geocoding=legacy_geocoding)
    b.dataset(d)
    return g
