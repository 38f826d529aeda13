"""Reading DCAT-AP(.de) catalogue pages: RDF in, :class:`Record` list and next page out.

Pages come as Turtle, RDF/XML, JSON-LD or N-Triples (chosen by media type, then file suffix,
then the first bytes). Paging follows Hydra: a ``hydra:PartialCollectionView`` with
``hydra:next`` (Hydra core, as the European data portal pages), or the older
``hydra:PagedCollection`` with ``hydra:nextPage`` that ckanext-dcat (GovData) writes.

Values DCAT-AP.de states in several places are read from each, in this order: the
distribution's ``dcat:downloadURL`` before ``dcat:accessURL``; the dataset's ``dct:license``
before its distributions' licences; ``dcatde:politicalGeocodingURI`` together with
``dct:spatial`` IRIs; ``dcat:startDate``/``endDate`` before ``schema:startDate``/``endDate``.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from urllib.parse import urljoin

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF
from rdflib.term import Node

from datenlabor.errors import BadInput
from datenlabor.interop.harvest_record import Distribution, Record, format_of

DCATDE = Namespace("http://dcat-ap.de/def/dcatde/")
HYDRA = Namespace("http://www.w3.org/ns/hydra/core#")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
SCHEMA = Namespace("http://schema.org/")
DCT_MEDIA_TYPE = URIRef(str(DCTERMS) + "mediaType")  # DCAT-AP.de 3; not in rdflib's DCTERMS

_MEDIA = {
    "text/turtle": "turtle",
    "application/x-turtle": "turtle",
    "application/rdf+xml": "xml",
    "application/xml": "xml",
    "text/xml": "xml",
    "application/ld+json": "json-ld",
    "application/json": "json-ld",
    "application/n-triples": "nt",
    "text/plain": None,  # servers use it for anything; decide by suffix or content
}
_SUFFIX = {
    ".ttl": "turtle",
    ".rdf": "xml",
    ".xml": "xml",
    ".owl": "xml",
    ".jsonld": "json-ld",
    ".json": "json-ld",
    ".nt": "nt",
}
ACCEPT = (
    "text/turtle, application/rdf+xml;q=0.9, application/ld+json;q=0.9, "
    "application/n-triples;q=0.8, */*;q=0.1"
)


@dataclass
class Page:
    records: list[Record]
    next_url: str | None
    total: int | None


def rdf_format(body: bytes, content_type: str | None, name: str) -> str:
    """The rdflib parser for a page: by media type, then suffix, then the first bytes."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    fmt = _MEDIA.get(media)
    if fmt:
        return fmt
    lowered = name.lower().split("?", 1)[0]
    for suffix, by_suffix in _SUFFIX.items():
        if lowered.endswith(suffix):
            return by_suffix
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:200]
    if head.startswith(b"<"):
        return "xml"
    if head[:1] in (b"{", b"["):
        return "json-ld"
    return "turtle"


def parse_page(body: bytes, *, url: str, content_type: str | None = None) -> Page:
    """Records and the next page of one catalogue page; ``BadInput`` names the page on junk."""
    fmt = rdf_format(body, content_type, url)
    if fmt == "json-ld":
        _refuse_remote_context(body, url)
    g = Graph()
    try:
        with warnings.catch_warnings():  # rdflib's JSON-LD parser uses its own deprecated API
            warnings.simplefilter("ignore", DeprecationWarning)
            g.parse(data=body, format=fmt, publicID=url)
    except Exception as exc:  # rdflib raises many types (SAX, BadSyntax, JSON, Unicode)
        reason = " ".join(str(exc).split())[:400] or type(exc).__name__
        raise BadInput(f"not readable as {fmt} RDF: {reason}", file=url) from None
    datasets = sorted({s for s in g.subjects(RDF.type, DCAT.Dataset)}, key=lambda n: str(n))
    records = [_record(g, ds) for ds in datasets]
    next_url, total = _paging(g, url)
    return Page(records=records, next_url=next_url, total=total)


def _refuse_remote_context(body: bytes, url: str) -> None:
    """rdflib would download remote JSON-LD contexts without a time limit; refuse them."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise BadInput(f"not valid JSON-LD: {exc}", file=url) from None

    def walk(node: object) -> None:
        if isinstance(node, dict):
            ctx = node.get("@context")
            items = ctx if isinstance(ctx, list) else [ctx]
            items.append(node.get("@import"))  # JSON-LD 1.1 context import
            for item in items:
                if isinstance(item, str) and item.startswith(("http://", "https://")):
                    raise BadInput(
                        f"JSON-LD page refers to the remote context {item}, which the "
                        "harvester does not fetch; ask for Turtle or RDF/XML instead",
                        file=url,
                    )
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)


def _paging(g: Graph, url: str) -> tuple[str | None, int | None]:
    nxt: str | None = None
    total: int | None = None
    for pred in (HYDRA.next, HYDRA.nextPage):
        for value in g.objects(None, pred):
            candidate = urljoin(url, str(value))
            if candidate != url:
                nxt = candidate
                break
        if nxt:
            break
    for value in g.objects(None, HYDRA.totalItems):
        try:
            total = int(str(value))
        except ValueError:
            continue
    return nxt, total


def _literals(g: Graph, s: Node, p: URIRef) -> list[Literal]:
    return [o for o in g.objects(s, p) if isinstance(o, Literal)]


def _text(g: Graph, s: Node, p: URIRef) -> str | None:
    """One literal, preferring German, then untagged, then any language."""
    values = _literals(g, s, p)
    if not values:
        return None
    rank = {"de": 0, None: 1}
    best = min(values, key=lambda v: (rank.get(v.language, 2), str(v)))
    text = str(best).strip()
    return text or None


def _iri_or_text(g: Graph, s: Node, p: URIRef) -> list[str]:
    out = []
    for o in g.objects(s, p):
        if isinstance(o, URIRef | Literal) and str(o).strip():
            out.append(str(o).strip())
    return sorted(set(out))


def _first(g: Graph, s: Node, *preds: URIRef) -> str | None:
    for p in preds:
        values = _iri_or_text(g, s, p)
        if values:
            return values[0]
    return None


def _agent_name(g: Graph, agent: Node | None) -> str | None:
    if agent is None:
        return None
    if isinstance(agent, Literal):
        return str(agent).strip() or None
    return _text(g, agent, FOAF.name) or (str(agent) if isinstance(agent, URIRef) else None)


def _contact(g: Graph, ds: Node) -> str | None:
    for cp in g.objects(ds, DCAT.contactPoint):
        if isinstance(cp, Literal):
            return str(cp)
        email = _first(g, cp, VCARD.hasEmail)
        if email:
            return email
        url = _first(g, cp, VCARD.hasURL)
        if url:
            return url
    return None


def _temporal(g: Graph, ds: Node) -> tuple[str | None, str | None]:
    for period in g.objects(ds, DCTERMS.temporal):
        if not isinstance(period, BNode | URIRef):
            continue
        start = _first(g, period, DCAT.startDate, SCHEMA.startDate)
        end = _first(g, period, DCAT.endDate, SCHEMA.endDate)
        if start or end:
            return start, end
    return None, None


def _distribution(g: Graph, dist: Node) -> Distribution:
    url = _first(g, dist, DCAT.downloadURL) or _first(g, dist, DCAT.accessURL) or ""
    stated = _first(g, dist, DCTERMS.format) or ""
    media = _first(g, dist, DCAT.mediaType, DCT_MEDIA_TYPE)
    compress = _first(g, dist, DCAT.compressFormat, DCAT.packageFormat)
    fmt, zipped = format_of(stated, media, url)
    _fmt, compressed = format_of(compress)
    return Distribution(
        url=url,
        stated_format=(stated or media or "").rsplit("/", 1)[-1],
        format=fmt,
        zipped=zipped or compressed,
        title=_text(g, dist, DCTERMS.title),
        modified=_first(g, dist, DCTERMS.modified),
    )


def _record(g: Graph, ds: Node) -> Record:
    # The dataset IRI is its identity; a blank node has none across parses, so only its
    # dct:identifier can name it (without one the record cannot be followed: "").
    identifier = str(ds) if isinstance(ds, URIRef) else _text(g, ds, DCTERMS.identifier) or ""
    publisher = next(iter(g.objects(ds, DCTERMS.publisher)), None)
    dists = sorted(
        (_distribution(g, d) for d in g.objects(ds, DCAT.distribution)),
        key=lambda d: (d.url, d.stated_format),
    )
    licence = _first(g, ds, DCTERMS.license)
    if licence is None:
        dist_licences = sorted(
            {
                str(lic)
                for d in g.objects(ds, DCAT.distribution)
                for lic in g.objects(d, DCTERMS.license)
            }
        )
        licence = dist_licences[0] if dist_licences else None
    geocoding = _iri_or_text(g, ds, DCATDE.politicalGeocodingURI) + [
        str(o) for o in g.objects(ds, DCTERMS.spatial) if isinstance(o, URIRef)
    ]
    start, end = _temporal(g, ds)
    modified = _first(g, ds, DCTERMS.modified)
    if modified is None:
        stamps = sorted(d.modified for d in dists if d.modified)
        modified = stamps[-1] if stamps else None
    return Record(
        identifier=identifier,
        title=_text(g, ds, DCTERMS.title),
        description=_text(g, ds, DCTERMS.description),
        publisher_name=_agent_name(g, publisher),
        licence=licence,
        keywords=sorted({str(k).strip() for k in _literals(g, ds, DCAT.keyword)}),
        themes=_iri_or_text(g, ds, DCAT.theme),
        geocoding=list(dict.fromkeys(geocoding)),
        temporal_start=start,
        temporal_end=end,
        contact=_contact(g, ds),
        landing_page=_first(g, ds, DCAT.landingPage, FOAF.page),
        modified=modified,
        distributions=dists,
    )
