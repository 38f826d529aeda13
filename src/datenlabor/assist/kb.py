"""Knowledge bases stored as pool datasets, read through the gate.

A knowledge base (KB) ``NAME`` is one or more pool datasets of chunks, one per publisher and
visibility: ``kb__NAME__VISIBILITY`` (no publisher) or ``kb__NAME__VISIBILITY__ORG``. So a
restricted document uploaded for the Sozialamt lands in ``kb__default__restricted__sozialamt``
and visibility, grants (including row filters), versions and the audit log apply to it
exactly as to any dataset: retrieval reads only through :class:`~datenlabor.service.gate.Gate`
with the caller's view, and a document the caller may not see is never retrieved.

Columns of a chunk dataset: ``chunk_id, document, title, heading, para, page, seq, text,
label, terms, sha256, added_at``; ``terms`` are the stemmed words retrieval indexes
(:mod:`datenlabor.assist.retrieval`) and ``sha256`` is the hash of the source file.

Adding documents writes a new version of the partition: unchanged documents (same name and
hash) are skipped, changed ones replace their old chunks. All files are extracted first, so
one unreadable file stops the whole batch before anything is written.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from sqlalchemy import select

from datenlabor.access.policy import require_manage
from datenlabor.access.principal import Principal
from datenlabor.assist.chunking import Chunk, chunk_document
from datenlabor.assist.extract import MAX_BYTES, extract_text
from datenlabor.assist.retrieval import Bm25Index, Hit, IndexCache, query_terms, terms
from datenlabor.errors import BadInput, NotFound
from datenlabor.pool.catalog import VISIBILITIES, DatasetMeta
from datenlabor.service.gate import Gate, Source
from datenlabor.store.models import Organisation

PREFIX = "kb__"
KB_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
KEYWORD = "wissensbasis"
SCHEMA = pa.schema(
    [
        ("chunk_id", pa.string()),
        ("document", pa.string()),
        ("title", pa.string()),
        ("heading", pa.string()),
        ("para", pa.string()),
        ("page", pa.int32()),
        ("seq", pa.int32()),
        ("text", pa.string()),
        ("label", pa.string()),
        ("terms", pa.string()),
        ("sha256", pa.string()),
        ("added_at", pa.timestamp("us", tz="UTC")),
    ]
)
_NEEDED = ("chunk_id", "document", "text", "label", "terms")
# Each entry holds the visible chunks and their index (~2x the text size): a few views of a
# large KB fit, and callers of one organisation share theirs.
_cache = IndexCache(size=4)


@dataclass
class AddedDocument:
    document: str
    sha256: str
    chunks: int
    status: str  # added | replaced | unchanged
    dataset: str
    version: int | None


@dataclass
class Passage:
    """One retrieved chunk, with where it comes from."""

    chunk_id: str
    document: str
    title: str | None
    heading: str | None
    para: str | None
    page: int | None
    text: str
    label: str
    score: float
    dataset: str
    version: int
    sha256: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def check_kb_name(kb: str) -> str:
    if not KB_NAME.match(kb or ""):
        raise BadInput(
            f"invalid knowledge base name {kb!r}: 1-40 lower-case letters, digits or '-', "
            "starting with a letter",
            column="kb",
        )
    return kb


def partition_slug(kb: str, visibility: str, org: str | None) -> str:
    check_kb_name(kb)
    if visibility not in VISIBILITIES:
        raise BadInput(
            f"unknown visibility {visibility!r}; choose one of {', '.join(VISIBILITIES)}",
            column="visibility",
        )
    if org is not None and (not re.fullmatch(r"[a-z0-9][a-z0-9-]*", org)):
        raise BadInput(f"organisation {org!r} cannot name a knowledge base partition", column="org")
    slug = f"{PREFIX}{kb}__{visibility}" + (f"__{org}" if org else "")
    if len(slug) > 100:
        raise BadInput("knowledge base and organisation names are too long together", column="kb")
    return slug


def parse_slug(slug: str) -> tuple[str, str, str | None] | None:
    """(kb, visibility, org) of a partition dataset, None for other datasets."""
    if not slug.startswith(PREFIX):
        return None
    parts = slug[len(PREFIX) :].split("__")
    if len(parts) not in (2, 3) or parts[1] not in VISIBILITIES:
        return None
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


# -- writing --------------------------------------------------------------------------------
def add_documents(
    gate: Gate,
    p: Principal,
    files: Sequence[tuple[str, Path | bytes]],
    *,
    kb: str = "default",
    visibility: str = "internal",
    org: str | None = None,
    client: str | None = None,
) -> list[AddedDocument]:
    """Add (or replace) documents given as ``(file name, path or bytes)``."""
    if not files:
        raise BadInput("no documents given")
    org = org if org is not None else (None if p.is_admin else p.organisation)
    if org is None and not p.is_admin:
        raise BadInput("say which organisation publishes the documents", column="org")
    slug = partition_slug(kb, visibility, org)
    existing = gate.load(slug, fresh=True)
    if existing is not None and existing.versions:
        require_manage(p, existing)
    else:
        require_manage(p, None, _org_id(gate, org) if org else None)
    names = [Path(name).name for name, _ in files]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BadInput(f"the same document name twice in one upload: {', '.join(dupes)}")
    # 1. read everything first: one bad file stops the batch before anything is written
    prepared: list[tuple[str, str, list[Chunk]]] = []
    for (name, content), doc in zip(files, names, strict=True):
        data = content if isinstance(content, bytes) else _read(content, name)
        digest = hashlib.sha256(data).hexdigest()
        chunks = chunk_document(extract_text(data, doc), doc)
        prepared.append((doc, digest, chunks))
    # 2. merge with the current version of the partition
    old = _current_rows(gate, p, slug) if existing is not None and existing.versions else None
    old_hash: dict[str, str] = {}
    if old is not None:
        for d, h in zip(
            old.column("document").to_pylist(), old.column("sha256").to_pylist(), strict=True
        ):
            old_hash[d] = h
    results: list[AddedDocument] = []
    changed: list[tuple[str, str, list[Chunk]]] = []
    for doc, digest, chunks in prepared:
        if old_hash.get(doc) == digest:
            results.append(AddedDocument(doc, digest, len(chunks), "unchanged", slug, None))
        else:
            status = "replaced" if doc in old_hash else "added"
            results.append(AddedDocument(doc, digest, len(chunks), status, slug, None))
            changed.append((doc, digest, chunks))
    if not changed:
        return results
    now = datetime.now(UTC)
    new_rows = [
        {
            **c.row(),
            "terms": " ".join(terms(f"{c.heading or ''}\n{c.text}")),
            "sha256": digest,
            "added_at": now,
        }
        for doc, digest, chunks in changed
        for c in chunks
    ]
    table = pa.Table.from_pylist(new_rows, schema=SCHEMA)
    if old is not None:
        replaced = pa.array([doc for doc, _, _ in changed])
        keep = pc.invert(pc.is_in(old.column("document"), value_set=replaced))
        table = pa.concat_tables([old.filter(keep).select(SCHEMA.names).cast(SCHEMA), table])
    version = _write(
        gate,
        p,
        slug,
        table,
        kb=kb,
        visibility=visibility,
        org=org,
        client=client,
        docs=[d for d, _, _ in changed],
    )
    for r in results:
        if r.status != "unchanged":
            r.version = version
    return results


def _read(path: Path, name: str) -> bytes:
    try:
        if Path(path).stat().st_size > MAX_BYTES:  # refuse before reading it into memory
            raise BadInput(f"document larger than {MAX_BYTES // 1024**2} MB", file=name)
        return Path(path).read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read the document: {exc.strerror or exc}", file=name) from exc


def _org_id(gate: Gate, slug: str) -> int:
    with gate.pool.store.session() as s:
        org = s.scalar(select(Organisation).where(Organisation.slug == slug))
        if org is None:
            raise NotFound(f"no organisation {slug!r}")
        return org.id


def _current_rows(gate: Gate, p: Principal, slug: str) -> pa.Table:
    src = gate.source(p, slug)  # whoever may manage the partition sees it whole
    return pads.dataset(src.files, schema=src.raw_schema, format="parquet").to_table()


def _write(
    gate: Gate,
    p: Principal,
    slug: str,
    table: pa.Table,
    *,
    kb: str,
    visibility: str,
    org: str | None,
    client: str | None,
    docs: list[str],
) -> int:
    pool = gate.pool
    work = Path(tempfile.mkdtemp(dir=pool.root / "tmp", prefix="kb-"))
    try:
        path = work / f"{slug}.parquet"
        pq.write_table(table, path)
        meta = DatasetMeta(
            title=f"Wissensbasis {kb} ({visibility}{', ' + org if org else ''})",
            description="Abschnitte von Dokumenten für Antwortentwürfe (datenlabor assist kb)",
            publisher=org,
            keywords=[KEYWORD, f"kb:{kb}"],
            visibility=visibility,
        )
        try:
            info = pool.ingest(
                path, dataset=slug, mode="replace", format="parquet", meta=meta, user=p.label()
            )
        except Exception as exc:
            gate.forget(slug)
            gate.audit.log(
                p,
                "upload",
                outcome="failed",
                client=client,
                detail={"dataset": slug, "documents": docs, "error": str(exc)[:500]},
            )
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    gate.forget(slug)
    gate.audit.log(
        p,
        "upload",
        datasets={slug: info.version},
        publishers={slug: org},
        rows=info.rows,
        detail={"documents": docs, "kb": kb},
        client=client,
    )
    return info.version


# -- reading --------------------------------------------------------------------------------
def visible_partitions(gate: Gate, p: Principal, kb: str) -> list[Source]:
    """The caller's view of every partition of ``kb`` (the latest versions)."""
    check_kb_name(kb)
    out = []
    for d, _view in gate.visible(p):
        parsed = parse_slug(d.slug)
        if parsed is None or parsed[0] != kb:
            continue
        src = gate.source(p, d.slug)
        if src.disclosure is not None or any(c not in src.schema.names for c in _NEEDED):
            continue  # a protected aggregate or hidden text columns: nothing to cite
        out.append(src)
    return out


def list_documents(gate: Gate, p: Principal, kb: str = "default") -> list[dict[str, Any]]:
    """Documents of ``kb`` the caller may see, with their partition and chunk counts."""
    out: list[dict[str, Any]] = []
    for src in visible_partitions(gate, p, kb):
        vis = parse_slug(src.slug)
        cols = set(src.schema.names)
        pick = ", ".join(
            f"any_value({c}) AS {c}" if c in cols else f"NULL AS {c}"
            for c in ("title", "sha256", "added_at")
        )
        with gate.connection() as con:
            gate.register(con, "kb_chunks", src)
            rows = con.execute(
                f"SELECT document, count(*) AS chunks, {pick} FROM kb_chunks GROUP BY document"
            ).fetchall()
        for document, chunks, title, sha, added in rows:
            out.append(
                {
                    "document": document,
                    "title": title,
                    "chunks": chunks,
                    "sha256": sha,
                    "added_at": added,
                    "dataset": src.slug,
                    "version": src.version,
                    "visibility": vis[1] if vis else None,
                    "org": vis[2] if vis else None,
                }
            )
    return sorted(out, key=lambda r: (r["document"], r["dataset"]))


def _index(gate: Gate, p: Principal, kb: str) -> tuple[pa.Table, Bm25Index, list[Source]]:
    """The index over what the caller may see of ``kb``, shared by callers with the same view."""
    sources = visible_partitions(gate, p, kb)
    # The Parquet files name the exact data (pool and version); the view what of it is seen.
    key = tuple(
        (tuple(s.files), s.view.row_predicate(), tuple(sorted(s.view.hidden_columns)))
        for s in sources
    )

    def build() -> tuple[pa.Table, Bm25Index]:
        tables = []
        for src, table in _tables_for(gate, sources):
            cols = {
                name: table.column(name)
                if name in table.column_names
                else pa.nulls(len(table), SCHEMA.field(name).type)
                for name in SCHEMA.names
            }
            t = pa.table(cols, schema=SCHEMA)
            t = t.append_column("dataset", pa.array([src.slug] * len(t), pa.string()))
            t = t.append_column("version", pa.array([src.version] * len(t), pa.int32()))
            tables.append(t)
        if tables:
            table = pa.concat_tables(tables)
        else:
            table = (
                SCHEMA.empty_table()
                .append_column("dataset", pa.array([], pa.string()))
                .append_column("version", pa.array([], pa.int32()))
            )
        index = Bm25Index(table.column("terms"))
        return table.drop_columns(["terms"]), index  # the stems live on in the index

    hit = _cache.get_or_build(key, build)
    return hit[0], hit[1], sources


def _tables_for(gate: Gate, sources: list[Source]) -> list[tuple[Source, pa.Table]]:
    out = []
    for src in sources:
        with gate.connection() as con:
            gate.register(con, "kb_chunks", src)
            out.append((src, con.execute("SELECT * FROM kb_chunks").to_arrow_table()))
    return out


def retrieve(
    gate: Gate,
    p: Principal,
    question: str,
    *,
    kb: str = "default",
    k: int = 5,
    audit: bool = True,
    client: str | None = None,
) -> list[Passage]:
    """The ``k`` chunks of ``kb`` most relevant to ``question`` that the caller may see."""
    table, index, sources = _index(gate, p, kb)
    hits: list[Hit] = index.search(query_terms(question), k)
    rows = table.take(pa.array([h.row for h in hits], pa.int64())).to_pylist() if hits else []
    passages = [
        Passage(
            chunk_id=r["chunk_id"],
            document=r["document"],
            title=r["title"],
            heading=r["heading"],
            para=r["para"],
            page=r["page"],
            text=r["text"],
            label=r["label"] or r["document"],
            score=round(h.score, 4),
            dataset=r["dataset"],
            version=r["version"],
            sha256=r["sha256"],
        )
        for h, r in zip(hits, rows, strict=True)
    ]
    if audit and sources:
        used = {ps.dataset for ps in passages}
        gate.record(
            p,
            "assist-retrieve",
            [s for s in sources if s.slug in used] or sources,
            client=client,
            rows=len(passages),
        )
    return passages
