"""Fuzz target: knowledge-base extraction of DOCX documents (python-docx, ZIP + XML)."""

from __future__ import annotations

import io

import harness

TARGET = "docx"
INSTRUMENT = ("datenlabor",)
MAX_LEN = 64 * 1024


def seeds() -> harness.Iterator[harness.Seed]:
    import docx

    d = docx.Document()
    d.core_properties.title = "Dienstanweisung"
    d.add_heading("1 Zweck", level=1)
    d.add_paragraph("(1) Diese Anweisung regelt die Bearbeitung.")
    table = d.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Frist"
    table.cell(0, 1).text = "14 Tage"
    d.add_heading("2 Zuständigkeit", level=2)
    buf = io.BytesIO()
    d.save(buf)
    yield "generated.docx", buf.getvalue()
    yield from harness.regressions(TARGET)


def prepare() -> None:
    import datenlabor.assist.extract  # noqa: F401


def one_input(data: bytes) -> None:
    from datenlabor.assist.extract import extract_text

    extract_text(data, "fuzz.docx")


if __name__ == "__main__":
    harness.main(__name__)
