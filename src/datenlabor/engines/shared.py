"""The shared computations over pool versions, on either engine: pool SQL and quality checks.

Procedure KPIs take an engine through :class:`~datenlabor.procedures.log.ProcedureLog`;
the aggregation before disclosure control through the connection it is given.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from datenlabor.engines import check_engine, connection, register_version
from datenlabor.errors import BadInput, NotFound
from datenlabor.query.sandbox import check_select

if TYPE_CHECKING:
    from datenlabor.pool.pool import Pool


@contextmanager
def pool_connection(pool: Pool, sql: str, engine: str | None = None) -> Iterator[Any]:
    """A locked-down connection of ``engine`` on which the datasets ``sql`` reads exist.

    ``sql`` is checked like every pool query (:func:`~datenlabor.query.sandbox.check_select`:
    one read-only query over pool datasets, ``"slug@N"`` for versions); no grants are applied
    (command-line and batch use). Run ``sql`` (or a computation over it, such as
    :func:`datenlabor.disclosure.output.protect`) on the connection.
    """
    engine = check_engine(engine, pool.settings)
    checked = check_select(sql)
    with connection(pool, engine) as con:
        for ref in checked.tables:
            try:
                files, schema = pool.dataset(ref.slug).files(ref.version)
            except NotFound:
                continue  # the binder names the unknown table in its own error
            register_version(con, ref.name, files, schema)
        if engine == "spark":
            con.lock_down()
        else:
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
        yield con


def query(pool: Pool, sql: str, engine: str | None = None) -> pa.Table:
    """Run read-only pool SQL (DuckDB dialect) on ``engine``; the result as Arrow."""
    with pool_connection(pool, sql, engine) as con:
        try:
            return con.execute(sql).to_arrow_table()
        except duckdb.Error as exc:
            raise BadInput(f"query failed: {str(exc).strip().splitlines()[0]}") from exc


def quality(
    pool: Pool,
    slug: str,
    version: int | None = None,
    engine: str | None = None,
    *,
    today: dt.date | None = None,
) -> dict[str, Any]:
    """The quality report of a version, computed now on ``engine`` (the stored report was
    computed by DuckDB at ingest; both use the version's Table Schema and primary key)."""
    from datenlabor.pool.quality import quality_report

    handle = pool.dataset(slug)
    info = handle.version(version)
    files, schema = handle.files(info.version)
    with connection(pool, check_engine(engine, pool.settings)) as con:
        register_version(con, "version_rows", files, schema)
        return quality_report(con, "version_rows", schema=info.schema, today=today)
