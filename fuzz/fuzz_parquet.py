"""Fuzz target: Parquet files (footer, schema, pages), read through DuckDB."""

from __future__ import annotations

import io

import harness
from tabular import TabularTarget

TARGET = "parquet"
INSTRUMENT = ("datenlabor",)
MAX_LEN = 16 * 1024
_target = TabularTarget(suffix=".parquet", fmt="parquet")
prepare, one_input = _target.prepare, _target.one_input


def seeds() -> harness.Iterator[harness.Seed]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "ags": ["08222", "08221", None],
            "n": pa.array([12, 7, None], pa.int64()),
            "x": [1.5, None, 2.25],
            "d": pa.array([19000, 19001, None], pa.date32()),
        }
    )
    for compression in ("none", "snappy", "zstd"):
        buf = io.BytesIO()
        pq.write_table(table, buf, compression=compression)
        yield f"small-{compression}.parquet", buf.getvalue()
    buf = io.BytesIO()
    pq.write_table(pa.table({"list": [[1, 2], None, []], "s": [{"a": 1}, None, {"a": 2}]}), buf)
    yield "nested.parquet", buf.getvalue()
    yield from harness.regressions(TARGET)


if __name__ == "__main__":
    harness.main(__name__)
