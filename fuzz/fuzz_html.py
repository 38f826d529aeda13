"""Fuzz target: knowledge-base extraction of HTML documents (lxml)."""

from __future__ import annotations

import harness

TARGET = "html"
INSTRUMENT = ("datenlabor",)
MAX_LEN = 32 * 1024


def seeds() -> harness.Iterator[harness.Seed]:
    yield from harness.files("assist_kb/*.html")
    yield (
        "nested.html",
        (
            "<!DOCTYPE html><html><head><title>Merkblatt</title><script>x()</script></head><body>"
            "<h1>1 Allgemeines</h1><p>(1) Text <a href='#'>Link</a></p><table><tr><th>A</th>"
            "<td>B</td></tr></table><ul><li>eins<li>zwei</ul><h2>2 Gebühren</h2><pre>x</pre>"
        ).encode(),
    )
    yield from harness.regressions(TARGET)


def prepare() -> None:
    import datenlabor.assist.extract  # noqa: F401


def one_input(data: bytes) -> None:
    from datenlabor.assist.extract import extract_text

    extract_text(data, "fuzz.html")


if __name__ == "__main__":
    harness.main(__name__)
