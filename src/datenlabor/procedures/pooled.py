"""Event logs made from a dataset already in the pool (mapping its columns)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from datenlabor.pool.cleanup import work_prefix
from datenlabor.procedures.eventlog import DEFAULT_TIMEZONE, Mapping, normalise
from datenlabor.query.connection import quote_literal

if TYPE_CHECKING:
    from datenlabor.pool.catalog import DatasetMeta
    from datenlabor.pool.info import VersionInfo
    from datenlabor.pool.pool import Pool


def import_dataset(
    pool: Pool,
    source: str,
    *,
    dataset: str,
    version: int | None = None,
    mapping: Mapping | None = None,
    timezone: str = DEFAULT_TIMEZONE,
    meta: DatasetMeta | None = None,
    user: str | None = None,
) -> VersionInfo:
    """Turn version ``version`` of pool dataset ``source`` into the event log ``dataset``.

    Error positions name the source row (1 = first row of the version). The new log's origin
    records the source dataset and version.
    """
    handle = pool.dataset(source)
    info = handle.version(version)
    label = f"{source}@{info.version}"
    work = Path(tempfile.mkdtemp(dir=pool.root / "tmp", prefix=work_prefix() + "eventlog-"))
    con = pool.connect()
    try:
        con.execute(f"SET TimeZone = {quote_literal(timezone)}")
        con.execute(
            "CREATE TEMP VIEW __src AS SELECT *, row_number() OVER () AS __pos, "
            f"row_number() OVER () AS __line FROM {handle.relation(info.version)}"
        )
        target = work / f"{source}-v{info.version}.eventlog.parquet"
        detected = normalise(con, "__src", mapping or Mapping(), target, file=label)
        detected.update(
            {
                "format": "dataset",
                "source": label,
                "source_dataset": source,
                "source_version": info.version,
                "timezone": timezone,
            }
        )
        new = pool.ingest(target, dataset=dataset, format="parquet", meta=meta, user=user)
        pool.set_origin(dataset, {"kind": "eventlog", "version": new.version, **detected})
        return new
    finally:
        con.close()
        shutil.rmtree(work, ignore_errors=True)
