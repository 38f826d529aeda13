"""Fuzz target: GENESIS exports, classic tables and flat files (ffcsv)."""

from __future__ import annotations

import harness

TARGET = "genesis"
INSTRUMENT = ("datenlabor",)
MAX_LEN = 64 * 1024
_reader = None


def seeds() -> harness.Iterator[harness.Seed]:
    yield from harness.files("shared:genesis/*.csv", "shared:genesis/ffcsv/*.csv", "genesis/*.csv")
    yield from harness.regressions(TARGET)


def prepare() -> None:
    global _reader
    from tabular import TabularReader

    _reader = TabularReader(harness.scratch())


def one_input(data: bytes) -> None:
    assert _reader is not None
    _reader.read(data, suffix=".csv", fmt="genesis")


if __name__ == "__main__":
    harness.main(__name__)
