"""Fuzz target: DCAT catalogue pages (RDF/XML, Turtle, JSON-LD) as the harvester parses them."""

from __future__ import annotations

import harness

TARGET = "rdf"
INSTRUMENT = ("datenlabor",)
MAX_LEN = 32 * 1024


def seeds() -> harness.Iterator[harness.Seed]:
    yield from harness.files(
        "shared:dcat/v2.0/*SIMPLE*",
        "shared:dcat/v3.0/*.ttl",
        "shared:dcat/v1.1/*SIMPLE*",
        "shared:dcat/v2.0/ex-23-dataservice.rdf",
        limit=32 * 1024,
    )
    yield from harness.regressions(TARGET)


def prepare() -> None:
    import datenlabor.interop.harvest_dcat  # noqa: F401


def one_input(data: bytes) -> None:
    from datenlabor.interop.harvest_dcat import parse_page

    # The format is sniffed from the first bytes, as for a server without a media type.
    parse_page(data, url="https://catalogue.example/page")


if __name__ == "__main__":
    harness.main(__name__)
