"""Checkpoints of a harvest run, kept in the pool so that a killed run continues.

Per source, ``<pool>/harvest/<source-id>/`` holds

* ``state.json`` — the run, the page being worked on (its cursor: a URL for DCAT, the
  ``start`` offset for CKAN) and the records of that page already done. Rewritten atomically
  (temporary file, fsync, rename) after every record, so it is always a complete state;
* ``run-<id>.jsonl`` — one line per finished record of that run, appended and flushed as
  records finish. A record finished just before a kill may appear twice (it is done again on
  resume); the report keeps the last line per record;
* ``lock`` — held (flock) while a run works on the source, so two runs never interleave.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datenlabor.errors import BadInput, Conflict

STATE_FORMAT = 1


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class RunState:
    source: str
    kind: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started_at: str = field(default_factory=now_iso)
    finished_at: str | None = None
    cursor: str | None = None  # the page being worked on (None: the first page)
    page: int = 1
    done: list[str] = field(default_factory=list)  # identifiers finished on this page
    processed: int = 0  # records finished in this run
    total: int | None = None
    complete: bool = False  # every page was read (False after --limit or a failed page)
    # the dataset being ingested right now: a kill before its origin is recorded must not
    # make the next run take it for someone else's dataset
    pending: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, **asdict(self)}


class Checkpoint:
    """The state folder of one source."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.state_path = folder / "state.json"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "lock", "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Conflict(
                    f"another harvest of this source is running (lock {self.folder / 'lock'})"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def load(self) -> RunState | None:
        if not self.state_path.is_file():
            return None
        try:
            raw = json.loads(self.state_path.read_text(encoding="utf-8"))
            if raw.pop("format", None) != STATE_FORMAT:
                raise ValueError(f"unknown state format in {self.state_path}")
            return RunState(**raw)
        except (ValueError, TypeError) as exc:
            raise BadInput(
                f"harvest state is unreadable ({exc}); delete it to start afresh",
                file=str(self.state_path),
            ) from None

    def save(self, state: RunState) -> None:
        tmp = self.state_path.with_name(f".state.{os.getpid()}.tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(state.to_dict(), fh, ensure_ascii=False, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.state_path)

    def results_path(self, run_id: str) -> Path:
        return self.folder / f"run-{run_id}.jsonl"

    def append(self, run_id: str, entry: dict[str, Any]) -> None:
        with self.results_path(run_id).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def results(self, run_id: str) -> list[dict[str, Any]]:
        """This run's record outcomes, the last line per record winning."""
        path = self.results_path(run_id)
        if not path.is_file():
            return []
        by_id: dict[str, dict[str, Any]] = {}
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a kill; its record is done again
                key = entry.get("identifier") or f"#{len(by_id)}"
                by_id.pop(key, None)
                by_id[key] = entry
        return list(by_id.values())

    def forget_runs(self, keep: str) -> None:
        """Remove result files of earlier runs (their reports were written then)."""
        for path in self.folder.glob("run-*.jsonl"):
            if path.name != f"run-{keep}.jsonl":
                path.unlink(missing_ok=True)
