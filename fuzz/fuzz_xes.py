"""Fuzz target: XES event logs (plain and gzip), parsed with lxml's iterparse."""

from __future__ import annotations

import gzip

import harness

TARGET = "xes"
INSTRUMENT = ("datenlabor",)
MAX_LEN = 64 * 1024
_folder = None


def seeds() -> harness.Iterator[harness.Seed]:
    yield from harness.files("procedures/*.xes", "procedures/*.xes.gz")
    for name, data in harness.files("shared:eventlogs/receipt.xes", limit=48 * 1024):
        # the real log cut after its last complete trace in the first 48 KiB
        end = data.rfind(b"</trace>")
        yield name, data[: end + 8] + b"\n</log>\n"
        yield name + ".gz", gzip.compress(data[: end + 8] + b"\n</log>\n")
    yield from harness.regressions(TARGET)


def prepare() -> None:
    global _folder
    import datenlabor.procedures.xes  # noqa: F401 - imported here to be instrumented

    _folder = harness.scratch()


def one_input(data: bytes) -> None:
    import shutil

    from datenlabor.procedures.xes import read_xes

    assert _folder is not None
    path = _folder / "input.xes"
    path.write_bytes(data)
    work = _folder / "work"
    work.mkdir(exist_ok=True)
    try:
        read_xes(path, work, chunk_events=64)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    harness.main(__name__)
