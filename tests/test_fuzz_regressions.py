"""Inputs the fuzzers found (tests/fixtures/fuzz/TARGET/): each once broke a reader with an
exception other than BadInput. Now each is read or refused with a message naming the file."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from datenlabor.assist.extract import extract_text
from datenlabor.assist.inbox import parse_eml
from datenlabor.errors import BadInput
from datenlabor.procedures.xes import read_xes

FOUND = Path(__file__).parent / "fixtures" / "fuzz"


def test_genesis_table_with_a_short_data_row(sqlite_pool) -> None:  # type: ignore[no-untyped-def]
    # IndexError in the code-column detection before the row-width check could speak
    path = FOUND / "genesis" / "short-data-row.csv"
    with pytest.raises(BadInput, match=r"short-data-row\.csv, line 6.*data row has 5 cells") as exc:
        sqlite_pool.ingest(path, dataset="kaputt", format="genesis")
    assert exc.value.line == 6
    assert sqlite_pool.datasets() == []


def test_mail_with_an_unknown_charset_is_still_read() -> None:
    # LookupError "unknown encoding: ut-" from EmailMessage.get_content
    r = parse_eml((FOUND / "eml" / "unknown-charset.eml").read_bytes(), "unknown-charset.eml")
    assert r.text.startswith("Sehr geehrte Damen und Herren")
    assert r.sender and "erika@" in r.sender


def test_mail_with_an_address_header_the_stdlib_cannot_parse() -> None:
    # AttributeError "'Group' object has no attribute 'local_part'" from email.headerregistry
    data = (FOUND / "eml" / "address-group-header.eml").read_bytes()
    r = parse_eml(data, "address-group-header.eml")
    assert r.sender and r.sender.startswith("Erikat Mseurma")  # the header as it was sent
    assert "wie lange dauert mein Antrag" in r.text


def test_mail_with_a_date_whose_year_overflows() -> None:
    # OverflowError "Python int too large to convert to C long" from parsedate_to_datetime
    # (found: fixtures/fuzz/eml/date-year-overflow.eml, a mail without text besides)
    found = (FOUND / "eml" / "date-year-overflow.eml").read_bytes()
    with pytest.raises(BadInput, match=r"date-year-overflow\.eml: the e-mail has no text"):
        parse_eml(found, "date-year-overflow.eml")
    mail = (
        b"From: erika@example.org\r\nSubject: Antrag\r\n"
        b"Date: Mon, 7 Dec 99999999999999999999999 10:00:00 +0100\r\n\r\n"
        b"Wie lange dauert mein Antrag?\r\n"
    )
    r = parse_eml(mail, "datum.eml")
    assert r.received_at is None  # an unreadable date is left out, the mail is kept
    assert r.text == "Wie lange dauert mein Antrag?"


def test_mail_whose_charset_label_holds_a_nul_byte() -> None:
    # ValueError "embedded null character" from EmailMessage.get_payload(), which decodes
    # the body by its charset label (found: fixtures/fuzz/eml/charset-with-nul.eml, whose
    # From header is mangled and whose body is not text)
    found = (FOUND / "eml" / "charset-with-nul.eml").read_bytes()
    with pytest.raises(BadInput, match=r"charset-with-nul\.eml: the e-mail has no text"):
        parse_eml(found, "charset-with-nul.eml")
    mail = (
        b"From: erika@example.org\r\nSubject: Antrag\r\n"
        b'Content-Type: text/plain; charset="ut-\x00f-8"\r\n\r\n'
        b"Wie lange dauert mein Antrag?\r\n"
    )
    r = parse_eml(mail, "nul.eml")  # the label is ignored, the mail is kept
    assert r.text == "Wie lange dauert mein Antrag?"
    headless = b'Content-Type: text/plain; charset="a\x00b"\r\n\r\nNur ein Text\r\n'
    assert parse_eml(headless, "ohne-absender.eml").text == "Nur ein Text"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("bad-deflate.docx", "invalid distance too far back"),  # was zlib.error
        ("zip-version-13.docx", "zip file version"),  # was NotImplementedError
    ],
)
def test_damaged_docx_files(name: str, reason: str) -> None:
    with pytest.raises(BadInput, match=rf"{name}: (not a readable DOCX file|damaged ZIP).*{reason}"):
        extract_text((FOUND / "docx" / name).read_bytes(), name)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("unsupported-filter.pdf", "Unsupported filter"),  # was NotImplementedError
        ("self-referencing-object.pdf", "loop with self reference"),  # was LimitReachedError
        ("missing-object.pdf", "has no attribute"),  # was AttributeError inside pypdf
        ("removed-filter-name.pdf", "deprecated"),  # was pypdf.errors.DeprecationError
        ("internal-assertion.pdf", "mypy"),  # was AssertionError inside pypdf
    ],
)
def test_damaged_pdf_files(name: str, reason: str) -> None:
    with pytest.raises(BadInput, match=rf"{name}: not a readable PDF: .*{reason}"):
        extract_text((FOUND / "pdf" / name).read_bytes(), name)


def test_xlsx_with_a_damaged_part_header(sqlite_pool) -> None:  # type: ignore[no-untyped-def]
    # DuckDB's excel reader hung (> 20 s, found as a libFuzzer timeout) on this workbook
    path = FOUND / "xlsx" / "damaged-part-header.xlsx"
    started = time.monotonic()
    with pytest.raises(BadInput, match=r"damaged-part-header\.xlsx: damaged ZIP archive, part .*Bad magic number"):
        sqlite_pool.ingest(path, dataset="kaputt")
    assert time.monotonic() - started < 10
    assert sqlite_pool.datasets() == []


def test_xes_with_a_broken_gzip_stream(tmp_path: Path) -> None:
    # zlib.error from gzip while lxml pulled the next block
    with pytest.raises(BadInput, match=r"broken-gzip\.xes: cannot read file"):
        read_xes(FOUND / "xes" / "broken-gzip.xes", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_dcat_distribution_with_a_format_that_is_no_valid_url() -> None:
    # ValueError "Invalid IPv6 URL" from urlsplit on a dct:format IRI: the whole catalogue
    # page was lost; such a format now simply says nothing about the file type.
    from datenlabor.interop.harvest_dcat import parse_page
    from datenlabor.interop.harvest_record import format_of

    assert format_of("http://[publications.europa.eu/resource/file-type/CSV", "text/csv") == (
        "csv",
        False,
    )
    data = (FOUND / "rdf" / "invalid-ipv6-format-url.ttl").read_bytes()
    page = parse_page(data, url="https://catalogue.example/page")
    assert [r.title for r in page.records] == ["Haushaltsplan"]
    urls = [d.url for d in page.records[0].distributions]
    assert "https://example.com/data/haushalt_2021.pdf" in urls
