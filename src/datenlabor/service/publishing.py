"""Publishing: new datasets and versions, metadata, deletion — with permissions and audit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from datenlabor.access.policy import require_manage, view_of
from datenlabor.access.principal import Principal
from datenlabor.errors import BadInput, Conflict, NotFound
from datenlabor.pool.catalog import DatasetMeta
from datenlabor.pool.info import DatasetInfo, VersionInfo
from datenlabor.service.gate import Gate
from datenlabor.store.models import Organisation


def _org_id(gate: Gate, slug: str | None) -> int | None:
    if slug is None:
        return None
    with gate.pool.store.session() as s:
        org = s.scalar(select(Organisation).where(Organisation.slug == slug))
        if org is None:
            raise NotFound(f"no organisation {slug!r}")
        return org.id


def _require_create(gate: Gate, p: Principal, meta: DatasetMeta) -> None:
    """Whether the caller may create a dataset published by ``meta.publisher`` (default: the
    caller's organisation, filled in)."""
    if meta.publisher is None:
        if p.organisation is None:
            raise BadInput("say which organisation publishes the dataset", column="org")
        meta.publisher = p.organisation
    require_manage(p, None, _org_id(gate, meta.publisher))


def ingest(
    gate: Gate,
    p: Principal,
    path: Path,
    *,
    dataset: str,
    meta: DatasetMeta | None = None,
    client: str | None = None,
    source_name: str | None = None,
    **options: Any,
) -> VersionInfo:
    """A new version of ``dataset`` (created on first load) from a file on disk."""
    meta = meta or DatasetMeta()
    existing = gate.load(dataset, fresh=True)
    if existing is not None and existing.versions and view_of(p, existing) is None:
        # A dataset the caller may not see: refuse exactly as a new dataset of this name would
        # be refused; a caller who could create it learns only that the name is taken (slugs
        # are one namespace), never who publishes it or what it holds.
        _require_create(gate, p, meta)
        raise Conflict(f"the dataset name {dataset!r} is taken; choose another")
    if existing is not None and existing.versions:
        require_manage(p, existing)
        if meta.publisher and existing.publisher and meta.publisher != existing.publisher.slug:
            require_manage(p, None, _org_id(gate, meta.publisher))
    else:
        _require_create(gate, p, meta)
    # Written ahead: a process killed after the version is recorded but before the "upload"
    # entry below would otherwise leave a version the audit log never mentions (seen in the
    # kill -9 trials, tests/test_kill_trials.py). Costs one audit write per upload.
    gate.audit.log(
        p,
        "upload-started",
        detail={
            "dataset": dataset,
            "file": source_name or path.name,
            "bytes": path.stat().st_size if path.is_file() else None,
        },
        client=client,
    )
    try:
        version = gate.pool.ingest(path, dataset=dataset, meta=meta, user=p.label(), **options)
    except Exception as exc:
        gate.forget(dataset)
        gate.audit.log(
            p,
            "upload",
            outcome="failed",
            detail={"dataset": dataset, "file": source_name or path.name, "error": str(exc)[:500]},
            client=client,
        )
        raise
    gate.forget(dataset)
    gate.audit.log(
        p,
        "upload",
        datasets={dataset: version.version},
        publishers={
            dataset: meta.publisher
            or (existing.publisher.slug if existing and existing.publisher else None)
        },
        rows=version.rows,
        detail={
            "file": source_name or path.name,
            "sha256": version.source_sha256,
            "mode": version.mode,
        },
        client=client,
    )
    return version


def update_metadata(
    gate: Gate, p: Principal, slug: str, meta: DatasetMeta, *, client: str | None = None
) -> DatasetInfo:
    # signed in first, then visible, then managed: an anonymous caller or one who may not
    # see the dataset must not learn from the refusal that it exists (authorisation matrix)
    d = gate.managed(p, slug)
    if meta.publisher and (d.publisher is None or meta.publisher != d.publisher.slug):
        require_manage(p, None, _org_id(gate, meta.publisher))
    info = gate.pool.update_metadata(slug, meta)
    gate.forget(slug)
    gate.audit.log(
        p,
        "metadata",
        datasets={slug: d.versions[-1].number},
        publishers={slug: info.publisher},
        detail={"changed": sorted(meta.given())},
        client=client,
    )
    return info


def delete(gate: Gate, p: Principal, slug: str, *, client: str | None = None) -> str:
    # signed in first, then visible, then managed: an anonymous caller or one who may not
    # see the dataset must not learn from the refusal that it exists (authorisation matrix)
    d = gate.managed(p, slug)
    purge = gate.pool.delete(slug, retention_days=gate.pool.settings.retention_days)
    gate.forget(slug)
    gate.audit.log(
        p,
        "delete",
        datasets={slug: d.versions[-1].number},
        publishers={slug: d.publisher.slug if d.publisher else None},
        detail={"purge_after": purge.isoformat()},
        client=client,
    )
    return purge.isoformat()
