"""A handle on one dataset: versions, time travel, quality, diff and export."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from datenlabor.errors import BadInput, NotFound
from datenlabor.pool import delta
from datenlabor.pool.info import DatasetInfo, VersionInfo
from datenlabor.query.connection import quote_literal
from datenlabor.store import Dataset, Version

if TYPE_CHECKING:
    import duckdb

    from datenlabor.pool.pool import Pool

EXPORT_FORMATS = ("csv", "parquet", "xlsx")


class DatasetHandle:
    """Obtained from :meth:`Pool.dataset`; reads always go through the metadata store."""

    def __init__(self, pool: Pool, slug: str) -> None:
        self.pool = pool
        self.slug = slug

    def _load(self) -> Dataset:
        with self.pool.store.session() as s:
            d = s.scalar(
                select(Dataset)
                .options(selectinload(Dataset.versions), selectinload(Dataset.publisher))
                .where(Dataset.slug == self.slug, Dataset.deleted_at.is_(None))
            )
            if d is None or not d.versions:
                raise NotFound(f"no dataset {self.slug!r}")
            return d

    def info(self) -> DatasetInfo:
        return DatasetInfo.of(self._load())

    def versions(self) -> list[VersionInfo]:
        return [VersionInfo.of(self.slug, v) for v in self._load().versions]

    def _version(self, number: int | None) -> tuple[Dataset, Version]:
        d = self._load()
        if number is None:
            return d, d.versions[-1]
        for v in d.versions:
            if v.number == number:
                return d, v
        raise NotFound(
            f"dataset {self.slug!r} has no version {number}; versions are 1..{d.versions[-1].number}"
        )

    def version(self, number: int | None = None) -> VersionInfo:
        return VersionInfo.of(self.slug, self._version(number)[1])

    def files(self, version: int | None = None) -> tuple[list[str], pa.Schema]:
        """The Parquet files of a version, in load order, and its Arrow schema."""
        d, v = self._version(version)
        return delta.snapshot_files(self.pool.root / d.table_path, v.delta_version)

    def relation(self, version: int | None = None) -> str:
        """A DuckDB FROM-expression reading the version."""
        return delta.parquet_relation(self.files(version)[0])

    def read(
        self, version: int | None = None, *, columns: list[str] | None = None, output: str = "arrow"
    ) -> Any:
        """The rows of a version as an Arrow table, or ``output="pandas"|"polars"``."""
        import pyarrow.dataset as ds

        files, schema = self.files(version)
        table = ds.dataset(files, schema=schema, format="parquet").to_table(columns=columns)
        if output == "arrow":
            return table
        if output == "pandas":
            return table.to_pandas()
        if output == "polars":
            import polars as pl

            return pl.from_arrow(table)
        raise BadInput(f"unknown output {output!r}; choose arrow, pandas or polars")

    def quality(self, version: int | None = None) -> dict[str, Any]:
        return dict(self._version(version)[1].quality)

    def diff(self, a: int, b: int, *, limit: int = 20) -> dict[str, Any]:
        from datenlabor.pool.diff import diff_versions

        d = self._load()
        con = self.pool.connect()
        try:
            return diff_versions(
                con,
                self.slug,
                (a, self.relation(a)),
                (b, self.relation(b)),
                keys=list(d.primary_key),
                limit=limit,
            )
        finally:
            con.close()

    def export(
        self, target: str | Path, *, version: int | None = None, fmt: str | None = None
    ) -> Path:
        """Write a version to CSV (UTF-8, `,`), Parquet or XLSX; written atomically."""
        target = Path(target)
        fmt = fmt or target.suffix.lstrip(".").lower()
        if fmt not in EXPORT_FORMATS:
            raise BadInput(f"unknown export format {fmt!r}; choose {', '.join(EXPORT_FORMATS)}")
        rel = self.relation(version)
        partial = target.with_name(f".{target.name}.partial")
        con = self.pool.connect()
        try:
            _export(con, rel, partial, fmt)
            partial.replace(target)
        finally:
            con.close()
            partial.unlink(missing_ok=True)
        return target


def _export(con: duckdb.DuckDBPyConnection, rel: str, path: Path, fmt: str) -> None:
    if fmt == "csv":
        con.execute(
            f"COPY (SELECT * FROM {rel}) TO {quote_literal(str(path))} (FORMAT csv, HEADER true)"
        )
    elif fmt == "parquet":
        con.execute(
            f"COPY (SELECT * FROM {rel}) TO {quote_literal(str(path))} (FORMAT parquet, COMPRESSION zstd)"
        )
    else:
        from datenlabor.query.connection import load_extension

        rows = con.execute(f"SELECT count(*) FROM {rel}").fetchone()[0]  # type: ignore[index]
        if rows > 1_048_575:
            raise BadInput(f"{rows} rows do not fit into one XLSX sheet (1,048,575 at most)")
        load_extension(con, "excel")
        con.execute(
            f"COPY (SELECT * FROM {rel}) TO {quote_literal(str(path))} (FORMAT xlsx, HEADER true)"
        )
