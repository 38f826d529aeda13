"""DCAT-AP.de out: graphs, serialisations, visibility, SHACL validation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from rdflib import Graph, Literal, Namespace, URIRef
from rdflib import namespace as rns
from rdflib.compare import isomorphic
from rdflib.namespace import DCTERMS, FOAF, RDF, SKOS

import datenlabor
from datenlabor.access.principal import Principal
from datenlabor.errors import NotFound
from datenlabor.interop import dcat
from datenlabor.interop.dcat import VCARD
from datenlabor.pool.catalog import DatasetMeta
from datenlabor.service import grants
from datenlabor.web.app import create_app

SHACL = Path(__file__).parent / "data" / "shacl"
PW = "ein-sehr-geheimes-pw-1"
BASE = "http://testserver"
GEO = "http://dcat-ap.de/def/politicalGeocoding/"
# open namespaces: pytest probes module attributes, rdflib's closed ones warn about that
DCAT = Namespace(str(rns.DCAT))
XSD = Namespace(str(rns.XSD))


@dataclass
class World:
    client: TestClient
    reader: dict[str, str]  # signed in, other organisation
    granted: dict[str, str]  # signed in, holds a grant on the restricted dataset
    pool_root: Path


def _csv(path: Path) -> Path:
    path.write_text("ags,einwohner\n05111000,620523\n05113000,582415\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("dcat")
    pool = datenlabor.open(tmp / "pool", user="t")
    common = dict(
        publisher="bmi",
        publisher_name="Bundesministerium des Innern",
        licence="dl-de/by-2-0",
        themes=["SOCI", "GOVE"],
        keywords=["Bevölkerung", "Einwohner"],
        spatial=["05", "05111", "05111000"],
        temporal_start=date(2020, 1, 1),
        temporal_end=date(2020, 12, 31),
        contact_point="daten@bmi.bund.de",
    )
    pool.ingest(
        _csv(tmp / "a.csv"),
        dataset="einwohner",
        meta=DatasetMeta(
            title="Einwohner in NRW",
            description="Einwohnerzahlen ausgewählter Gemeinden",
            visibility="public",
            **common,  # type: ignore[arg-type]
        ),
    )
    pool.ingest(_csv(tmp / "a.csv"), dataset="einwohner", mode="replace")  # version 2
    pool.ingest(
        _csv(tmp / "b.csv"),
        dataset="intern",
        meta=DatasetMeta(
            title="Interne Zahlen",
            visibility="internal",
            licence="CC-BY-4.0",
            contact_point="https://bmi.bund.de/kontakt",
            spatial=["091", "09162"],
        ),
    )
    pool.ingest(
        _csv(tmp / "c.csv"),
        dataset="geheim",
        meta=DatasetMeta(
            **{**common, "title": "Geheim", "visibility": "restricted", "licence": "other-closed"}  # type: ignore[arg-type]
        ),
    )
    app = create_app(pool)
    gate = app.state.gate
    acc = gate.accounts
    acc.add_org("land", "Ein Land")
    acc.add_user("admin", org="bmi", role="admin", password=PW)
    acc.add_user("leser", org="land", role="viewer", password=PW)
    acc.add_user("berechtigt", org="land", role="viewer", password=PW)
    admin = acc.authenticate("admin", PW)
    grants.add_grant(gate, admin, "geheim", user="berechtigt")
    tokens = {u: acc.create_token(u) for u in ("leser", "berechtigt")}
    with TestClient(app) as client:
        yield World(
            client,
            {"Authorization": f"Bearer {tokens['leser']}"},
            {"Authorization": f"Bearer {tokens['berechtigt']}"},
            tmp / "pool",
        )


def _graph(client: TestClient, url: str, headers: dict[str, str] | None = None) -> Graph:
    r = client.get(url, headers=headers or {})
    assert r.status_code == 200, r.text
    fmt, media = dcat.SERIALISATIONS[url.rsplit(".", 1)[1]]
    assert r.headers["content-type"].split(";")[0] == media.split(";")[0]
    return Graph().parse(data=r.content, format=fmt)


def _datasets(g: Graph) -> set[str]:
    return {str(s).rsplit("/", 1)[1].split("#")[0] for s in g.subjects(RDF.type, DCAT.Dataset)}


def ds(slug: str) -> URIRef:
    return URIRef(f"{BASE}/datasets/{slug}#dataset")


# -- content -------------------------------------------------------------------------------
def test_dataset_description(world: World) -> None:
    g = _graph(world.client, "/datasets/einwohner.ttl")
    d = ds("einwohner")
    assert g.value(d, DCTERMS.title) == Literal("Einwohner in NRW", lang="de")
    assert g.value(d, DCTERMS.identifier) == Literal(str(d))
    assert g.value(d, DCAT.landingPage) == URIRef(f"{BASE}/datasets/einwohner")
    assert g.value(d, dcat.DCAT_VERSION) == Literal("2")
    assert g.value(d, DCTERMS.license) == URIRef("http://dcat-ap.de/def/licenses/dl-by-de/2.0")
    assert g.value(d, DCTERMS.accessRights) == URIRef(
        "http://publications.europa.eu/resource/authority/access-right/PUBLIC"
    )
    assert set(g.objects(d, DCAT.theme)) == {
        URIRef("http://publications.europa.eu/resource/authority/data-theme/SOCI"),
        URIRef("http://publications.europa.eu/resource/authority/data-theme/GOVE"),
    }
    assert set(g.objects(d, DCAT.keyword)) == {
        Literal("Bevölkerung", lang="de"),
        Literal("Einwohner", lang="de"),
    }
    publisher = g.value(d, DCTERMS.publisher)
    assert (publisher, RDF.type, FOAF.Agent) in g
    assert g.value(publisher, FOAF.name) == Literal("Bundesministerium des Innern")
    contact = g.value(d, DCAT.contactPoint)
    assert (contact, RDF.type, VCARD.Kind) in g
    assert g.value(contact, VCARD.hasEmail) == URIRef("mailto:daten@bmi.bund.de")
    period = g.value(d, DCTERMS.temporal)
    assert (period, RDF.type, DCTERMS.PeriodOfTime) in g
    assert g.value(period, DCAT.startDate) == Literal("2020-01-01", datatype=XSD.date)
    assert g.value(period, DCAT.endDate) == Literal("2020-12-31", datatype=XSD.date)
    for p in (DCTERMS.issued, DCTERMS.modified):
        assert g.value(d, p).datatype == XSD.dateTime  # type: ignore[union-attr]
    assert dcat.DCATDE.contributorID not in set(g.predicates(d))  # none configured


def test_distributions(world: World) -> None:
    g = _graph(world.client, "/datasets/einwohner.ttl")
    dists = list(g.objects(ds("einwohner"), DCAT.distribution))
    assert len(dists) == 4
    formats = {}
    for dist in dists:
        url = g.value(dist, DCAT.downloadURL)
        assert g.value(dist, DCAT.accessURL) == url
        fmt = str(url).split("format=")[1].split("&")[0]
        assert str(url) == f"{BASE}/api/v1/datasets/einwohner/download?format={fmt}&version=2"
        assert g.value(dist, DCTERMS.license) == URIRef(
            "http://dcat-ap.de/def/licenses/dl-by-de/2.0"
        )
        formats[fmt] = (str(g.value(dist, DCTERMS.format)), str(g.value(dist, DCAT.mediaType)))
    ft = "http://publications.europa.eu/resource/authority/file-type/"
    iana = "https://www.iana.org/assignments/media-types/"
    assert formats == {
        "csv": (ft + "CSV", iana + "text/csv"),
        "parquet": (ft + "PARQUET", iana + "application/vnd.apache.parquet"),
        "xlsx": (ft + "XLSX", iana + dcat.FORMATS["xlsx"][1]),
        "json": (ft + "JSON", iana + "application/json"),
    }
    # the advertised URL really downloads
    r = world.client.get(str(g.value(dists[0], DCAT.downloadURL)))
    assert r.status_code == 200


def test_political_geocoding(world: World) -> None:
    g = _graph(world.client, "/datasets/einwohner.ttl")
    d = ds("einwohner")
    keys = {
        URIRef(GEO + "stateKey/05"),
        URIRef(GEO + "districtKey/05111"),
        URIRef(GEO + "municipalityKey/05111000"),
    }
    assert set(g.objects(d, DCTERMS.spatial)) == keys
    assert set(g.objects(d, dcat.DCATDE.politicalGeocodingURI)) == keys
    assert list(g.objects(d, dcat.DCATDE.politicalGeocodingLevelURI)) == [
        URIRef(GEO + "Level/state")
    ]
    gi = _graph(world.client, "/datasets/intern.ttl", world.reader)
    assert set(gi.objects(ds("intern"), DCTERMS.spatial)) == {
        URIRef(GEO + "governmentDistrictKey/091"),
        URIRef(GEO + "districtKey/09162"),
    }
    contact = gi.value(ds("intern"), DCAT.contactPoint)
    assert gi.value(contact, VCARD.hasURL) == URIRef("https://bmi.bund.de/kontakt")
    # single keys
    assert dcat.geocoding("05111") == (
        URIRef(GEO + "Level/administrativeDistrict"),
        URIRef(GEO + "districtKey/05111"),
    )
    assert dcat.geocoding("051110000000") == (
        URIRef(GEO + "Level/municipality"),
        URIRef(GEO + "regionalKey/051110000000"),
    )
    assert dcat.geocoding("0511") is None
    assert dcat.broadest_level(["05111000", "05111"]) == URIRef(
        GEO + "Level/administrativeDistrict"
    )
    assert dcat.broadest_level([]) is None


def test_contributor_id_when_configured(world: World) -> None:
    gate = world.client.app.state.gate  # type: ignore[attr-defined]
    anon = Principal(username=None)
    iri = "http://dcat-ap.de/def/contributors/bienenland"
    g = dcat.dataset_graph(gate, anon, BASE, "einwohner", contributor_id=iri)
    assert g.value(ds("einwohner"), dcat.DCATDE.contributorID) == URIRef(iri)
    g = dcat.dataset_graph(gate, anon, BASE, "einwohner", legacy_geocoding=False)
    assert g.value(ds("einwohner"), dcat.DCATDE.politicalGeocodingURI) is None
    with pytest.raises(NotFound):
        dcat.dataset_graph(gate, anon, BASE, "intern")


# -- serialisations ------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/catalog", "/datasets/einwohner"])
def test_serialisations_round_trip(world: World, path: str) -> None:
    graphs = [_graph(world.client, f"{path}.{s}") for s in ("ttl", "rdf", "jsonld")]
    assert len(graphs[0]) > 20
    assert isomorphic(graphs[0], graphs[1])
    assert isomorphic(graphs[0], graphs[2])


def test_unknown_serialisation_is_404(world: World) -> None:
    assert world.client.get("/catalog.xml").status_code == 404
    assert world.client.get("/datasets/einwohner.n3").status_code == 404


# -- visibility ----------------------------------------------------------------------------
def test_catalog_shows_what_the_caller_may_see(world: World) -> None:
    c = world.client
    g = _graph(c, "/catalog.ttl")
    assert _datasets(g) == {"einwohner"}
    cat = URIRef(f"{BASE}/catalog")
    assert (cat, RDF.type, DCAT.Catalog) in g
    assert g.value(cat, DCTERMS.language) == URIRef(
        "http://publications.europa.eu/resource/authority/language/DEU"
    )
    assert g.value(cat, FOAF.homepage) == URIRef(f"{BASE}/")
    assert set(g.objects(cat, DCAT.dataset)) == {ds("einwohner")}
    assert _datasets(_graph(c, "/catalog.ttl", world.reader)) == {"einwohner", "intern"}
    assert _datasets(_graph(c, "/catalog.jsonld", world.granted)) == {
        "einwohner",
        "intern",
        "geheim",
    }
    # nothing of hidden datasets leaks, not even their titles
    assert b"Interne Zahlen" not in c.get("/catalog.rdf").content
    assert b"Geheim" not in c.get("/catalog.ttl", headers=world.reader).content


def test_hidden_datasets_are_404(world: World) -> None:
    c = world.client
    assert c.get("/datasets/intern.ttl").status_code == 404
    assert c.get("/datasets/geheim.rdf").status_code == 404
    assert c.get("/datasets/geheim.jsonld", headers=world.reader).status_code == 404
    assert c.get("/datasets/gibtsnicht.ttl").status_code == 404
    assert c.get("/datasets/intern.ttl", headers=world.reader).status_code == 200
    g = _graph(c, "/datasets/geheim.ttl", world.granted)
    assert g.value(ds("geheim"), DCTERMS.accessRights) == URIRef(
        "http://publications.europa.eu/resource/authority/access-right/RESTRICTED"
    )
    # the UI dataset page still answers under its own path
    assert c.get("/datasets/einwohner").status_code == 200


# -- SHACL ---------------------------------------------------------------------------------
def _shapes(version: str, names: list[str]) -> Graph:
    g = Graph()
    for name in names:
        g.parse(SHACL / version / name, format="turtle")
    return g


def _vocabulary_stub(data: Graph) -> Graph:
    """skos:inScheme for every IRI used under the base IRI of a controlled vocabulary.

    The real vocabularies are owl:imports from the web (not available offline); this stub
    lets the vocabulary shapes check that each value comes from the right list.
    """
    schemes = [
        "http://publications.europa.eu/resource/authority/language",
        "http://publications.europa.eu/resource/authority/data-theme",
        "http://publications.europa.eu/resource/authority/access-right",
        "http://publications.europa.eu/resource/authority/file-type",
        "http://dcat-ap.de/def/licenses",
        "http://dcat-ap.de/def/politicalGeocoding/Level",
        "http://dcat-ap.de/def/contributors",
        *(GEO + k for k in ("stateKey", "governmentDistrictKey", "districtKey")),
        *(GEO + k for k in ("municipalityKey", "municipalAssociationKey", "regionalKey")),
    ]
    stub = Graph()
    for o in set(data.objects()):
        if isinstance(o, URIRef):
            for scheme in schemes:
                if str(o).startswith(scheme + "/"):
                    stub.add((o, SKOS.inScheme, URIRef(scheme)))
    return stub


def _validate(data: Graph, shapes: Graph) -> tuple[list[str], list[str]]:
    from pyshacl import validate

    _conforms, report, _text = validate(
        data, shacl_graph=shapes, advanced=True, allow_warnings=True, inference="none"
    )
    sh = "http://www.w3.org/ns/shacl#"
    found: dict[str, list[str]] = {"Violation": [], "Warning": [], "Info": []}
    for result in report.subjects(RDF.type, URIRef(sh + "ValidationResult")):
        severity = str(report.value(result, URIRef(sh + "resultSeverity"))).rsplit("#", 1)[1]
        messages = [str(m) for m in report.objects(result, URIRef(sh + "resultMessage"))]
        path = report.value(result, URIRef(sh + "resultPath"))
        found[severity].append(f"{path}: {'; '.join(messages)}")
    return found["Violation"], found["Warning"]


CONTRIBUTOR = "http://dcat-ap.de/def/contributors/bienenland"  # the reference example's


@pytest.fixture(scope="module")
def full_catalog(world: World) -> Graph:
    """All three datasets, with a contributor ID (required for deliveries to GovData)."""
    gate = world.client.app.state.gate  # type: ignore[attr-defined]
    granted = gate.accounts.authenticate("berechtigt", PW)
    g = dcat.catalog_graph(gate, granted, BASE, contributor_id=CONTRIBUTOR)
    assert _datasets(g) == {"einwohner", "intern", "geheim"}
    return g + _vocabulary_stub(g)


def test_shacl_dcat_ap_de_3_0(full_catalog: Graph) -> None:
    shapes = _shapes(
        "v3.0",
        [
            "dcat-ap-spec-german-additions.ttl",
            "dcat-ap-de-controlledvocabularies.ttl",
            "dcat-ap-de-deprecated.ttl",
            "dcat-ap-SHACL-DE.ttl",
        ],
    )
    violations, warnings = _validate(full_catalog, shapes)
    assert violations == []
    # politicalGeocodingURI is deprecated in 3.0 (written for 2.0 consumers)
    assert warnings and all("politicalGeocodingURI" in w for w in warnings), warnings


def test_shacl_dcat_ap_de_2_0(full_catalog: Graph) -> None:
    shapes = _shapes(
        "v2.0",
        [
            "dcat-ap_2.1.1_shacl_shapes.ttl",
            "dcat-ap-spec-german-additions.ttl",
            "dcat-ap-spec-german-messages.ttl",
            "dcat-ap-konventionen.ttl",
            "dcat-ap-de-deprecated.ttl",
        ],
    )
    violations, warnings = _validate(full_catalog, shapes)
    assert violations == []
    print("DCAT-AP.de 2.0 warnings:", *sorted(set(warnings)), sep="\n")


def test_cli_exports_the_public_catalogue(tmp_path: Path) -> None:
    """`datenlabor catalog export` writes what anonymous callers see, as valid RDF."""
    import subprocess
    import sys

    pool_dir = tmp_path / "pool"
    src = tmp_path / "a.csv"
    src.write_text("ags;n\n05111000;1\n", encoding="utf-8")
    for slug, visibility in (("offen", "public"), ("intern", "internal")):
        subprocess.run(
            [sys.executable, "-m", "datenlabor.cli", "--pool", str(pool_dir), "ingest", str(src),
             "--dataset", slug, "--org", "bmi", "--visibility", visibility],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    out = tmp_path / "catalog.jsonld"
    subprocess.run(
        [sys.executable, "-m", "datenlabor.cli", "--pool", str(pool_dir), "catalog", "export",
         "--format", "jsonld", "-o", str(out), "--base-url", "https://daten.example.de"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    graph = Graph().parse(out, format="json-ld")
    datasets = {str(s) for s in graph.subjects(RDF.type, DCAT.Dataset)}
    assert datasets == {"https://daten.example.de/datasets/offen#dataset"}
    bad = subprocess.run(
        [sys.executable, "-m", "datenlabor.cli", "--pool", str(pool_dir), "catalog", "export",
         "--format", "xml"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2 and "jsonld" in bad.stderr
