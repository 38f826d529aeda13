"""GENESIS tables as datasets: import, incremental refresh, catalogue metadata, provenance.

The table file is parsed by the existing GENESIS readers (``format="genesis"``), so the
dataset looks exactly like an uploaded GENESIS export. Catalogue metadata comes from
``metadata/table``: title, description, publisher (the statistical office), licence
dl-de/by-2-0, temporal coverage (``Time.From``/``Time.To``), keywords (statistic and
variables), an EU data theme derived from the statistic's EVAS code, and the Länder the
data covers (from the AGS codes in the rows). Provenance is stored with
:meth:`Pool.set_origin`.

Refresh asks the metadata first: an unchanged ``Updated`` stamp ends the check without a
download; otherwise the table is downloaded and a new version is only made when its
SHA-256 differs from the current version's source file.
"""

from __future__ import annotations

import calendar
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from datenlabor.errors import BadInput, DatenlaborError
from datenlabor.interop.genesis_ws import DATABASES, GenesisClient, check_table_code
from datenlabor.pool import ags
from datenlabor.pool import cleanup as leftovers
from datenlabor.pool.catalog import DatasetMeta, check_slug
from datenlabor.pool.pool import Pool

LICENCE = "dl-de/by-2-0"
SEMANTIC = "datenlabor:semantic"

# EVAS subject areas (first two digits of the statistic code) -> EU data theme.
_THEMES = {
    "11": "REGI", "12": "SOCI", "13": "ECON", "14": "GOVE", "21": "EDUC", "22": "SOCI",
    "23": "HEAL", "24": "JUST", "31": "REGI", "32": "ENVI", "33": "REGI", "41": "AGRI",
    "42": "ECON", "43": "ENER", "44": "ECON", "45": "ECON", "46": "TRAN", "47": "ECON",
    "48": "ECON", "51": "ECON", "52": "ECON", "61": "ECON", "62": "ECON", "63": "SOCI",
    "71": "GOVE", "73": "GOVE", "74": "GOVE", "81": "ECON", "82": "ECON", "85": "ENVI",
    "86": "ENVI", "91": "INTR",
}  # fmt: skip
_STAMP_FORMATS = ("%d.%m.%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%d.%m.%Y", "%Y-%m-%d")


@dataclass
class TableMeta:
    """What ``metadata/table`` says about a table, in our terms."""

    code: str
    title: str
    statistic_code: str | None
    statistic_label: str | None
    time_from: str | None
    time_to: str | None
    updated: str | None  # the service's stamp, as sent (compared on refresh)
    copyright: str | None
    variables: list[tuple[str, str]] = field(default_factory=list)  # (code, label)

    @classmethod
    def of(cls, obj: dict[str, Any]) -> TableMeta:
        structure = obj.get("Structure") or {}
        head = structure.get("Head") or {}
        variables: list[tuple[str, str]] = []

        def walk(node: Any) -> None:
            if isinstance(node, list):
                for item in node:
                    walk(item)
            elif isinstance(node, dict):
                if node.get("Code") and node.get("Content") and node is not head:
                    pair = (str(node["Code"]), _one_line(str(node["Content"])))
                    if pair not in variables:
                        variables.append(pair)
                walk(node.get("Structure"))

        walk(head.get("Structure"))
        for part in ("Columns", "Rows", "Subtitel", "Subheading"):
            walk(structure.get(part))
        time_ = obj.get("Time") or {}
        return cls(
            code=str(obj.get("Code") or ""),
            title=_one_line(str(obj.get("Content") or "")) or str(obj.get("Code") or ""),
            statistic_code=str(head["Code"]) if head.get("Code") else None,
            statistic_label=_one_line(str(head["Content"])) if head.get("Content") else None,
            time_from=_text_or_none(time_.get("From")),
            time_to=_text_or_none(time_.get("To")),
            updated=_text_or_none(obj.get("Updated")),
            copyright=_one_line(str(obj["Copyright"])) if obj.get("Copyright") else None,
            variables=variables,
        )

    @property
    def updated_at(self) -> datetime | None:
        """The update stamp as a datetime ("12.03.2025 13:38:55h", "2025-03-31 11:18:07h")."""
        raw = (self.updated or "").strip().rstrip("h").strip()
        for fmt in _STAMP_FORMATS:
            try:
                return datetime.strptime(raw, fmt)
            except ValueError:
                continue
        return None


@dataclass
class Outcome:
    """What an import or refresh of one dataset did."""

    dataset: str
    table: str
    database: str
    action: str  # "created", "new-version", "unchanged", "failed"
    version: int | None = None
    rows: int | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def default_slug(code: str) -> str:
    """``12411-01-01-4`` -> ``genesis-12411-01-01-4`` (a valid dataset name)."""
    return check_slug("genesis-" + re.sub(r"[^a-z0-9-]+", "-", code.lower()).strip("-"))


def dataset_meta(
    meta: TableMeta,
    database: str,
    *,
    publisher: str | None = None,
    visibility: str | None = None,
    full: bool = True,
) -> DatasetMeta:
    """Catalogue metadata from the table's metadata (``full=False``: only what the source
    owns and may change: description and temporal coverage)."""
    _prefix, label, org_slug, org_name = DATABASES[database]
    lines = [f"{meta.title}."]
    if meta.statistic_label:
        lines.append(f"Statistik {meta.statistic_code}: {meta.statistic_label}.")
    stand = f", Stand {meta.updated}" if meta.updated else ""
    lines.append(f"Tabelle {meta.code} aus {label}{stand}.")
    if meta.copyright:
        lines.append(meta.copyright)
    start, end = _coverage(meta.time_from, start=True), _coverage(meta.time_to, start=False)
    if start and end and start > end:
        start = end = None
    out = DatasetMeta(description="\n".join(lines), temporal_start=start, temporal_end=end)
    out.visibility = visibility  # given explicitly: applied on every import
    if publisher:
        out.publisher = publisher
    if not full:
        return out
    keywords = [meta.code]
    if meta.statistic_label:
        keywords.append(meta.statistic_label)
    keywords += [lbl for _code, lbl in meta.variables if lbl and lbl not in keywords]
    theme = _THEMES.get((meta.statistic_code or "")[:2])
    out.title = meta.title[:500]
    out.keywords = keywords[:20]
    out.themes = [theme] if theme else None
    out.licence = LICENCE
    if not publisher:
        out.publisher, out.publisher_name = org_slug, org_name
    return out


def import_table(
    pool: Pool,
    code: str,
    *,
    dataset: str | None = None,
    database: str | None = None,
    fmt: str = "ffcsv",
    publisher: str | None = None,
    visibility: str | None = None,
    client: GenesisClient | None = None,
) -> Outcome:
    """Import table ``code`` as a new dataset, or as a new version of ``dataset``.

    A dataset that already mirrors this table gets a new version only if the content changed.
    """
    code = check_table_code(code)
    slug = check_slug(dataset) if dataset else default_slug(code)
    own = client is None
    gc = client or GenesisClient(pool.settings, database)
    try:
        existing = _current(pool, slug)
        if existing is not None:
            origin = pool.origin(slug) or {}
            if origin.get("kind") != "genesis" or origin.get("table") != code:
                source = origin.get("table") or origin.get("source") or "an upload"
                raise BadInput(
                    f"dataset {slug!r} exists and holds {source}, not GENESIS table {code}; "
                    "choose another --dataset",
                    column="dataset",
                )
        gc.logincheck()
        meta = TableMeta.of(gc.table_metadata(code))
        return _fetch(
            pool,
            gc,
            slug,
            meta,
            fmt,
            publisher=publisher,
            visibility=visibility,
            full_meta=existing is None,
        )
    finally:
        if own:
            gc.close()


def refresh(
    pool: Pool, slugs: list[str] | None = None, *, clients: dict[str, GenesisClient] | None = None
) -> list[Outcome]:
    """Refresh the named GENESIS datasets (all of them when ``slugs`` is empty).

    A failure of one dataset is reported in its outcome; the others still run.
    """
    targets: list[tuple[str, dict[str, Any]]] = []
    if slugs:
        for slug in slugs:
            origin = pool.origin(slug)
            if not origin or origin.get("kind") != "genesis":
                raise BadInput(f"dataset {slug!r} was not imported from GENESIS", column="dataset")
            targets.append((slug, origin))
    else:
        for info in pool.datasets():
            origin = pool.origin(info.slug)
            if origin and origin.get("kind") == "genesis":
                targets.append((info.slug, origin))
    opened: dict[str, GenesisClient] = dict(clients or {})
    own = [db for db in DATABASES if db not in opened]
    outcomes: list[Outcome] = []
    try:
        checked: set[str] = set()
        for slug, origin in targets:
            db = str(origin.get("database") or pool.settings.genesis_database)
            code = str(origin.get("table"))
            try:
                gc = opened.get(db)
                if gc is None:
                    gc = opened[db] = GenesisClient(pool.settings, db)
                if db not in checked:
                    gc.logincheck()
                    checked.add(db)
                meta = TableMeta.of(gc.table_metadata(code))
                if meta.updated and meta.updated == origin.get("updated"):
                    current = _current(pool, slug)
                    outcomes.append(
                        Outcome(
                            slug, code, db, "unchanged", current, message="update stamp unchanged"
                        )
                    )
                    continue
                fmt = str(origin.get("format") or "ffcsv")
                outcomes.append(_fetch(pool, gc, slug, meta, fmt, full_meta=False))
            except DatenlaborError as exc:
                outcomes.append(Outcome(slug, code, db, "failed", message=str(exc)))
    finally:
        for db in own:
            if db in opened:
                opened[db].close()
    return outcomes


def _fetch(
    pool: Pool,
    gc: GenesisClient,
    slug: str,
    meta: TableMeta,
    fmt: str,
    *,
    publisher: str | None = None,
    visibility: str | None = None,
    full_meta: bool,
) -> Outcome:
    """Download, compare with the current version, ingest if new, record the origin."""
    leftovers.remove_dead_work(pool.root)
    work = Path(tempfile.mkdtemp(dir=pool.root / "tmp", prefix=leftovers.work_prefix()))
    try:
        download = gc.tablefile(meta.code, work, fmt=fmt)
        from datenlabor.pool.ingest.source import scan

        digest = scan(download.path, text=False).sha256
        latest = _latest_sha(pool, slug)
        origin = {
            "kind": "genesis",
            "database": gc.database,
            "url": gc.base_url,
            "table": meta.code,
            "format": fmt,
            "statistic": meta.statistic_code,
            "updated": meta.updated,
            "updated_at": meta.updated_at.isoformat() if meta.updated_at else None,
            "sha256": digest,
            "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if download.job:
            origin["job"] = download.job
        if latest is not None and latest[1] == digest:
            pool.set_origin(slug, origin)  # the stamp moved on, the content did not
            return Outcome(
                slug, meta.code, gc.database, "unchanged", latest[0], message="content unchanged"
            )
        catalogue = dataset_meta(
            meta, gc.database, publisher=publisher, visibility=visibility, full=full_meta
        )
        version = pool.ingest(download.path, dataset=slug, format="genesis", meta=catalogue)
        pool.set_origin(slug, origin)
        spatial = _covered_laender(pool, slug, version.schema)
        if spatial:
            pool.update_metadata(slug, DatasetMeta(spatial=spatial))
        action = "created" if latest is None else "new-version"
        return Outcome(slug, meta.code, gc.database, action, version.version, version.rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _current(pool: Pool, slug: str) -> int | None:
    for info in pool.datasets():
        if info.slug == slug:
            return info.current_version
    return None


def _latest_sha(pool: Pool, slug: str) -> tuple[int, str | None] | None:
    """(number, source SHA-256) of the dataset's current version, None for a new dataset."""
    if _current(pool, slug) is None:
        return None
    v = pool.dataset(slug).version()
    return v.version, v.source_sha256


def _covered_laender(pool: Pool, slug: str, schema: dict[str, Any]) -> list[str]:
    """The Länder (2-digit keys) whose AGS keys occur in the rows' regional code columns."""
    columns = [f["name"] for f in schema.get("fields", []) if f.get(SEMANTIC) in ("ags", "ars")]
    found: set[str] = set()
    for col in columns:
        ident = '"' + col.replace('"', '""') + '"'
        rows = pool.query(
            f'SELECT DISTINCT left(trim({ident}), 2) AS land FROM "{slug}" '
            f"WHERE regexp_full_match(trim({ident}), '[0-9]{{2,12}}')"
        ).to_pylist()
        found |= {r["land"] for r in rows if r["land"]}
    return sorted(k for k in found if ags.is_known(k))


def _coverage(value: str | None, *, start: bool) -> date | None:
    """A GENESIS time value as a date: "2022", "2022-03", "31.12.1995", "1995-12-31"."""
    text = (value or "").strip()
    try:
        if re.fullmatch(r"\d{4}", text):
            return date(int(text), 1, 1) if start else date(int(text), 12, 31)
        if m := re.fullmatch(r"(\d{4})-(\d{2})", text):
            y, mo = int(m.group(1)), int(m.group(2))
            return date(y, mo, 1 if start else calendar.monthrange(y, mo)[1])
        if m := re.fullmatch(r"(\d{2})\.(\d{2})\.(\d{4})", text):
            return date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return date.fromisoformat(text)
    except ValueError:
        return None
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _text_or_none(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None
