"""Per-dataset write locks between processes.

An OS file lock (flock) is released by the kernel when its holder dies, even by SIGKILL, so a
killed ingest can never leave a dataset locked. This covers processes sharing one pool folder
on one machine or on a file system with working flock (local disks, most NFSv4 setups).
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import time
from collections.abc import Iterator
from pathlib import Path

from datenlabor.errors import Conflict


@contextlib.contextmanager
def dataset_lock(lock_dir: Path, slug: str, *, timeout_s: float) -> Iterator[None]:
    """Hold the write lock of dataset ``slug``; raise Conflict after ``timeout_s``."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^a-z0-9_-]", "_", slug.lower())
    deadline = time.monotonic() + timeout_s
    with open(lock_dir / f"{name}.lock", "a+") as fh:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise Conflict(
                        f"dataset {slug!r} is being changed by another process; "
                        f"gave up after {timeout_s:g} s — try again"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
