"""Engines: where Datenlabor's shared computations run.

Two engines run the same work, written once in DuckDB's SQL dialect:

- ``duckdb`` (default): in-process DuckDB, the behaviour of every other module;
- ``spark``: Apache Spark through PySpark (``local[N]`` or any cluster named by
  ``DATENLABOR_SPARK_MASTER``); statements are transpiled with sqlglot
  (:mod:`datenlabor.engines.transpile`) and a dataset version is read as the exact Parquet
  files of its Delta snapshot, so results are reproducible version by version.

A *connection* of either engine has DuckDB's small API (``execute(sql)`` -> cursor with
``fetchone``/``fetchall``/``to_arrow_table``): the quality checks, procedure KPIs and the
aggregation before disclosure control take one and do not care which engine it is.
See docs/scale-out.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from datenlabor.errors import BadInput
from datenlabor.query.connection import quote_literal

if TYPE_CHECKING:
    from datenlabor.config import Settings
    from datenlabor.pool.pool import Pool

ENGINES = ("duckdb", "spark")


def check_engine(name: str | None, settings: Settings | None = None) -> str:
    """The engine to use: ``name``, else the configured one; BadInput for unknown names."""
    chosen = name or (settings.engine if settings is not None else "duckdb")
    if chosen not in ENGINES:
        raise BadInput(f"unknown engine {chosen!r}; choose {' or '.join(ENGINES)}", column="engine")
    return chosen


@contextmanager
def connection(pool: Pool, engine: str, *, timezone: str | None = None) -> Iterator[Any]:
    """A connection of ``engine`` for the pool's shared computations (closed on exit)."""
    if check_engine(engine) == "spark":
        from datenlabor.engines.spark import SparkConnection

        con: Any = SparkConnection(pool.settings, timezone=timezone or "UTC")
    else:
        con = pool.connect()
        if timezone:
            con.execute(f"SET TimeZone = {quote_literal(timezone)}")
    try:
        yield con
    finally:
        con.close()


def register_version(con: Any, name: str, files: list[str], schema: pa.Schema) -> None:
    """Make one dataset version (its snapshot's Parquet files) the table ``name``."""
    if hasattr(con, "register_files"):
        con.register_files(name, files, schema)
    else:
        import pyarrow.dataset as pads

        con.register(name, pads.dataset(files, schema=schema, format="parquet"))
