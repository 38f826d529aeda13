"""Fuzz target: knowledge-base extraction of Markdown documents (markdown-it-py)."""

from __future__ import annotations

import harness

TARGET = "markdown"
INSTRUMENT = ("datenlabor", "markdown_it")
MAX_LEN = 32 * 1024


def seeds() -> harness.Iterator[harness.Seed]:
    yield from harness.files("assist_kb/*.md", "assist_kb/*.txt")
    yield (
        "table.md",
        (
            "# Gebühren\n\n| Leistung | Euro |\n|---|---:|\n| Ausweis | 37,00 |\n\n"
            "## § 3 Fristen\n\n1. erstens\n2. zweitens\n\n> Zitat *kursiv* `code`\n\n```\nblock\n```\n"
        ).encode(),
    )
    yield from harness.regressions(TARGET)


def prepare() -> None:
    import datenlabor.assist.extract  # noqa: F401


def one_input(data: bytes) -> None:
    from datenlabor.assist.extract import extract_text

    extract_text(data, "fuzz.md")


if __name__ == "__main__":
    harness.main(__name__)
