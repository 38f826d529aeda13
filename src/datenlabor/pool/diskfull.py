"""Disk full: one clear error, whatever layer ran out of space.

DuckDB (staging Parquet, spilling), pyarrow, delta-rs, SQLite and the OS each report a full
disk in their own words and exception types, often wrapped in another error (a reader error
that quotes DuckDB's message, a SQLAlchemy error around SQLite's). :func:`disk_full_cause`
recognises all of them along the exception chain; :func:`reported` turns them into
:class:`DiskFull`, which names the file being processed and the folder that is full.
Nothing else is needed for safety: every write path already leaves the previous state intact
when it fails, whatever the reason.

>>> from datenlabor.pool.diskfull import disk_full_cause
>>> disk_full_cause(OSError(28, "No space left on device")) is not None
True
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from pathlib import Path

from datenlabor.errors import DatenlaborError

# How the layers below word it: the OS (strerror of ENOSPC / EDQUOT, also inside DuckDB's
# and delta-rs' messages), SQLite ("database or disk is full"), and DuckDB when its spill
# folder may not grow (its limit, max_temp_directory_size, is 90 % of the free disk space):
# "Out of Memory Error: failed to offload data block of size …".
_WORDS = (
    "no space left on device",
    "disk quota exceeded",
    "database or disk is full",
    "failed to offload data block",
)


class DiskFull(DatenlaborError):
    """The disk holding the pool (or its spill folder) ran full; nothing was changed."""

    exit_code = 1
    status_code = 507  # HTTP Insufficient Storage


def disk_full_cause(exc: BaseException) -> BaseException | None:
    """The exception in ``exc``'s chain that says the disk is full, or None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return current
        if any(w in str(current).lower() for w in _WORDS):
            return current
        current = current.__cause__ or current.__context__
    return None


@contextlib.contextmanager
def reported(file: Path | str | None, folder: Path) -> Iterator[None]:
    """Re-raise a disk-full failure inside as :class:`DiskFull` naming ``file`` and ``folder``."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as exc:
        cause = disk_full_cause(exc)
        if cause is None:
            raise
        what = f"{file}: " if file is not None else ""
        raise DiskFull(
            f"{what}no space left on the disk holding {folder} "
            f"({_first_line(cause)}); nothing was changed — free space and try again"
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines() or [exc.__class__.__name__])[0][:300]
