"""The Spark engine: one SparkSession per process, and a DuckDB-shaped connection over it.

The session is created on first use (it starts a JVM: ~10-25 s) and stopped at exit.
It binds to loopback only, has no web UI and computes in UTC unless a caller sets another
time zone on its own (isolated) child session.

:class:`SparkConnection` has the small part of the DuckDB connection API that Datenlabor's
shared computations use (``execute``/``sql`` -> cursor with ``fetchone``, ``fetchall``,
``fetchnumpy``, ``to_arrow_table``, ``columns``/``types``; ``register``), so the quality
checks, procedure KPIs and disclosure aggregation run unchanged on it. Each statement is
DuckDB SQL, transpiled to Spark SQL (:mod:`datenlabor.engines.transpile`).

Result shapes come from DuckDB itself: every view is mirrored, without rows, in a "shadow"
DuckDB connection, which binds the same statement and so gives the column names and types
DuckDB would return. The Spark result is renamed and cast to them, so both engines deliver
the same Arrow schema (Spark would call ``sum("Anträge")`` ``sum(Anträge)``, return
``decimal(28,2)`` for DuckDB's ``decimal(38,2)``, ``int`` for ``integer`` …). The shadow
also applies DuckDB's own binder checks, so a query DuckDB rejects is rejected on Spark too.
"""

from __future__ import annotations

import atexit
import math
import re
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import sqlglot
from sqlglot import exp

from datenlabor.engines.transpile import READ, UnsupportedOnSpark, to_spark
from datenlabor.errors import BadInput
from datenlabor.query.connection import quote_literal

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from datenlabor.config import Settings

_LOCK = threading.Lock()
_SESSION: SparkSession | None = None
_SESSION_KEY: tuple[str, tuple[tuple[str, str], ...]] | None = None


def base_conf(master: str) -> dict[str, str]:
    """The Spark settings Datenlabor always uses (overridable by ``spark_conf``)."""
    local = master.startswith("local")
    conf = {
        "spark.master": master,
        "spark.app.name": "datenlabor",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.parquet.inferTimestampNTZ.enabled": "true",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # DuckDB returns NULL where ANSI Spark raises (x / 0); keep ANSI: an error, never a
        # silently different value (declared in docs/scale-out.md).
        "spark.sql.ansi.enabled": "true",
        # Spark's own telemetry-free defaults; usage reporting does not exist in OSS Spark.
    }
    if local:
        # Loopback only: nothing listens on a routable address in local mode.
        conf["spark.driver.bindAddress"] = "127.0.0.1"
        conf["spark.driver.host"] = "127.0.0.1"
        cores = re.fullmatch(r"local\[(\d+)\]", master)
        conf["spark.sql.shuffle.partitions"] = str(2 * int(cores.group(1)) if cores else 4)
        conf["spark.default.parallelism"] = conf["spark.sql.shuffle.partitions"]
    return conf


def session(settings: Settings) -> SparkSession:
    """The process's SparkSession (created on first use, stopped at exit)."""
    global _SESSION, _SESSION_KEY
    conf = {**base_conf(settings.spark_master), **settings.spark_conf}
    key = (settings.spark_master, tuple(sorted(conf.items())))
    with _LOCK:
        if _SESSION is not None:
            if key != _SESSION_KEY:
                raise BadInput(
                    "a Spark session with other settings is already running in this process "
                    f"(master {_SESSION_KEY[0] if _SESSION_KEY else '?'}); one session per process"
                )
            return _SESSION
        try:
            from pyspark.sql import SparkSession
        except ImportError as exc:  # pragma: no cover - pyspark is a dependency
            raise BadInput("the Spark engine needs PySpark: pip install 'pyspark==4.1.*'") from exc
        builder = SparkSession.builder
        for k, v in conf.items():
            builder = builder.config(k, v)
        try:
            _SESSION = builder.getOrCreate()
        except Exception as exc:  # JVM missing, master unreachable, bad settings
            raise BadInput(f"cannot start Spark (master {settings.spark_master}): {exc}") from exc
        # Failed queries raise in Python with Spark's message; at the default level each of
        # them would also print a multi-kilobyte JSON stack trace to stderr.
        _SESSION.sparkContext.setLogLevel("FATAL")
        _SESSION_KEY = key
        atexit.register(stop)
        return _SESSION


def stop() -> None:
    """Stop the process's SparkSession (at exit, or to change settings in tests)."""
    global _SESSION, _SESSION_KEY
    with _LOCK:
        if _SESSION is not None:
            _SESSION.stop()
        _SESSION, _SESSION_KEY = None, None


def _view_name(name: str) -> str:
    """A Spark identifier for a table name such as ``antraege@1`` (backtick-quoted)."""
    return "`" + name.replace("`", "``") + "`"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _spark_error(exc: Exception, sql: str) -> BadInput:
    message = _first_line(exc)
    if "OutOfMemoryError" in str(exc):
        return BadInput(
            "Spark ran out of memory (nothing was changed); raise spark.driver.memory / "
            "spark.executor.memory in DATENLABOR_SPARK_CONF"
        )
    routine = re.search(r"UNRESOLVED_ROUTINE\].*?routine `?([\w.]+)`?", message)
    if routine:
        return UnsupportedOnSpark(f"function {routine.group(1).lower()}()")
    return BadInput(f"query failed on Spark: {message}")


class SparkConnection:
    """A DuckDB-shaped connection running statements on an isolated Spark child session."""

    def __init__(self, settings: Settings, *, timezone: str = "UTC") -> None:
        self.spark = session(settings).newSession()  # own temp views and time zone
        self.shadow = duckdb.connect(":memory:", config={"autoload_known_extensions": False})
        self.set_timezone(timezone)
        self._cache: list[DataFrame] = []

    # -- set-up ---------------------------------------------------------------------------
    def set_timezone(self, timezone: str) -> None:
        self.spark.conf.set("spark.sql.session.timeZone", timezone)
        self.shadow.execute(f"SET TimeZone = {quote_literal(timezone)}")

    def register_files(self, name: str, files: Sequence[str], schema: pa.Schema) -> None:
        """Make the Parquet ``files`` (one Delta snapshot) the view ``name``."""
        df = self.spark.read.schema(_spark_schema(schema)).parquet(*files)
        df.createOrReplaceTempView(_view_name(name))
        self.shadow.register(name, schema.empty_table())

    def register(self, name: str, table: pa.Table) -> None:
        """Make an Arrow table (a small one: it is sent to Spark) the view ``name``."""
        df = (
            self.spark.createDataFrame(table)
            if table.num_rows
            else self.spark.createDataFrame([], _spark_schema(table.schema))
        )
        df.createOrReplaceTempView(_view_name(name))
        self.shadow.register(name, table.schema.empty_table())

    def lock_down(self) -> None:
        """The shadow gets DuckDB's sandbox settings, like the DuckDB route's connection."""
        self.shadow.execute("SET enable_external_access = false")
        self.shadow.execute("SET lock_configuration = true")

    # -- statements -------------------------------------------------------------------------
    def execute(self, sql: str, params: object = None) -> SparkCursor:
        if params:
            raise UnsupportedOnSpark("prepared-statement parameters")
        tree = _parse(sql)
        if isinstance(tree, exp.Create):
            return self._create(tree)
        if isinstance(tree, exp.Drop):
            return self._drop(tree)
        if isinstance(tree, exp.Set):
            return self._set(tree)
        if not isinstance(tree, (exp.Query, exp.Values)):
            raise UnsupportedOnSpark(f"{tree.key.upper()} statements")
        return SparkCursor(self, sql)

    sql = execute

    def _create(self, tree: exp.Create) -> SparkCursor:
        kind = str(tree.args.get("kind") or "").upper()
        props = tree.args.get("properties")
        temporary = props is not None and any(
            isinstance(p, exp.TemporaryProperty) for p in props.expressions
        )
        query = tree.expression
        if kind not in ("VIEW", "TABLE") or not temporary or not isinstance(query, exp.Query):
            raise UnsupportedOnSpark("CREATE other than CREATE TEMP VIEW/TABLE … AS SELECT")
        name = tree.this.name if isinstance(tree.this, exp.Table) else tree.this.this.name
        select = query.sql(dialect=READ)
        self.shadow.execute(tree.sql(dialect=READ))
        df = self._frame(select)
        if kind == "TABLE":  # a materialised intermediate: compute it once
            df = df.persist()
            self._cache.append(df)
        df.createOrReplaceTempView(_view_name(name))
        return SparkCursor(self, None)

    def _drop(self, tree: exp.Drop) -> SparkCursor:
        self.shadow.execute(tree.sql(dialect=READ))
        self.spark.catalog.dropTempView(tree.this.name)
        return SparkCursor(self, None)

    def _set(self, tree: exp.Set) -> SparkCursor:
        item = tree.expressions[0].this if tree.expressions else None
        if isinstance(item, exp.EQ) and item.this.name.lower() == "timezone":
            self.set_timezone(item.expression.name)
            return SparkCursor(self, None)
        raise UnsupportedOnSpark(f"SET {item.sql(READ) if item is not None else ''}".strip())

    def _frame(self, sql: str) -> DataFrame:
        from pyspark.errors import PySparkException

        spark_sql = to_spark(sql)
        try:
            return self.spark.sql(spark_sql)
        except PySparkException as exc:
            raise _spark_error(exc, spark_sql) from exc

    def close(self) -> None:
        for df in self._cache:
            df.unpersist()
        for table in self.spark.catalog.listTables():
            if table.isTemporary:
                self.spark.catalog.dropTempView(table.name)
        self._cache = []
        self.shadow.close()

    def __enter__(self) -> SparkConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _parse(sql: str) -> exp.Expression:
    try:
        return sqlglot.parse_one(sql, read=READ)
    except sqlglot.errors.SqlglotError as exc:
        raise BadInput(f"SQL syntax error: {_first_line(exc)}") from exc


def _spark_schema(schema: pa.Schema) -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)


class SparkCursor:
    """The result of one statement, fetched from Spark on first access."""

    def __init__(self, con: SparkConnection, sql: str | None) -> None:
        self._con, self._sql = con, sql
        self._table: pa.Table | None = None
        self._shape: duckdb.DuckDBPyRelation | None = None
        if sql is not None:
            try:
                self._shape = con.shadow.sql(sql)
            except duckdb.Error as exc:
                raise BadInput(f"query failed: {_first_line(exc)}") from exc

    @property
    def columns(self) -> list[str]:
        return list(self._shape.columns) if self._shape is not None else []

    @property
    def types(self) -> list[Any]:
        return list(self._shape.types) if self._shape is not None else []

    def to_arrow_table(self) -> pa.Table:
        if self._table is None:
            if self._sql is None or self._shape is None:
                self._table = pa.table({})
            else:
                from pyspark.errors import PySparkException

                like = self._shape.limit(0).to_arrow_table().schema
                from py4j.protocol import Py4JJavaError

                df = self._con._frame(self._sql)
                try:
                    got = df.toArrow()
                except (PySparkException, Py4JJavaError) as exc:
                    raise _spark_error(exc, self._sql) from exc
                self._table = conform(got, like)
        return self._table

    arrow = to_arrow_table

    def fetch_arrow_table(self) -> pa.Table:
        return self.to_arrow_table()

    def fetch_record_batch(self, rows: int = 65_536) -> pa.RecordBatchReader:
        table = self.to_arrow_table()
        return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(rows))

    def fetchall(self) -> list[tuple[Any, ...]]:
        table = self.to_arrow_table()
        huge = [str(t).upper() in ("HUGEINT", "UHUGEINT") for t in self.types]
        columns = [_python(c, h) for c, h in zip(table.columns, huge, strict=True)]
        return list(zip(*columns, strict=True)) if columns else []

    def fetchone(self) -> tuple[Any, ...] | None:
        rows = self.fetchall()
        return rows[0] if rows else None

    def fetchnumpy(self) -> dict[str, np.ndarray]:
        table = self.to_arrow_table()
        return {
            n: c.to_numpy(zero_copy_only=False)
            for n, c in zip(table.column_names, table.columns, strict=True)
        }

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.fetchall())


def _python(column: pa.ChunkedArray, huge: bool = False) -> list[Any]:
    """Python values as DuckDB's fetch gives them (a MAP is a dict, not a list of pairs;
    a HUGEINT, in Arrow a decimal, an int)."""
    values = column.to_pylist()
    if huge:
        return [int(v) if v is not None else None for v in values]
    if pa.types.is_map(column.type):
        return [dict(v) if v is not None else None for v in values]
    return values


def _truncated_decimals(column: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    """DuckDB computes median/quantiles of a DECIMAL as DECIMAL, truncating to its scale;
    Spark's percentile gives a DOUBLE, truncated here the same way. DuckDB interpolates in
    its own arithmetic, so right at a truncation boundary the last digit can differ
    (declared in docs/scale-out.md); exact middle values agree."""
    import decimal

    scale = target.scale
    values: list[decimal.Decimal | None] = []
    for v in column.to_pylist():
        if v is None or not math.isfinite(v):
            values.append(None)
        else:
            units = math.trunc(round(v * 10**scale, 6))  # binary noise: 2.3 * 100 = 229.99…
            values.append(decimal.Decimal(units).scaleb(-scale))
    return pa.chunked_array([pa.array(values, type=target)])


def conform(table: pa.Table, like: pa.Schema) -> pa.Table:
    """Spark's result with DuckDB's column names and (where values allow) types."""
    if table.num_columns != len(like):
        raise BadInput(
            f"internal: Spark returned {table.num_columns} columns, DuckDB binds {len(like)}"
        )
    columns = []
    names = []
    for column, field in zip(table.columns, like, strict=True):
        names.append(field.name)
        if pa.types.is_floating(column.type) and pa.types.is_decimal(field.type):
            column = _truncated_decimals(column, field.type)
        elif column.type != field.type:
            try:
                column = column.cast(field.type)
            except pa.ArrowNotImplementedError:
                if not pa.types.is_nested(field.type):
                    raise
                # Arrow cannot cast every nested type (maps); the values are the same, only
                # the element types differ (int32 counts for uint64 ones, say).
            except pa.ArrowInvalid as exc:
                raise BadInput(
                    f"Spark returns {column.type} for column {field.name!r} where DuckDB "
                    f"returns {field.type}, and the values do not convert: {exc}"
                ) from exc
        columns.append(column)
    if all(c.type == f.type for c, f in zip(columns, like, strict=True)):
        return pa.Table.from_arrays(columns, schema=like)
    return pa.Table.from_arrays(columns, names=names)
