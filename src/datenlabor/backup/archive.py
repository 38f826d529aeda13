"""The backup file: a POSIX tar archive any system can list and unpack.

Members: ``pool/…`` (pool files, paths relative to the pool folder), ``store/<table>.jsonl.gz``
(the logical dump of the metadata store) and, last, ``manifest.json``: format version,
Alembic revision, creation time, every member with size and SHA-256, row counts per table
and the audit chain's head. The archive is not compressed: Parquet files already are, and
the dump files are gzip-compressed one by one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from datenlabor.errors import BadInput

FORMAT = "datenlabor-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_MEMBER = re.compile(r"^(pool|store)/[^\x00]+$")
CHUNK = 1024 * 1024
REQUIRED = ("alembic_revision", "created_at", "store", "audit", "files")


class _Hashing:
    """A file object that hashes what is read through it."""

    def __init__(self, fh: IO[bytes], progress: Callable[[int], None] | None = None) -> None:
        self.fh = fh
        self.sha = hashlib.sha256()
        self.progress = progress

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.sha.update(data)
        if self.progress is not None:
            self.progress(len(data))
        return data


class Writer:
    """Adds members to a new archive, recording size and SHA-256 of each."""

    def __init__(self, path: Path, progress: Callable[[int], None] | None = None) -> None:
        # 0600 from the first byte: the file holds the pool's keys and every dataset
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self.fh = os.fdopen(fd, "wb")
        self.tar = tarfile.open(fileobj=self.fh, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        self.files: list[dict[str, Any]] = []
        self.progress = progress

    def add_file(self, name: str, source: Path) -> None:
        info = tarfile.TarInfo(name)
        with source.open("rb") as fh:
            st = source.stat()
            info.size, info.mtime, info.mode = st.st_size, int(st.st_mtime), 0o600
            hashing = _Hashing(fh, self.progress)
            self.tar.addfile(info, hashing)
        self.files.append({"path": name, "bytes": info.size, "sha256": hashing.sha.hexdigest()})

    def add_manifest(self, manifest: dict[str, Any]) -> None:
        body = json.dumps(manifest, ensure_ascii=False, indent=1).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode = len(body), 0o600
        self.tar.addfile(info, io.BytesIO(body))

    def close(self) -> None:
        try:
            self.tar.close()
        finally:
            self.fh.close()


@dataclass
class Verified:
    manifest: dict[str, Any]
    members: dict[str, dict[str, Any]]  # name -> manifest entry


def _check_name(name: str, file: str) -> None:
    p = PurePosixPath(name)
    if not _MEMBER.match(name) or p.is_absolute() or ".." in p.parts:
        raise BadInput(f"member {name!r} has a path a backup never contains", file=file)


def verify(path: Path, progress: Callable[[int], None] | None = None) -> Verified:
    """Read the whole archive once and check every member against the manifest.

    Raises :class:`BadInput` naming the first member that is missing, extra, of the wrong
    size or with the wrong SHA-256; nothing is written anywhere.
    """
    where = str(path)
    found: dict[str, tuple[int, str]] = {}
    manifest_bytes: bytes | None = None
    try:
        with tarfile.open(path, "r:") as tar:
            for m in tar:
                if m.name == MANIFEST and m.isfile():
                    fh = tar.extractfile(m)
                    assert fh is not None
                    manifest_bytes = fh.read()
                    continue
                if not m.isfile():
                    raise BadInput(f"member {m.name!r} is not a regular file", file=where)
                _check_name(m.name, where)
                fh = tar.extractfile(m)
                assert fh is not None
                hashing = _Hashing(fh, progress)
                while hashing.read(CHUNK):
                    pass
                found[m.name] = (m.size, hashing.sha.hexdigest())
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BadInput(
            f"not a readable backup archive (truncated or damaged?): {exc}", file=where
        ) from exc
    if manifest_bytes is None:
        raise BadInput(f"{MANIFEST} is missing: not a Datenlabor backup, or truncated", file=where)
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError as exc:
        raise BadInput(f"{MANIFEST} is damaged: {exc}", file=where) from exc
    if manifest.get("format") != FORMAT:
        raise BadInput(f"{MANIFEST} does not describe a Datenlabor backup", file=where)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BadInput(
            f"backup format version {manifest.get('format_version')} is not supported "
            f"(this Datenlabor reads version {FORMAT_VERSION})",
            file=where,
        )
    missing = [k for k in REQUIRED if k not in manifest]
    if missing or not isinstance(manifest.get("files"), list):
        raise BadInput(f"{MANIFEST} is incomplete (missing {missing or ['files']})", file=where)
    members = {f["path"]: f for f in manifest["files"]}
    for name, entry in members.items():
        if name not in found:
            raise BadInput(f"{name}: listed in the manifest but missing", file=where)
        size, sha = found[name]
        if size != entry["bytes"] or sha != entry["sha256"]:
            raise BadInput(
                f"{name}: damaged (SHA-256 {sha[:16]}…, {size} bytes; the manifest says "
                f"{entry['sha256'][:16]}…, {entry['bytes']} bytes)",
                file=where,
            )
    extra = sorted(set(found) - set(members))
    if extra:
        raise BadInput(f"{extra[0]}: in the archive but not in the manifest", file=where)
    return Verified(manifest, members)


def extract(
    path: Path,
    verified: Verified,
    place: Callable[[str], Path | None],
    progress: Callable[[int], None] | None = None,
) -> Iterator[str]:
    """Write every member to ``place(name)`` (None: skip), hashing again while writing.

    Yields member names as they are written. A member that changed since :func:`verify`
    raises :class:`BadInput`; the caller discards what was written.
    """
    where = str(path)
    with tarfile.open(path, "r:") as tar:
        for m in tar:
            if m.name == MANIFEST:
                continue
            target = place(m.name)
            if target is None:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(m)
            assert src is not None
            hashing = _Hashing(src, progress)
            with target.open("wb") as out:
                while chunk := hashing.read(CHUNK):
                    out.write(chunk)
            if hashing.sha.hexdigest() != verified.members[m.name]["sha256"]:
                raise BadInput(f"{m.name}: changed while being restored", file=where)
            yield m.name
