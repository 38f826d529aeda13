"""Refusing ZIP bombs before a library unpacks them (XLSX workbooks, DOCX documents).

XLSX and DOCX files are ZIP archives of XML parts; a few hundred kilobytes can declare
gigabytes of XML. The libraries that read them (calamine, DuckDB's excel extension,
python-docx) unpack parts whole, so the archive's directory is checked first: the declared
size of all parts together, and the compression ratio of each large part (spreadsheet XML
compresses 10-30:1, bombs 1000:1). Python's ``zipfile`` stops at the declared size of a
part, so a part cannot expand beyond what its directory entry says.

Written by hand because no maintained library offers this check; it is a few lines over
the standard library's ``zipfile`` directory listing.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path

from datenlabor.errors import BadInput

MAX_UNPACKED_BYTES = 4 * 1024**3  # all parts together, as declared in the directory
MAX_RATIO = 200  # uncompressed : compressed, for parts above RATIO_FROM_BYTES
RATIO_FROM_BYTES = 16 * 1024**2
MAX_PARTS = 10_000


def check_archive(
    source: Path | bytes,
    name: str,
    *,
    max_bytes: int | None = None,
    max_ratio: int | None = None,
) -> None:
    """Raise :class:`BadInput` naming ``name`` if the archive would unpack too much.

    A file that is not a ZIP archive at all passes: the reader reports that in its words.
    A damaged archive (bad part header, bad deflate data, wrong checksum) is refused.
    """
    limit = MAX_UNPACKED_BYTES if max_bytes is None else max_bytes
    ratio_limit = MAX_RATIO if max_ratio is None else max_ratio
    try:
        archive = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError,
            NotImplementedError):  # fmt: skip
        return
    with archive:
        _check_sizes(archive.infolist(), name, limit, ratio_limit)
        _check_parts(archive, name)


def _check_parts(archive: zipfile.ZipFile, name: str) -> None:
    """Unpack every part once (sizes are bounded by now) and compare its checksum.

    DuckDB's excel reader hung on a workbook whose sheet had a damaged local header (found
    by fuzzing), so damaged archives are refused here, in words, before any reader runs.
    """
    for info in archive.infolist():
        try:
            with archive.open(info) as part:
                while part.read(1024 * 1024):
                    pass
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError,
                RuntimeError, ValueError) as exc:  # fmt: skip - RuntimeError: encrypted part
            reason = f"damaged ZIP archive, part {info.filename!r}: {exc}"
            raise BadInput(reason, file=name) from exc


def _check_sizes(infos: list[zipfile.ZipInfo], name: str, limit: int, ratio_limit: int) -> None:
    if len(infos) > MAX_PARTS:
        raise BadInput(f"the archive has {len(infos)} parts (at most {MAX_PARTS})", file=name)
    total = 0
    for info in infos:
        total += info.file_size
        if total > limit:
            raise BadInput(
                f"the archive unpacks to more than {limit // 1024**2} MB (ZIP bomb?)", file=name
            )
        if info.file_size > RATIO_FROM_BYTES:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > ratio_limit:
                raise BadInput(
                    f"part {info.filename!r} is compressed {ratio:.0f}:1 "
                    f"(at most {ratio_limit}:1 accepted; ZIP bomb?)",
                    file=name,
                )
