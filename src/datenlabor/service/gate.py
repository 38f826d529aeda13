"""The one way data leaves the pool: visibility and grants applied, every access audited."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from datenlabor.access.accounts import Accounts
from datenlabor.access.audit import AuditLog, Event
from datenlabor.access.policy import DatasetView, require_manage, view_of, visible_filter
from datenlabor.access.principal import Principal
from datenlabor.errors import BadInput, NotFound
from datenlabor.pool import delta
from datenlabor.pool.info import DatasetInfo, VersionInfo
from datenlabor.pool.pool import Pool
from datenlabor.query.connection import quote_ident, quote_literal
from datenlabor.service.engine import Engine
from datenlabor.store.models import Dataset, Version

CACHE_SECONDS = 2.0  # how long catalogue entries and tokens are reused without asking the store
DOWNLOAD_FORMATS = ("csv", "parquet", "xlsx", "json")
CSV_DIALECTS = ("de", "intl")


@dataclass
class Source:
    """One dataset version as the caller may see it, usable in a DuckDB query."""

    slug: str
    version: int
    publisher: str | None
    view: DatasetView
    files: list[str]
    schema: pa.Schema  # visible columns only
    raw_schema: pa.Schema  # all columns (row filters may use hidden ones)
    # For a confidential dataset read without microdata access: the report of its protected
    # table (method, rules, suppressed cells), which ``files`` then hold instead of microdata.
    disclosure: dict[str, Any] | None = None

    def select_sql(self, base: str, *, row_id: bool = False) -> str:
        """SELECT over ``base`` (the raw version) keeping only what the caller may see."""
        cols = ", ".join(quote_ident(f.name) for f in self.schema)
        if row_id:
            cols += ", __row"
        where = f" WHERE ({self.view.row_predicate()})" if self.view.row_filters else ""
        return f"SELECT {cols} FROM {base}{where}"

    def parquet_with_row_id(self) -> str:
        """Raw version with ``__row``: a stable, unique row number (file index, row in file)."""
        listed = ", ".join(quote_literal(f) for f in self.files)
        return (
            f"(SELECT *, (list_position([{listed}], __file)::BIGINT << 40) + file_row_number"
            f" AS __row FROM read_parquet([{listed}], filename='__file', file_row_number=true))"
        )


@dataclass
class RowsResult:
    table: pa.Table
    next: str | None
    source: Source
    # Shared by every answer from the same cache entry: the web layer keeps the encoded
    # rows there (same key, same rows), so a cache hit is not encoded again.
    memo: dict[str, Any] = field(default_factory=dict)
    # With ``defer_audit``: the audit entry's commit, to be waited for before answering.
    audited: Future[None] | None = None


@dataclass
class SqlResult:
    table: pa.Table
    truncated: bool
    elapsed_s: float
    sources: list[Source]


def _version_param(params: Sequence[tuple[str, str]]) -> int | None:
    values = [v for k, v in params if k == "version"]
    if not values or values[-1] in ("", "latest"):
        return None
    try:
        number = int(values[-1])
    except ValueError:
        raise BadInput(f"version {values[-1]!r} is not a number", column="version") from None
    if number < 1:
        raise BadInput("versions count from 1", column="version")
    return number


class Gate:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.accounts = Accounts(pool.store)
        self.audit = AuditLog(pool.store)
        self._datasets: dict[str, tuple[float, Dataset | None]] = {}
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()

    # -- what a caller sees ---------------------------------------------------------------
    def load(self, slug: str, *, fresh: bool = False) -> Dataset | None:
        """The dataset with versions, publisher and grants (None if absent or deleted).

        Reads are served from a short-lived per-process cache (``CACHE_SECONDS``): a busy
        API would otherwise spend more time asking the store than reading data. Changes
        made through this process are seen at once (:meth:`forget`); changes made by
        another process (CLI, another worker) within ``CACHE_SECONDS``. Permission checks
        of writes always read fresh.
        """
        now = time.monotonic()
        if not fresh:
            hit = self._datasets.get(slug)
            if hit is not None and hit[0] > now:
                return hit[1]
        d = self._query(slug)
        if len(self._datasets) >= 10_000:  # names asked for at random must not pile up
            self._datasets.clear()
        self._datasets[slug] = (now + CACHE_SECONDS, d)
        return d

    def forget(self, slug: str | None = None) -> None:
        """Drop cached catalogue entries after a change (all of them without ``slug``)."""
        if slug is None:
            self._datasets.clear()
        else:
            self._datasets.pop(slug, None)

    def _query(self, slug: str) -> Dataset | None:
        with self.pool.store.session() as s:
            return s.scalar(
                select(Dataset)
                .options(
                    selectinload(Dataset.versions),
                    selectinload(Dataset.publisher),
                    selectinload(Dataset.grants),
                )
                .where(Dataset.slug == slug, Dataset.deleted_at.is_(None))
            )

    def dataset(self, p: Principal, slug: str) -> tuple[Dataset, DatasetView]:
        """The dataset and the caller's view of it; NotFound if the caller may not see it."""
        d = self.load(slug)
        view = view_of(p, d) if d is not None and d.versions else None
        if d is None or view is None:
            raise NotFound(f"no dataset {slug!r}")
        return d, view

    def managed(self, p: Principal, slug: str, *, write: bool = True) -> Dataset:
        """The dataset the caller wants to change, freshly loaded.

        Refusals tell no more than the caller may know: signing in (401) and the token's
        scope (403) are checked before the dataset is looked up, a dataset the caller may
        not see answers NotFound exactly like a missing one, and only a dataset the caller
        sees but does not manage answers 403. ``write=False``: reading what only managers
        read (grants), also with a read token.
        """
        if write:
            p.require_write()
        else:
            p.require_login()
        self.dataset(p, slug)  # NotFound for whoever may not know it exists
        d = self.load(slug, fresh=True)
        if d is None or not d.versions:
            raise NotFound(f"no dataset {slug!r}")
        require_manage(p, d)
        return d

    def visible(self, p: Principal) -> list[tuple[Dataset, DatasetView]]:
        with self.pool.store.session() as s:
            q = select(Dataset).options(
                selectinload(Dataset.versions),
                selectinload(Dataset.publisher),
                selectinload(Dataset.grants),
            )
            rows = s.scalars(visible_filter(p, q).order_by(Dataset.slug)).all()
        out = []
        for d in rows:
            view = view_of(p, d)
            if view is not None and d.versions:
                out.append((d, view))
        return out

    def info(self, p: Principal, slug: str) -> tuple[DatasetInfo, DatasetView]:
        d, view = self.dataset(p, slug)
        info = DatasetInfo.of(d)
        if view.row_filters or view.protected:
            info.rows = None  # the total would tell about rows outside the grant
        return info, view

    def versions(self, p: Principal, slug: str) -> list[VersionInfo]:
        d, view = self.dataset(p, slug)
        return [_visible_version(VersionInfo.of(slug, v), view, d) for v in d.versions]

    def version(self, p: Principal, slug: str, number: int | None = None) -> VersionInfo:
        d, view = self.dataset(p, slug)
        return _visible_version(VersionInfo.of(slug, _pick(d, number)), view, d)

    def source(self, p: Principal, slug: str, version: int | None = None) -> Source:
        d, view = self.dataset(p, slug)
        v = _pick(d, version)
        publisher = d.publisher.slug if d.publisher else None
        if view.protected:
            from datenlabor.service.confidential import protected

            pv = protected(self, d, v)
            return Source(
                slug, v.number, publisher, view, [str(pv.path)], pv.schema, pv.schema, pv.report
            )
        files, schema = delta.snapshot_files(self.pool.root / d.table_path, v.delta_version)
        visible = pa.schema([f for f in schema if f.name not in view.hidden_columns])
        return Source(slug, v.number, publisher, view, files, visible, schema)

    # -- reading with audit ---------------------------------------------------------------
    def record(
        self,
        p: Principal,
        action: str,
        sources: Sequence[Source],
        *,
        client: str | None = None,
        **kw: Any,
    ) -> None:
        self.audit.submit(self._event(p, action, sources, client=client, **kw)).result()

    def _event(
        self,
        p: Principal,
        action: str,
        sources: Sequence[Source],
        *,
        client: str | None = None,
        **kw: Any,
    ) -> Event:
        return Event(
            action=action,
            actor=p.label(),
            organisation=p.organisation,
            datasets={s.slug: s.version for s in sources},
            publishers={s.slug: s.publisher for s in sources},
            client=client,
            **kw,
        )

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A fresh connection with file access, for exports and reports (our SQL only)."""
        con = self.pool.connect()
        try:
            yield con
        finally:
            con.close()

    @property
    def engine(self) -> Engine:
        """The per-process query engine for rows and user SQL (created on first use)."""
        with self._engine_lock:
            if self._engine is None:
                settings = self.pool.settings
                self._engine = Engine(
                    self.pool.root / "tmp",
                    memory_limit=settings.service_memory,
                    cache_bytes=settings.cache_bytes,
                    # DATENLABOR_RESULT_CACHE_BYTES; 0 turns the result cache off
                    result_cache_bytes=settings.result_cache_bytes,
                )
            return self._engine

    @contextmanager
    def visible_rows(self, src: Source) -> Iterator[tuple[duckdb.DuckDBPyConnection, str]]:
        """A connection and a FROM-expression of what the caller may see of ``src``, with
        ``__row``, in storage order: the engine's cached table, or the Parquet files when
        the version is too large to keep in memory. Only for SQL we write ourselves."""
        cached = self.engine.cached_table(src.files, src.raw_schema)
        if cached is not None:
            con = self.engine.cursor()
            relation = f"({src.select_sql(quote_ident(cached), row_id=True)})"
        else:
            con = self.pool.connect()
            relation = f"({src.select_sql(src.parquet_with_row_id(), row_id=True)})"
        try:
            yield con, relation
        finally:
            con.close()

    def register(self, con: duckdb.DuckDBPyConnection, name: str, src: Source) -> None:
        """Make ``name`` a view of what the caller may see of ``src``, without file access.

        The raw data is registered as an Arrow dataset under a name no user SQL can
        reference (user table names are dataset slugs, which start with a letter).
        """
        raw = f"_raw_{uuid.uuid4().hex[:12]}"
        con.register(raw, pads.dataset(src.files, schema=src.raw_schema, format="parquet"))
        con.execute(f"CREATE TEMP VIEW {quote_ident(name)} AS {src.select_sql(quote_ident(raw))}")

    def quality(self, p: Principal, slug: str, version: int | None = None) -> dict[str, Any]:
        """The stored report when the caller sees everything, else one over the visible rows."""
        d, view = self.dataset(p, slug)
        v = _pick(d, version)
        if view.whole:
            return dict(v.quality)
        from datenlabor.pool.quality import quality_report

        src = self.source(p, slug, version)
        if view.protected:
            schema: dict[str, Any] = {"fields": [_field(f) for f in src.schema]}
            keys: list[str] = []
        else:
            fields = [f for f in v.table_schema.get("fields", []) if f["name"] in src.schema.names]
            schema = dict(v.table_schema, fields=fields)
            keys = [k for k in d.primary_key if k in src.schema.names]
        with self.connection() as con:
            self.register(con, "visible_rows", src)
            return quality_report(con, "visible_rows", schema=schema, primary_key=keys)

    def diff(
        self, p: Principal, slug: str, a: int, b: int, *, limit: int = 20, client: str | None = None
    ) -> dict[str, Any]:
        from datenlabor.pool.diff import diff_versions

        d, _view = self.dataset(p, slug)
        sa, sb = self.source(p, slug, a), self.source(p, slug, b)
        with self.connection() as con:
            self.register(con, "version_a", sa)
            self.register(con, "version_b", sb)
            result = diff_versions(
                con,
                slug,
                (a, "version_a"),
                (b, "version_b"),
                keys=list(d.primary_key),
                limit=limit,
            )
        self.record(p, "read", [sa, sb], client=client, detail={"diff": [a, b]})
        return result

    def download(
        self,
        p: Principal,
        slug: str,
        *,
        version: int | None = None,
        fmt: str = "csv",
        dialect: str = "de",
        client: str | None = None,
    ) -> tuple[Path, Source, int]:
        """Write the visible rows to a temporary file: (path, source, rows). Caller deletes."""
        if fmt not in DOWNLOAD_FORMATS:
            raise BadInput(
                f"unknown format {fmt!r}; choose one of {', '.join(DOWNLOAD_FORMATS)}",
                column="format",
            )
        if dialect not in CSV_DIALECTS:
            raise BadInput("the CSV dialect is 'de' (;) or 'intl' (,)", column="dialect")
        src = self.source(p, slug, version)
        path = self.pool.root / "tmp" / f"download-{uuid.uuid4().hex}.{fmt}"
        try:
            with self.connection() as con:
                self.register(con, "visible_rows", src)
                rows = export_relation(con, "visible_rows", path, fmt, dialect)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        self.record(
            p,
            "download",
            [src],
            client=client,
            rows=rows,
            detail={"format": fmt, "dialect": dialect},
        )
        return path, src, rows

    def rows(
        self,
        p: Principal,
        slug: str,
        params: Sequence[tuple[str, str]],
        *,
        client: str | None = None,
        defer_audit: bool = False,
    ) -> RowsResult:
        """One page of what the caller may see, audited. ``defer_audit``: return as soon as
        the audit entry is queued; the caller waits for ``result.audited`` before it lets
        the answer leave (an async route does so without holding a thread)."""
        from datenlabor.query.rows import page, parse_rows_request, rows_sql

        src = self.source(p, slug, _version_param(params))
        if _version_param(params) is None:
            # Pin the cursor to the version read: the next page of "latest" must not
            # silently continue in a version published in between.
            params = [*params, ("version", str(src.version))]
        req = parse_rows_request(params, {f.name: f.type for f in src.schema})
        results = self.engine.results
        with self.visible_rows(src) as (con, relation):
            # The relation names the version and holds the caller's view (columns, row
            # filters), the SQL and its parameters hold the request: the same key means
            # the same answer, whoever asks (see ResultCache).
            sql, values = rows_sql(relation, req, scan_in_row_order=True)
            key = (sql, tuple(values), tuple(req.columns), req.version)
            hit = results.get(key) if results.max_bytes else None
            if hit is None:
                pg = page(con, relation, req, scan_in_row_order=True)
                hit = (pg, {})
                if results.max_bytes:
                    results.put(key, hit, pg.table.get_total_buffer_size())
        pg, memo = hit
        query = "&".join(f"{k}={v}" for k, v in params)
        event = self._event(
            p, "read", [src], client=client, rows=pg.table.num_rows, query=query or None
        )
        audited = self.audit.submit(event)
        if not defer_audit:
            audited.result()
        return RowsResult(pg.table, pg.next, src, memo, audited)

    def sql(
        self,
        p: Principal,
        sql: str,
        *,
        max_rows: int | None = None,
        client: str | None = None,
    ) -> SqlResult:
        """Run a caller's own SQL (analysts, stewards and admins write SQL)."""
        p.require_role("admin", "steward", "analyst")
        return self.run_sql(p, sql, max_rows=max_rows, client=client)

    def run_sql(
        self,
        p: Principal,
        sql: str,
        *,
        max_rows: int | None = None,
        client: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> SqlResult:
        """Run read-only SQL over the caller's views of the datasets it names, whoever wrote
        it (a dashboard's SQL is its steward's, read by viewers too): every table is the
        caller's view, aggregates over protected tables come from their cells, audited."""
        from datenlabor.query.sandbox import check_select, run_limited

        checked = check_select(sql)
        sources = [self.source(p, t.slug, t.version) for t in checked.tables]
        run = _answer_from_protected(checked.sql, checked.tables, sources)
        limit = min(max_rows or self.pool.settings.sql_max_rows, self.pool.settings.sql_max_rows)
        # A cursor of the engine's database: no file access, configuration locked, and only
        # the caller's views of the named datasets under names the query may use.
        con = self.engine.cursor()
        try:
            for t, src in zip(checked.tables, sources, strict=True):
                raw = self.engine.raw_relation(con, src.files, src.raw_schema)
                con.execute(f"CREATE TEMP VIEW {quote_ident(t.name)} AS {src.select_sql(raw)}")
            try:
                result = run_limited(
                    con, run, max_rows=limit, timeout_s=self.pool.settings.sql_timeout_s
                )
            except BadInput as exc:
                self.record(
                    p,
                    "query",
                    sources,
                    client=client,
                    query=sql,
                    outcome="failed",
                    detail={"error": str(exc), **(detail or {})},
                )
                raise
        finally:
            con.close()
        self.record(
            p,
            "query",
            sources,
            client=client,
            query=sql,
            rows=result.table.num_rows,
            detail={"truncated": result.truncated, **(detail or {})}
            | ({"answered": run} if run != checked.sql else {}),
        )
        return SqlResult(result.table, result.truncated, result.elapsed_s, sources)


def _answer_from_protected(sql: str, tables: Sequence[Any], sources: Sequence[Source]) -> str:
    """``sql`` with aggregates over protected tables answered from their cells."""
    from datenlabor.query.protected_sql import ProtectedTable, rewrite

    protected = {
        t.name: ProtectedTable(
            t.name,
            tuple(src.disclosure["dims"]),
            tuple(src.disclosure["measures"]),
            src.disclosure["finest"],
            src.disclosure.get("contributor"),
            src.disclosure.get("n_counts", "records"),
        )
        for t, src in zip(tables, sources, strict=True)
        if src.disclosure is not None
    }
    return rewrite(sql, protected)


def _pick(d: Dataset, number: int | None) -> Version:
    if number is None:
        return d.versions[-1]
    for v in d.versions:
        if v.number == number:
            return v
    raise NotFound(
        f"dataset {d.slug!r} has no version {number}; versions are 1..{d.versions[-1].number}"
    )


def _visible_version(info: VersionInfo, view: DatasetView, d: Dataset) -> VersionInfo:
    """Provenance without what the grant withholds: hidden columns, totals of hidden rows;
    of a confidential dataset without microdata access, the protected table's columns."""
    if view.whole:
        return info
    if view.protected and d.disclosure is not None:
        from datenlabor.service.confidential import protected_fields

        fields = protected_fields(d.disclosure)
    else:
        fields = [f for f in info.schema.get("fields", []) if f["name"] not in view.hidden_columns]
    info.schema = dict(info.schema, fields=fields)
    info.columns = len(fields)
    keep = ("encoding", "format", "delimiter", "decimal", "date_format", "genesis")
    info.detection = {k: v for k, v in info.detection.items() if k in keep}
    if view.row_filters or view.protected:
        info.rows = -1  # unknown to the caller
    return info


def _field(f: pa.Field) -> dict[str, str]:
    """A Table Schema field for an Arrow column of a protected table."""
    t = f.type
    if pa.types.is_integer(t):
        kind = "integer"
    elif pa.types.is_floating(t) or pa.types.is_decimal(t):
        kind = "number"
    else:
        kind = "string"
    return {"name": f.name, "type": kind}


def export_relation(
    con: duckdb.DuckDBPyConnection, rel: str, path: Path, fmt: str, dialect: str = "intl"
) -> int:
    """Write ``rel`` to ``path``; returns the row count.

    German CSV is what Excel in a German locale opens correctly: ``;`` between fields,
    decimal comma, dates as DD.MM.YYYY, UTF-8 with a byte-order mark.
    """
    target = quote_literal(str(path))
    rows = int(con.execute(f"SELECT count(*) FROM {rel}").fetchone()[0])  # type: ignore[index]
    if fmt == "csv" and dialect == "de":
        cols = con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()
        parts = []
        for name, dtype, *_ in cols:
            q = quote_ident(name)
            t = str(dtype).upper()
            if t in ("DOUBLE", "FLOAT", "REAL") or t.startswith("DECIMAL"):
                parts.append(f"replace(CAST({q} AS VARCHAR), '.', ',') AS {q}")
            else:
                parts.append(q)
        with open(path, "wb") as fh:
            fh.write(b"\xef\xbb\xbf")
        tmp = path.with_suffix(".body")
        con.execute(
            f"COPY (SELECT {', '.join(parts)} FROM {rel}) TO {quote_literal(str(tmp))} "
            "(FORMAT csv, HEADER true, DELIMITER ';', DATEFORMAT '%d.%m.%Y', "
            "TIMESTAMPFORMAT '%d.%m.%Y %H:%M:%S')"
        )
        with open(path, "ab") as out, open(tmp, "rb") as body:
            while chunk := body.read(1 << 20):
                out.write(chunk)
        tmp.unlink()
    elif fmt == "csv":
        con.execute(f"COPY (SELECT * FROM {rel}) TO {target} (FORMAT csv, HEADER true)")
    elif fmt == "parquet":
        con.execute(f"COPY (SELECT * FROM {rel}) TO {target} (FORMAT parquet, COMPRESSION zstd)")
    elif fmt == "json":
        con.execute(f"COPY (SELECT * FROM {rel}) TO {target} (FORMAT json, ARRAY true)")
    else:
        from datenlabor.query.connection import load_extension

        if rows > 1_048_575:
            raise BadInput(f"{rows} rows do not fit into one XLSX sheet (1,048,575 at most)")
        load_extension(con, "excel")
        con.execute(f"COPY (SELECT * FROM {rel}) TO {target} (FORMAT xlsx, HEADER true)")
    return rows
