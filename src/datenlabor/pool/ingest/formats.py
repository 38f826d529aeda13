"""Readers for self-describing formats: Parquet, JSON/NDJSON and XLSX (DuckDB does the work)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from datenlabor.errors import BadInput
from datenlabor.pool.ingest.reading import Reading, duckdb_error
from datenlabor.pool.ingest.source import SourceFile
from datenlabor.query.connection import load_extension, quote_literal
from datenlabor.zipbomb import check_archive


def open_parquet(con: duckdb.DuckDBPyConnection, src: SourceFile) -> Reading:
    relation = f"read_parquet({quote_literal(str(src.path))})"
    try:
        con.execute(f"DESCRIBE SELECT * FROM {relation}")
    except duckdb.Error as exc:
        raise duckdb_error(exc, src.path, "not a readable Parquet file: ") from exc
    return Reading(source=src, format="parquet", relation=relation, line_offset=0)


def open_json(con: duckdb.DuckDBPyConnection, src: SourceFile) -> Reading:
    """A JSON array of objects, or NDJSON (one object per line); detected from the first byte."""
    with src.path.open("rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head:
        raise BadInput("file is empty", file=str(src.path))
    layout = "array" if head.startswith(b"[") else "newline_delimited"
    relation = (
        f"read_json({quote_literal(str(src.path))}, format={quote_literal(layout)}, "
        "sample_size=-1, maximum_object_size=67108864)"
    )
    try:
        con.execute(f"DESCRIBE SELECT * FROM {relation}")
    except duckdb.Error as exc:
        raise duckdb_error(exc, src.path, f"not readable as JSON ({layout}): ") from exc
    return Reading(
        source=src,
        format="json",
        relation=relation,
        detection={"layout": layout},
        line_offset=0 if layout == "newline_delimited" else 1,
    )


def open_xlsx(con: duckdb.DuckDBPyConnection, src: SourceFile, *, sheet: str | None) -> Reading:
    """First sheet or a named one; the header row gives column names."""
    check_archive(src.path, str(src.path))  # before calamine or DuckDB unpack anything
    load_extension(con, "excel")
    sheets = _sheet_names(src.path)
    if sheet is not None and sheet not in sheets:
        raise BadInput(f"no sheet {sheet!r}; sheets are {', '.join(sheets)}", file=str(src.path))
    chosen = sheet or sheets[0]
    relation = (
        f"read_xlsx({quote_literal(str(src.path))}, sheet={quote_literal(chosen)}, "
        "header=true, stop_at_empty=false)"
    )
    try:
        con.execute(f"DESCRIBE SELECT * FROM {relation}")
    except duckdb.Error as exc:
        raise duckdb_error(exc, src.path, f"cannot read sheet {chosen!r}: ") from exc
    return Reading(
        source=src,
        format="xlsx",
        relation=relation,
        detection={"sheet": chosen, "sheets": sheets},
        line_offset=1,
    )


def _sheet_names(path: Path) -> list[str]:
    # python-calamine only lists the workbook's sheets here; DuckDB parses the cells.
    from python_calamine import CalamineWorkbook

    try:
        names = CalamineWorkbook.from_path(str(path)).sheet_names
    except Exception as exc:  # calamine raises its own error types for broken archives
        raise BadInput(f"not a readable XLSX workbook: {exc}", file=str(path)) from exc
    if not names:
        raise BadInput("workbook has no sheets", file=str(path))
    return list(names)
