"""What every format reader hands the ingest: a DuckDB relation plus what was detected."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from datenlabor.errors import BadInput
from datenlabor.pool.ingest.source import BackgroundScan, SourceFile


@dataclass
class Reading:
    """A parsed source, ready to be staged.

    ``relation`` is a DuckDB FROM-clause expression (a table function call or a view name)
    that yields the rows in file order. ``line_offset`` is the number of file lines before
    the first data row, so that data row n is file line n + line_offset.

    A CSV reading may be opened with the encoding guessed from its sample while the exact
    pass over the file (``pending``) still runs; :meth:`settle` waits for that pass, and if
    it contradicts the guess, :meth:`reopen` gives the reading with the exact encoding.
    """

    source: SourceFile
    format: str
    relation: str
    detection: dict[str, Any] = field(default_factory=dict)
    line_offset: int = 1
    temp_files: list[Path] = field(default_factory=list)
    pending: BackgroundScan | None = None
    reopen_with: Callable[[SourceFile], Reading] | None = None
    _scanned: SourceFile | None = None

    @property
    def guess_failed(self) -> bool:
        """True once the background pass has found bytes that contradict the guess."""
        return self.pending is not None and self.pending.wrong.is_set()

    def settle(self) -> bool:
        """Wait for the background pass; True if the guessed encoding was the right one.

        Then ``source`` becomes the scanned file (size, SHA-256). Errors of the pass (an
        unreadable file) are raised here, as they would have been by a pass run first.
        """
        if self.pending is None:
            return self._scanned is None
        scanned = self.pending.result()
        self.pending = None
        if scanned.same_reading(self.source):
            self.source = scanned
            return True
        self._scanned = scanned
        return False

    def reopen(self) -> Reading:
        """The same file opened with the scanned encoding (after :meth:`settle` said False)."""
        assert self._scanned is not None and self.reopen_with is not None
        return self.reopen_with(self._scanned)

    def retry_after(self, con: duckdb.DuckDBPyConnection, error: duckdb.Error) -> bool:
        """Adapt to a parse error met while staging; True if staging should be retried."""
        return False

    def cleanup(self) -> None:
        if self.pending is not None:
            self.pending.cancel()
            self.pending = None
        for path in self.temp_files:
            path.unlink(missing_ok=True)


def first_line(exc: Exception) -> str:
    """The first line of an exception's message (DuckDB's are long)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def duckdb_error(exc: Exception, path: Path, prefix: str = "") -> BadInput:
    """Turn a DuckDB reader error into BadInput naming file, line and column."""
    message = str(exc)
    line = re.search(r"[Ll]ine:? (\d+)", message)
    column = re.search(r'column "(.+?)"', message)
    reason = first_line(exc)
    counts = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", message)
    conv = re.search(r"Could not convert string \"(.*?)\" to '?(\w+)", message)
    if counts:
        reason = f"expected {counts.group(1)} fields, found {counts.group(2)}"
    elif conv:
        reason = f"value {conv.group(1)!r} is not a valid {conv.group(2)}"
    return BadInput(
        prefix + reason,
        file=str(path),
        line=int(line.group(1)) if line else None,
        column=column.group(1) if column else None,
    )
