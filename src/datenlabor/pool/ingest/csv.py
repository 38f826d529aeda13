"""CSV/TSV reader for the files German authorities actually exchange.

Detection, in order: encoding (see ``source.scan``), dialect (DuckDB's sniffer on a decoded
sample), then per-column types decided by us on that sample with German conventions:
decimal comma with ``.`` thousands groups, ``31.12.2023`` dates, and key columns (AGS, ARS,
PLZ, anything with leading zeros) kept as text. The full file is then parsed by DuckDB's
parallel CSV reader with those explicit types; if a later row contradicts the sample (a
``n/a`` in a number column at line 3,000,000), that column is widened and the parse retried,
and the widening is recorded. Every choice can be overridden with ``CsvOptions``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import duckdb

from datenlabor.errors import BadInput
from datenlabor.pool.ingest.reading import Reading, first_line
from datenlabor.pool.ingest.source import SourceFile, read_head, transcode
from datenlabor.query.connection import quote_literal

# A column whose name says it holds an official key is text even when all values are digits.
KEY_NAME = re.compile(
    r"(^|[^a-z])(ags|ars|rs|gkz|plz|ags8|ars12)([^a-z]|$)|schl(ue|ü)ssel|postleitzahl"
    r"|kennziffer|steuernummer|iban|telefon",
    re.IGNORECASE,
)

_INT = r"^[+-]?[0-9]+$"
_INT_GROUPED = r"^[+-]?[0-9]{1,3}(\.[0-9]{3})+$"  # German thousands groups: 1.234.567
_DEC_COMMA = r"^[+-]?([0-9]{1,3}(\.[0-9]{3})+|[0-9]+),[0-9]+$"
_DEC_POINT = r"^[+-]?[0-9]*\.[0-9]+([eE][+-]?[0-9]+)?$"
_DATE_DE = r"^[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{4}$"
_DATE_ISO = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_TS_DE = r"^[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{4}[ T][0-9]{1,2}:[0-9]{2}(:[0-9]{2})?$"
_TS_ISO = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}:?[0-9]{2})?$"
_BOOL = r"^(?i:true|false)$"


@dataclass
class CsvOptions:
    """Overrides for CSV detection; ``None`` means detect."""

    encoding: str | None = None
    delimiter: str | None = None
    quote: str | None = None
    header: bool | None = None
    decimal: str | None = None  # "," or "."
    thousands: str | None = None
    date_format: str | None = None  # strptime format, e.g. "%d.%m.%Y"
    null_values: list[str] = field(default_factory=lambda: [""])
    types: dict[str, str] = field(default_factory=dict)  # column -> DuckDB type
    skip_lines: int | None = None


class CsvReading(Reading):
    """A CSV source with explicit column types that can widen a column on a parse error."""

    def __init__(
        self,
        *,
        columns: dict[str, str],
        params: dict[str, Any],
        path: Path,
        forced: set[str],
        **kw: Any,
    ):
        super().__init__(relation="", **kw)
        self.columns = columns
        self.forced = forced  # types the user set are never widened
        self.params = params
        self.path = path
        self.relation = self._sql()

    def _sql(self) -> str:
        cols = ", ".join(f"{quote_literal(k)}: {quote_literal(v)}" for k, v in self.columns.items())
        parts = [quote_literal(str(self.path)), "auto_detect=false", f"columns={{{cols}}}"]
        for key, value in self.params.items():
            if isinstance(value, bool):
                parts.append(f"{key}={'true' if value else 'false'}")
            elif isinstance(value, int):
                parts.append(f"{key}={value}")
            elif isinstance(value, list):
                parts.append(f"{key}=[{', '.join(quote_literal(v) for v in value)}]")
            else:
                parts.append(f"{key}={quote_literal(value)}")
        return f"read_csv({', '.join(parts)})"

    def retry_after(self, con: duckdb.DuckDBPyConnection, error: duckdb.Error) -> bool:
        message = str(error)
        match = re.search(r'converting column "(.+?)"', message)
        if not match or match.group(1) not in self.columns or match.group(1) in self.forced:
            return False
        column = match.group(1)
        old = self.columns[column]
        value = re.search(r'Could not convert string "(.*?)" to', message)
        new = "VARCHAR"
        if old == "BIGINT" and value and re.fullmatch(_number_pattern(self.params), value.group(1)):
            new = "DOUBLE"
        if old == new:
            return False
        line = re.search(r"Line: (\d+)", message)
        self.columns[column] = new
        self.detection.setdefault("widened", []).append(
            {
                "column": column,
                "from": old,
                "to": new,
                "line": int(line.group(1)) if line else None,
                "value": value.group(1) if value else None,
            }
        )
        self.detection["columns"] = dict(self.columns)
        self.relation = self._sql()
        return True


def _number_pattern(params: dict[str, Any]) -> str:
    if params.get("decimal_separator") == ",":
        return r"[+-]?([0-9]{1,3}(\.[0-9]{3})+|[0-9]+)(,[0-9]+)?"
    return r"[+-]?[0-9]*\.?[0-9]+([eE][+-]?[0-9]+)?"


def open_csv(
    con: duckdb.DuckDBPyConnection,
    src: SourceFile,
    opts: CsvOptions,
    *,
    work_dir: Path,
    sample_bytes: int,
) -> CsvReading:
    """Detect dialect and types of a CSV file and return a reading DuckDB can stage."""
    detection: dict[str, Any] = {"encoding": src.encoding, "notes": list(src.notes)}
    path, temp_files, duck_encoding = src.path, [], "utf-8"
    if src.encoding in ("cp1252", "latin-1") and not src.c1_bytes:
        # Identical bytes in both encodings; DuckDB's own latin-1 decoder is the fast path.
        duck_encoding = "latin-1"
    elif src.encoding not in ("utf-8", "utf-8-sig"):
        path = work_dir / "transcoded-utf8.csv"
        temp_files.append(path)
        transcode(src, path)
        detection["transcoded"] = f"{src.encoding} -> utf-8"

    head = read_head(src, sample_bytes)
    if not head.strip():
        raise BadInput("file is empty", file=str(src.path))
    sample = work_dir / "sample.csv"
    sample.write_text(head.lstrip("\ufeff"), encoding="utf-8")
    try:
        delim, width = _delimiter(head)
        dialect = _sniff(con, sample, opts, src, delimiter=opts.delimiter or delim, width=width)
        columns, params = _decide_types(con, sample, dialect, opts, src)
    finally:
        sample.unlink(missing_ok=True)
    params["encoding"] = duck_encoding
    detection.update(
        {
            "delimiter": params["delim"],
            "quote": params["quote"] or None,
            "header": params["header"],
            "decimal": params.get("decimal_separator", "."),
            "thousands": params.get("thousands"),
            "date_format": params.get("dateformat"),
            "timestamp_format": params.get("timestampformat"),
            "columns": dict(columns),
        }
    )
    return CsvReading(
        source=src,
        format="csv",
        detection=detection,
        line_offset=params["skip"] + (1 if params["header"] else 0),
        temp_files=temp_files,
        columns=columns,
        params=params,
        path=path,
        forced=set(opts.types),
    )


DELIMITERS = (";", ",", "\t", "|")


def _delimiter(head: str, lines: int = 200) -> tuple[str | None, int | None]:
    """The delimiter that splits the first lines into the most consistent field count.

    DuckDB's sniffer gives up on a sample that contains a ragged row; such a file must
    instead fail at that row with its line number. So the delimiter is chosen here
    (quote-aware, with the csv module) and DuckDB detects the rest.
    """
    import csv as pycsv
    import io
    from collections import Counter

    sample = "\n".join(head.lstrip("\ufeff").splitlines()[:lines])
    scored = []
    for rank, delim in enumerate(DELIMITERS):
        try:
            counts = [len(r) for r in pycsv.reader(io.StringIO(sample), delimiter=delim) if r]
        except pycsv.Error:
            continue
        if not counts:
            continue
        width, freq = Counter(counts).most_common(1)[0]
        if width >= 2:
            # Most consistent first, then most fields, then the German default order.
            scored.append((freq / len(counts), width, -rank, delim))
    if not scored:
        return None, None
    best = max(scored)
    return best[3], best[1]


def _sniff(
    con: duckdb.DuckDBPyConnection,
    sample: Path,
    opts: CsvOptions,
    src: SourceFile,
    *,
    delimiter: str | None,
    width: int | None,
) -> dict[str, Any]:
    args = [quote_literal(str(sample)), "sample_size=-1"]
    if delimiter:
        args.append(f"delim={quote_literal(delimiter)}")
    if opts.quote is not None:
        args.append(f"quote={quote_literal(opts.quote)}")
    if opts.header is not None:
        args.append(f"header={'true' if opts.header else 'false'}")
    if opts.skip_lines is not None:
        args.append(f"skip={opts.skip_lines}")
    query = (
        "SELECT Delimiter, Quote, Escape, NewLineDelimiter, SkipRows, HasHeader, Columns "
        "FROM sniff_csv({})"
    )
    row = None
    # A ragged row in the sample makes the sniffer give up; sniff again tolerating it (the
    # full, strict parse then reports the ragged row with its line number).
    for extra in ([], ["null_padding=true"], ["ignore_errors=true"]):
        try:
            row = con.execute(query.format(", ".join([*args, *extra]))).fetchone()
            break
        except duckdb.Error as exc:
            error = exc
    if row is None:
        raise BadInput(f"cannot detect the CSV dialect: {first_line(error)}", file=str(src.path))
    assert row is not None
    if width is not None and len(row[6]) != width and opts.skip_lines is None and row[4]:
        # The sniffer skipped leading lines to reach a wider table; with a consistent width
        # at the top, the wider line is a malformed row, not the table's start.
        return _sniff(
            con, sample, replace(opts, skip_lines=0), src, delimiter=delimiter, width=None
        )
    delim, quote, escape, _newline, skip, header, cols = row
    names = [c["name"] for c in cols]
    if not header:
        names = [f"column{i + 1}" for i in range(len(names))]
    _check_names(names, src)
    return {
        "delim": delim,
        "quote": "" if quote == "(empty)" else quote,
        # RFC 4180: inside quotes a doubled quote is a quote; DuckDB needs that spelled out.
        "escape": (quote if quote != "(empty)" else "") if escape == "(empty)" else escape,
        "skip": int(skip),
        "header": bool(header),
        "names": names,
    }


def _check_names(names: list[str], src: SourceFile) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names, 1):
        if name in seen:
            raise BadInput(
                f"duplicate column name {name!r} (column {i})",
                file=str(src.path),
                line=1,
                column=name,
            )
        seen.add(name)


def _decide_types(
    con: duckdb.DuckDBPyConnection,
    sample: Path,
    dialect: dict[str, Any],
    opts: CsvOptions,
    src: SourceFile,
) -> tuple[dict[str, str], dict[str, Any]]:
    names: list[str] = dialect["names"]
    params: dict[str, Any] = {
        "delim": dialect["delim"],
        "quote": dialect["quote"],
        "escape": dialect["escape"],
        "skip": dialect["skip"],
        "header": dialect["header"],
        "strict_mode": True,
        # A quoted "" is an empty text, an unquoted empty field is NULL.
        "allow_quoted_nulls": False,
    }
    nulls = ""
    if opts.null_values:
        params["nullstr"] = opts.null_values
        nulls = f", nullstr=[{', '.join(quote_literal(v) for v in opts.null_values)}]"
    varchar_cols = ", ".join(f"{quote_literal(n)}: 'VARCHAR'" for n in names)
    rel = (
        f"read_csv({quote_literal(str(sample))}, auto_detect=false, columns={{{varchar_cols}}}, "
        f"delim={quote_literal(params['delim'])}, quote={quote_literal(params['quote'])}, "
        f"escape={quote_literal(params['escape'])}, skip={params['skip']}, "
        f"header={'true' if params['header'] else 'false'}, ignore_errors=true, "
        f"allow_quoted_nulls=false{nulls})"
    )
    checks = {
        "int": _INT,
        "int_grouped": _INT_GROUPED,
        "dec_comma": _DEC_COMMA,
        "dec_point": _DEC_POINT,
        "date_de": _DATE_DE,
        "date_iso": _DATE_ISO,
        "ts_de": _TS_DE,
        "ts_iso": _TS_ISO,
        "bool": _BOOL,
    }
    # Each distinct value of a column is matched once and counted with its frequency (codes,
    # dates and names repeat a lot): the same counts as matching every cell, ~3x faster.
    selects = [
        "sum(n)",
        "sum(n) FILTER (WHERE v SIMILAR TO '0[0-9]+' OR v SIMILAR TO '[+-].*0[0-9]+')",
        *(
            f"sum(n) FILTER (WHERE regexp_full_match(v, {quote_literal(p)}))"
            for p in checks.values()
        ),
    ]
    query = (
        "WITH g AS (SELECT k, v, count(*) AS n FROM (UNPIVOT (SELECT * FROM "
        f"{rel}) ON COLUMNS(*) INTO NAME k VALUE v) GROUP BY ALL) "
        f"SELECT k, {', '.join(selects)} FROM g GROUP BY k"
    )
    width = 2 + len(checks)
    try:
        found = {row[0]: row[1:] for row in con.execute(query).fetchall()}
    except duckdb.Error as exc:
        raise BadInput(f"cannot parse CSV sample: {first_line(exc)}", file=str(src.path)) from exc
    # Columns without a single value have no group; NULL sums are zero counts.
    counts = [int(c or 0) for n in names for c in found.get(n, (0,) * width)]
    stats = {
        n: dict(
            zip(
                ["nonnull", "leading_zero", *checks],
                counts[i * width : (i + 1) * width],
                strict=True,
            )
        )
        for i, n in enumerate(names)
    }

    # One decimal separator per file (DuckDB parses with one): decide by evidence.
    comma_votes = sum(s["dec_comma"] for s in stats.values())
    point_votes = sum(s["dec_point"] for s in stats.values())
    decimal = opts.decimal or (
        ","
        if comma_votes > point_votes
        or (comma_votes == 0 and point_votes == 0 and any(s["int_grouped"] for s in stats.values()))
        else "."
    )
    if decimal == "," and params["delim"] == ",":
        decimal = "."
    if decimal == ",":
        params["decimal_separator"] = ","
        params["thousands"] = opts.thousands or "."
    elif opts.thousands:
        params["thousands"] = opts.thousands

    date_de = sum(s["date_de"] + s["ts_de"] for s in stats.values())
    date_iso = sum(s["date_iso"] + s["ts_iso"] for s in stats.values())
    german_dates = opts.date_format is not None or (date_de >= date_iso and date_de > 0)
    if opts.date_format:
        params["dateformat"] = opts.date_format
    elif german_dates:
        params["dateformat"] = "%d.%m.%Y"
    if german_dates and any(s["ts_de"] for s in stats.values()):
        params["timestampformat"] = "%d.%m.%Y %H:%M:%S"

    columns: dict[str, str] = {}
    for n in names:
        s = stats[n]
        columns[n] = opts.types.get(n) or _column_type(n, s, decimal, german_dates)
    return columns, params


def _column_type(name: str, s: dict[str, int], decimal: str, german_dates: bool) -> str:
    nonnull = s["nonnull"]
    if nonnull == 0:
        return "VARCHAR"
    key_like = bool(KEY_NAME.search(name)) or s["leading_zero"] > 0
    if s["int"] == nonnull:
        return "VARCHAR" if key_like else "BIGINT"
    if decimal == "," and s["int"] + s["int_grouped"] + s["dec_comma"] == nonnull:
        if key_like and s["dec_comma"] == 0 and s["int_grouped"] == 0:
            return "VARCHAR"
        return "DOUBLE" if s["dec_comma"] else "BIGINT"
    if decimal == "." and s["int"] + s["dec_point"] == nonnull:
        return "DOUBLE"
    if german_dates and s["date_de"] == nonnull:
        return "DATE"
    if not german_dates and s["date_iso"] == nonnull:
        return "DATE"
    if german_dates and s["ts_de"] == nonnull:
        return "TIMESTAMP"
    if s["ts_iso"] == nonnull and not german_dates:
        return "TIMESTAMP"
    if s["bool"] == nonnull:
        return "BOOLEAN"
    return "VARCHAR"
