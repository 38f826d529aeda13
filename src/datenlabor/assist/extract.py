"""Text and structure from PDF, DOCX, HTML, Markdown and plain text.

:func:`extract_text` returns the whole text and its *blocks*: paragraphs in document order,
each with the heading path it stands under, its paragraph number when it has one ("(2)",
"3.2", "1.") and its page (PDF only). :mod:`datenlabor.assist.chunking` builds knowledge-base
chunks from the blocks; the inbox reuses the text for e-mail attachments.

Libraries: pypdf (PDF text layer), python-docx (DOCX paragraphs, heading styles, tables),
lxml (HTML), markdown-it-py (Markdown, CommonMark). Scanned PDFs without a text layer are
refused with a clear message: OCR is out of scope.

Example::

    ex = extract_text(Path("merkblatt.pdf"), "merkblatt.pdf")
    ex.blocks[0]  # {"heading": "1 Allgemeines", "para": None, "text": "…", "page": 1}
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datenlabor.errors import BadInput

FORMATS = ("pdf", "docx", "html", "markdown", "text")
_SUFFIXES = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
}
HEADING_SEP = " › "
MAX_BYTES = 100 * 1024**2

# A paragraph number at the start of a paragraph: "(2)", "2.", "3.2", "3.2.1", "a)".
_PARA_NO = re.compile(r"^\s*(?:\((\d+[a-z]?)\)|(\d+(?:\.\d+)+)\.?|(\d+)\.|([a-z])\))\s")
# Lines that look like headings in text without markup (PDF, plain text).
_TEXT_HEADING = re.compile(
    r"^(?:§\s*\d+[a-z]?(?:\s+\S.*)?|Art(?:ikel|\.)\s*\d+[a-z]?\b.*"
    r"|(?:Teil|Kapitel|Abschnitt|Anlage|Anhang)\s+[\dIVX]+\b.*"
    r"|\d+(?:\.\d+)*\.?\s+[A-ZÄÖÜ][^.!?:;]{1,90})$"
)


@dataclass
class Extracted:
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    format: str = "text"
    title: str | None = None
    pages: int | None = None
    encoding: str | None = None  # for text formats: how the bytes were decoded


def detect_format(filename: str, head: bytes = b"") -> str:
    """The format from the name, checked against the first bytes where they tell."""
    suffix = Path(filename).suffix.lower()
    fmt = _SUFFIXES.get(suffix)
    if head.startswith(b"%PDF"):
        return "pdf"
    if fmt is None:
        if head.startswith(b"PK") and not suffix:  # e-mail attachments without a name
            return "docx"
        raise BadInput(
            f"unsupported document type {suffix or '(no extension)'!r}; "
            "supported: .pdf, .docx, .html, .md, .txt",
            file=filename,
        )
    return fmt


def extract_text(source: str | Path | bytes, filename: str | None = None) -> Extracted:
    """Text and blocks of one document, given as a path or as bytes with its file name."""
    if isinstance(source, bytes):
        data = source
        name = filename or "document"
        if len(data) > MAX_BYTES:
            raise BadInput(f"document larger than {MAX_BYTES // 1024**2} MB", file=name)
    else:
        path = Path(source)
        name = filename or path.name
        try:
            if path.stat().st_size > MAX_BYTES:
                raise BadInput(f"document larger than {MAX_BYTES // 1024**2} MB", file=name)
            data = path.read_bytes()
        except OSError as exc:
            raise BadInput(f"cannot read the document: {exc.strerror or exc}", file=name) from exc
    fmt = detect_format(name, data[:8])
    if fmt == "pdf":
        ex = _pdf(data, name)
    elif fmt == "docx":
        ex = _docx(data, name)
    else:
        text, encoding = decode(data, name)
        if fmt == "html":
            ex = _html(text, name)
        elif fmt == "markdown":
            ex = _markdown(text)
        else:
            ex = _plain(text)
        ex.encoding = encoding
    ex.format = fmt
    ex.blocks = [b for b in ex.blocks if b["text"].strip()]
    if not ex.blocks:
        hint = " (a scanned PDF without a text layer? OCR is not supported)" if fmt == "pdf" else ""
        raise BadInput(f"no text found in the document{hint}", file=name)
    ex.text = "\n\n".join(b["text"] for b in ex.blocks)
    return ex


def decode(data: bytes, name: str) -> tuple[str, str]:
    """UTF-8 (with or without BOM), else cp1252, as German office files come."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="strict"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError as exc:
        raise BadInput(
            f"text is neither UTF-8 nor cp1252 (byte 0x{data[exc.start]:02x} at offset {exc.start})",
            file=name,
        ) from exc


def para_number(text: str) -> str | None:
    """The paragraph marker a block starts with, as written: "(2)" (Absatz), "3.2"
    (numbered section), "1." (list item), "a)" (letter item); None without one."""
    m = _PARA_NO.match(text)
    if not m:
        return None
    absatz, section, item, letter = m.groups()
    if absatz:
        return f"({absatz})"
    if section:
        return section
    return f"{item}." if item else f"{letter})"


class _Builder:
    """Collects blocks while tracking the heading path (levels 1..6)."""

    def __init__(self) -> None:
        self.path: list[tuple[int, str]] = []
        self.blocks: list[dict[str, Any]] = []
        self.title: str | None = None

    def heading(self, level: int, text: str) -> None:
        text = _clean(text)
        if not text:
            return
        if self.title is None:
            self.title = text
        self.path = [(lv, t) for lv, t in self.path if lv < level]
        self.path.append((level, text))

    def para(self, text: str, page: int | None = None) -> None:
        text = _clean(text)
        if text:
            self.blocks.append(
                {
                    "heading": HEADING_SEP.join(t for _, t in self.path) or None,
                    "para": para_number(text),
                    "text": text,
                    "page": page,
                }
            )

    def result(self) -> Extracted:
        return Extracted(text="", blocks=self.blocks, title=self.title)


def _clean(text: str) -> str:
    text = text.replace("\u00ad", "").replace("\xa0", " ")
    text = re.sub(r"(\w)-\n(\w)", r"\1\2", text)  # hyphenation at line ends (PDF)
    return re.sub(r"\s+", " ", text).strip()


def _text_level(line: str) -> int:
    """Heading level of a heading-like line: Teil/Kapitel 1-2, § 3, numbered by depth."""
    if re.match(r"^(?:Teil|Anlage|Anhang)\b", line):
        return 1
    if re.match(r"^(?:Kapitel|Abschnitt)\b", line):
        return 2
    if re.match(r"^(?:§|Art)", line):
        return 3
    m = re.match(r"^(\d+(?:\.\d+)*)", line)
    return min(6, 1 + m.group(1).count(".")) if m else 3


def _lines_to_blocks(b: _Builder, text: str, page: int | None) -> None:
    """Plain or PDF text: blank lines separate paragraphs; heading-like lines are headings;
    a line starting with "(n)" starts a new paragraph even without a blank line."""
    current: list[str] = []

    def flush() -> None:
        if current:
            b.para("\n".join(current), page)
            current.clear()

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            flush()
            continue
        if len(line) <= 100 and _TEXT_HEADING.match(line) and not line.endswith((",", ";")):
            flush()
            b.heading(_text_level(line), line)
            continue
        if current and _PARA_NO.match(line) and current[-1].endswith((".", ":", ";")):
            flush()
        current.append(line)
    flush()


def _plain(text: str) -> Extracted:
    b = _Builder()
    # A short first line followed by a blank line is the document's title.
    m = re.match(r"\A\s*([^\n]{3,150})\n\s*\n", text)
    if m and not m.group(1).rstrip().endswith((".", ",", ";")):
        b.title = _clean(m.group(1))
        b.heading(0, m.group(1))
        text = text[m.end() :]
    _lines_to_blocks(b, text, None)
    return b.result()


def _pdf(data: bytes, name: str) -> Extracted:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise BadInput("the PDF is password-protected", file=name)
        b = _Builder()
        for number, page in enumerate(reader.pages, start=1):
            _lines_to_blocks(b, page.extract_text() or "", number)
        meta_title = (reader.metadata.title if reader.metadata else None) or None
        pages = len(reader.pages)
    except BadInput:
        raise
    except Exception as exc:
        # pypdf fails on damaged files with whatever its object model meets: fuzzing found
        # PdfReadError, LimitReachedError, DeprecationError, NotImplementedError, zlib.error,
        # AttributeError and AssertionError. All of them mean: not a readable PDF.
        raise BadInput(f"not a readable PDF: {exc or type(exc).__name__}", file=name) from exc
    ex = b.result()
    ex.title = meta_title or ex.title
    ex.pages = pages
    return ex


def _docx(data: bytes, name: str) -> Extracted:
    from datenlabor.zipbomb import check_archive

    check_archive(data, name)  # python-docx unpacks whole parts into memory
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError, NotImplementedError) as exc:
        raise BadInput(f"not a readable DOCX file: {exc}", file=name) from exc
    except (zlib.error, SyntaxError) as exc:  # a damaged part: bad deflate data or bad XML
        raise BadInput(f"not a readable DOCX file: {exc}", file=name) from exc
    b = _Builder()
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            for row in item.rows:
                cells = list(dict.fromkeys(c.text.strip() for c in row.cells if c.text.strip()))
                b.para(" | ".join(cells))
            continue
        assert isinstance(item, Paragraph)
        style = (item.style.name if item.style is not None else "") or ""
        level = _docx_heading_level(style)
        if level:
            b.heading(level, item.text)
        else:
            b.para(item.text)
    ex = b.result()
    ex.title = document.core_properties.title or ex.title
    return ex


def _docx_heading_level(style: str) -> int:
    """Word's built-in heading styles in English and German installations."""
    if style in ("Title", "Titel"):
        return 1
    m = re.match(r"^(?:Heading|Überschrift)\s*(\d)$", style)
    return int(m.group(1)) if m else 0


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_HTML_BLOCKS = _words(
    """
    p li dd dt pre blockquote td th caption figcaption address summary
    """
)
_HTML_SKIP = _words(
    """
    script style noscript template nav head svg button form
    """
)


def _html(text: str, name: str) -> Extracted:
    import lxml.html
    from lxml import etree

    try:
        root = lxml.html.document_fromstring(text)
    except (etree.ParserError, ValueError) as exc:
        raise BadInput(f"not readable HTML: {exc}", file=name) from exc
    b = _Builder()
    title_el = root.find(".//title")
    html_title = _clean(title_el.text_content()) if title_el is not None else None
    taken: set[Any] = set()

    def walk(el: Any) -> None:
        tag = el.tag if isinstance(el.tag, str) else ""
        if tag in _HTML_SKIP:
            return
        if re.fullmatch(r"h[1-6]", tag):
            b.heading(int(tag[1]), el.text_content())
            return
        if tag == "tr":
            cells = [_clean(c.text_content()) for c in el if c.tag in ("td", "th")]
            b.para(" | ".join(c for c in cells if c))
            return
        if tag in _HTML_BLOCKS and not any(
            isinstance(d.tag, str) and (d.tag in _HTML_BLOCKS or re.fullmatch(r"h[1-6]", d.tag))
            for d in el.iterdescendants()
        ):
            b.para(el.text_content())
            taken.add(el)
            return
        # Text directly inside containers (div, section, body) counts as a paragraph too.
        if el.text and el.text.strip() and tag not in ("html", "ul", "ol", "table"):
            b.para(el.text)
        for child in el:
            walk(child)
            if child.tail and child.tail.strip() and tag not in ("ul", "ol", "table", "tr"):
                b.para(child.tail)

    body = root.find("body")
    walk(body if body is not None else root)
    ex = b.result()
    ex.title = html_title or ex.title
    return ex


_FRONT_MATTER = re.compile(r"\A---\s*\n.*?\n---\s*\n", re.DOTALL)


def _markdown(text: str) -> Extracted:
    from markdown_it import MarkdownIt

    front = _FRONT_MATTER.match(text)
    title = None
    if front:
        m = re.search(r"^[Tt]itle:\s*(.+)$", front.group(0), re.MULTILINE)
        title = m.group(1).strip().strip("\"'") if m else None
        text = text[front.end() :]
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    b = _Builder()
    i = 0
    row: list[str] = []
    item = ""
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == "heading_open":
            b.heading(int(tok.tag[1]), tokens[i + 1].content)
            i += 3
            continue
        if tok.type == "list_item_open":
            item = f"{tok.info}. " if tok.info else ""  # ordered lists keep their numbers
        elif tok.type == "inline" and tokens[i - 1].type == "paragraph_open":
            b.para(item + _md_inline(tok.content))
            item = ""
        elif tok.type == "inline" and tokens[i - 1].type in ("td_open", "th_open"):
            row.append(_md_inline(tok.content))
        elif tok.type == "tr_close":
            b.para(" | ".join(c for c in row if c))
            row = []
        elif tok.type in ("fence", "code_block"):
            b.para(tok.content)
        i += 1
    ex = b.result()
    ex.title = title or ex.title
    return ex


def _md_inline(text: str) -> str:
    """Inline Markdown to plain text: links keep their text, emphasis marks go."""
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)
    return re.sub(r"(\*\*|__|\*|_|`)(.+?)\1", r"\2", text)
