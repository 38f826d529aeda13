"""Read-only SQL over the pool.

Each dataset is a table named by its slug (its current version); ``"slug@N"`` (quoted) is
version N. Only the datasets a statement names are opened. The DuckDB connection is then
locked down: one SELECT statement, no file or network access, no settings changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads

from datenlabor.errors import BadInput, NotFound
from datenlabor.pool.ingest.reading import first_line
from datenlabor.query.sandbox import check_select

if TYPE_CHECKING:
    from datenlabor.pool.pool import Pool


class SqlSession:
    """One locked-down DuckDB connection for a user's query."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.con = pool.connect()

    def __enter__(self) -> SqlSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.con.close()

    def _prepare(self, sql: str) -> None:
        # The same validation as the web API: the text is parsed, never run, before the
        # connection is locked down (DuckDB's own name extraction may touch files).
        checked = check_select(sql)
        for ref in checked.tables:
            try:
                handle = self.pool.dataset(ref.slug)
                files, schema = handle.files(ref.version)
            except NotFound:
                continue  # let DuckDB name the unknown table in its own error
            self.con.register(ref.name, pads.dataset(files, schema=schema, format="parquet"))
        self.con.execute("SET enable_external_access = false")
        self.con.execute("SET lock_configuration = true")

    def execute(self, sql: str) -> duckdb.DuckDBPyConnection:
        self._prepare(sql)
        try:
            return self.con.execute(sql)
        except duckdb.Error as exc:
            raise BadInput(f"query failed: {first_line(exc)}") from exc

    def arrow(self, sql: str) -> pa.Table:
        return self.execute(sql).to_arrow_table()

    def batches(self, sql: str, rows: int = 65_536) -> pa.RecordBatchReader:
        return self.execute(sql).fetch_record_batch(rows)
