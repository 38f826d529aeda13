"""Knowledge-base chunks along a document's structure.

A chunk is what retrieval finds and an answer cites, so it should be a unit a caseworker
would cite: one paragraph ("§ 3 Abs. 2" — an Absatz together with its numbered items), one
numbered section ("3.2"), or, in unstructured text, a run of paragraphs of at most
``MAX_CHARS``. Chunks never cross a heading or a page. A single paragraph longer than
``MAX_CHARS`` is split between sentences.

Each chunk records its document, the heading path, the paragraph marker, the page and a
``label`` to cite it by, e.g. ``"WoGG, § 3 Wohngeldberechtigung, Abs. 2"``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from datenlabor.assist.extract import HEADING_SEP, Extracted

MAX_CHARS = 1200  # ~ 200 German words: one Absatz with its items usually fits
MIN_CHARS = 200  # unnumbered paragraphs shorter than this are merged with the next
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-ZÄÖÜ(„\"§0-9])")
_ABBREVIATIONS = re.compile(
    r"(?:\b(?:Abs|Nr|Art|bzw|ggf|vgl|z\.B|d\.h|u\.a|S|Ziff|lit|Buchst|Satz|gem|i\.V\.m|"
    r"Dr|Prof|Str|usw|etc|ca|inkl|zzgl|max|min|Tel|geb)\.|\d\.)$"
)


@dataclass
class Chunk:
    chunk_id: str
    document: str
    title: str | None
    heading: str | None  # heading path, " › "-separated
    para: str | None  # paragraph marker: "(2)", "3.2"
    page: int | None
    seq: int  # position in the document
    text: str
    label: str

    def row(self) -> dict[str, Any]:
        return self.__dict__.copy()


def split_sentences(text: str) -> list[str]:
    """Sentences of German administrative text; abbreviations ("Abs.", "Nr.", "z.B.")
    and ordinal numbers ("3. Kapitel") do not end a sentence."""
    parts: list[str] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        before = text[start : m.start()]
        if _ABBREVIATIONS.search(before):
            continue
        parts.append(before.strip())
        start = m.end()
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def chunk_document(ex: Extracted, document: str, *, max_chars: int = MAX_CHARS) -> list[Chunk]:
    """Chunks of one extracted document, in document order."""
    groups: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []

    def size(blocks: list[dict[str, Any]]) -> int:
        return sum(len(b["text"]) + 1 for b in blocks)

    for block in ex.blocks:
        starts_unit = block["para"] is not None and not _is_item(block["para"])
        if current:
            same_place = (
                block["heading"] == current[0]["heading"] and block["page"] == current[0]["page"]
            )
            unnumbered_run = current[0]["para"] is None and size(current) < MIN_CHARS
            fits = size(current) + len(block["text"]) <= max_chars
            if not same_place or (starts_unit and not unnumbered_run) or not fits:
                groups.append(current)
                current = []
        current.append(block)
    if current:
        groups.append(current)

    title = ex.title
    chunks: list[Chunk] = []
    for group in groups:
        text = "\n".join(b["text"] for b in group)
        head = group[0]
        para = head["para"] if head["para"] and not _is_item(head["para"]) else None
        pieces = [text] if len(text) <= max_chars else _split_long(text, max_chars)
        for piece in pieces:
            seq = len(chunks)
            chunks.append(
                Chunk(
                    chunk_id=_chunk_id(document, seq, piece),
                    document=document,
                    title=title,
                    heading=head["heading"],
                    para=para,
                    page=head["page"],
                    seq=seq,
                    text=piece,
                    label=label(document, title, head["heading"], para, head["page"]),
                )
            )
    return chunks


def _is_item(marker: str) -> bool:
    """List items ("1.", "a)") belong to the paragraph before them."""
    return marker.endswith(".") or (marker.endswith(")") and not marker.startswith("("))


def _split_long(text: str, max_chars: int) -> list[str]:
    out: list[str] = []
    current = ""
    for sentence in split_sentences(text):
        while len(sentence) > max_chars:  # one endless sentence: cut between words
            cut = sentence.rfind(" ", 0, max_chars)
            cut = cut if cut > 0 else max_chars
            if current:
                out.append(current)
                current = ""
            out.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if current and len(current) + 1 + len(sentence) > max_chars:
            out.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}".strip()
    if current:
        out.append(current)
    return out


def _chunk_id(document: str, seq: int, text: str) -> str:
    digest = hashlib.sha256(f"{document}\x00{seq}\x00{text}".encode()).hexdigest()
    return digest[:20]


def label(
    document: str, title: str | None, heading: str | None, para: str | None, page: int | None
) -> str:
    """How a chunk is cited: short document name, innermost heading, Absatz, page."""
    parts = [_short_title(title) or document]
    inner = heading.split(HEADING_SEP)[-1] if heading else None
    if inner and inner != title and inner != parts[0]:
        parts.append(inner)
    if para:
        parts.append(f"Abs. {para[1:-1]}" if para.startswith("(") else para)
    if page is not None:
        parts.append(f"S. {page}")
    return ", ".join(parts)


def _short_title(title: str | None) -> str | None:
    """The abbreviation in parentheses of a statute title ("Wohngeldgesetz (WoGG)" -> WoGG)."""
    if not title:
        return None
    m = re.search(r"\(([A-ZÄÖÜ][\wÄÖÜäöü-]{1,15})\)\s*$", title)
    return m.group(1) if m else title
