"""Fuzz target: XLSX workbooks (ZIP container, sheet list by calamine, cells by DuckDB)."""

from __future__ import annotations

import io

import harness

TARGET = "xlsx"
INSTRUMENT = ("datenlabor",)
MAX_LEN = 64 * 1024
_reader = None


def seeds() -> harness.Iterator[harness.Seed]:
    import openpyxl

    from datenlabor.demo import write_offices_xlsx

    path = write_offices_xlsx(harness.scratch() / "offices.xlsx")
    yield path.name, path.read_bytes()
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Daten"
    ws.append(["Kreis", "Anträge", "Stichtag"])
    ws.append(["08222", 12, "2024-01-31"])
    ws.append(["08221", None, "=B2*2"])
    wb.create_sheet("Leer")
    buf = io.BytesIO()
    wb.save(buf)
    yield "openpyxl.xlsx", buf.getvalue()
    yield from harness.regressions(TARGET)


def prepare() -> None:
    global _reader
    from tabular import TabularReader

    _reader = TabularReader(harness.scratch())


def one_input(data: bytes) -> None:
    assert _reader is not None
    _reader.read(data, suffix=".xlsx", fmt="xlsx")


if __name__ == "__main__":
    harness.main(__name__)
