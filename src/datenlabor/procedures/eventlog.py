"""Event logs of administrative procedures: import from CSV, XES, Parquet or a pool dataset.

Whatever the source, the log is stored as an ordinary pool dataset version with the canonical
columns below, sorted by case, timestamp and original order:

==========  ============  ===================================================================
column      type          meaning
==========  ============  ===================================================================
seq         BIGINT        position in the sorted log (0, 1, …); ties of equal timestamps
                          keep the order of the source file
case_no     BIGINT        number of the case in the sorted log (0, 1, …)
case_id     VARCHAR       the case (Vorgang) the event belongs to
activity    VARCHAR       what happened (step of the procedure)
timestamp   TIMESTAMPTZ   when it happened (an instant; naive source times are read in the
                          import time zone, default Europe/Berlin)
resource    VARCHAR       who did it (NULL when not mapped)
lifecycle   VARCHAR       XES lifecycle transition such as ``complete`` (NULL when not mapped)
activity_no INTEGER       number of the activity: the log's distinct activity names in
                          alphabetical (code point) order numbered 0, 1, … (lets the
                          analyses read integers instead of text; logs stored before this
                          column existed are read without it)
…           any           further attributes under their source names; XES trace attributes
                          as ``case:<key>``
==========  ============  ===================================================================
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datenlabor.errors import BadInput
from datenlabor.pool.cleanup import work_prefix
from datenlabor.pool.ingest.reading import duckdb_error, first_line
from datenlabor.query.connection import quote_ident, quote_literal

if TYPE_CHECKING:
    from datenlabor.pool.catalog import DatasetMeta
    from datenlabor.pool.info import VersionInfo
    from datenlabor.pool.pool import Pool

CORE = (
    "seq", "case_no", "case_id", "activity", "timestamp", "resource", "lifecycle", "activity_no",
)  # fmt: skip
# Columns the import computes itself; a source column of that name (an exported log) is
# recomputed, never kept as an attribute.
NUMBERED = ("seq", "case_no", "activity_no")
FORMATS = ("auto", "csv", "xes", "parquet")
DEFAULT_TIMEZONE = "Europe/Berlin"

# Source column names recognised without a mapping (canonical, pm4py/XES, German, common).
_CANDIDATES = {
    "case": ("case_id", "case:concept:name", "case", "case id", "caseid", "vorgang", "fall"),
    "activity": ("activity", "concept:name", "aktivität", "aktivitaet", "activity name"),
    "timestamp": ("timestamp", "time:timestamp", "zeitstempel", "zeitpunkt", "time"),
    "resource": ("resource", "org:resource", "bearbeiter", "ressource"),
    "lifecycle": ("lifecycle", "lifecycle:transition"),
}
# Timestamp texts tried in this order when a column is text: ISO 8601 (with or without zone)
# first through DuckDB's cast, then German day-first forms.
_GERMAN_FORMATS = ("%d.%m.%Y %H:%M:%S.%f", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y")


@dataclass
class Mapping:
    """Which source columns hold case, activity, timestamp, resource and lifecycle.

    ``None`` for case/activity/timestamp means: find a column with a well-known name
    (``case_id``, ``case:concept:name``, ``Vorgang`` …). ``attributes=None`` keeps every
    other column; a list keeps only those.
    """

    case: str | None = None
    activity: str | None = None
    timestamp: str | None = None
    resource: str | None = None
    lifecycle: str | None = None
    attributes: list[str] | None = None
    timestamp_format: str | None = None  # strptime format, e.g. "%d.%m.%Y %H:%M"
    auto_optional: bool = True  # also find resource/lifecycle by well-known names

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Resolved:
    case: str
    activity: str
    timestamp: str
    resource: str | None
    lifecycle: str | None
    attributes: list[str] = field(default_factory=list)


def resolve(mapping: Mapping, columns: list[str], *, file: str) -> _Resolved:
    """Check the mapping against the source columns; a clear error names what is missing."""
    lower = {c.lower(): c for c in columns}

    def find(role: str, given: str | None, required: bool) -> str | None:
        if given is not None:
            if given not in columns:
                raise BadInput(
                    f"{role} column {given!r} not in the data; columns: {', '.join(columns)}",
                    file=file,
                    column=given,
                )
            return given
        if not required and not mapping.auto_optional:
            return None
        for cand in _CANDIDATES[role]:
            if cand in lower:
                return lower[cand]
        if required:
            raise BadInput(
                f"no {role} column found; name it with --{role} COLUMN "
                f"(columns: {', '.join(columns)})",
                file=file,
            )
        return None

    case = find("case", mapping.case, True)
    activity = find("activity", mapping.activity, True)
    timestamp = find("timestamp", mapping.timestamp, True)
    resource = find("resource", mapping.resource, False)
    lifecycle = find("lifecycle", mapping.lifecycle, False)
    assert case and activity and timestamp
    used = {case, activity, timestamp, resource, lifecycle}
    if len({c for c in used if c}) < len([c for c in used if c]):
        raise BadInput("one column is mapped to two roles", file=file)
    if mapping.attributes is None:
        # A source ``seq``/``case_no``/``activity_no`` (an exported log) is recomputed.
        attrs = [
            c for c in columns if c not in used and c not in NUMBERED and not c.startswith("__")
        ]
    else:
        attrs = []
        for a in mapping.attributes:
            if a not in columns:
                raise BadInput(
                    f"attribute column {a!r} not in the data; columns: {', '.join(columns)}",
                    file=file,
                    column=a,
                )
            if a not in used:
                attrs.append(a)
    for a in attrs:
        if a in CORE:
            raise BadInput(
                f"column {a!r} would clash with the canonical column of that name; map it "
                f"(e.g. --{a.replace('_id', '')} {a}) or leave it out with --attr",
                file=file,
                column=a,
            )
    return _Resolved(case, activity, timestamp, resource, lifecycle, attrs)


def timestamp_expr(col: str, dtype: str, fmt: str | None) -> str:
    """SQL turning a source column into TIMESTAMPTZ (NULL where it cannot be read)."""
    c = quote_ident(col)
    kind = dtype.upper()
    if kind.startswith("TIMESTAMP WITH TIME ZONE"):
        return c
    if kind.startswith("TIMESTAMP") or kind == "DATE":
        return f"CAST({c} AS TIMESTAMPTZ)"  # naive: read in the session time zone
    text = f"trim(CAST({c} AS VARCHAR))"
    if fmt:
        return f"CAST(try_strptime({text}, {quote_literal(fmt)}) AS TIMESTAMPTZ)"
    german = ", ".join(quote_literal(f) for f in _GERMAN_FORMATS)
    return (
        f"coalesce(TRY_CAST({text} AS TIMESTAMPTZ), "
        f"CAST(try_strptime({text}, [{german}]) AS TIMESTAMPTZ))"
    )


def normalise(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    mapping: Mapping,
    target: Path,
    *,
    file: str,
    casts: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Check and sort the events of ``relation`` and write them as canonical Parquet.

    ``relation`` must have the columns ``__line`` (source position for messages) and
    ``__pos`` (source order) besides the data. ``casts`` gives DuckDB types for attribute
    columns read as text (XES). Returns what was detected (mapping, counts, time range).
    """
    described = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    types = {r[0]: str(r[1]) for r in described}
    res = resolve(mapping, [n for n in types if n not in ("__line", "__pos")], file=file)
    con.execute(f"CREATE OR REPLACE TEMP VIEW __raw AS SELECT * FROM {relation}")
    ts = timestamp_expr(res.timestamp, types[res.timestamp], mapping.timestamp_format)
    case, act = quote_ident(res.case), quote_ident(res.activity)

    def first_bad(cond: str) -> int | None:
        row = con.execute(
            f"SELECT __line FROM __raw WHERE {cond} ORDER BY __pos LIMIT 1"
        ).fetchone()
        return int(row[0]) if row else None

    for role, col in (("case id", res.case), ("activity", res.activity)):
        c = quote_ident(col)
        bad = first_bad(f"{c} IS NULL OR trim(CAST({c} AS VARCHAR)) = ''")
        if bad:
            raise BadInput(f"empty {role}", file=file, line=bad, column=col)
    t = quote_ident(res.timestamp)
    bad = first_bad(f"{t} IS NULL")
    if bad:
        raise BadInput("empty timestamp", file=file, line=bad, column=res.timestamp)
    row = con.execute(
        f"SELECT __line, CAST({t} AS VARCHAR) FROM __raw WHERE ({ts}) IS NULL ORDER BY __pos LIMIT 1"
    ).fetchone()
    if row:
        hint = f" with format {mapping.timestamp_format!r}" if mapping.timestamp_format else ""
        raise BadInput(
            f"cannot read timestamp {row[1]!r}{hint} (ISO 8601 like 2024-03-01T08:15:00+01:00 "
            "or German 01.03.2024 08:15 expected; give --timestamp-format otherwise)",
            file=file,
            line=int(row[0]),
            column=res.timestamp,
        )
    casts = casts or {}
    attr_sql = []
    for a in res.attributes:
        target_type = casts.get(a)
        if target_type is None:
            attr_sql.append(quote_ident(a))
            continue
        q = quote_ident(a)
        expr = (
            timestamp_expr(a, "VARCHAR", None)
            if target_type == "TIMESTAMPTZ"
            else f"TRY_CAST({q} AS {target_type})"
        )
        row = con.execute(
            f"SELECT __line, {q} FROM __raw WHERE {q} IS NOT NULL AND ({expr}) IS NULL "
            "ORDER BY __pos LIMIT 1"
        ).fetchone()
        if row:
            raise BadInput(
                f"value {row[1]!r} is not a valid {target_type.lower()}",
                file=file,
                line=int(row[0]),
                column=a,
            )
        attr_sql.append(f"{expr} AS {q}")
    res_sql = f"CAST({quote_ident(res.resource)} AS VARCHAR)" if res.resource else "NULL::VARCHAR"
    life_sql = (
        f"CAST({quote_ident(res.lifecycle)} AS VARCHAR)" if res.lifecycle else "NULL::VARCHAR"
    )
    select = (
        f"SELECT CAST({case} AS VARCHAR) AS case_id, CAST({act} AS VARCHAR) AS activity, "
        f"{ts} AS timestamp, {res_sql} AS resource, {life_sql} AS lifecycle"
        + "".join(f", {s}" for s in attr_sql)
        + ", __pos FROM __raw"
    )
    names = ["case_id", "activity", "timestamp", "resource", "lifecycle"]
    names += [quote_ident(a) for a in res.attributes]
    # One sort in DuckDB, then a streaming pass numbering events and cases.
    sorted_file = target.with_name(target.name + ".sorted")
    try:
        con.execute(
            f"COPY (SELECT {', '.join(names)}, __pos FROM ({select}) "
            "ORDER BY case_id, timestamp, __pos) TO "
            f"{quote_literal(str(sorted_file))} (FORMAT parquet, COMPRESSION zstd)"
        )
        names = activity_names(con, f"read_parquet({quote_literal(str(sorted_file))})")
        number_events(sorted_file, target, activities=names)
        stats = con.execute(
            f"SELECT count(*), count(DISTINCT case_id), count(DISTINCT activity), "
            f"min(timestamp), max(timestamp) FROM read_parquet({quote_literal(str(target))})"
        ).fetchone()
    except duckdb.Error as exc:
        raise BadInput(f"cannot read the events: {first_line(exc)}", file=file) from exc
    finally:
        sorted_file.unlink(missing_ok=True)
    assert stats is not None
    if stats[0] == 0:
        raise BadInput("the log has no events", file=file)
    return {
        "mapping": {
            "case": res.case,
            "activity": res.activity,
            "timestamp": res.timestamp,
            "resource": res.resource,
            "lifecycle": res.lifecycle,
            "attributes": res.attributes,
        },
        "events": int(stats[0]),
        "cases": int(stats[1]),
        "activities": int(stats[2]),
        "first": stats[3].isoformat() if stats[3] else None,
        "last": stats[4].isoformat() if stats[4] else None,
    }


def activity_names(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    """The distinct activity names of ``relation``, in the order ``activity_no`` numbers them
    (code point order, which is DuckDB's default text order too)."""
    rows = con.execute(
        f"SELECT DISTINCT activity FROM {relation} WHERE activity IS NOT NULL"
    ).fetchall()
    return sorted(str(r[0]) for r in rows)


def activity_numbers(activity: pa.Array | pa.ChunkedArray, names: list[str]) -> pa.Array:
    """``activity_no`` of each event: the position of its activity in ``names`` (int32)."""
    codes = pc.index_in(activity, value_set=pa.array(names, pa.string()))
    if isinstance(codes, pa.ChunkedArray):
        codes = codes.combine_chunks()
    if codes.null_count != activity.null_count:  # cannot happen: names come from the log
        raise RuntimeError("an activity is missing from the list of activity names")
    return codes.cast(pa.int32())


def number_events(
    source: Path,
    target: Path,
    batch_rows: int = 1 << 17,
    *,
    activities: list[str] | None = None,
) -> None:
    """Copy the sorted events adding ``seq`` and ``case_no`` (and ``activity_no`` after
    ``lifecycle`` when ``activities`` lists the names to number), batch by batch.

    Hand-written rather than SQL: numbering cases needs the previous row's case id, and a
    DuckDB window over the whole log would sort it a second time; a running counter over
    the ordered batches is linear and needs memory for one batch only.
    """
    pf = pq.ParquetFile(source)
    numbered = activities is not None and "activity" in pf.schema_arrow.names
    writer: pq.ParquetWriter | None = None
    seq0, case_no, last = 0, -1, None
    try:
        for batch in pf.iter_batches(batch_size=batch_rows):
            n = batch.num_rows
            if n == 0:
                continue
            cid = batch.column("case_id")
            new = np.empty(n, dtype=bool)
            new[0] = last is None or cid[0].as_py() != last
            if n > 1:
                new[1:] = pc.not_equal(cid.slice(1), cid.slice(0, n - 1)).to_numpy(
                    zero_copy_only=False
                )
            numbers = case_no + np.cumsum(new)
            case_no, last = int(numbers[-1]), cid[n - 1].as_py()
            table = pa.Table.from_batches([batch]).drop_columns(["__pos"])
            table = table.add_column(0, "case_no", pa.array(numbers, pa.int64()))
            table = table.add_column(0, "seq", pa.array(np.arange(seq0, seq0 + n)))
            if numbered:
                assert activities is not None
                codes = activity_numbers(table.column("activity"), activities)
                table = table.add_column(_code_position(table), "activity_no", codes)
            seq0 += n
            if writer is None:
                writer = pq.ParquetWriter(target, table.schema, compression="zstd")
            writer.write_table(table, row_group_size=122_880)
        if writer is None:  # no events: an empty file with the schema
            empty = pa.Table.from_batches([], schema=pf.schema_arrow).drop_columns(["__pos"])
            empty = empty.add_column(0, "case_no", pa.array([], pa.int64()))
            empty = empty.add_column(0, "seq", pa.array([], pa.int64()))
            if numbered:
                empty = empty.add_column(
                    _code_position(empty), "activity_no", pa.array([], pa.int32())
                )
            pq.write_table(empty, target)
    finally:
        if writer is not None:
            writer.close()


def _code_position(table: pa.Table) -> int:
    """Where ``activity_no`` goes: after the core columns, before the attributes."""
    names = table.column_names
    return names.index("lifecycle" if "lifecycle" in names else "activity") + 1


def detect_log_format(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise BadInput(f"cannot read file: {exc.strerror}", file=str(path)) from exc
    name = path.name.lower()
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"\x1f\x8b") or name.endswith((".xes", ".xes.gz", ".xml")):
        return "xes"
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return "xes"
    return "csv"


def import_log(
    pool: Pool,
    path: str | Path,
    *,
    dataset: str,
    fmt: str = "auto",
    mapping: Mapping | None = None,
    timezone: str = DEFAULT_TIMEZONE,
    csv: Any = None,
    meta: DatasetMeta | None = None,
    user: str | None = None,
) -> VersionInfo:
    """Import an event log file as a new version of ``dataset`` (replacing its content).

    >>> import_log(pool, "antraege.csv", dataset="antraege-log",
    ...            mapping=Mapping(case="Aktenzeichen", activity="Schritt",
    ...                            timestamp="Zeitpunkt"))  # doctest: +SKIP
    """
    src = Path(path)
    if fmt not in FORMATS:
        raise BadInput(f"unknown log format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not src.is_file():
        raise BadInput("file not found", file=str(src))
    chosen = detect_log_format(src) if fmt == "auto" else fmt
    mapping = mapping or Mapping()
    work = Path(tempfile.mkdtemp(dir=pool.root / "tmp", prefix=work_prefix() + "eventlog-"))
    con = pool.connect()
    try:
        con.execute(f"SET TimeZone = {quote_literal(timezone)}")
        target = work / f"{src.name}.eventlog.parquet"
        if chosen == "xes":
            from datenlabor.procedures.xes import read_xes

            parsed = read_xes(src, work)
            if mapping.case is None and mapping.activity is None and mapping.timestamp is None:
                mapping = _xes_mapping(mapping)
            detected = normalise(
                con, parsed.relation(), mapping, target, file=str(src), casts=parsed.casts()
            )
            detected["xes"] = {"traces": parsed.traces, "version": parsed.xes_version}
        elif chosen == "parquet":
            con.execute(
                "CREATE OR REPLACE TEMP VIEW __src AS SELECT *, row_number() OVER () AS __pos, "
                f"row_number() OVER () AS __line FROM read_parquet({quote_literal(str(src))})"
            )
            detected = normalise(con, "__src", mapping, target, file=str(src))
        else:
            detected = _normalise_csv(con, src, mapping, csv, work, target)
        detected.update(
            {
                "format": chosen,
                "timezone": timezone,
                "source": src.name,
                "source_sha256": _sha256(src),
                "source_bytes": src.stat().st_size,
            }
        )
        info = pool.ingest(target, dataset=dataset, format="parquet", meta=meta, user=user)
        pool.set_origin(dataset, {"kind": "eventlog", "version": info.version, **detected})
        return info
    finally:
        con.close()
        shutil.rmtree(work, ignore_errors=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _xes_mapping(m: Mapping) -> Mapping:
    return Mapping(
        case="case:concept:name",
        activity="concept:name",
        timestamp="time:timestamp",
        resource=m.resource,
        lifecycle=m.lifecycle,
        attributes=m.attributes,
        timestamp_format=m.timestamp_format,
        auto_optional=m.auto_optional,
    )


def _normalise_csv(
    con: duckdb.DuckDBPyConnection,
    src: Path,
    mapping: Mapping,
    csv: Any,
    work: Path,
    target: Path,
) -> dict[str, Any]:
    """Read a CSV file with the pool's reader (German dialects, encodings) and normalise it."""
    from datenlabor.pool.ingest import CsvOptions, open_reading
    from datenlabor.pool.ingest.source import scan

    opts: CsvOptions = csv or CsvOptions()
    scanned = scan(src, text=True, encoding=opts.encoding)

    def reading_with(o: CsvOptions) -> Any:
        return open_reading(
            con, src, fmt="csv", csv=o, work_dir=work, sample_bytes=1 << 20, scanned=scanned
        )

    # Every column typed as the CSV reader decides, except case ids, activities and
    # timestamps, which are read as text: we parse timestamps ourselves (with or without
    # zone, German forms) and ids stay ids.
    probe = reading_with(opts)
    described = con.execute(f"DESCRIBE SELECT * FROM {probe.relation}").fetchall()
    probe.cleanup()
    names = [r[0] for r in described]
    # Timestamp attributes are parsed like the event timestamp (the CSV reader's TIMESTAMP
    # drops a zone offset); German dates (DATE) stay as the reader read them.
    casts = {
        r[0]: "TIMESTAMPTZ" for r in described if str(r[1]).upper() == "TIMESTAMP"
    }
    known = {c for cands in _CANDIDATES.values() for c in cands}
    chosen = {mapping.case, mapping.activity, mapping.timestamp}
    types = dict(opts.types)
    for n in names:
        if n.lower() in known or n in chosen or n in casts:
            types.setdefault(n, "VARCHAR")
    reading = reading_with(CsvOptions(**{**opts.__dict__, "types": types}))
    try:
        while True:
            con.execute(
                "CREATE OR REPLACE TEMP VIEW __src AS SELECT *, row_number() OVER () AS __pos, "
                f"row_number() OVER () + {reading.line_offset} AS __line FROM {reading.relation}"
            )
            try:
                return normalise(con, "__src", mapping, target, file=str(src), casts=casts)
            except duckdb.Error as exc:
                if reading.retry_after(con, exc):
                    continue
                raise duckdb_error(exc, src) from exc
            except BadInput as exc:
                cause = exc.__cause__
                if isinstance(cause, duckdb.Error) and reading.retry_after(con, cause):
                    continue
                raise
    finally:
        reading.cleanup()
