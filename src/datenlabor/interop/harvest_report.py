"""The report of a harvest run: what happened to each record, and the exit code.

Outcomes per record: ``created`` (new dataset), ``updated`` (new version), ``metadata``
(same file, catalogue metadata refreshed), ``unchanged`` (same modification date, nothing
downloaded), ``skipped`` (no tabular distribution, not a dataset, no stable identifier),
``collision`` (the slug belongs to a dataset from elsewhere) and ``failed``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from datenlabor.pool.pool import Pool
from datenlabor.store.models import Dataset

OUTCOMES = ("created", "updated", "metadata", "unchanged", "skipped", "collision", "failed")
FAILED = ("collision", "failed")
EXIT_OK, EXIT_RECORDS_FAILED, EXIT_SOURCE_FAILED = 0, 1, 8


@dataclass
class HarvestReport:
    source: str
    kind: str
    run_id: str
    started_at: str
    finished_at: str | None
    resumed: bool
    complete: bool
    stopped_at_limit: bool
    records: list[dict[str, Any]]
    source_error: dict[str, str] | None = None
    # datasets harvested from this source whose record it no longer lists (None: not known,
    # because the run did not read every page)
    gone: list[dict[str, str]] | None = None

    def counts(self) -> dict[str, int]:
        c = Counter(r["outcome"] for r in self.records)
        return {k: c.get(k, 0) for k in OUTCOMES}

    def failures(self) -> list[dict[str, Any]]:
        return [
            {"identifier": r["identifier"], "url": r.get("url"), "error": r.get("reason")}
            for r in self.records
            if r["outcome"] in FAILED
        ]

    @property
    def exit_code(self) -> int:
        if self.source_error is not None:
            return EXIT_SOURCE_FAILED
        return EXIT_RECORDS_FAILED if self.failures() else EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "run": self.run_id,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "resumed": self.resumed,
            "complete": self.complete,
            "stopped_at_limit": self.stopped_at_limit,
            "exit_code": self.exit_code,
            "counts": self.counts(),
            "source_error": self.source_error,
            "failures": self.failures(),
            "gone": self.gone,
            "records": self.records,
        }


def gone(pool: Pool, kind: str, source: str, records: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Datasets harvested from ``source`` whose records were not among ``records``.

    They are kept (a withdrawn record may come back, and its versions may be cited); the
    report lists them so that someone decides.
    """
    seen = {r.get("identifier") for r in records}
    with pool.store.session() as s:
        rows = s.execute(
            select(Dataset.slug, Dataset.origin).where(Dataset.deleted_at.is_(None))
        ).all()
    out = []
    for slug, origin in sorted(rows):
        if not isinstance(origin, dict):
            continue
        if origin.get("kind") != kind or origin.get("source") != source:
            continue
        if origin.get("identifier") not in seen:
            out.append({"slug": slug, "identifier": str(origin.get("identifier"))})
    return out
