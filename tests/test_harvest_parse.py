"""Reading harvest sources: the real DCAT-AP.de examples and GovData CKAN answers, mapped."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from rdflib import Graph, Literal, Namespace, URIRef
from rdflib.namespace import RDF

from conftest import shared_file
from datenlabor.errors import BadInput
from datenlabor.interop import harvest_ckan, harvest_dcat, licences
from datenlabor.interop.harvest_record import (
    Record,
    choose,
    format_of,
    org_slug,
    slug_for,
    to_meta,
)
from datenlabor.pool.catalog import LICENCES

HYDRA = Namespace("http://www.w3.org/ns/hydra/core#")


def _page(rel: str) -> harvest_dcat.Page:
    path = shared_file(rel)
    return harvest_dcat.parse_page(path.read_bytes(), url=path.as_uri())


# -- licences ---------------------------------------------------------------------------------
def test_every_pool_licence_round_trips_through_its_uri() -> None:
    for code in LICENCES:
        uri = licences.uri_of(code)
        assert uri is not None and licences.code_of(uri) == code


def test_govdata_licence_list_maps_onto_the_pool_licences() -> None:
    answer = json.loads(shared_file("ckan/license_list_response.json").read_text("utf-8"))
    mapped = {lic["id"]: licences.code_of(lic["id"]) for lic in answer["result"]}
    assert len(mapped) == 52
    base = "http://dcat-ap.de/def/licenses/"
    # current and DCAT-AP.de 1.0 spellings of the same licence give the same code
    assert mapped[base + "dl-by-de/2.0"] == mapped[base + "dl-by-de/2_0"] == "dl-de/by-2-0"
    assert mapped[base + "dl-zero-de/2.0"] == mapped[base + "dl-zero-de/2_0"] == "dl-de/zero-2-0"
    assert mapped[base + "cc-by/4.0"] == mapped[base + "cc-by/4_0"] == "CC-BY-4.0"
    assert mapped[base + "officialWork"] == mapped[base + "official-work"] == "officialWork"
    assert mapped[base + "cc-zero"] == "CC0-1.0"
    # licences the pool does not offer are not forced onto a near miss
    for other in ("cc-nc", "cc-by-nd/4.0", "dl-by-de/1.0", "dl-by-nc-de/1.0", "cc-by", "odbl"):
        assert mapped[base + other] is None, other
    assert set(mapped.values()) - {None} == set(LICENCES)


def test_ckan_licence_ids_are_understood() -> None:
    assert licences.code_of("dl-de-by-2.0") == "dl-de/by-2-0"
    assert licences.code_of("CC-BY-4.0") == "CC-BY-4.0"
    assert licences.code_of(" http://dcat-ap.de/def/licenses/dl-by-de/2.0/ ") == "dl-de/by-2-0"
    assert licences.code_of("") is None and licences.code_of(None) is None


# -- DCAT ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("version,stem", [("v2.0", ""), ("v1.1", "_V1.1")])
def test_the_three_serialisations_give_the_same_records(version: str, stem: str) -> None:
    base = f"dcat/{version}/dcat_ap_de-RefImp_"
    ttl = _page(f"{base}TTL_ADVANCED{stem}.ttl").records
    rdf = _page(f"{base}RDF_ADVANCED{stem}.rdf").records
    jsonld = _page(f"{base}JSONLD_ADVANCED{stem}.jsonld").records
    assert len(ttl) == 2
    assert ttl == rdf == jsonld


def test_dcat_ap_de_2_record_fields() -> None:
    records = {r.title: r for r in _page("dcat/v2.0/dcat_ap_de-RefImp_TTL_ADVANCED.ttl").records}
    bade = records["Badegewässer in Hamburg"]
    assert bade.identifier == (
        "https://example.com/dataset/d4ce4e6e-ab89-44cb-bf5c-33a162c234de#dataset"
    )
    assert bade.publisher_name == "Behörde für Umwelt und Energie (BUE), Amt für Umweltschutz"
    assert bade.contact == "thomas.meister@example.com"
    assert bade.modified == "2018-09-04T19:39:09"  # no dataset date: the newest distribution's
    csv = choose(bade)
    assert csv is not None and csv.format == "csv" and csv.zipped
    assert csv.url.endswith("Badegewaesser_messwerte_historisch_HH_2004-2013.zip")
    meta, notes = to_meta(bade, publisher="bue", publisher_name=None, visibility=None)
    assert meta.licence == "dl-de/by-2-0"  # from the distributions
    assert meta.themes == ["ENVI"] and meta.spatial == ["02"]
    assert meta.keywords == sorted(meta.keywords or []) and "badestelle" in (meta.keywords or [])
    assert notes == []
    polizei = records["Gebietsgrenzen Polizeikommissariate"]
    assert choose(polizei) is None  # GML only
    assert [d.stated_format for d in polizei.distributions] == ["GML"]


def test_dcat_ap_de_3_record_fields_and_notes() -> None:
    (rec,) = _page("dcat/v3.0/Dataset-und-Distribution.ttl").records
    assert rec.title == "Haushaltsplan"
    dist = choose(rec)
    assert dist is not None and dist.url == "https://example.com/data/haushalt_2021.csv"
    meta, notes = to_meta(rec, publisher="fm", publisher_name=None, visibility="public")
    assert meta.licence == "officialWork"
    assert meta.themes == ["ECON", "GOVE"]
    assert (meta.temporal_start, meta.temporal_end) == (date(2021, 1, 1), date(2021, 12, 31))
    assert meta.contact_point == "haushalt@example.com"
    assert meta.visibility == "public"
    # stateKey/17 is the example's invented Land "Bienenland": dropped, and said so
    assert meta.spatial == []
    assert notes == [
        "spatial http://dcat-ap.de/def/politicalGeocoding/stateKey/17 is not a known AGS/ARS "
        "key; dropped"
    ]


def test_govdata_ckanext_dcat_rdf_xml_record() -> None:
    # GovData's CKAN (ckanext-dcat) serves each dataset as RDF/XML; the answer wraps it
    answer = json.loads(shared_file("ckan/dcat_dataset_show_response_xml.json").read_text("utf-8"))
    page = harvest_dcat.parse_page(answer["result"].encode(), url="https://x/dataset/a.rdf")
    (rec,) = page.records
    assert rec.identifier == (
        "https://www.opendata-hro.de/dataset/a4bc37fd-6e7c-450a-b783-5bc201174d3a"
    )
    assert rec.publisher_name == "Hanse- und Universitätsstadt Rostock"
    meta, notes = to_meta(rec, publisher="hro", publisher_name=None, visibility=None)
    assert meta.licence == "CC0-1.0"
    assert meta.spatial == ["130030000000"]
    assert meta.themes == ["GOVE", "REGI"]
    assert (meta.temporal_start, meta.temporal_end) == (date(1788, 1, 1), date(1789, 1, 1))
    assert meta.contact_point == "geodienste@rostock.de"
    assert notes == []
    assert choose(rec) is None  # TIFF, WCS and WMS: a map, not a table
    assert sorted(d.stated_format for d in rec.distributions) == ["TIFF", "WCS", "WMS"]


def test_broken_turtle_names_the_page_and_line() -> None:
    # The working group's own example file starts with a stray "Stand: …" line.
    path = shared_file("dcat/2024-02-22_UAG_Beispieldatensatz_v1.ttl")
    with pytest.raises(BadInput) as exc:
        harvest_dcat.parse_page(path.read_bytes(), url=path.as_uri())
    assert path.name in str(exc.value) and "line 1" in str(exc.value)


def test_blank_node_dataset_without_identifier_has_none() -> None:
    (rec,) = _page("dcat/v2.0/ex-23-dataservice.rdf").records
    assert rec.identifier == ""  # cannot be followed from run to run


def test_hydra_paging_links_are_found_and_made_absolute() -> None:
    g = Graph()
    g.parse(shared_file("dcat/v3.0/Dataset-und-Distribution.ttl"), format="turtle")
    view = URIRef("https://data.example/catalog?page=2")
    g.add((view, RDF.type, HYDRA.PartialCollectionView))
    g.add((view, HYDRA.next, URIRef("https://data.example/catalog?page=3")))
    g.add((view, HYDRA.totalItems, Literal(41)))
    page = harvest_dcat.parse_page(
        g.serialize(format="xml").encode(), url="https://data.example/catalog?page=2"
    )
    assert page.next_url == "https://data.example/catalog?page=3" and page.total == 41
    legacy = (
        b"@prefix hydra: <http://www.w3.org/ns/hydra/core#> .\n"
        b'<?page=1> a hydra:PagedCollection ; hydra:nextPage "?page=2" ; hydra:totalItems 7 .\n'
    )
    page = harvest_dcat.parse_page(
        legacy, url="https://data.example/catalog.ttl?page=1", content_type="text/turtle"
    )
    assert page.next_url == "https://data.example/catalog.ttl?page=2" and page.records == []


@pytest.mark.parametrize(
    "doc",
    [
        {"@context": "https://w3id.org/dcat.jsonld", "@id": "x"},
        {"@context": [{"dct": "http://purl.org/dc/terms/"}, "http://x/ctx.jsonld"], "@id": "x"},
        {"@context": {"@import": "https://x/ctx.jsonld"}, "@id": "x"},
        {"@graph": [{"@context": "https://x/inner.jsonld", "@id": "y"}]},
    ],
)
def test_json_ld_with_a_remote_context_is_refused_not_fetched(doc: dict[str, Any]) -> None:
    with pytest.raises(BadInput, match="remote context"):
        harvest_dcat.parse_page(json.dumps(doc).encode(), url="https://x/catalog.jsonld")


def test_format_detection_from_stated_formats() -> None:
    assert format_of("http://publications.europa.eu/resource/authority/file-type/CSV") == (
        "csv",
        False,
    )
    assert format_of("https://www.iana.org/assignments/media-types/text/csv+zip") == ("csv", True)
    assert format_of(None, None, "https://x/y/Daten.XLSX") == ("xlsx", False)
    assert format_of("Kartenviewer", None, "https://x/karte.html") == (None, False)
    assert format_of("", "ZIP", "https://x/a.zip") == (None, True)


# -- CKAN ---------------------------------------------------------------------------------------
def test_ckan_package_with_dcat_ap_de_extras() -> None:
    package = json.loads(shared_file("ckan/dcatap-dataset.json").read_text("utf-8"))
    rec = harvest_ckan.record_of(package, base="https://www.govdata.de/ckan")
    assert rec.identifier == "c9e92d9b-5437-47bb-9f64-b3f9400d8e53"
    # the real record repeats publisher_name with a placeholder: the first value counts
    assert rec.publisher_name == "Behörde für Umwelt und Energie (BUE), Amt für Umweltschutz"
    assert rec.modified == "2017-09-04T10:37:28.029510"
    meta, notes = to_meta(rec, publisher="bue", publisher_name=None, visibility=None)
    assert meta.licence == "dl-de/by-2-0"  # license_id is empty; the resources state it
    assert meta.spatial == ["020000000000", "02"]
    assert meta.themes == ["ENVI"]  # group "envi" and the theme extra agree
    assert (meta.temporal_start, meta.temporal_end) == (date(2016, 1, 1), date(2016, 12, 31))
    assert meta.contact_point == "michael.schroeder@bue.hamburg.de"
    assert "Bodenschutz" in (meta.keywords or [])
    assert notes == []
    assert choose(rec) is None  # GML and an unlabelled ZIP


def test_ckan_package_show_answer_of_an_old_govdata_record() -> None:
    path = shared_file("ckan/package_show_response.json")
    page = harvest_ckan.parse_answer(
        path.read_bytes(), url="https://ckan.example/api/3/action/package_show"
    )
    (rec,) = page.records
    assert rec.title == "LGB: HGW Chrom - Ebene: LGB: HGW Chrom"
    assert rec.publisher_name == "Landesamt für Geologie und Bergbau"  # author, no organisation
    assert rec.landing_page == "https://ckan.example/dataset/13dfb16a-c4f1-36b4-eda2-01ff5b1b294f"
    meta, notes = to_meta(rec, publisher="lgb", publisher_name=None, visibility=None)
    assert meta.licence is None
    assert "licence cc-nc is not one the pool offers; left empty" in notes
    assert meta.themes == ["EDUC", "REGI"]  # GovData's old categories
    assert meta.contact_point == "office@lgb-rlp.de"
    assert choose(rec) is None
    assert sorted(d.stated_format for d in rec.distributions) == ["HTML", "Kartenviewer", "WMS"]


def test_ckan_search_answer_pages_and_harvest_sources() -> None:
    path = shared_file("ckan/v2016/package_search_response.json")
    page = harvest_ckan.parse_answer(path.read_bytes(), url="https://x/api/3/action/package_search")
    assert page.total == 256 and page.returned == 10
    assert all(r.not_a_dataset for r in page.records)


@pytest.mark.parametrize(
    "body,message",
    [
        (b"<html>", "invalid JSON"),
        (b'{"success": false, "error": {"message": "Access denied"}}', "Access denied"),
        (b'{"success": true, "result": ["a", "b"]}', "neither package_search"),
    ],
)
def test_ckan_answers_that_are_not_packages(body: bytes, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        harvest_ckan.parse_answer(body, url="https://x/api/3/action/package_search")


def test_ckan_base_from_any_action_url() -> None:
    assert harvest_ckan.api_base("https://www.govdata.de/ckan/api/3/action/package_search?q=x") == (
        "https://www.govdata.de/ckan"
    )
    assert harvest_ckan.api_base("https://ckan.example/") == "https://ckan.example"


# -- names --------------------------------------------------------------------------------------
def test_slugs_are_stable_valid_and_distinct() -> None:
    a = slug_for("https://example.com/dataset/d4ce4e6e-ab89-44cb-bf5c-33a162c234de#dataset")
    assert a == slug_for("https://example.com/dataset/d4ce4e6e-ab89-44cb-bf5c-33a162c234de#dataset")
    assert a.startswith("d4ce4e6e-ab89-44cb-bf5c-33a162c234de-")
    assert slug_for("https://a.example/x/data") != slug_for("https://b.example/x/data")
    numeric = slug_for("352a646f")
    assert numeric.startswith("h-352a646f-")
    from datenlabor.pool.catalog import check_slug

    for ident in ("Ä Ö Ü ß", "x" * 300, "12345", "https://x/ä/Übersicht der Ämter"):
        check_slug(slug_for(ident))


def test_org_slugs_transcribe_german() -> None:
    assert org_slug("Behörde für Umwelt und Energie (BUE), Amt für Umweltschutz") == (
        "behoerde-fuer-umwelt-und-energie-bue-amt-fuer-umweltschutz"
    )
    assert org_slug("4. Senat") == "org-4-senat"


def test_record_without_title_uses_its_identifier() -> None:
    meta, _ = to_meta(
        Record(identifier="urn:x"), publisher=None, publisher_name=None, visibility=None
    )
    assert meta.title == "urn:x"


def test_local_catalogue_path_helper(tmp_path: Path) -> None:
    from datenlabor.interop.harvest import normalise_source

    f = tmp_path / "c.ttl"
    f.write_text("")
    assert normalise_source(str(f)) == f.resolve().as_uri()
    with pytest.raises(BadInput, match="not found"):
        normalise_source(str(tmp_path / "missing.ttl"))
