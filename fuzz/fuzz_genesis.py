"""Fuzz target: GENESIS exports, classic tables and flat files (ffcsv)."""

from __future__ import annotations

import harness
from tabular import TabularTarget

TARGET = "genesis"
INSTRUMENT = ("datenlabor",)
MAX_LEN = 64 * 1024
_target = TabularTarget(suffix=".csv", fmt="genesis")
prepare, one_input = _target.prepare, _target.one_input


def seeds() -> harness.Iterator[harness.Seed]:
    yield from harness.files("shared:genesis/*.csv", "shared:genesis/ffcsv/*.csv", "genesis/*.csv")
    yield from harness.regressions(TARGET)


if __name__ == "__main__":
    harness.main(__name__)
