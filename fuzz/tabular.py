"""Reading a tabular file the way ``Pool.ingest`` does, up to the staged Parquet files.

Format detection, the reader, the background encoding scan and the DuckDB parse all run;
only the commit (Delta log, catalogue) is left out, which sees no bytes of the file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import datenlabor
from datenlabor.pool.ingest import open_reading
from datenlabor.pool.pool import Pool


class TabularReader:
    def __init__(self, folder: Path) -> None:
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
            reading = open_reading(
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
