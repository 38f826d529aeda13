"""The Datenpool: datasets whose every load is an immutable, queryable Delta version.

>>> import datenlabor
>>> pool = datenlabor.open("/tmp/pool")                          # doctest: +SKIP
>>> pool.ingest("12411-0006.csv", dataset="bevoelkerung")        # doctest: +SKIP
>>> pool.dataset("bevoelkerung").read(version=1).num_rows        # doctest: +SKIP
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from datenlabor.config import Settings, load_settings
from datenlabor.errors import BadInput, Conflict, NotFound
from datenlabor.pool import checks, delta, diskfull
from datenlabor.pool import cleanup as leftovers
from datenlabor.pool import schema as table_schema
from datenlabor.pool.catalog import DatasetMeta, check_meta, check_slug
from datenlabor.pool.dataset import DatasetHandle
from datenlabor.pool.info import DatasetInfo, VersionInfo
from datenlabor.pool.ingest import CsvOptions, Reading, open_reading
from datenlabor.pool.ingest.reading import duckdb_error
from datenlabor.pool.locks import dataset_lock
from datenlabor.pool.quality import quality_report
from datenlabor.query.connection import connect
from datenlabor.store import Dataset, Organisation, Store, Version
from datenlabor.store.models import AssistModel

MODES = ("replace", "append", "upsert")
Progress = Callable[[str, float | None], None]


def open(path: str | Path | None = None, **settings: Any) -> Pool:
    """Open (and create if needed) the pool at ``path``; see :mod:`datenlabor.config`."""
    return Pool(load_settings(pool=path, **settings))


class Pool:
    """A pool folder (Delta tables) plus its metadata store."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.pool.resolve()
        for sub in ("tables", "staging", "locks", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.store = Store(settings.metadata_url, lock_dir=self.root / "locks")

    # -- reading ------------------------------------------------------------------------
    def datasets(self) -> list[DatasetInfo]:
        with self.store.session() as s:
            rows = s.scalars(_dataset_query().order_by(Dataset.slug)).all()
            return [DatasetInfo.of(d) for d in rows if d.versions]

    def dataset(self, slug: str) -> DatasetHandle:
        with self.store.session() as s:
            d = s.scalar(_dataset_query().where(Dataset.slug == slug))
            if d is None or not d.versions:
                raise NotFound(f"no dataset {slug!r}")
        return DatasetHandle(self, slug)

    def query(self, sql: str) -> pa.Table:
        """Run read-only SQL over the pool; datasets are tables, ``"slug@N"`` is version N."""
        from datenlabor.query.sql import SqlSession

        with SqlSession(self) as session:
            return session.arrow(sql)

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with its own spill folder: DuckDB names its spill files the same
        in every database, so two connections of one process sharing a folder overwrite each
        other's. DuckDB makes the folder when it first spills; it goes when the connection
        does (or, after a crash, at cleanup)."""
        spill = self.root / "tmp" / f"{leftovers.work_prefix()}duckdb-{uuid.uuid4().hex[:12]}"
        con = connect(
            temp_dir=spill, memory_limit=self.settings.duckdb_memory, create_temp_dir=False
        )
        weakref.finalize(con, shutil.rmtree, spill, True)
        return con

    # -- writing ------------------------------------------------------------------------
    def ingest(
        self,
        path: str | Path,
        *,
        dataset: str,
        mode: str = "replace",
        key: str | list[str] | None = None,
        format: str = "auto",
        csv: CsvOptions | None = None,
        sheet: str | None = None,
        schema: str | Path | dict[str, Any] | None = None,
        meta: DatasetMeta | None = None,
        user: str | None = None,
        allow_duplicate: bool = False,
        progress: Progress | None = None,
    ) -> VersionInfo:
        """Load a file as a new version of ``dataset``; nothing is visible if it fails."""
        slug = check_slug(dataset)
        if mode not in MODES:
            raise BadInput(
                f"unknown mode {mode!r}; choose one of {', '.join(MODES)}", column="mode"
            )
        meta = check_meta(meta or DatasetMeta())
        keys = [k.strip() for k in key.split(",")] if isinstance(key, str) else list(key or [])
        user_schema = table_schema.load_schema(schema) if schema is not None else None
        if user_schema and not keys:
            keys = _as_list(user_schema.get("primaryKey"))
        if user_schema:
            csv = _csv_types_from_schema(csv or CsvOptions(), user_schema)
        report = progress or (lambda _phase, _fraction: None)
        src = Path(path)
        # A full disk anywhere below (staging, Delta log, quality report, metadata store)
        # becomes one clear error naming the file; the previous version stays as it was.
        with diskfull.reported(src, self.root):
            con = self.connect()
            leftovers.remove_dead_work(self.root)
            work = Path(tempfile.mkdtemp(dir=self.root / "tmp", prefix=leftovers.work_prefix()))
            staging = self.root / "staging" / work.name  # everything staged by this ingest
            reading: Reading | None = None
            try:
                report("read", None)
                reading = open_reading(
                    con,
                    src,
                    fmt=format,
                    csv=csv,
                    sheet=sheet,
                    work_dir=work,
                    sample_bytes=self.settings.csv_sample_bytes,
                    progress=lambda f: report("read", f),
                )
                reading, staged = self._stage(con, reading, staging, report)
                if user_schema is not None:
                    con.execute(
                        f"CREATE OR REPLACE TEMP VIEW staged_rows AS SELECT * FROM {staged.relation()}"
                    )
                    table_schema.check_against_schema(
                        con,
                        "staged_rows",
                        user_schema,
                        file=str(src),
                        line_offset=reading.line_offset,
                    )
                with dataset_lock(
                    self.root / "locks", slug, timeout_s=self.settings.lock_timeout_s
                ):
                    report("commit", None)
                    return self._commit(
                        con,
                        slug,
                        reading,
                        staged,
                        staging,
                        mode=mode,
                        keys=keys,
                        meta=meta,
                        user_schema=user_schema,
                        user=user or self.settings.user,
                        allow_duplicate=allow_duplicate,
                    )
            finally:
                shutil.rmtree(staging, ignore_errors=True)
                if reading is not None:
                    reading.cleanup()
                con.close()
                shutil.rmtree(work, ignore_errors=True)

    def _stage(
        self, con: duckdb.DuckDBPyConnection, reading: Reading, staging: Path, report: Progress
    ) -> tuple[Reading, delta.StagedFiles]:
        """Parse and write the rows to Parquet in ``staging``.

        If the reading was opened with a guessed encoding that the background scan then
        contradicts, whatever was staged is discarded and the file is read again with the
        scanned encoding; the returned reading is the one the rows came from.
        """
        report("parse", 0.0)

        def attempt(r: Reading) -> delta.StagedFiles:
            while True:
                try:
                    with _watch_progress(con, lambda f: report("parse", f)):
                        return delta.stage(con, delta.delta_select(con, r.relation), staging)
                except duckdb.Error as exc:
                    if not r.guess_failed and r.retry_after(con, exc):
                        continue
                    raise duckdb_error(exc, r.source.path) from exc

        staged: delta.StagedFiles | None = None
        try:
            if not reading.guess_failed:
                staged = attempt(reading)
        except Exception:
            if reading.settle():
                raise
        if reading.settle() and staged is not None:
            return reading, staged
        if staged is not None:
            staged.discard()
        reading.cleanup()
        exact = reading.reopen()
        try:
            return exact, attempt(exact)
        except BaseException:
            exact.cleanup()
            raise

    def _commit(
        self,
        con: duckdb.DuckDBPyConnection,
        slug: str,
        reading: Reading,
        staged: delta.StagedFiles,
        staging: Path,
        *,
        mode: str,
        keys: list[str],
        meta: DatasetMeta,
        user_schema: dict[str, Any] | None,
        user: str,
        allow_duplicate: bool,
    ) -> VersionInfo:
        with self.store.session() as s:
            ds = s.scalar(_dataset_query(deleted=True).where(Dataset.slug == slug))
            if ds is not None and ds.deleted_at is not None:
                raise Conflict(
                    f"dataset {slug!r} was deleted on {ds.deleted_at:%Y-%m-%d}; restore it "
                    f"first (it is purged after {ds.purge_after:%Y-%m-%d})"
                )
            exists = ds is not None and bool(ds.versions)
            table_dir = self.root / ds.table_path if ds is not None else None
            if ds is not None and table_dir is not None:
                self._recover(ds, table_dir)
            keys = keys or (list(ds.primary_key) if ds is not None else [])
            src_file = str(reading.source.path)
            checks.check_keys(con, staged.relation(), keys, mode, src_file, reading.line_offset)
            # The first load of a dataset is its whole content, whatever the mode.
            mode_used = mode if exists else "replace"
            if exists:
                assert ds is not None and table_dir is not None
                current = ds.versions[-1]
                files, cur_schema = delta.snapshot_files(table_dir, current.delta_version)
                cur_rel = delta.parquet_relation(files)
                if mode_used in ("append", "upsert"):
                    staged = checks.conform(con, staged, cur_rel, cur_schema, src_file, staging)
                if mode_used == "append" and not allow_duplicate:
                    checks.check_not_loaded(ds, reading.source.sha256, src_file)
                if mode_used == "append" and keys:
                    checks.check_no_collision(
                        con, staged.relation(), cur_rel, keys, src_file, reading.line_offset
                    )
                if mode_used == "upsert":
                    # Kept rows first (in their order), then the new and updated rows.
                    names = checks.column_list([f.name for f in cur_schema])
                    merged = (
                        f"WITH cur AS (SELECT * FROM {cur_rel}), new AS (SELECT * FROM {staged.relation()}) "
                        f"(SELECT {names} FROM cur ANTI JOIN new USING ({checks.column_list(keys)})) "
                        f"UNION ALL (SELECT {names} FROM new)"
                    )
                    staged = delta.stage(con, merged, staging)
            else:
                table_dir = self.root / "tables" / f"{slug}-{uuid.uuid4().hex[:8]}"
            number = (ds.versions[-1].number + 1) if exists and ds is not None else 1
            provenance = {
                "dataset": slug,
                "version": number,
                "mode": mode_used,
                "user": user,
                "source": reading.source.name,
                "sha256": reading.source.sha256,
            }
            delta_mode = "append" if mode_used == "append" else "overwrite"
            new_rows = staged.rows
            dv = delta.commit(table_dir, staged, mode=delta_mode, metadata=provenance)
            try:
                files, _ = delta.snapshot_files(table_dir, dv)
                rel = delta.parquet_relation(files)
                con.execute(f"CREATE OR REPLACE TEMP VIEW version_rows AS SELECT * FROM {rel}")
                rows = con.execute("SELECT count(*) FROM version_rows").fetchone()[0]  # type: ignore[index]
                inferred = table_schema.infer_table_schema(
                    con, "version_rows", primary_key=keys or None
                )
                described = _merge_user_schema(inferred, user_schema)
                quality = quality_report(
                    con,
                    "version_rows",
                    schema=described,
                    primary_key=keys or None,
                    files=files,
                )
                version = self._record(
                    s,
                    ds,
                    slug,
                    table_dir,
                    meta=meta,
                    keys=keys,
                    number=number,
                    dv=dv,
                    mode=mode_used,
                    rows=rows,
                    schema=described,
                    quality=quality,
                    reading=reading,
                    user=user,
                    appended=new_rows,
                )
            except BaseException:
                s.rollback()
                previous = ds.versions[-1].delta_version if exists and ds is not None else None
                if previous is not None and table_dir is not None:
                    delta.restore(table_dir, previous)
                raise
            return VersionInfo.of(slug, version)

    def _record(
        self,
        s: Session,
        ds: Dataset | None,
        slug: str,
        table_dir: Path,
        *,
        meta: DatasetMeta,
        keys: list[str],
        number: int,
        dv: int,
        mode: str,
        rows: int,
        schema: dict[str, Any],
        quality: dict[str, Any],
        reading: Reading,
        user: str,
        appended: int,
    ) -> Version:
        if ds is None:
            ds = Dataset(
                slug=slug,
                table_path=str(table_dir.relative_to(self.root)),
                title=meta.title or slug,
                created_by=user,
                description="",
                keywords=[],
                themes=[],
                spatial=[],
                primary_key=keys,
            )
            s.add(ds)
        _apply_meta(s, ds, meta)
        if keys:
            ds.primary_key = keys
        detection = dict(reading.detection)
        detection["format"] = reading.format
        if mode == "append":
            detection["rows_appended"] = appended
        version = Version(
            dataset=ds,
            number=number,
            delta_version=dv,
            mode=mode,
            row_count=rows,
            table_schema=schema,
            source_name=reading.source.name,
            source_sha256=reading.source.sha256,
            source_bytes=reading.source.size,
            source_format=reading.format,
            detection=detection,
            quality=quality,
            created_by=user,
        )
        s.add(version)
        s.commit()
        return version

    def _recover(self, ds: Dataset, table_dir: Path) -> None:
        """Undo a Delta commit whose process died before recording it in the store."""
        recorded = ds.versions[-1].delta_version if ds.versions else None
        latest = delta.latest_version(table_dir)
        if recorded is not None and latest is not None and latest > recorded:
            delta.restore(table_dir, recorded)

    def delete(self, slug: str, *, retention_days: int = 30) -> datetime:
        """Soft-delete: hidden at once, restorable until purged by :meth:`cleanup`.

        Returns the moment after which the data is purged.
        """
        if retention_days < 0:
            raise BadInput("the retention period cannot be negative", column="retention_days")
        with self.store.session() as s, s.begin():
            d = s.scalar(_dataset_query().where(Dataset.slug == slug))
            if d is None or not d.versions:
                raise NotFound(f"no dataset {slug!r}")
            d.deleted_at = datetime.now(UTC)
            d.purge_after = d.deleted_at + timedelta(days=retention_days)
            return d.purge_after

    def restore(self, slug: str) -> DatasetInfo:
        """Undo a soft delete that has not been purged yet."""
        with self.store.session() as s, s.begin():
            d = s.scalar(_dataset_query(deleted=True).where(Dataset.slug == slug))
            if d is None or d.deleted_at is None:
                raise NotFound(f"no deleted dataset {slug!r} (purged datasets are gone)")
            d.deleted_at = d.purge_after = None
            return DatasetInfo.of(d)

    def deleted(self) -> list[tuple[str, datetime, datetime]]:
        """(slug, deleted at, purged after) of soft-deleted datasets."""
        with self.store.session() as s:
            q = select(Dataset).where(Dataset.deleted_at.is_not(None)).order_by(Dataset.slug)
            return [(d.slug, _utc(d.deleted_at), _utc(d.purge_after)) for d in s.scalars(q)]

    def _purge_expired(self, report: leftovers.CleanupReport) -> None:
        """Forget soft-deleted datasets past retention; their folders go as orphans next."""
        now = datetime.now(UTC)
        for slug, _deleted, purge_after in self.deleted():
            if purge_after > now:
                continue
            with (
                dataset_lock(self.root / "locks", slug, timeout_s=self.settings.lock_timeout_s),
                self.store.session() as s,
                s.begin(),
            ):
                d = s.scalar(select(Dataset).where(Dataset.slug == slug))
                if d is not None and d.deleted_at is not None:
                    s.delete(d)
                    report.purged_datasets.append(slug)

    def cleanup(self) -> leftovers.CleanupReport:
        """Remove leftovers of killed or failed operations; never touches a version's files.

        Also purges soft-deleted datasets whose retention period is over.
        """
        report = leftovers.remove_dead_work(self.root)
        self._purge_expired(report)

        def recorded() -> dict[str, str]:
            with self.store.session() as s:
                return {d.table_path: d.slug for d in s.scalars(select(Dataset))}

        leftovers.remove_orphans(
            self.root, recorded, lock_timeout_s=self.settings.lock_timeout_s, report=report
        )
        self._remove_stale_protected(report)

        def models() -> set[str]:
            with self.store.session() as s:
                return {a for a in s.scalars(select(AssistModel.artifact)) if a}

        leftovers.remove_dead_models(self.root, models, report=report)
        leftovers.remove_dead_dashboards(self.root, report=report)
        return report

    def _remove_stale_protected(self, report: leftovers.CleanupReport) -> None:
        """Protected tables (datenlabor.service.confidential) of datasets that are gone or no
        longer confidential: derived data, recomputed whenever rules are set again."""
        folder = self.root / "disclosure"
        if not folder.is_dir():
            return
        with self.store.session() as s:
            confidential = {d.slug for d in s.scalars(select(Dataset)) if d.disclosure is not None}
        for sub in sorted(folder.iterdir()):
            if sub.is_dir() and sub.name not in confidential:
                report.bytes_freed += leftovers.folder_size(sub)
                report.orphan_files += [str(f.relative_to(self.root)) for f in sub.iterdir()]
                shutil.rmtree(sub, ignore_errors=True)

    def table_dir(self, slug: str) -> Path:
        with self.store.session() as s:
            d = s.scalar(select(Dataset).where(Dataset.slug == slug))
            if d is None:
                raise NotFound(f"no dataset {slug!r}")
            return self.root / d.table_path

    def update_metadata(self, slug: str, meta: DatasetMeta) -> DatasetInfo:
        """Change catalogue metadata (not data) of a dataset."""
        meta = check_meta(meta)
        with self.store.session() as s:
            d = s.scalar(_dataset_query().where(Dataset.slug == slug))
            if d is None or not d.versions:
                raise NotFound(f"no dataset {slug!r}")
            _apply_meta(s, d, meta)
            s.commit()
            return DatasetInfo.of(d)

    def origin(self, slug: str) -> dict[str, Any] | None:
        """Where a harvested or connected dataset comes from (None for uploads)."""
        with self.store.session() as s:
            d = s.scalar(_dataset_query().where(Dataset.slug == slug))
            if d is None:
                raise NotFound(f"no dataset {slug!r}")
            return dict(d.origin) if d.origin is not None else None

    def set_origin(self, slug: str, origin: dict[str, Any] | None) -> None:
        """Record the source a dataset mirrors: JSON-able dict, e.g. ``{"kind": "dcat",
        "source": URL, "identifier": …, "modified": ISO date, "sha256": …}``."""
        with self.store.session() as s:
            d = s.scalar(_dataset_query().where(Dataset.slug == slug))
            if d is None:
                raise NotFound(f"no dataset {slug!r}")
            d.origin = dict(origin) if origin is not None else None
            s.commit()


# Table Schema field types and the DuckDB types a CSV column is parsed as.
_SCHEMA_TYPES = {
    "string": "VARCHAR",
    "integer": "BIGINT",
    "number": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "datetime": "TIMESTAMP",
    "year": "INTEGER",
}


def _csv_types_from_schema(opts: CsvOptions, schema: dict[str, Any]) -> CsvOptions:
    """Parse CSV columns as the user's schema declares them (explicit options still win)."""
    types = dict(opts.types)
    for f in schema.get("fields", []):
        duck = _SCHEMA_TYPES.get(f.get("type", "string"))
        if duck and f.get("name") and f["name"] not in types:
            types[f["name"]] = duck
    decimal = opts.decimal or next(
        (f["decimalChar"] for f in schema.get("fields", []) if f.get("decimalChar")), None
    )
    date_format = opts.date_format or next(
        (
            f["format"]
            for f in schema.get("fields", [])
            if f.get("type") == "date" and str(f.get("format", "")).startswith("%")
        ),
        None,
    )
    return replace(opts, types=types, decimal=decimal, date_format=date_format)


def _apply_meta(s: Session, ds: Dataset, meta: DatasetMeta) -> None:
    """Set the metadata fields that were given; create the publisher on first mention."""
    given = meta.given()
    publisher_slug = given.pop("publisher", None)
    publisher_name = given.pop("publisher_name", None)
    for field, value in given.items():
        setattr(ds, field, value)
    if publisher_slug:
        org = s.scalar(select(Organisation).where(Organisation.slug == publisher_slug))
        if org is None:
            org = Organisation(slug=publisher_slug, name=publisher_name or publisher_slug)
            s.add(org)
        elif publisher_name:
            org.name = publisher_name
        ds.publisher = org


def _dataset_query(*, deleted: bool = False) -> Any:
    q = select(Dataset).options(selectinload(Dataset.versions), selectinload(Dataset.publisher))
    return q if deleted else q.where(Dataset.deleted_at.is_(None))


def _utc(ts: datetime | None) -> datetime:
    assert ts is not None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _merge_user_schema(inferred: dict[str, Any], user: dict[str, Any] | None) -> dict[str, Any]:
    """A user's schema is authoritative; inferred facts fill what it leaves open."""
    if user is None:
        return inferred
    merged = dict(inferred)
    merged.update({k: v for k, v in user.items() if k != "fields"})
    by_name = {f["name"]: f for f in inferred.get("fields", [])}
    merged["fields"] = [{**by_name.get(f["name"], {}), **f} for f in user.get("fields", [])]
    return merged


@contextmanager
def _watch_progress(
    con: duckdb.DuckDBPyConnection, report: Callable[[float], None]
) -> Iterator[None]:
    """Poll DuckDB's progress of the running statement from a helper thread."""
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.25):
            try:
                value = con.query_progress()
            except duckdb.Error:
                return
            if value is not None and value >= 0:
                report(min(value / 100.0, 1.0))

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
