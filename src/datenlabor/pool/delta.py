"""Dataset storage as Delta Lake tables.

DuckDB writes the Parquet files (fast, parallel, streaming) straight into a staging folder;
committing moves them into the table folder and records them in one Delta commit through
delta-rs' transaction API. Files not yet committed are invisible to every reader, so a killed
ingest never shows half a version.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable, Schema
from deltalake.exceptions import CommitFailedError
from deltalake.transaction import (
    AddAction,
    CommitProperties,
    RemoveAction,
    create_table_with_add_actions,
)

from datenlabor.errors import Conflict
from datenlabor.query.connection import quote_ident, quote_literal

# DuckDB types without a Delta Lake counterpart, and what they are stored as.
_DELTA_CASTS = {
    "HUGEINT": "DECIMAL(38,0)",
    "UHUGEINT": "DECIMAL(38,0)",
    "UBIGINT": "DECIMAL(20,0)",
    "UINTEGER": "BIGINT",
    "USMALLINT": "INTEGER",
    "UTINYINT": "SMALLINT",
    "TIME": "VARCHAR",
    "TIME WITH TIME ZONE": "VARCHAR",
    "INTERVAL": "VARCHAR",
    "UUID": "VARCHAR",
    "BIT": "VARCHAR",
    "JSON": "VARCHAR",
    "TIMESTAMP_NS": "TIMESTAMP",
    "TIMESTAMP_MS": "TIMESTAMP",
    "TIMESTAMP_S": "TIMESTAMP",
}


@dataclass
class StagedFiles:
    """Parquet files written for one ingest, not yet part of any table."""

    folder: Path
    files: list[Path]
    rows: int
    schema: pa.Schema

    def relation(self) -> str:
        return parquet_relation(self.files)

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def parquet_relation(files: list[Path] | list[str]) -> str:
    """A DuckDB FROM-expression over Parquet files, read in the given order."""
    assert files, "every version has at least one file (an empty one for zero rows)"
    listed = ", ".join(quote_literal(str(f)) for f in files)
    return f"read_parquet([{listed}])"


def delta_select(con: duckdb.DuckDBPyConnection, relation: str) -> str:
    """SELECT over ``relation`` with every column cast to a type Delta Lake can store."""
    described = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    parts = []
    for name, dtype, *_ in described:
        target = _DELTA_CASTS.get(str(dtype).upper())
        if str(dtype).upper().startswith("ENUM"):
            target = "VARCHAR"
        col = quote_ident(name)
        parts.append(f"CAST({col} AS {target}) AS {col}" if target else col)
    return f"SELECT {', '.join(parts)} FROM {relation}"


def stage(con: duckdb.DuckDBPyConnection, select_sql: str, staging_root: Path) -> StagedFiles:
    """Write the rows of ``select_sql`` as Parquet files into a new staging folder."""
    folder = staging_root / uuid.uuid4().hex
    folder.mkdir(parents=True)
    try:
        con.execute(
            f"COPY ({select_sql}) TO {quote_literal(str(folder))} "
            "(FORMAT parquet, COMPRESSION zstd, FILE_SIZE_BYTES '256MB', "
            "FILENAME_PATTERN 'part-{i}', ROW_GROUP_SIZE 122880)"
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    files = sorted(folder.glob("*.parquet"), key=lambda p: int(p.stem.split("-")[-1]))
    if not files:
        # DuckDB writes no file for zero rows; keep one empty file so the schema survives.
        table = con.execute(f"SELECT * FROM ({select_sql}) LIMIT 0").to_arrow_table()
        pq.write_table(table, folder / "part-0.parquet")
        files = [folder / "part-0.parquet"]
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    schema = pq.read_schema(files[0])
    return StagedFiles(folder=folder, files=files, rows=rows, schema=schema)


def _add_actions(table_dir: Path, staged: StagedFiles, seq: int) -> list[AddAction | RemoveAction]:
    """Move staged files into the table folder and describe them for the Delta log.

    File names start with the commit sequence and the part number, so sorting a snapshot's
    files by name gives the rows in the order they were loaded.
    """
    actions: list[AddAction | RemoveAction] = []
    tag = uuid.uuid4().hex[:12]
    for i, f in enumerate(staged.files):
        rel = f"{seq:09d}-{i:05d}-{tag}.parquet"
        target = table_dir / rel
        os.replace(f, target)  # same file system: atomic, no copy
        meta = pq.ParquetFile(target).metadata
        actions.append(
            AddAction(
                path=rel,
                size=target.stat().st_size,
                partition_values={},
                modification_time=int(target.stat().st_mtime * 1000),
                data_change=True,
                stats=json.dumps({"numRecords": meta.num_rows}),
            )
        )
    return actions


def commit(
    table_dir: Path,
    staged: StagedFiles,
    *,
    mode: str,
    metadata: dict[str, Any],
) -> int:
    """Commit staged files as a new Delta version; ``mode`` is "append" or "overwrite".

    Returns the new Delta version number.
    """
    props = CommitProperties(custom_metadata={"datenlabor": json.dumps(metadata, default=str)})
    schema = Schema.from_arrow(staged.schema)
    try:
        if not DeltaTable.is_deltatable(str(table_dir)):
            table_dir.mkdir(parents=True, exist_ok=True)
            actions = _add_actions(table_dir, staged, 0)
            create_table_with_add_actions(
                str(table_dir),
                schema,
                [a for a in actions if isinstance(a, AddAction)],
                mode="error",
                commit_properties=props,
            )
            return 0
        table = DeltaTable(str(table_dir))
        actions = _add_actions(table_dir, staged, table.version() + 1)
        table.create_write_transaction(actions, mode=mode, schema=schema, commit_properties=props)
    except CommitFailedError as exc:
        raise Conflict(f"another change to this dataset was committed first: {exc}") from exc
    finally:
        staged.discard()
    return DeltaTable(str(table_dir)).version()


def restore(table_dir: Path, delta_version: int) -> None:
    """Make ``delta_version`` the newest state again (undoes a commit never recorded)."""
    DeltaTable(str(table_dir)).restore(delta_version)


def latest_version(table_dir: Path) -> int | None:
    if not DeltaTable.is_deltatable(str(table_dir)):
        return None
    return DeltaTable(str(table_dir)).version()


def snapshot_files(table_dir: Path, delta_version: int) -> tuple[list[str], pa.Schema]:
    """The exact Parquet files (absolute paths, in load order) and schema of one version."""
    files, schema = _snapshot(str(table_dir), delta_version)
    return list(files), schema


@functools.lru_cache(maxsize=1024)
def _snapshot(table_dir: str, delta_version: int) -> tuple[tuple[str, ...], pa.Schema]:
    # A committed Delta version never changes, so its file list is cached for good:
    # replaying the log on every read would dominate short API requests.
    table = DeltaTable(table_dir, version=delta_version)
    files = sorted(
        (u.removeprefix("file://") for u in table.file_uris()), key=lambda u: Path(u).name
    )
    return tuple(files), pa.schema(table.schema().to_arrow())
