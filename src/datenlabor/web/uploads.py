"""Receiving large ``multipart/form-data`` uploads straight into a file on disk.

Starlette's ``request.form()`` spools parts to the system temp folder and keeps small parts in
memory; uploads of a gigabyte and more should instead land in the pool's own ``tmp/`` folder.
:func:`receive_upload` feeds the request body chunk by chunk to python-multipart's streaming
parser, writes the one file part to ``upload-<uuid><suffix>``, enforces the size limits while
streaming and removes the partial file on every error path.
"""

from __future__ import annotations

import contextlib
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import anyio.to_thread
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from datenlabor.errors import BadInput

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

_HEADER_COUNT = 8  # headers allowed per part
_HEADER_SIZE = 4096  # bytes allowed per header line
_PART_OVERHEAD = 300 + _HEADER_COUNT * (_HEADER_SIZE + 2)  # boundary line and headers
# File data is collected in memory up to this size, then written in a worker thread, so the
# event loop never waits for the disk and no more than this (plus one chunk) is held.
_FLUSH_BYTES = 1024 * 1024


class PayloadTooLarge(BadInput):
    """The upload is larger than allowed (HTTP 413)."""

    status_code = 413


@dataclass
class Upload:
    """A received upload: text fields and the saved file (``path``), owned by the caller."""

    fields: dict[str, str]
    path: Path | None
    filename: str | None
    size: int
    content_type: str | None

    def cleanup(self) -> None:
        """Delete the saved file; calling it again does nothing."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def human_size(n: float) -> str:
    """``1073741824`` -> ``"1 GB"``, ``1572864`` -> ``"1.5 MB"`` (binary units)."""
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= size:
            return f"{n / size:.1f}".removesuffix(".0") + f" {unit}"
    return f"{int(n)} bytes"


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the upload is larger than the limit of {human_size(max_bytes)}")


def _basename(raw: bytes) -> str:
    """The client's file name without any folder part (``..\\..\\x.csv`` -> ``x.csv``)."""
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        name = raw.decode("latin-1")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    name = "" if name in (".", "..") else unicodedata.normalize("NFC", name)
    return _shortened(name)


MAX_NAME_BYTES = 200  # file systems allow 255 bytes per name; the name becomes a file's name


def _shortened(name: str) -> str:
    """``name`` cut to MAX_NAME_BYTES of UTF-8, keeping its suffix (``aaaa….csv``)."""
    if len(name.encode("utf-8")) <= MAX_NAME_BYTES:
        return name
    suffix = Path(name).suffix if len(Path(name).suffix) <= 17 else ""
    stem = name[: len(name) - len(suffix)]
    room = MAX_NAME_BYTES - len(suffix.encode("utf-8"))
    return stem.encode("utf-8")[:room].decode("utf-8", "ignore") + suffix


def _suffix(filename: str) -> str:
    """The lower-cased suffix reduced to ``[a-z0-9]`` (``Daten.CSV`` -> ``.csv``), or ``""``."""
    ext = Path(filename).suffix.lower()[1:]
    ext = "".join(ch for ch in ext if ch.isascii() and ch.isalnum())[:16]
    return f".{ext}" if ext else ""


class _Receiver:
    """Parser callbacks: collect text fields, stream the file part to disk."""

    def __init__(self, dest_dir: Path, file_field: str, limits: tuple[int, int, int]) -> None:
        self.dest_dir, self.file_field = dest_dir, file_field
        self.max_bytes, self.max_field_bytes, self.max_fields = limits
        self.fields: dict[str, str] = {}
        self.headers: dict[str, bytes] = {}
        self.hname, self.hvalue = bytearray(), bytearray()
        self.name = ""
        self.is_file = False
        self.value = bytearray()
        self.path: Path | None = None
        self.fh: BinaryIO | None = None
        self.filename: str | None = None
        self.content_type: str | None = None
        self.size = 0
        self.pending = bytearray()
        self.ended = False

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.headers.clear,
            "on_header_field": lambda data, start, end: self.hname.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self.hvalue.extend(data[start:end]),
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
            "on_end": self.end,
        }

    def header_end(self) -> None:
        self.headers[self.hname.decode("latin-1").strip().lower()] = bytes(self.hvalue)
        self.hname.clear()
        self.hvalue.clear()

    def headers_finished(self) -> None:
        kind, options = parse_options_header(self.headers.get("content-disposition"))
        if kind != b"form-data" or b"name" not in options:
            raise BadInput("every part needs 'Content-Disposition: form-data; name=...'")
        try:
            self.name = options[b"name"].decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput("a part name is not valid UTF-8") from None
        self.is_file = b"filename" in options
        self.value = bytearray()
        if not self.is_file:
            if self.name == self.file_field:
                raise BadInput(f"part {self.name!r} must be a file, not a text field")
            if self.name in self.fields:
                raise BadInput(f"field {self.name!r} is given more than once")
            if len(self.fields) >= self.max_fields:
                raise BadInput(
                    f"too many fields: at most {self.max_fields}; {self.name!r} is one more"
                )
            return
        if self.name != self.file_field:
            raise BadInput(
                f"unexpected file part {self.name!r}: send one file part {self.file_field!r}"
            )
        if self.path is not None:
            raise BadInput(f"more than one file part {self.name!r}")
        self.filename = _basename(options[b"filename"])
        if not self.filename:
            raise BadInput(f"file part {self.name!r} has no file name")
        ctype = self.headers.get("content-type")
        self.content_type = ctype.decode("latin-1").strip() if ctype else None
        self.dest_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dest_dir / f"upload-{uuid.uuid4().hex}{_suffix(self.filename)}"
        self.fh = self.path.open("xb")

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.is_file:
            self.size += end - start
            if self.size > self.max_bytes:
                raise _too_large(self.max_bytes)
            self.pending += memoryview(data)[start:end]
        else:
            self.value += data[start:end]
            if len(self.value) > self.max_field_bytes:
                limit = human_size(self.max_field_bytes)
                raise BadInput(f"field {self.name!r} is larger than {limit}")

    def part_end(self) -> None:
        if not self.is_file:
            try:
                self.fields[self.name] = self.value.decode("utf-8")
            except UnicodeDecodeError:
                raise BadInput(f"field {self.name!r} is not valid UTF-8") from None

    def end(self) -> None:
        self.ended = True

    async def flush(self) -> None:
        if self.fh is not None and self.pending:
            batch, self.pending = self.pending, bytearray()
            await anyio.to_thread.run_sync(self.fh.write, batch)

    def discard(self) -> None:
        if self.fh is not None:
            with contextlib.suppress(OSError):
                self.fh.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


async def receive_upload(
    request: Request,
    dest_dir: Path,
    *,
    max_bytes: int,
    file_field: str = "file",
    max_field_bytes: int = 64 * 1024,
    max_fields: int = 100,
) -> Upload:
    """Stream a ``multipart/form-data`` body: one file part into ``dest_dir``, text fields.

    Raises :class:`PayloadTooLarge` (413) once the file passes ``max_bytes`` (before reading
    if ``Content-Length`` already says so) and :class:`BadInput` for anything malformed; on
    every error the partial file is deleted. The caller owns the returned file.
    """
    missing = f"expected multipart/form-data with a file part {file_field!r}"
    kind, options = parse_options_header(request.headers.get("content-type"))
    if kind != b"multipart/form-data" or not options.get(b"boundary"):
        raise BadInput(missing)
    # Largest body a valid request can have: the file, all text fields and part headers.
    body_limit = max_bytes + max_fields * max_field_bytes + (max_fields + 2) * _PART_OVERHEAD
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > body_limit:
        raise _too_large(max_bytes)
    receiver = _Receiver(dest_dir, file_field, (max_bytes, max_field_bytes, max_fields))
    received = 0
    try:
        try:
            parser = MultipartParser(
                options[b"boundary"],
                receiver.callbacks(),
                max_header_count=_HEADER_COUNT,
                max_header_size=_HEADER_SIZE,
            )
            async for chunk in request.stream():
                received += len(chunk)
                if received > body_limit:  # e.g. an endless epilogue the parser would skip
                    raise _too_large(max_bytes)
                parser.write(chunk)
                if len(receiver.pending) >= _FLUSH_BYTES:
                    await receiver.flush()
            if not receiver.ended:
                raise BadInput("the upload was interrupted or malformed: the body ended early")
            if receiver.fh is None:
                raise BadInput(missing)
            await receiver.flush()
            await anyio.to_thread.run_sync(receiver.fh.close)
        except ClientDisconnect:
            raise BadInput("the upload was interrupted: the client disconnected") from None
        except FormParserError as exc:
            raise BadInput(f"the upload was malformed: {exc}") from None
    except BaseException:
        receiver.discard()
        raise
    r = receiver
    return Upload(r.fields, r.path, r.filename, r.size, r.content_type)
