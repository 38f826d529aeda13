"""Which files of a pool folder a backup holds, cut at the moment of the store snapshot.

The metadata store decides what exists: a Delta commit is made *before* its version is
recorded, Parquet files and commit files never change once written, and a version's files are
removed only after its dataset was purged from the store. So for every dataset in the store
snapshot the backup takes the Delta log up to the newest *recorded* version and the data
files those commits name; commits made after the snapshot (an ingest running meanwhile, or
one that died before recording) are left out, exactly as the snapshot does not know them.
Each dataset's files are listed under its write lock (the lock cleanup takes before
purging), so a purge cannot pull the files away while they are listed.

Left out as caches or transients: ``tmp/``, ``staging/``, ``locks/``, ``disclosure/``
(protected tables, recomputed on first use), the SQLite store files (dumped logically) and
model files no model record points to (leftovers of a failed registration).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, inspect, select

from datenlabor.errors import DatenlaborError
from datenlabor.pool import delta
from datenlabor.pool.locks import dataset_lock
from datenlabor.store.models import AssistModel, Dataset, Version

SKIPPED = {"tmp", "staging", "locks", "disclosure"}
_LOG_FILE = re.compile(r"^(\d{20})\.(json|crc|checkpoint\.parquet|checkpoint\.\d+\.\d+\.parquet)$")


@dataclass(frozen=True)
class PoolFile:
    rel: str  # POSIX path relative to the pool folder
    path: Path


def _files_under(root: Path, folder: Path, *, skip_names: set[str] | None = None) -> list[PoolFile]:
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue  # temporary files of atomic writes
        if p.is_file() and not p.is_symlink() and p.name not in (skip_names or set()):
            out.append(PoolFile(rel.as_posix(), p))
    return out


def table_files(table_dir: Path, delta_versions: list[int], slug: str) -> list[Path]:
    """The Delta log up to the newest recorded version and every data file it names."""
    newest = max(delta_versions)
    log = table_dir / "_delta_log"
    if not log.is_dir():
        raise DatenlaborError(f"dataset {slug!r}: its Delta table {table_dir} is missing")
    files: list[Path] = []
    data: set[str] = set()
    for f in sorted(log.iterdir()):
        m = _LOG_FILE.match(f.name)
        if m and int(m[1]) <= newest:
            files.append(f)
            if m[2] == "json":
                with f.open(encoding="utf-8") as fh:
                    for line in fh:
                        action = json.loads(line)
                        if "add" in action:
                            data.add(action["add"]["path"])
        elif f.name == "_last_checkpoint" and (
            json.loads(f.read_text(encoding="utf-8")).get("version", newest + 1) <= newest
        ):
            files.append(f)  # else: readers find the checkpoint by listing the log
    # Every recorded version must be readable: its files as delta-rs resolves them.
    needed: set[str] = set()
    for dv in delta_versions:
        snap, _schema = delta.snapshot_files(table_dir, dv)
        needed.update(Path(p).relative_to(table_dir).as_posix() for p in snap)
    for rel in sorted(needed):
        if not (table_dir / rel).is_file():
            raise DatenlaborError(
                f"dataset {slug!r}: file {table_dir / rel} of a recorded version is missing"
            )
    # Files of unrecorded intermediate commits (rolled back) are kept when still there.
    for rel in sorted(data | needed):
        if (table_dir / rel).is_file():
            files.append(table_dir / rel)
    return files


def select_files(
    root: Path, snapshot: Connection, *, lock_timeout_s: float, store_files: set[Path]
) -> list[PoolFile]:
    """The pool files belonging to the store ``snapshot``; ``store_files`` are skipped."""
    out: list[PoolFile] = []
    present = set(inspect(snapshot).get_table_names())
    versions: dict[int, list[int]] = {}
    for dataset_id, dv in snapshot.execute(select(Version.dataset_id, Version.delta_version)):
        versions.setdefault(dataset_id, []).append(int(dv))
    datasets = snapshot.execute(
        select(Dataset.id, Dataset.slug, Dataset.table_path).order_by(Dataset.slug)
    ).all()
    for ds_id, slug, table_path in datasets:
        if ds_id not in versions:
            continue
        table_dir = root / table_path
        with dataset_lock(root / "locks", slug, timeout_s=lock_timeout_s):
            for f in table_files(table_dir, versions[ds_id], slug):
                out.append(PoolFile(f.relative_to(root).as_posix(), f))
    if AssistModel.__tablename__ in present:
        for (artifact,) in snapshot.execute(
            select(AssistModel.artifact).where(AssistModel.artifact.is_not(None))
        ):
            path = root / str(artifact)
            if not path.is_file():
                raise DatenlaborError(f"model file {path} of a registered model is missing")
            out.append(PoolFile(Path(str(artifact)).as_posix(), path))
    models_dir = Path("assist") / "models"
    for entry in sorted(root.iterdir()):
        if entry.name in SKIPPED or entry.name == "tables" or entry.name.startswith("."):
            continue
        if entry in store_files or entry.name.startswith("metadata.sqlite"):
            continue
        if entry.is_file() and not entry.is_symlink():
            out.append(PoolFile(entry.name, entry))
        elif entry.name == "assist":
            out += [
                f for f in _files_under(root, entry) if not Path(f.rel).is_relative_to(models_dir)
            ]
        elif entry.name == "harvest":
            out += _files_under(root, entry, skip_names={"lock"})
        elif entry.name == "secrets":
            out += [f for f in _files_under(root, entry) if f.rel.endswith(".key")]
        elif entry.is_dir():
            out += _files_under(root, entry)  # dashboards/ and whatever comes later
    return out
