"""Model versions of the AI assistance: artifacts under the pool, records in ``assist_models``.

Every trained model gets the next version number of its name, the exact pool dataset
version it was trained on, its parameters and its held-out metrics. One version per name is
*active*: the one triage uses. Artifacts live in ``<pool>/assist/models/``.

Trust model of loading an artifact (loading a pickle runs whatever code it contains, so
none is ever loaded):

1. A triage model is stored as plain arrays and JSON in one ``.npz`` file
   (:class:`datenlabor.assist.triage_model.TriageModel`), read with ``allow_pickle=False``:
   a changed file can at worst give wrong numbers, never run code.
2. The store records the artifact's SHA-256 when it is written; a file whose hash differs
   (replaced or damaged on disk) is refused before it is read.
3. Only admins and stewards (CLI on the pool, or those roles in the service) train, and
   only the pool's administrators (CLI) activate another version.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from datenlabor.errors import BadInput, Conflict, NotFound
from datenlabor.pool.cleanup import MODELS_DIR, model_lock_name
from datenlabor.pool.locks import dataset_lock
from datenlabor.pool.pool import Pool
from datenlabor.store.models import AssistModel

_cache: dict[tuple[str, int, str], Any] = {}
_cache_lock = threading.Lock()


@dataclass
class ModelInfo:
    id: int
    name: str
    version: int
    kind: str
    dataset: str | None
    dataset_version: int | None
    params: dict[str, Any]
    metrics: dict[str, Any]
    artifact: str | None
    active: bool
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, m: AssistModel) -> ModelInfo:
        return cls(
            m.id,
            m.name,
            m.version,
            m.kind,
            m.dataset,
            m.dataset_version,
            dict(m.params or {}),
            dict(m.metrics or {}),
            m.artifact,
            bool(m.active),
            m.created_by,
            m.created_at,
        )

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "dataset": self.dataset,
            "dataset_version": self.dataset_version,
            "params": self.params,
            "metrics": self.metrics,
            "artifact": self.artifact,
            "active": self.active,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def register(
    pool: Pool,
    obj: Any,
    *,
    name: str,
    kind: str = "sklearn",
    dataset: str | None,
    dataset_version: int | None,
    params: dict[str, Any],
    metrics: dict[str, Any],
    user: str,
    activate: bool = True,
) -> ModelInfo:
    """Store ``obj`` (a model with ``save(path)``, or None for an LLM configuration) as the
    next version of ``name``; the file is in place before the record points to it.
    With ``activate``, the impact assessment's measures must be met (see :func:`activate`)."""
    if activate:
        _require_activation_allowed(pool, name)
    # The lock is held from the first byte of the file until its record is committed:
    # `datenlabor cleanup` removes model files without a record only under this lock.
    with dataset_lock(
        pool.root / "locks", model_lock_name(name), timeout_s=pool.settings.lock_timeout_s
    ):
        artifact: str | None = None
        stored = dict(params)
        if obj is not None:
            rel = MODELS_DIR / f"{name}-{uuid.uuid4().hex[:12]}.npz"
            path = pool.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.partial")
            try:
                obj.save(partial)
                partial.replace(path)
            finally:
                partial.unlink(missing_ok=True)
            artifact = rel.as_posix()
            stored["sha256"] = _sha256(path)
        try:
            with pool.store.session() as s, s.begin():
                last = s.scalar(
                    select(func.max(AssistModel.version)).where(AssistModel.name == name)
                )
                m = AssistModel(
                    name=name,
                    version=(last or 0) + 1,
                    kind=kind,
                    dataset=dataset,
                    dataset_version=dataset_version,
                    params=stored,
                    metrics=metrics,
                    artifact=artifact,
                    active=False,
                    created_by=user,
                )
                s.add(m)
                s.flush()
                if activate:
                    s.execute(
                        update(AssistModel).where(AssistModel.name == name).values(active=False)
                    )
                    m.active = True
                s.flush()
                info = ModelInfo.of(m)
        except IntegrityError as exc:
            if artifact:
                (pool.root / artifact).unlink(missing_ok=True)
            raise Conflict(
                f"another {name!r} model was registered at the same time; retry"
            ) from exc
        except BaseException:
            if artifact:
                (pool.root / artifact).unlink(missing_ok=True)
            raise
        return info


def models(pool: Pool, name: str | None = None) -> list[ModelInfo]:
    with pool.store.session() as s:
        q = select(AssistModel).order_by(AssistModel.name, AssistModel.version)
        if name:
            q = q.where(AssistModel.name == name)
        return [ModelInfo.of(m) for m in s.scalars(q)]


def active(pool: Pool, name: str = "triage") -> ModelInfo | None:
    with pool.store.session() as s:
        m = s.scalar(
            select(AssistModel).where(AssistModel.name == name, AssistModel.active.is_(True))
        )
        return ModelInfo.of(m) if m is not None else None


def get(pool: Pool, name: str, version: int) -> ModelInfo:
    with pool.store.session() as s:
        m = s.scalar(
            select(AssistModel).where(AssistModel.name == name, AssistModel.version == version)
        )
        if m is None:
            raise NotFound(f"no model {name!r} version {version}")
        return ModelInfo.of(m)


def activate(pool: Pool, name: str, version: int) -> ModelInfo:
    """Make ``version`` the one in use (e.g. to roll back); refused while a measure the
    service's impact assessment requires is unmet (datenlabor.governance.activation)."""
    _require_activation_allowed(pool, name)
    with pool.store.session() as s, s.begin():
        m = s.scalar(
            select(AssistModel).where(AssistModel.name == name, AssistModel.version == version)
        )
        if m is None:
            raise NotFound(f"no model {name!r} version {version}")
        s.execute(update(AssistModel).where(AssistModel.name == name).values(active=False))
        m.active = True
        s.flush()
        return ModelInfo.of(m)


def _require_activation_allowed(pool: Pool, name: str) -> None:
    from datenlabor.governance.activation import require_activation_allowed
    from datenlabor.service.gate import Gate

    require_activation_allowed(Gate(pool), name)


def load(pool: Pool, info: ModelInfo) -> Any:
    """The model of a version, checked against its recorded hash (cached per process)."""
    from datenlabor.assist.triage_model import TriageModel

    if info.artifact is None:
        raise BadInput(f"model {info.ref} has no artifact (kind {info.kind})")
    expected = str(info.params.get("sha256", ""))
    key = (str(pool.root), info.id, expected)
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None:
        return hit
    path = pool.root / info.artifact
    if not path.is_file():
        raise NotFound(f"the artifact of model {info.ref} is missing: {path}")
    if _sha256(path) != expected:
        raise BadInput(
            f"the artifact of model {info.ref} does not match the SHA-256 recorded when it was "
            "trained; it was changed on disk and is not loaded",
            file=str(path),
        )
    obj = TriageModel.load(path)
    with _cache_lock:
        if len(_cache) > 8:
            _cache.clear()
        _cache[key] = obj
    return obj
