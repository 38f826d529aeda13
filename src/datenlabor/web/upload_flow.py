"""From a streamed upload to a new dataset version: shared by the API and the UI form."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any

from anyio import to_thread
from fastapi import Request

from datenlabor.access.principal import Principal
from datenlabor.errors import BadInput
from datenlabor.pool.catalog import DatasetMeta
from datenlabor.pool.cleanup import work_prefix
from datenlabor.pool.info import VersionInfo
from datenlabor.service import publishing
from datenlabor.web.auth import client_of
from datenlabor.web.uploads import Upload, receive_upload


def meta_from_fields(fields: Mapping[str, str], *, editing: bool = False) -> DatasetMeta:
    """Catalogue metadata from form fields (lists comma-separated, dates ISO).

    An empty field leaves the value unchanged; when ``editing`` (the metadata form shows
    every field), an empty description or list clears it.
    """

    def listed(name: str) -> list[str] | None:
        raw = fields.get(name)
        if not raw:
            return [] if editing else None
        return [x.strip() for x in raw.split(",") if x.strip()]

    def day(name: str) -> date | None:
        raw = fields.get(name)
        if not raw:
            return None
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise BadInput(f"{raw!r} is not a date (YYYY-MM-DD)", column=name) from None

    return DatasetMeta(
        title=fields.get("title") or None,
        description=fields.get("description") or ("" if editing else None),
        publisher=fields.get("org") or fields.get("publisher") or None,
        licence=fields.get("licence") or None,
        keywords=listed("keywords"),
        themes=listed("themes"),
        spatial=listed("spatial"),
        temporal_start=day("temporal_start"),
        temporal_end=day("temporal_end"),
        contact_point=fields.get("contact_point") or None,
        visibility=fields.get("visibility") or None,
    )


@asynccontextmanager
async def received_upload(request: Request) -> AsyncIterator[Upload]:
    """Stream the request's multipart body into a work folder of the pool; removed after.

    The folder is named after this process, so ``cleanup`` removes it if we are killed.
    """
    gate = request.app.state.gate
    work = Path(tempfile.mkdtemp(dir=gate.pool.root / "tmp", prefix=work_prefix()))
    try:
        upload = await receive_upload(request, work, max_bytes=gate.pool.settings.max_upload_bytes)
        try:
            yield upload
        finally:
            upload.cleanup()
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def ingest_upload(
    request: Request, p: Principal, upload: Upload, *, slug: str | None = None
) -> VersionInfo:
    """Ingest the uploaded file as a new version of ``slug`` (or the ``dataset`` field)."""
    fields = {k: v.strip() for k, v in upload.fields.items()}
    target = slug or fields.get("dataset")
    if not target:
        raise BadInput("name the dataset (field 'dataset')", column="dataset")
    if upload.path is None or not upload.filename:
        raise BadInput("choose a file", column="file")
    # Keep the sender's file name (the work folder is ours alone): provenance and errors
    # then name the file the user knows, not a server path.
    named = upload.path.with_name(upload.filename)
    upload.path.rename(named)
    upload.path = named
    options: dict[str, Any] = {"mode": fields.get("mode") or "replace"}
    if fields.get("key"):
        options["key"] = fields["key"]
    if fields.get("sheet"):
        options["sheet"] = fields["sheet"]
    if fields.get("allow_duplicate") in ("1", "true", "on"):
        options["allow_duplicate"] = True
    gate = request.app.state.gate
    meta = meta_from_fields(fields)
    client = client_of(request)

    def ingest() -> VersionInfo:
        return publishing.ingest(
            gate,
            p,
            named,
            dataset=target,
            meta=meta,
            client=client,
            source_name=upload.filename,
            **options,
        )

    try:
        return await to_thread.run_sync(ingest)
    except BadInput as exc:
        reason = exc.reason.replace(str(named), upload.filename)
        file = upload.filename if exc.file is not None else None
        raise BadInput(reason, file=file, line=exc.line, column=exc.column) from exc
