"""Read-only SQL over the pool.

Each dataset is a table named by its slug (its current version); ``"slug@N"`` (quoted) is
version N. Only the datasets a statement names are opened. The DuckDB connection is then
locked down: one SELECT statement, no file or network access, no settings changes.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads

from datenlabor.errors import BadInput, NotFound
from datenlabor.pool.ingest.reading import first_line

if TYPE_CHECKING:
    from datenlabor.pool.pool import Pool

_VERSIONED = re.compile(r"^(?P<slug>[a-z][a-z0-9_-]*)@(?P<version>\d+)$")
_ALLOWED = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


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
        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error as exc:
            raise BadInput(f"SQL syntax error: {first_line(exc)}") from exc
        if len(statements) != 1:
            raise BadInput(f"expected exactly one SQL statement, got {len(statements)}")
        if statements[0].type not in _ALLOWED:
            raise BadInput(
                f"only SELECT queries are allowed (the pool is read-only), not {statements[0].type.name}"
            )
        try:
            names = duckdb.get_table_names(sql)
        except duckdb.Error as exc:
            raise BadInput(f"SQL syntax error: {first_line(exc)}") from exc
        for name in sorted(names):
            slug, version = name, None
            match = _VERSIONED.match(name)
            if match:
                slug, version = match.group("slug"), int(match.group("version"))
            try:
                handle = self.pool.dataset(slug)
                files, schema = handle.files(version)
            except NotFound:
                continue  # let DuckDB name the unknown table in its own error
            self.con.register(name, pads.dataset(files, schema=schema, format="parquet"))
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
