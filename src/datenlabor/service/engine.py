"""The service's query engine: one locked-down DuckDB database per process, hot versions cached.

A version never changes, so a version read once can be kept as an in-memory DuckDB table
and served from there: a filtered rows page or an aggregate over a cached 1M-row version
takes milliseconds instead of a Parquet scan and per-request set-up. The cache is an LRU
under a byte budget (``DATENLABOR_CACHE_BYTES``); versions too large for it are read from
their Parquet files through Arrow instead.

The database has no file access at all (``enable_external_access=false``, configuration
locked): data enters only through Arrow from this process. Cached tables and every other
internal object are named with a leading underscore; user SQL can only name dataset slugs
(see :mod:`datenlabor.query.sandbox`), so it can reach nothing but the views registered on
its own cursor, which already apply the caller's grants.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from datenlabor.config import usable_cpus
from datenlabor.query.connection import connect, quote_ident

ROW = "__row"
RESULT_CACHE_BYTES = 64 << 20  # answers of rows requests kept per process (0: none)
ROW_FILE_SHIFT = 40  # __row = (file index << 40) + row within the file, as in Source


def _key(files: list[str]) -> str:
    return "_v_" + hashlib.sha256("\n".join(files).encode()).hexdigest()[:20]


def _uncompressed_bytes(files: list[str]) -> int:
    total = 0
    for f in files:
        meta = pq.ParquetFile(f).metadata
        total += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return total


def _batches_with_row_id(files: list[str], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    for index, f in enumerate(files):
        offset = index << ROW_FILE_SHIFT
        for batch in pq.ParquetFile(f).iter_batches(batch_size=65_536):
            batch = (
                pa.Table.from_batches([batch]).cast(schema).to_batches()[0]
                if batch.schema != schema
                else batch
            )
            ids = pa.array(range(offset, offset + batch.num_rows), pa.int64())
            offset += batch.num_rows
            yield pa.RecordBatch.from_arrays([*batch.columns, ids], names=[*schema.names, ROW])


class ResultCache:
    """Answers of queries over immutable versions, least recently used out first.

    The key must contain everything the answer depends on: the caller's view is part of
    the SQL (visible columns, row filters of the grants) and the version is part of the
    relation, so two callers share an entry only when they would get the same answer. A
    hit skips only the query; the caller's permission check and audit entry still happen.
    """

    MAX_ENTRY_BYTES = 1 << 20  # bigger answers are not worth keeping

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return hit[0]

    def put(self, key: Hashable, value: Any, size: int) -> None:
        if size > min(self.max_bytes, self.MAX_ENTRY_BYTES):
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


class Engine:
    def __init__(
        self,
        tmp_dir: Path,
        *,
        memory_limit: str,
        cache_bytes: int,
        result_cache_bytes: int = RESULT_CACHE_BYTES,
    ) -> None:
        self.cache_bytes = cache_bytes
        self.results = ResultCache(result_cache_bytes)
        self.db = connect(temp_dir=tmp_dir, memory_limit=memory_limit, threads=usable_cpus())
        self.db.execute("SET enable_external_access = false")
        self.db.execute("SET lock_configuration = true")
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        self._cached: OrderedDict[str, int] = OrderedDict()  # table name -> bytes, LRU order

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own (temp views, registrations) to the shared database."""
        return self.db.cursor()

    def cached_table(self, files: list[str], schema: pa.Schema) -> str | None:
        """Name of the table holding this version (all columns plus ``__row``), loading it
        on first use; None if it does not fit into the cache budget."""
        name = _key(files)
        with self._lock:
            if name in self._cached:
                self._cached.move_to_end(name)
                return name
            loading = self._loading.setdefault(name, threading.Lock())
        with loading:
            with self._lock:
                if name in self._cached:
                    return name
            size = _uncompressed_bytes(files)
            if size > self.cache_bytes:
                return None
            self._make_room(size)
            self._load(name, files, schema)
            with self._lock:
                self._cached[name] = size
                self._loading.pop(name, None)
        return name

    def _make_room(self, size: int) -> None:
        with self._lock:
            victims = []
            while self._cached and sum(self._cached.values()) + size > self.cache_bytes:
                victim, _ = self._cached.popitem(last=False)
                victims.append(victim)
        for victim in victims:
            # A query still reading it keeps its snapshot (DuckDB MVCC).
            cur = self.db.cursor()
            try:
                cur.execute(f"DROP TABLE IF EXISTS {quote_ident(victim)}")
            finally:
                cur.close()

    def _load(self, name: str, files: list[str], schema: pa.Schema) -> None:
        full = schema.append(pa.field(ROW, pa.int64()))
        reader = pa.RecordBatchReader.from_batches(full, _batches_with_row_id(files, schema))
        cur = self.db.cursor()
        try:
            staging = f"_load{name}"
            cur.register(staging, reader)
            # Under a temporary name first, so a failed load leaves no half table behind.
            cur.execute(
                f"CREATE OR REPLACE TABLE {quote_ident(staging + '_t')} AS SELECT * FROM {staging}"
            )
            cur.execute(f"ALTER TABLE {quote_ident(staging + '_t')} RENAME TO {quote_ident(name)}")
        finally:
            cur.close()

    def raw_relation(
        self, con: duckdb.DuckDBPyConnection, files: list[str], schema: pa.Schema
    ) -> str:
        """A FROM-expression for the raw version on ``con``: the cached table, or (too big
        for the cache) the Parquet files registered through Arrow (no ``__row`` then)."""
        name = self.cached_table(files, schema)
        if name is not None:
            return quote_ident(name)
        raw = f"_raw_{_key(files)[3:]}"
        con.register(raw, pads.dataset(files, schema=schema, format="parquet"))
        return quote_ident(raw)
