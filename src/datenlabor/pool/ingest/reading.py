"""What every format reader hands the ingest: a DuckDB relation plus what was detected."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from datenlabor.pool.ingest.source import SourceFile


@dataclass
class Reading:
    """A parsed source, ready to be staged.

    ``relation`` is a DuckDB FROM-clause expression (a table function call or a view name)
    that yields the rows in file order. ``line_offset`` is the number of file lines before
    the first data row, so that data row n is file line n + line_offset.
    """

    source: SourceFile
    format: str
    relation: str
    detection: dict[str, Any] = field(default_factory=dict)
    line_offset: int = 1
    temp_files: list[Path] = field(default_factory=list)

    def retry_after(self, con: duckdb.DuckDBPyConnection, error: duckdb.Error) -> bool:
        """Adapt to a parse error met while staging; True if staging should be retried."""
        return False

    def cleanup(self) -> None:
        for path in self.temp_files:
            path.unlink(missing_ok=True)
