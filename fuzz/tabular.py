"""What the tabular fuzz targets (csv, genesis, json, parquet, xlsx) share.

:class:`TabularReader` reads a file the way ``Pool.ingest`` does, up to the staged Parquet
files: format detection, the reader, the background encoding scan and the DuckDB parse all
run; only the commit (Delta log, catalogue) is left out, which sees no bytes of the file.

:class:`TabularTarget` is the ``prepare``/``one_input`` pair of such a target::

    _target = TabularTarget(suffix=".csv", fmt="csv")
    prepare, one_input = _target.prepare, _target.one_input

Nothing of ``datenlabor`` is imported here at module level: ``harness.main`` imports the
target module first and only then calls ``prepare()`` inside ``atheris.instrument_imports``;
a module imported before that would run uninstrumented and not guide the fuzzer.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import harness

if TYPE_CHECKING:
    from datenlabor.pool.pool import Pool


class TabularReader:
    def __init__(self, folder: Path) -> None:
        # imported here, in prepare(): under instrumentation (see the module docstring)
        import datenlabor
        from datenlabor.pool.ingest import open_reading

        self.open_reading = open_reading
        self.folder = folder
        self.pool: Pool = datenlabor.open(folder / "pool", duckdb_memory="512MB")
        self.count = 0

    def read(self, data: bytes, *, suffix: str, fmt: str = "auto") -> int:
        """Rows staged from ``data`` saved as a file ending in ``suffix``."""
        self.count += 1
        path = self.folder / f"input{suffix}"
        path.write_bytes(data)
        work = self.folder / f"work-{self.count}"
        staging = self.folder / f"staging-{self.count}"
        work.mkdir()
        con = self.pool.connect()
        reading = None
        try:
            reading = self.open_reading(
                con,
                path,
                fmt=fmt,
                work_dir=work,
                sample_bytes=self.pool.settings.csv_sample_bytes,
            )
            reading, staged = self.pool._stage(con, reading, staging, lambda _p, _f: None)
            return staged.rows
        finally:
            if reading is not None:
                reading.cleanup()
            con.close()
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(staging, ignore_errors=True)


class TabularTarget:
    """``prepare`` and ``one_input`` of a target that feeds its input to one tabular reader
    (``fmt`` as ``Pool.ingest(format=...)`` takes it), saved as a file ending in ``suffix``."""

    def __init__(self, *, suffix: str, fmt: str) -> None:
        self.suffix = suffix
        self.fmt = fmt
        self.reader: TabularReader | None = None

    def prepare(self) -> None:
        """Open a pool in a private scratch folder (and with it import the readers)."""
        self.reader = TabularReader(harness.scratch())

    def one_input(self, data: bytes) -> None:
        if self.reader is None:
            raise RuntimeError("prepare() was not called before one_input()")
        self.reader.read(data, suffix=self.suffix, fmt=self.fmt)
