"""Format readers: one per format, all returning a :class:`Reading` for the ingest.

``open_reading`` picks the reader from the ``fmt`` argument or, for ``auto``, from the file's
first bytes (Parquet magic, ZIP container, JSON bracket, GENESIS header) and its extension.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from datenlabor.errors import BadInput
from datenlabor.pool.ingest.csv import CsvOptions, open_csv
from datenlabor.pool.ingest.formats import open_json, open_parquet, open_xlsx
from datenlabor.pool.ingest.reading import Reading
from datenlabor.pool.ingest.source import BackgroundScan, SourceFile, guess, read_head, scan

FORMATS = ("auto", "csv", "genesis", "xlsx", "parquet", "json")

__all__ = ["FORMATS", "CsvOptions", "Reading", "SourceFile", "detect_format", "open_reading"]


def detect_format(path: Path) -> str:
    """Guess the format from magic bytes first, the file name second."""
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise BadInput(f"cannot read file: {exc.strerror}", file=str(path)) from exc
    suffix = path.suffix.lower()
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"PK\x03\x04"):
        if suffix in (".xlsx", ".xlsm", ".xlsx"):
            return "xlsx"
        raise BadInput("ZIP archives other than .xlsx workbooks are not supported", file=str(path))
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise BadInput("legacy .xls workbooks are not supported: save as .xlsx", file=str(path))
    if suffix in (".json", ".ndjson", ".jsonl"):
        return "json"
    if head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"[", b"{"):
        return "json"
    return "csv"  # CSV, TSV and GENESIS exports are told apart after decoding


def open_reading(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    *,
    fmt: str = "auto",
    csv: CsvOptions | None = None,
    sheet: str | None = None,
    work_dir: Path,
    sample_bytes: int,
    progress: Callable[[float], None] | None = None,
    scanned: SourceFile | None = None,
) -> Reading:
    """Scan ``path`` (size, SHA-256, encoding) and open it with the right reader.

    A CSV file that DuckDB can read as it is (UTF-8, or cp1252 without C1 bytes) is opened
    with the encoding guessed from its sample while the scan runs in the background; the
    reading's :meth:`Reading.settle` then tells whether the scan confirmed the guess.
    ``scanned`` is the result of a scan already done (no new pass, no guess).
    """
    if fmt not in FORMATS:
        raise BadInput(
            f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}", file=str(path)
        )
    if not path.is_file():
        raise BadInput("file not found", file=str(path))
    chosen = detect_format(path) if fmt == "auto" else fmt
    text = chosen in ("csv", "genesis")
    opts = csv or CsvOptions()
    if not text:
        src = scanned or scan(path, text=False, progress=progress)
        if chosen == "parquet":
            return open_parquet(con, src)
        if chosen == "json":
            return open_json(con, src)
        return open_xlsx(con, src, sheet=sheet)

    def open_scanned(src: SourceFile) -> Reading:
        return _open_text(con, src, chosen, fmt, opts, work_dir=work_dir, sample_bytes=sample_bytes)

    if scanned is not None:
        return open_scanned(scanned)
    guessed = guess(path, encoding=opts.encoding, limit=sample_bytes)
    if not guessed.direct:  # transcoding needs the exact encoding first
        return open_scanned(scan(path, text=True, encoding=opts.encoding, progress=progress))
    pending = BackgroundScan(path, encoding=opts.encoding, guessed=guessed, on_wrong=con.interrupt)
    try:
        exact: SourceFile | None = None
        try:
            if chosen == "genesis" or _genesis_kind(guessed) is not None:
                exact = pending.result()  # GENESIS exports are small: no guessing
            else:
                reading = open_csv(con, guessed, opts, work_dir=work_dir, sample_bytes=sample_bytes)
        except Exception:
            exact = pending.result()  # its errors first, as if the scan had run first
            if exact.same_reading(guessed):
                raise
        if exact is not None:
            return open_scanned(exact)
    except BaseException:
        pending.cancel()
        raise
    reading.pending = pending
    reading.reopen_with = open_scanned
    return reading


def _open_text(
    con: duckdb.DuckDBPyConnection,
    src: SourceFile,
    chosen: str,
    fmt: str,
    opts: CsvOptions,
    *,
    work_dir: Path,
    sample_bytes: int,
) -> Reading:
    genesis_kind = _genesis_kind(src)
    if chosen == "genesis" and genesis_kind is None:
        raise BadInput(
            "not a GENESIS export (no 'GENESIS-Tabelle' header, no flat-file columns)",
            file=str(src.path),
        )
    if genesis_kind is not None and (chosen == "genesis" or fmt == "auto"):
        return _open_genesis(con, src, genesis_kind)
    return open_csv(con, src, opts, work_dir=work_dir, sample_bytes=sample_bytes)


# Every GENESIS header or flat-file header line holds one of these (checked before importing
# the GENESIS reader, which takes ~0.3 s to import).
_GENESIS_HINT = re.compile(r"genesis-tabelle|statistics_code|statistik_code", re.IGNORECASE)


def _genesis_kind(src: SourceFile) -> str | None:
    head = read_head(src, 64 * 1024)
    if not _GENESIS_HINT.search(head):
        return None
    from datenlabor.pool.ingest.genesis import sniff_genesis

    return sniff_genesis(head)


def _open_genesis(con: duckdb.DuckDBPyConnection, src: SourceFile, kind: str) -> Reading:
    from datenlabor.pool.ingest.genesis import read_ffcsv, read_genesis

    reader = read_genesis if kind == "genesis" else read_ffcsv
    result = reader(src.path, encoding=src.encoding or "utf-8")
    name = f"genesis_{id(result)}"
    table: pa.Table = result.table
    con.register(name, table)
    detection: dict[str, Any] = {"encoding": src.encoding, "genesis": result.metadata}
    return Reading(source=src, format=kind, relation=name, detection=detection, line_offset=0)
