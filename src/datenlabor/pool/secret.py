"""Per-pool secrets: signing keys (OIDC login state) and the cell-key method's record keys."""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from pathlib import Path

from datenlabor.errors import BadInput


def pool_key(pool_root: Path, name: str) -> bytes:
    """The secret ``name`` of a pool, made once (random, mode 0600) and kept in
    ``<pool>/secrets/<name>.key``; safe when several processes ask at the same time."""
    folder = pool_root / "secrets"
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / f"{name}.key"
    for _ in range(50):
        try:
            key = path.read_bytes().strip()
        except FileNotFoundError:
            key = b""
        if len(key) >= 32:
            return key
        if not path.exists():
            # Write the whole key under a private name, then link it into place: another
            # worker starting at the same time either wins the link or reads a full key.
            tmp = folder / f".{name}.key.{os.getpid()}.{secrets.token_hex(4)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, secrets.token_urlsafe(48).encode() + b"\n")
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            except OSError:  # a file system without hard links: an exclusive create instead
                with contextlib.suppress(FileExistsError):
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    try:
                        os.write(fd, tmp.read_bytes())
                    finally:
                        os.close(fd)
            finally:
                tmp.unlink()
            continue
        time.sleep(0.02)  # a file too short to be a key: someone else is still writing it
    raise BadInput(f"the key file {path} is too short; delete it to have a new one made")
