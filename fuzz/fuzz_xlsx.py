"""Fuzz target: XLSX workbooks (ZIP container, sheet list by calamine, cells by DuckDB)."""

from __future__ import annotations

import io

import harness
from tabular import TabularTarget

TARGET = "xlsx"
INSTRUMENT = ("datenlabor",)
MAX_LEN = 64 * 1024
_target = TabularTarget(suffix=".xlsx", fmt="xlsx")
prepare, one_input = _target.prepare, _target.one_input


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


if __name__ == "__main__":
    harness.main(__name__)
