"""Streaming reader for XES event logs (IEEE 1849), plain or gzip-compressed.

The file is parsed with lxml's ``iterparse``; every finished ``<event>`` and ``<trace>`` is
cleared at once, so memory stays constant however large the log is (one trace and one chunk
of events are held at a time). Events go to Parquet chunk files with raw text values plus the
source line of their ``<event>`` element; :func:`datenlabor.procedures.eventlog.normalise`
then casts them to the XES types in one DuckDB pass and names the element line on errors.

Safety: DTDs are refused outright, entities are never resolved and the network is never
used (lxml ``resolve_entities=False, no_network=True, load_dtd=False``), so neither entity
expansion ("billion laughs") nor external entities can be abused.

What is kept: the top-level attributes of each event under their keys, and the top-level
attributes of its trace as ``case:<key>`` (the trace's ``concept:name`` becomes the case id).
Nested attributes (lists, containers, meta attributes) and log-level attributes are skipped;
``<global>`` defaults are not filled in (pm4py does not fill them in either).
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import pyarrow as pa
import pyarrow.parquet as pq
from lxml import etree

from datenlabor.errors import BadInput
from datenlabor.query.connection import quote_ident, quote_literal

# XES attribute element -> DuckDB type of its values.
XES_TYPES = {
    "string": "VARCHAR",
    "id": "VARCHAR",
    "date": "TIMESTAMPTZ",
    "int": "BIGINT",
    "float": "DOUBLE",
    "boolean": "BOOLEAN",
}
_SKIPPED = {"list", "container"}  # value-less compound attributes
CHUNK_EVENTS = 50_000
STANDARD_KEYS = ("concept:name", "time:timestamp")


@dataclass
class ParsedXes:
    """Chunk files of raw events plus what the reader learned about the attributes."""

    files: list[Path]
    types: dict[str, set[str]] = field(default_factory=dict)
    traces: int = 0
    events: int = 0
    xes_version: str | None = None

    def relation(self) -> str:
        """The events; standard keys no event has are NULL columns (so a missing timestamp
        is reported at the first event's line, like an empty one)."""
        listed = ", ".join(quote_literal(str(f)) for f in self.files)
        missing = [k for k in STANDARD_KEYS if k not in self.types]
        extra = "".join(f", NULL::VARCHAR AS {quote_ident(k)}" for k in missing)
        return f"(SELECT *{extra} FROM read_parquet([{listed}], union_by_name = true))"

    def casts(self) -> dict[str, str]:
        """DuckDB type per attribute; text where one key was given different XES types."""
        out = {}
        for key, kinds in self.types.items():
            duck = {XES_TYPES[k] for k in kinds}
            out[key] = duck.pop() if len(duck) == 1 else "VARCHAR"
        return out


def _open(path: Path) -> IO[bytes]:
    with path.open("rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def _local(tag: Any) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def read_xes(path: Path, work: Path, *, chunk_events: int = CHUNK_EVENTS) -> ParsedXes:
    """Parse ``path`` into Parquet chunk files in ``work`` (columns: raw attribute text,
    ``__line``, ``__pos``)."""
    parsed = ParsedXes(files=[])
    chunk: dict[str, list[Any]] = {"__line": [], "__pos": []}
    file = str(path)

    def flush() -> None:
        if not chunk["__line"]:
            return
        arrays = {
            k: pa.array(v, type=pa.int64() if k.startswith("__") else pa.string())
            for k, v in chunk.items()
        }
        target = work / f"xes-chunk-{len(parsed.files):06d}.parquet"
        pq.write_table(pa.table(arrays), target, compression="zstd")
        parsed.files.append(target)
        chunk.clear()
        chunk.update({"__line": [], "__pos": []})

    def add(row: dict[str, str], line: int) -> None:
        n = len(chunk["__line"])
        chunk["__line"].append(line)
        chunk["__pos"].append(parsed.events)
        parsed.events += 1
        for k, v in row.items():
            col = chunk.get(k)
            if col is None:
                col = chunk[k] = [None] * n
            col.append(v)
        for col in chunk.values():
            if len(col) == n:
                col.append(None)
        if n + 1 >= chunk_events:
            flush()

    def attributes(elem: Any, prefix: str) -> dict[str, str]:
        row: dict[str, str] = {}
        for child in elem:
            kind = _local(child.tag)
            if kind in _SKIPPED or kind not in XES_TYPES:
                continue
            key, value = child.get("key"), child.get("value")
            if key is None or value is None:
                raise BadInput(
                    f"<{kind}> attribute without key or value",
                    file=file,
                    line=child.sourceline,
                )
            name = prefix + key
            row[name] = value
            parsed.types.setdefault(name, set()).add(kind)
        return row

    _refuse_dtd(path)
    pending: list[tuple[dict[str, str], int]] = []
    with _open(path) as fh:
        context = etree.iterparse(
            fh,
            events=("start", "end"),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            remove_comments=True,
            huge_tree=False,
        )
        depth, in_trace, seen_log = 0, False, False
        try:
            for event, elem in context:
                name = _local(elem.tag)
                if event == "start":
                    depth += 1
                    if depth == 1:
                        if name != "log":
                            raise BadInput(
                                f"not an XES log: root element is <{name}>, not <log>",
                                file=file,
                                line=elem.sourceline,
                            )
                        seen_log = True
                        parsed.xes_version = elem.get("xes.version")
                    elif name == "trace" and depth == 2:
                        in_trace = True
                    elif name == "event" and depth == 2:
                        raise BadInput(
                            "<event> outside a <trace> is not supported",
                            file=file,
                            line=elem.sourceline,
                        )
                    continue
                depth -= 1
                if name == "event" and in_trace and depth == 2:
                    pending.append((attributes(elem, ""), elem.sourceline))
                    elem.clear()
                elif name == "trace" and depth == 1:
                    case = attributes(elem, "case:")
                    if "case:concept:name" not in case:
                        raise BadInput(
                            "trace without concept:name (its case id)",
                            file=file,
                            line=elem.sourceline,
                        )
                    for row, line in pending:
                        add({**case, **row}, line)
                    pending.clear()
                    parsed.traces += 1
                    in_trace = False
                    elem.clear()
                    while elem.getprevious() is not None:
                        del elem.getparent()[0]
                elif depth == 1:  # log-level attribute, extension, global, classifier
                    elem.clear()
                    while elem.getprevious() is not None:
                        del elem.getparent()[0]
        except etree.XMLSyntaxError as exc:
            raise BadInput(
                f"invalid XML: {exc.msg}", file=file, line=exc.lineno or None
            ) from exc
        except (OSError, EOFError, zlib.error) as exc:
            raise BadInput(f"cannot read file: {exc}", file=file) from exc
    if not seen_log:
        raise BadInput("not an XES log: no <log> element", file=file)
    flush()
    if parsed.events == 0:
        raise BadInput("the XES log has no events", file=file)
    return parsed


def _refuse_dtd(path: Path) -> None:
    """Refuse documents with a DTD: XES needs none, and DTDs carry the entity attacks."""
    with _open(path) as fh:
        try:
            head = fh.read(64 * 1024)
        except (OSError, EOFError, zlib.error) as exc:
            raise BadInput(f"cannot read file: {exc}", file=str(path)) from exc
    start = head.find(b"<log")
    prolog = head if start < 0 else head[:start]
    pos = prolog.find(b"<!DOCTYPE")
    if pos >= 0 or b"<!ENTITY" in prolog:
        line = prolog[: max(pos, 0)].count(b"\n") + 1
        raise BadInput(
            "XES files with a DOCTYPE/ENTITY declaration are refused (entity expansion risk)",
            file=str(path),
            line=line,
        )
