"""Fuzz target: knowledge-base extraction of PDF documents (pypdf text layer)."""

from __future__ import annotations

import harness

TARGET = "pdf"
INSTRUMENT = ("datenlabor", "pypdf")
MAX_LEN = 32 * 1024


def seeds() -> harness.Iterator[harness.Seed]:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title("Merkblatt Wohngeld")
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(0, 8, "1 Allgemeines\n(1) Wohngeld ist ein Zuschuss zur Miete.\n§ 3 Fristen")
    pdf.add_page()
    pdf.multi_cell(0, 8, "2 Gebuehren\nDie Bearbeitung ist kostenfrei.")
    yield "fpdf.pdf", bytes(pdf.output())
    pdf = FPDF()
    pdf.add_page()
    pdf.set_compression(False)
    pdf.set_font("helvetica", size=10)
    pdf.cell(0, 10, "Unkomprimiert")
    yield "plain.pdf", bytes(pdf.output())
    yield from harness.regressions(TARGET)


def prepare() -> None:
    import datenlabor.assist.extract  # noqa: F401


def one_input(data: bytes) -> None:
    from datenlabor.assist.extract import extract_text

    extract_text(data, "fuzz.pdf")


if __name__ == "__main__":
    harness.main(__name__)
