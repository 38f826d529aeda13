"""Fuzz target: the CSV reader (encoding, dialect and type detection, DuckDB parse)."""

from __future__ import annotations

import harness
from tabular import TabularTarget

TARGET = "csv"
INSTRUMENT = ("datenlabor",)
MAX_LEN = 64 * 1024
_target = TabularTarget(suffix=".csv", fmt="csv")
prepare, one_input = _target.prepare, _target.one_input


def seeds() -> harness.Iterator[harness.Seed]:
    yield from harness.files(
        "procedures/*.csv", "shared:eventlogs/receipt.csv", "shared:genesis/ffcsv/*.csv"
    )
    yield (
        "semicolon-de.csv",
        "Kreis;Anträge;Betrag\n08222;12;1.234,50\n08221;7;99,00\n".encode("cp1252"),
    )
    yield "quoted.csv", b'a,b\n"x ""y""",2\n"multi\nline",3\n'
    yield "utf16.csv", "Name\tWert\nÄ\t1\n".encode("utf-16")
    yield from harness.regressions(TARGET)


if __name__ == "__main__":
    harness.main(__name__)
