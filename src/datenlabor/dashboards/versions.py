"""Dashboard specs versioned with the pool: ``<pool>/dashboards/<slug>/v<N>.yaml``.

Why files and not the metadata store: a spec is a document people write, review and diff
(YAML with comments, kept byte for byte), and the store schema is fixed for this release.
Versions are immutable: a new version is written to a temporary file and *linked* to
``v<N>.yaml``, which fails if that name exists, so two concurrent saves never overwrite each
other (the loser retries with N+1). The latest version is the current one. Next to each
version a small JSON file records who saved it, when, and the organisation owning the
dashboard (the first version's), which decides who may save further versions.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datenlabor.access.principal import Principal
from datenlabor.dashboards.spec import SLUG, Spec, load_spec, text_of
from datenlabor.errors import BadInput, Conflict, Forbidden, NotFound
from datenlabor.pool.cleanup import DASHBOARDS_DIR, dashboard_lock_name
from datenlabor.pool.locks import dataset_lock

if TYPE_CHECKING:
    from datenlabor.pool.pool import Pool

FOLDER = DASHBOARDS_DIR
_VERSION = re.compile(r"^v(\d+)\.yaml$")


@dataclass(frozen=True)
class DashboardVersion:
    slug: str
    version: int
    text: str
    spec: Spec
    saved_by: str
    saved_at: str
    organisation: str | None

    def summary(self, lang: str = "de") -> dict[str, Any]:
        return {
            "slug": self.slug,
            "version": self.version,
            "title": text_of(self.spec.title, lang),
            "description": text_of(self.spec.description, lang),
            "visibility": self.spec.visibility,
            "tiles": len(self.spec.tiles),
            "saved_by": self.saved_by,
            "saved_at": self.saved_at,
            "organisation": self.organisation,
        }


def check_slug(slug: str) -> str:
    if not re.match(SLUG, slug):
        raise BadInput(
            f"dashboard name {slug!r}: lower-case letters, digits, - and _ (start with a letter)",
            column="slug",
        )
    return slug


def _folder(pool: Pool, slug: str) -> Path:
    return pool.root / FOLDER / check_slug(slug)


def version_numbers(pool: Pool, slug: str) -> list[int]:
    folder = _folder(pool, slug)
    if not folder.is_dir():
        return []
    return sorted(int(m[1]) for p in folder.iterdir() if (m := _VERSION.match(p.name)))


def get(pool: Pool, slug: str, version: int | None = None) -> DashboardVersion:
    """A version (default: the latest) of dashboard ``slug``."""
    numbers = version_numbers(pool, slug)
    if not numbers:
        raise NotFound(f"no dashboard {slug!r}")
    number = numbers[-1] if version is None else version
    if number not in numbers:
        raise NotFound(f"dashboard {slug!r} has no version {number}; versions 1..{numbers[-1]}")
    folder = _folder(pool, slug)
    text = (folder / f"v{number}.yaml").read_text(encoding="utf-8")
    meta = _meta(folder, number)
    # The owner is fixed by the first version (its JSON is written right after its YAML).
    owner = _meta(folder, numbers[0]).get("organisation")
    return DashboardVersion(
        slug=slug,
        version=number,
        text=text,
        spec=load_spec(text, file=f"{slug}/v{number}.yaml"),
        saved_by=meta.get("saved_by", ""),
        saved_at=meta.get("saved_at", ""),
        organisation=owner,
    )


def _meta(folder: Path, number: int) -> dict[str, Any]:
    path = folder / f"v{number}.json"
    if not path.exists():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def all_latest(pool: Pool) -> list[DashboardVersion]:
    root = pool.root / FOLDER
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(root.iterdir()):
        if folder.is_dir() and re.match(SLUG, folder.name) and version_numbers(pool, folder.name):
            out.append(get(pool, folder.name))
    return out


def may_see(p: Principal, d: DashboardVersion) -> bool:
    """Public dashboards for everyone, internal ones for signed-in users. The data of each
    tile is still read with the caller's own permissions."""
    return d.spec.visibility == "public" or p.authenticated


def visible(pool: Pool, p: Principal) -> list[DashboardVersion]:
    return [d for d in all_latest(pool) if may_see(p, d)]


def get_for(pool: Pool, p: Principal, slug: str, version: int | None = None) -> DashboardVersion:
    d = get(pool, slug, version)
    if not may_see(p, d):
        raise NotFound(f"no dashboard {slug!r}")
    return d


def put(
    pool: Pool, p: Principal, slug: str, text: str, *, file: str | None = None
) -> DashboardVersion:
    """Validate ``text`` and save it as the next version of ``slug`` (stewards and admins;
    for an existing dashboard, admins or stewards of the owning organisation)."""
    p.require_role("admin", "steward")
    p.require_write()
    spec = load_spec(text, file=file or f"{slug}.yaml")
    folder = _folder(pool, slug)
    numbers = version_numbers(pool, slug)
    organisation = p.organisation
    if numbers:
        current = get(pool, slug)
        if not p.is_admin and current.organisation not in (None, p.organisation):
            raise Forbidden(
                f"dashboard {slug!r} belongs to organisation {current.organisation!r}; "
                "ask one of its stewards or an administrator"
            )
        organisation = current.organisation or organisation
    folder.mkdir(parents=True, exist_ok=True)
    # Under the dashboard's lock: cleanup (pool.cleanup.remove_dead_dashboards) removes what
    # a killed save left only while it holds the same lock.
    lock = dashboard_lock_name(slug)
    with dataset_lock(pool.root / "locks", lock, timeout_s=pool.settings.lock_timeout_s):
        tmp = folder / f".{uuid.uuid4().hex}.tmp"
        tmp.write_text(text, encoding="utf-8")
        try:
            for _attempt in range(20):
                number = (version_numbers(pool, slug) or [0])[-1] + 1
                if (folder / f"v{number}.yaml").exists():
                    continue
                meta = {
                    "saved_by": p.label(),
                    "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "organisation": organisation,
                }
                # The metadata first, the YAML last: a save killed in between leaves only
                # metadata no version has (cleanup removes it, the next save replaces it),
                # never a version without its owner.
                _write_json(folder / f"v{number}.json", meta)
                try:
                    os.link(tmp, folder / f"v{number}.yaml")  # fails if another save took N
                except FileExistsError:
                    continue
                return DashboardVersion(slug, number, text, spec, **meta)  # type: ignore[arg-type]
            raise Conflict(f"dashboard {slug!r} is being saved by others; try again")
        finally:
            tmp.unlink(missing_ok=True)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{uuid.uuid4().hex}.json.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
