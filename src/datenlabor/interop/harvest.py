"""Harvesting DCAT-AP catalogues and CKAN portals into the pool.

>>> report = Harvester(pool).run("https://www.govdata.de/ckan")           # doctest: +SKIP
>>> report.counts()                                                        # doctest: +SKIP
{'created': 12, 'updated': 0, 'metadata': 0, 'unchanged': 0, 'skipped': 40, ...}

Each catalogue record becomes a pool dataset whose slug is derived from the record's
identifier (:func:`~datenlabor.interop.harvest_record.slug_for`), whose catalogue metadata
comes from the record, and whose data is a version ingested from the record's first tabular
distribution. Datasets are written through :mod:`datenlabor.service.publishing` as the local
administrator, so every new version and metadata change is audited like an upload.

Incremental: a record whose modification date and chosen download URL equal what the dataset's
origin recorded is skipped without a download; a downloaded file whose SHA-256 equals the
recorded one gives no new version (its metadata is refreshed). Resumable: see
:mod:`~datenlabor.interop.harvest_state`. Never hangs: see
:mod:`~datenlabor.interop.harvest_fetch`.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import select

from datenlabor.access.principal import local_admin
from datenlabor.errors import BadInput, DatenlaborError, NotFound
from datenlabor.interop import harvest_ckan, harvest_dcat
from datenlabor.interop.harvest_fetch import (
    Fetcher,
    FetchError,
    Limits,
    file_name,
    is_zip,
    remove_tree,
    unpack_single,
)
from datenlabor.interop.harvest_record import (
    Distribution,
    Record,
    choose,
    org_slug,
    slug_for,
    slugify,
    to_meta,
)
from datenlabor.interop.harvest_report import HarvestReport, gone
from datenlabor.interop.harvest_state import Checkpoint, RunState, now_iso
from datenlabor.pool import cleanup
from datenlabor.pool.catalog import VISIBILITIES
from datenlabor.pool.pool import Pool
from datenlabor.service import publishing
from datenlabor.service.gate import Gate
from datenlabor.store.models import Dataset, Organisation

KINDS = ("dcat", "ckan")

OnRecord = Callable[[int, int | None, dict[str, Any]], None]


@dataclass
class Options:
    kind: str | None = None  # dcat | ckan; None: detect
    org: str | None = None  # publish everything under this organisation
    visibility: str | None = None  # for new datasets and, when given, on every update
    limit: int | None = None  # records per run; the next run continues after them
    page_size: int = harvest_ckan.PAGE_ROWS  # CKAN rows per package_search call
    restart: bool = False  # ignore an unfinished run and start from the first page
    limits: Limits = field(default_factory=Limits)


def normalise_source(source: str) -> str:
    """An http(s) URL as given, a local file as its absolute ``file://`` URI."""
    if source.startswith(("http://", "https://")):
        return source
    if source.startswith("file://"):
        path = Path(unquote(urlsplit(source).path))
    else:
        path = Path(source).expanduser()
    if not path.is_file():
        raise BadInput("catalogue file not found", file=str(path))
    return path.resolve().as_uri()


def source_id(source: str) -> str:
    """Folder name of a source's harvest state: readable part plus a hash of the whole."""
    parts = urlsplit(source)
    words = slugify(f"{parts.netloc} {parts.path}")[:50].strip("-") or "source"
    return f"{words}-{hashlib.sha256(source.encode()).hexdigest()[:10]}"


@dataclass
class _Job:
    fetcher: Fetcher
    source: str
    kind: str
    opts: Options
    state: RunState
    checkpoint: Checkpoint


class Harvester:
    """Runs harvests into one pool; ``on_record`` sees each record as it finishes."""

    def __init__(
        self,
        pool: Pool,
        *,
        on_record: OnRecord | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.pool = pool
        self.gate = Gate(pool)
        self.principal = local_admin(pool.settings.user)
        self._on_record = on_record or (lambda _n, _total, _entry: None)
        self._sleep = sleep

    # -- the run ----------------------------------------------------------------------------
    def run(self, source: str, options: Options | None = None) -> HarvestReport:
        opts = options or Options()
        if opts.kind is not None and opts.kind not in KINDS:
            raise BadInput(f"unknown source type {opts.kind!r}; choose dcat or ckan", column="type")
        if opts.visibility is not None and opts.visibility not in VISIBILITIES:
            raise BadInput(
                f"unknown visibility {opts.visibility!r}; choose one of {', '.join(VISIBILITIES)}",
                column="visibility",
            )
        if opts.limit is not None and opts.limit < 1:
            raise BadInput("--limit must be at least 1", column="limit")
        if opts.org is not None:
            self._require_org(opts.org)
        url = normalise_source(source)
        with Fetcher(opts.limits, sleep=self._sleep) as fetcher:
            kind = opts.kind or self._detect(fetcher, url)
            if kind == "ckan" and not url.startswith("file://"):
                url = harvest_ckan.api_base(url)
            checkpoint = Checkpoint(self.pool.root / "harvest" / source_id(f"{kind}:{url}"))
            with checkpoint.locked():
                return self._run(fetcher, checkpoint, url, kind, opts)

    def _run(
        self, fetcher: Fetcher, checkpoint: Checkpoint, url: str, kind: str, opts: Options
    ) -> HarvestReport:
        previous = checkpoint.load()
        resumed = previous is not None and not previous.complete and not opts.restart
        if resumed:
            assert previous is not None
            state = previous
            state.finished_at = None
        else:
            state = RunState(source=url, kind=kind)
            if previous is not None:
                state.pending = previous.pending  # a kill mid-ingest must still be adopted
            checkpoint.forget_runs(keep=state.run_id)
        checkpoint.save(state)
        source_error: dict[str, str] | None = None
        stopped = False
        job = _Job(fetcher, url, kind, opts, state, checkpoint)
        try:
            for records, next_cursor in self._pages(fetcher, url, kind, state, opts):
                done = set(state.done)
                for position, record in enumerate(records):
                    key = record.identifier or f"#{position}"
                    if key in done:
                        continue
                    if opts.limit is not None and state.processed >= opts.limit:
                        stopped = True
                        break
                    entry = self._one(job, record)
                    checkpoint.append(state.run_id, entry)
                    done.add(key)
                    state.done.append(key)
                    state.processed += 1
                    checkpoint.save(state)
                    self._on_record(state.processed, state.total, entry)
                if stopped:
                    break
                if next_cursor is None:
                    state.complete = True
                    break
                state.cursor, state.page, state.done = next_cursor, state.page + 1, []
                checkpoint.save(state)
                if opts.limit is not None and state.processed >= opts.limit:
                    stopped = True  # the next run starts with the next page
                    break
        except DatenlaborError as exc:  # the page could not be fetched or read
            page = state.cursor or url
            source_error = {"url": getattr(exc, "url", None) or page, "error": str(exc)}
        state.finished_at = now_iso()
        checkpoint.save(state)
        outcomes = checkpoint.results(state.run_id)
        return HarvestReport(
            source=url,
            kind=kind,
            run_id=state.run_id,
            started_at=state.started_at,
            finished_at=state.finished_at,
            resumed=resumed,
            complete=state.complete,
            stopped_at_limit=stopped,
            records=outcomes,
            source_error=source_error,
            gone=gone(self.pool, kind, url, outcomes) if state.complete else None,
        )

    # -- sources ----------------------------------------------------------------------------
    def _read(
        self,
        fetcher: Fetcher,
        url: str,
        *,
        accept: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> tuple[bytes, str | None, str]:
        if url.startswith("file://"):
            path = Path(unquote(urlsplit(url).path))
            try:
                size = path.stat().st_size
                if size > fetcher.limits.max_page_bytes:
                    raise FetchError(url, f"{size:,} bytes, larger than the page limit")
                return path.read_bytes(), None, url
            except OSError as exc:
                raise FetchError(url, f"cannot read: {exc.strerror}") from None
        return fetcher.get(url, accept=accept, params=params)

    def _pages(
        self, fetcher: Fetcher, url: str, kind: str, state: RunState, opts: Options
    ) -> Iterator[tuple[list[Record], str | None]]:
        seen: set[str] = set()
        while True:
            cursor = state.cursor
            if kind == "dcat":
                page_url = cursor or url
                if page_url.startswith("file://") and not url.startswith("file://"):
                    # a remote catalogue must not make the harvester read local files
                    raise BadInput(f"a remote catalogue links to the local page {page_url}")
                seen.add(page_url)
                body, ctype, final = self._read(fetcher, page_url, accept=harvest_dcat.ACCEPT)
                dpage = harvest_dcat.parse_page(body, url=final, content_type=ctype)
                state.total = dpage.total if dpage.total is not None else state.total
                # a next link back to a page of this run would go round in circles: the end
                nxt = dpage.next_url if dpage.next_url not in seen | {final} else None
                yield dpage.records, nxt
            elif url.startswith("file://"):
                body, _ctype, final = self._read(fetcher, url)
                cpage = harvest_ckan.parse_answer(body, url=final)
                state.total = cpage.total
                yield cpage.records, None
                return
            else:
                start = int(cursor or 0)
                params = {"rows": opts.page_size, "start": start, "sort": harvest_ckan.SORT}
                body, _ctype, final = self._read(
                    fetcher, harvest_ckan.search_url(url), accept="application/json", params=params
                )
                cpage = harvest_ckan.parse_answer(body, url=final)
                state.total = cpage.total
                after = start + cpage.returned
                more = cpage.returned > 0 and (cpage.total is None or after < cpage.total)
                yield cpage.records, str(after) if more else None

    def _detect(self, fetcher: Fetcher, url: str) -> str:
        """dcat or ckan: by file content, URL shape, or what the server answers."""
        if url.startswith("file://"):
            body, _ctype, _final = self._read(fetcher, url)
            head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
            if head == b"{":
                try:
                    doc = json.loads(body)
                except ValueError:
                    return "dcat"  # let the RDF reader name the problem
                if isinstance(doc, dict) and "result" in doc and "success" in doc:
                    return "ckan"
            return "dcat"
        if harvest_ckan.is_action_url(url):
            return "ckan"
        path = urlsplit(url).path.lower()
        if path.endswith((".ttl", ".rdf", ".xml", ".jsonld", ".nt", ".n3", ".owl")):
            return "dcat"
        probe = harvest_ckan.search_url(harvest_ckan.api_base(url))
        # one attempt only: a DCAT server may well answer 5xx to a CKAN path
        once = replace(fetcher.limits, retries=0, page_timeout_s=fetcher.limits.read_timeout_s)
        try:
            with Fetcher(once) as quick:
                body, _ctype, _final = quick.get(probe, params={"rows": 0})
            doc = json.loads(body)
            if isinstance(doc, dict) and doc.get("success") is True:
                return "ckan"
        except (FetchError, ValueError):
            pass
        return "dcat"

    # -- one record ---------------------------------------------------------------------
    def _one(self, job: _Job, record: Record) -> dict[str, Any]:
        kind, source = job.kind, job.source
        entry: dict[str, Any] = {"identifier": record.identifier, "title": record.title}

        def done(outcome: str, **kw: Any) -> dict[str, Any]:
            entry.update(outcome=outcome, **kw)
            entry["finished_at"] = now_iso()
            return entry

        if not record.identifier:
            return done(
                "skipped", reason="no stable identifier (blank node without dct:identifier)"
            )
        if record.not_a_dataset:
            return done("skipped", reason=record.not_a_dataset)
        slug = slug_for(record.identifier)
        entry["slug"] = slug
        try:
            existing = self.gate.load(slug, fresh=True)
            origin = dict(existing.origin or {}) if existing is not None else {}
            ours = bool(origin) and (
                origin.get("kind") == kind
                and origin.get("source") == source
                and origin.get("identifier") == record.identifier
            )
            adopted = (
                existing is not None
                and not origin
                and job.state.pending == {"slug": slug, "identifier": record.identifier}
            )
            if existing is not None and not (ours or adopted):
                whence = (
                    f"harvested from {origin.get('source')} (record {origin.get('identifier')})"
                    if origin
                    else "not harvested (uploaded or created here)"
                )
                return done(
                    "collision", reason=f"dataset {slug!r} exists and was {whence}; left unchanged"
                )
            dist = choose(record)
            if dist is None:
                stated = sorted({d.stated_format or "?" for d in record.distributions})
                why = (
                    f"no tabular distribution (formats: {', '.join(stated)})"
                    if stated
                    else "no distributions"
                )
                return done("skipped", reason=why)
            entry["url"] = dist.url
            if (
                ours
                and record.modified
                and origin.get("modified") == record.modified
                and origin.get("distribution_url") == dist.url
            ):
                return done("unchanged")
            return done(**self._load(job, record, dist, slug, existing, origin))
        except FetchError as exc:
            return done(
                "failed", reason=exc.reason, **({"status": exc.status} if exc.status else {})
            )
        except DatenlaborError as exc:
            return done("failed", reason=str(exc))
        except Exception as exc:  # one broken record must not end the harvest
            return done("failed", reason=f"{type(exc).__name__}: {exc}")

    def _load(
        self,
        job: _Job,
        record: Record,
        dist: Distribution,
        slug: str,
        existing: Dataset | None,
        origin: dict[str, Any],
    ) -> dict[str, Any]:
        """Download, then ingest a new version or refresh the metadata; the outcome fields."""
        state, limits = job.state, job.fetcher.limits
        publisher = job.opts.org or self._publisher(record, job.source)
        meta, notes = to_meta(
            record, publisher=publisher, publisher_name=None, visibility=job.opts.visibility
        )
        extra: dict[str, Any] = {"notes": notes} if notes else {}
        work = Path(
            tempfile.mkdtemp(
                dir=self.pool.root / "staging", prefix=cleanup.work_prefix() + "harvest-"
            )
        )
        try:
            got = job.fetcher.download(dist.url, work / file_name(dist.url, dist.format))
            media = (got.content_type or "").split(";", 1)[0].strip().lower()
            if media in ("text/html", "application/xhtml+xml"):
                raise FetchError(
                    dist.url, f"server sent an HTML page ({media}), not {dist.format} data"
                )
            path, content_sha = got.path, got.sha256
            if dist.format != "xlsx" and is_zip(path):
                path, content_sha = unpack_single(path, work, limits.max_download_bytes)
            new_origin = {
                "kind": job.kind,
                "source": job.source,
                "identifier": record.identifier,
                "landing_page": record.landing_page,
                "distribution_url": dist.url,
                "modified": record.modified,
                "sha256": got.sha256,
                "bytes": got.size,
                "harvested_at": now_iso(),
            }
            latest = existing.versions[-1] if existing is not None and existing.versions else None
            if latest is not None and (
                got.sha256 == origin.get("sha256") or content_sha == latest.source_sha256
            ):
                publishing.update_metadata(self.gate, self.principal, slug, meta)
                self.pool.set_origin(slug, new_origin)
                return {"outcome": "metadata", "version": latest.number, **extra}
            state.pending = {"slug": slug, "identifier": record.identifier}
            job.checkpoint.save(state)
            try:
                info = publishing.ingest(
                    self.gate,
                    self.principal,
                    path,
                    dataset=slug,
                    meta=meta,
                    source_name=path.name,
                    mode="replace",
                )
            except Exception:
                state.pending = None  # a failed ingest committed nothing (a kill keeps it)
                job.checkpoint.save(state)
                raise
            self.pool.set_origin(slug, new_origin)
            state.pending = None
            job.checkpoint.save(state)
            return {
                "outcome": "created" if existing is None else "updated",
                "version": info.version,
                "rows": info.rows,
                **extra,
            }
        finally:
            remove_tree(work)

    # -- organisations ------------------------------------------------------------------
    def _require_org(self, slug: str) -> None:
        with self.pool.store.session() as s:
            if s.scalar(select(Organisation).where(Organisation.slug == slug)) is None:
                raise NotFound(
                    f"no organisation {slug!r}; create it first (datenlabor orgs add {slug} --name …)"
                )

    def _publisher(self, record: Record, source: str) -> str:
        """The record's publisher as an organisation, created on first sight."""
        name = (record.publisher_name or "").strip() or urlsplit(source).netloc or "harvest"
        slug = org_slug(name)
        with self.pool.store.session() as s:
            if s.scalar(select(Organisation).where(Organisation.slug == slug)) is not None:
                return slug
        self.gate.accounts.add_org(slug, name[:300])
        self.gate.audit.log(self.principal, "account", detail={"org": slug, "via": "harvest"})
        return slug
