"""A read-only subset of CKAN's Action API over Datenlabor's catalogue and data.

CKAN tools (ckanapi, harvesters, portals) read datasets as CKAN "packages". This module maps
Datenlabor's datasets to CKAN's package shape and implements the read actions; the web layer
(``datenlabor.web.ckan_routes``) only parses requests and wraps answers in CKAN's envelope.

Mapping:

- package ``name`` and ``id`` are the dataset slug; ``organization`` is the publisher.
- ``groups`` are the EU data themes (``SOCI`` -> group ``soci``); ``tags`` are the keywords.
- resources are the download formats of the current version, ``id`` ``{slug}-{format}``.
- the DataStore is the dataset itself: ``datastore_search`` accepts the slug or a resource id.

Permissions: every action sees only what :class:`~datenlabor.service.gate.Gate` lets the caller
see. ``datastore_search`` reads the caller's :class:`~datenlabor.service.gate.Source` (hidden
columns removed, row filters applied) exactly as ``Gate.rows`` does, and audits the read;
``datastore_search_sql`` is ``Gate.sql`` (sandbox, grants, roles, audit).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa

from datenlabor.access.policy import DatasetView
from datenlabor.access.principal import Principal
from datenlabor.errors import BadInput, NotFound
from datenlabor.interop.dcat import FORMATS, geocoding
from datenlabor.query.connection import quote_ident
from datenlabor.service.catalogue import search
from datenlabor.service.gate import DOWNLOAD_FORMATS, Gate
from datenlabor.store.models import Dataset

MAX_ROWS = 1000  # package_search rows, as CKAN's default search.rows_max
DATASTORE_DEFAULT_LIMIT = 100
DATASTORE_MAX_LIMIT = 10_000

#: German labels of the EU data themes (the CKAN groups).
THEME_LABELS = {
    "AGRI": "Landwirtschaft, Fischerei, Forstwirtschaft und Nahrungsmittel",
    "ECON": "Wirtschaft und Finanzen",
    "EDUC": "Bildung, Kultur und Sport",
    "ENER": "Energie",
    "ENVI": "Umwelt",
    "GOVE": "Regierung und öffentlicher Sektor",
    "HEAL": "Gesundheit",
    "INTR": "Internationale Themen",
    "JUST": "Justiz, Rechtssystem und öffentliche Sicherheit",
    "OP_DATPRO": "Vorläufige Daten",
    "REGI": "Regionen und Städte",
    "SOCI": "Bevölkerung und Gesellschaft",
    "TECH": "Wissenschaft und Technologie",
    "TRAN": "Verkehr",
}

SEARCH_FIELDS = ("organization", "tags", "res_format", "groups", "license_id", "name")


class Context:
    """What an action needs besides its parameters."""

    def __init__(
        self, gate: Gate, principal: Principal, base_url: str, *, client: str | None = None
    ) -> None:
        self.gate = gate
        self.principal = principal
        self.base_url = base_url.rstrip("/")
        self.client = client


# -- parameters ------------------------------------------------------------------------------
def _int(params: Mapping[str, Any], name: str, default: int, lo: int, hi: int | None) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise BadInput(f"{name} must be an integer, not {raw!r}", column=name) from None
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise BadInput(f"{name} must be {bound}", column=name)
    return value


def _bool(params: Mapping[str, Any], name: str, default: bool = False) -> bool:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        return raw
    return str(raw).strip().lower() in ("true", "1", "yes", "on")


def _json_param(params: Mapping[str, Any], name: str) -> Any:
    """A structured parameter: as sent in a JSON body, or JSON text in a query string."""
    raw = params.get(name)
    if isinstance(raw, str):
        text = raw.strip()
        if text[:1] in ("{", "["):
            try:
                return json.loads(text)
            except ValueError:
                raise BadInput(f"{name} is not valid JSON", column=name) from None
    return raw


def _str_list(params: Mapping[str, Any], name: str) -> list[str]:
    value = _json_param(params, name)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise BadInput(f"{name} must be a list of strings", column=name)


def _id(params: Mapping[str, Any], name: str = "id") -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadInput("Missing value", column=name)
    return value.strip()


# -- shapes ----------------------------------------------------------------------------------
def _ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    # CKAN writes naive UTC timestamps.
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat()


def org_dict(slug: str, name: str, *, package_count: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": slug,
        "name": slug,
        "title": name,
        "display_name": name,
        "description": "",
        "image_url": "",
        "type": "organization",
        "is_organization": True,
        "state": "active",
        "approval_status": "approved",
    }
    if package_count is not None:
        out["package_count"] = package_count
    return out


def group_dict(code: str, *, package_count: int | None = None) -> dict[str, Any]:
    title = THEME_LABELS.get(code, code)
    out: dict[str, Any] = {
        "id": code.lower(),
        "name": code.lower(),
        "title": title,
        "display_name": title,
        "description": "",
        "image_display_url": "",
        "type": "group",
        "is_organization": False,
        "state": "active",
        "approval_status": "approved",
    }
    if package_count is not None:
        out["package_count"] = package_count
    return out


def tag_dict(name: str) -> dict[str, Any]:
    return {
        "id": name,
        "name": name,
        "display_name": name,
        "state": "active",
        "vocabulary_id": None,
    }


def resource_dict(d: Dataset, fmt: str, position: int, base_url: str) -> dict[str, Any]:
    code, media = FORMATS[fmt]
    latest = d.versions[-1]
    return {
        "id": f"{d.slug}-{fmt}",
        "package_id": d.slug,
        "name": f"{d.title or d.slug} ({code})",
        "description": f"Version {latest.number} als {code}",
        "format": code,
        "mimetype": media,
        "url": f"{base_url}/api/v1/datasets/{d.slug}/download?format={fmt}",
        "url_type": None,
        "position": position,
        "state": "active",
        "created": _ts(latest.created_at),
        "last_modified": _ts(latest.created_at),
        "datastore_active": True,
        "size": None,
        "hash": "",
    }


def package_dict(d: Dataset, view: DatasetView, base_url: str) -> dict[str, Any]:
    latest = d.versions[-1]
    org = org_dict(d.publisher.slug, d.publisher.name) if d.publisher else None
    tags = [tag_dict(k) for k in d.keywords]
    resources = [resource_dict(d, f, i, base_url) for i, f in enumerate(DOWNLOAD_FORMATS)]
    extras = [{"key": "datenlabor_version", "value": str(latest.number)}]
    geo = [str(found[1]) for k in d.spatial if (found := geocoding(k)) is not None]
    if geo:
        extras.append({"key": "politicalGeocodingURI", "value": json.dumps(geo)})
    if d.spatial:
        extras.append({"key": "spatial_keys", "value": ",".join(d.spatial)})
    if d.temporal_start:
        extras.append({"key": "temporal_start", "value": d.temporal_start.isoformat()})
    if d.temporal_end:
        extras.append({"key": "temporal_end", "value": d.temporal_end.isoformat()})
    if not view.whole:
        extras.append({"key": "datenlabor_partial", "value": "true"})
    contact = d.contact_point or None
    return {
        "id": d.slug,
        "name": d.slug,
        "title": d.title or d.slug,
        "notes": d.description,
        "url": f"{base_url}/datasets/{d.slug}",
        "type": "dataset",
        "state": "active",
        "private": d.visibility != "public",
        "version": str(latest.number),
        "license_id": d.licence,
        "license_title": d.licence,
        "author": d.publisher.name if d.publisher else None,
        "author_email": None,
        "maintainer": d.publisher.name if d.publisher else None,
        "maintainer_email": contact if contact and "@" in contact else None,
        "metadata_created": _ts(d.created_at),
        "metadata_modified": _ts(d.updated_at),
        "owner_org": d.publisher.slug if d.publisher else None,
        "organization": org,
        "tags": tags,
        "num_tags": len(tags),
        "groups": [group_dict(t) for t in d.themes],
        "resources": resources,
        "num_resources": len(resources),
        "extras": extras,
        "relationships_as_object": [],
        "relationships_as_subject": [],
    }


def _facets(pkg: Mapping[str, Any]) -> dict[str, list[str]]:
    org = pkg["organization"]
    return {
        "organization": [org["name"]] if org else [],
        "tags": [t["name"] for t in pkg["tags"]],
        "res_format": [r["format"] for r in pkg["resources"]],
        "groups": [g["name"] for g in pkg["groups"]],
        "license_id": [pkg["license_id"]] if pkg["license_id"] else [],
        "name": [pkg["name"]],
    }


# -- catalogue actions -----------------------------------------------------------------------
def package_list(ctx: Context, params: Mapping[str, Any]) -> list[str]:
    names = [d.slug for d, _view in ctx.gate.visible(ctx.principal)]
    offset = _int(params, "offset", 0, 0, None)
    limit = _int(params, "limit", len(names), 0, None)
    return names[offset : offset + limit]


def package_show(ctx: Context, params: Mapping[str, Any]) -> dict[str, Any]:
    d, view = ctx.gate.dataset(ctx.principal, _id(params))
    return package_dict(d, view, ctx.base_url)


_FQ_CLAUSE = re.compile(r'([+-]?)([A-Za-z_]+):("(?:[^"\\]|\\.)*"|\S+)')


def _parse_fq(fq: str) -> list[tuple[bool, str, str]]:
    """Simple field queries: ``organization:x tags:"a b" -res_format:CSV`` (AND of clauses)."""
    clauses = []
    rest = _FQ_CLAUSE.sub("", fq).replace("AND", "").strip()
    if rest:
        raise BadInput(f"fq supports field:value clauses only, not {rest!r}", column="fq")
    for sign, name, value in _FQ_CLAUSE.findall(fq):
        if name not in SEARCH_FIELDS:
            raise BadInput(
                f"fq field {name!r} is not supported; use {', '.join(SEARCH_FIELDS)}",
                column="fq",
            )
        if value.startswith('"'):
            value = value[1:-1].replace('\\"', '"')
        clauses.append((sign == "-", name, value))
    return clauses


def _matches(values: list[str], name: str, wanted: str) -> bool:
    if name in ("res_format", "groups"):  # CKAN's formats and our theme codes: any case
        return wanted.casefold() in (v.casefold() for v in values)
    return wanted in values


_SORT_KEYS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "metadata_modified": lambda p: p["metadata_modified"] or "",
    "metadata_created": lambda p: p["metadata_created"] or "",
    "title_string": lambda p: p["title"].casefold(),
    "title": lambda p: p["title"].casefold(),
    "name": lambda p: p["name"],
}


def _sort_packages(pkgs: list[dict[str, Any]], sort: str) -> list[dict[str, Any]]:
    parts = [s.split() for s in sort.split(",") if s.strip()]
    for part in reversed(parts):  # stable sorts, last key first
        key = part[0]
        direction = part[1].lower() if len(part) > 1 else "asc"
        if len(part) > 2 or direction not in ("asc", "desc"):
            raise BadInput(f"cannot sort by {' '.join(part)!r}", column="sort")
        if key == "score":  # no relevance ranking: the text filter keeps the order
            continue
        if key not in _SORT_KEYS:
            raise BadInput(
                f"cannot sort by {key!r}; use {', '.join(_SORT_KEYS)} with asc or desc",
                column="sort",
            )
        pkgs.sort(key=_SORT_KEYS[key], reverse=direction == "desc")
    return pkgs


def package_search(ctx: Context, params: Mapping[str, Any]) -> dict[str, Any]:
    q = str(params.get("q") or "").strip()
    if q in ("*:*", "*"):
        q = ""
    rows = _int(params, "rows", 10, 0, MAX_ROWS)
    start = _int(params, "start", 0, 0, None)
    sort = str(params.get("sort") or "score desc, metadata_modified desc")
    fq = params.get("fq") or ""
    if not isinstance(fq, str):
        raise BadInput("fq must be a string", column="fq")
    clauses = _parse_fq(fq)
    facet_fields = _str_list(params, "facet.field") or _str_list(params, "facet_field")
    for name in facet_fields:
        if name not in SEARCH_FIELDS:
            raise BadInput(
                f"facet field {name!r} is not supported; use {', '.join(SEARCH_FIELDS)}",
                column="facet.field",
            )
    facet_limit = _int(params, "facet.limit", 50, -1, None)

    # Text search through the catalogue (same word matching as the web UI).
    found = {h.info.slug for h in search(ctx.gate, ctx.principal, q).hits}
    pkgs = []
    for d, view in ctx.gate.visible(ctx.principal):
        if d.slug not in found:
            continue
        pkg = package_dict(d, view, ctx.base_url)
        values = _facets(pkg)
        if all(_matches(values[n], n, v) != neg for neg, n, v in clauses):
            pkgs.append(pkg)
    pkgs = _sort_packages(pkgs, sort)

    facets: dict[str, dict[str, int]] = {}
    search_facets: dict[str, Any] = {}
    for name in facet_fields:
        counts: Counter[str] = Counter()
        for pkg in pkgs:
            counts.update(set(_facets(pkg)[name]))
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        if facet_limit >= 0:
            ordered = ordered[:facet_limit]
        facets[name] = dict(ordered)
        titles = _facet_titles(name, pkgs)
        search_facets[name] = {
            "title": name,
            "items": [
                {"name": v, "display_name": titles.get(v, v), "count": c} for v, c in ordered
            ],
        }
    return {
        "count": len(pkgs),
        "sort": sort,
        "facets": facets,
        "search_facets": search_facets,
        "results": pkgs[start : start + rows],
    }


def _facet_titles(name: str, pkgs: list[dict[str, Any]]) -> dict[str, str]:
    if name == "organization":
        return {
            p["organization"]["name"]: p["organization"]["title"] for p in pkgs if p["organization"]
        }
    if name == "groups":
        return {g["name"]: g["title"] for p in pkgs for g in p["groups"]}
    return {}


def _visible_orgs(ctx: Context) -> dict[str, tuple[str, int]]:
    """Organisation slug -> (name, visible datasets). Anonymous callers see publishers only."""
    counts: Counter[str] = Counter()
    names: dict[str, str] = {}
    for d, _view in ctx.gate.visible(ctx.principal):
        if d.publisher:
            counts[d.publisher.slug] += 1
            names[d.publisher.slug] = d.publisher.name
    if ctx.principal.authenticated:  # signed-in users may list all organisations (/api/v1/orgs)
        for o in ctx.gate.accounts.orgs():
            names.setdefault(o.slug, o.name)
    return {slug: (names[slug], counts[slug]) for slug in sorted(names)}


def _listing(
    items: list[dict[str, Any]], params: Mapping[str, Any], key: str = "name"
) -> list[Any]:
    sort = str(params.get("sort") or "name asc").split()
    field = sort[0] if sort else "name"
    if field not in ("name", "title", "package_count"):
        raise BadInput(f"cannot sort by {field!r}", column="sort")
    items.sort(key=lambda i: i[field], reverse=len(sort) > 1 and sort[1].lower() == "desc")
    offset = _int(params, "offset", 0, 0, None)
    limit = _int(params, "limit", len(items), 0, None)
    items = items[offset : offset + limit]
    if _bool(params, "all_fields"):
        return items
    return [i[key] for i in items]


def organization_list(ctx: Context, params: Mapping[str, Any]) -> list[Any]:
    items = [org_dict(s, n, package_count=c) for s, (n, c) in _visible_orgs(ctx).items()]
    return _listing(items, params)


def organization_show(ctx: Context, params: Mapping[str, Any]) -> dict[str, Any]:
    slug = _id(params)
    orgs = _visible_orgs(ctx)
    if slug not in orgs:
        raise NotFound(f"no organization {slug!r}")
    name, count = orgs[slug]
    out = org_dict(slug, name, package_count=count)
    if _bool(params, "include_datasets"):
        out["packages"] = [
            package_dict(d, v, ctx.base_url)
            for d, v in ctx.gate.visible(ctx.principal)
            if d.publisher and d.publisher.slug == slug
        ][:1000]
    return out


def group_list(ctx: Context, params: Mapping[str, Any]) -> list[Any]:
    counts: Counter[str] = Counter()
    for d, _view in ctx.gate.visible(ctx.principal):
        counts.update(set(d.themes))
    items = [group_dict(code, package_count=c) for code, c in counts.items()]
    return _listing(items, params)


def group_show(ctx: Context, params: Mapping[str, Any]) -> dict[str, Any]:
    wanted = _id(params).casefold()
    for item in group_list(ctx, {"all_fields": True}):
        if item["name"] == wanted:
            return dict(item)
    raise NotFound(f"no group {wanted!r}")


def tag_list(ctx: Context, params: Mapping[str, Any]) -> list[Any]:
    names = sorted({k for d, _v in ctx.gate.visible(ctx.principal) for k in d.keywords})
    query = str(params.get("query") or "").casefold()
    if query:
        names = [n for n in names if query in n.casefold()]
    if _bool(params, "all_fields"):
        return [tag_dict(n) for n in names]
    return names


def _split_resource(ctx: Context, resource_id: str) -> tuple[str, str | None]:
    """(slug, format) of a resource id ``{slug}-{format}``; a bare slug has no format."""
    slug, _, fmt = resource_id.rpartition("-")
    if slug and fmt in DOWNLOAD_FORMATS:
        try:
            ctx.gate.dataset(ctx.principal, slug)
            return slug, fmt
        except NotFound:
            pass  # a slug that ends in "-csv" itself
    return resource_id, None


def resource_show(ctx: Context, params: Mapping[str, Any]) -> dict[str, Any]:
    resource_id = _id(params)
    slug, fmt = _split_resource(ctx, resource_id)
    if fmt is None:
        raise NotFound(f"no resource {resource_id!r}")
    d, _view = ctx.gate.dataset(ctx.principal, slug)
    return resource_dict(d, fmt, DOWNLOAD_FORMATS.index(fmt), ctx.base_url)


# -- DataStore -------------------------------------------------------------------------------
def datastore_type(t: pa.DataType) -> str:
    """CKAN DataStore (PostgreSQL) type name of an Arrow type."""
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int8" if t.bit_width == 64 else "int4"
    if pa.types.is_floating(t):
        return "float8"
    if pa.types.is_decimal(t):
        return "numeric"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_time(t):
        return "time"
    return "text"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def records_of(table: pa.Table) -> list[dict[str, Any]]:
    return [{k: _jsonable(v) for k, v in row.items()} for row in table.to_pylist()]


def _is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _column(name: Any, schema: Mapping[str, pa.DataType], param: str) -> str:
    if not isinstance(name, str) or name not in schema:
        raise BadInput(f"field {name!r} does not exist", column=param)
    return name


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _datastore_where(
    params: Mapping[str, Any], schema: Mapping[str, pa.DataType]
) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    filters = _json_param(params, "filters") or {}
    if not isinstance(filters, dict):
        raise BadInput("filters must be a JSON object {column: value}", column="filters")
    for name, value in filters.items():
        col = quote_ident(_column(name, schema, "filters"))
        values = value if isinstance(value, list) else [value]
        if not values or any(isinstance(v, dict | list) for v in values):
            raise BadInput(f"filter on {name!r} needs a value or a list of values", column=name)
        alts = []
        for v in values:
            if v is None:
                alts.append(f"{col} IS NULL")
            else:
                alts.append(f"{col} = ?")
                args.append(v)
        where.append("(" + " OR ".join(alts) + ")")
    q = _json_param(params, "q")
    if isinstance(q, dict):  # {column: term}: the term in that column
        for name, term in q.items():
            col = _column(name, schema, "q")
            if not _is_text(schema[col]):
                raise BadInput(f"q searches text columns; {col!r} is not one", column="q")
            where.append(f"{quote_ident(col)} ILIKE ? ESCAPE '\\'")
            args.append(_like(str(term)))
    elif q not in (None, ""):
        text_cols = [n for n, t in schema.items() if _is_text(t)]
        if not text_cols:
            where.append("FALSE")
        else:
            for word in str(q).split():  # every word somewhere in the row's text
                where.append(
                    "("
                    + " OR ".join(f"{quote_ident(c)} ILIKE ? ESCAPE '\\'" for c in text_cols)
                    + ")"
                )
                args.extend([_like(word)] * len(text_cols))
    return where, args


def _datastore_sort(params: Mapping[str, Any], schema: Mapping[str, pa.DataType]) -> list[str]:
    raw = params.get("sort") or ""
    if not isinstance(raw, str):
        raise BadInput('sort is a string like "col asc, col2 desc"', column="sort")
    out = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        m = re.fullmatch(r'(?:"((?:[^"]|"")+)"|(\S+))(?:\s+(asc|desc))?', part, re.IGNORECASE)
        if m is None:
            raise BadInput(f"cannot sort by {part!r}", column="sort")
        name = m.group(1).replace('""', '"') if m.group(1) else m.group(2)
        col = _column(name, schema, "sort")
        direction = (m.group(3) or "asc").upper()
        out.append(f"{quote_ident(col)} {direction} NULLS LAST")
    return out


def datastore_search(
    ctx: Context, params: Mapping[str, Any], *, links_base: str = "/api/3/action"
) -> dict[str, Any]:
    resource_id = _id(params, "resource_id")
    slug, _fmt = _split_resource(ctx, resource_id)
    gate = ctx.gate
    src = gate.source(ctx.principal, slug)
    schema = {f.name: f.type for f in src.schema}
    limit = _int(params, "limit", DATASTORE_DEFAULT_LIMIT, 0, DATASTORE_MAX_LIMIT)
    offset = _int(params, "offset", 0, 0, None)
    fields = _str_list(params, "fields") or list(schema)
    for name in fields:
        _column(name, schema, "fields")
    where, args = _datastore_where(params, schema)
    order = [*_datastore_sort(params, schema), "__row"]  # insertion order breaks ties
    include_total = _bool(params, "include_total", True)

    cond = f" WHERE {' AND '.join(where)}" if where else ""
    cols = ", ".join(quote_ident(f) for f in fields)
    # The caller's view of the version (hidden columns dropped, grant row filters applied).
    with gate.visible_rows(src) as (con, relation):
        sql = (
            f"SELECT {cols} FROM {relation} AS t{cond} ORDER BY {', '.join(order)} LIMIT ? OFFSET ?"
        )
        try:
            table = con.execute(sql, [*args, limit, offset]).to_arrow_table()
            total = None
            if include_total:
                row = con.execute(f"SELECT count(*) FROM {relation} AS t{cond}", args).fetchone()
                total = int(row[0]) if row else 0
        except duckdb.Error as exc:  # e.g. a filter value that does not fit the column type
            raise BadInput(f"the search failed: {str(exc).splitlines()[0]}") from None
    gate.record(
        ctx.principal,
        "read",
        [src],
        client=ctx.client,
        rows=table.num_rows,
        query="ckan datastore_search " + json.dumps(dict(params), default=str, sort_keys=True),
    )
    link_params = {k: v for k, v in params.items() if k != "offset"}

    def link(off: int) -> str:
        from urllib.parse import urlencode

        query = {k: v if isinstance(v, str) else json.dumps(v) for k, v in link_params.items()}
        if off:
            query["offset"] = str(off)
        return f"{links_base}/datastore_search?{urlencode(query)}"

    out: dict[str, Any] = {
        "resource_id": resource_id,
        "fields": [{"id": f, "type": datastore_type(schema[f])} for f in fields],
        "records": records_of(table),
        "limit": limit,
        "offset": offset,
        "_links": {"start": link(0), "next": link(offset + limit)},
    }
    if total is not None:
        out["total"] = total
    for key in ("filters", "q", "sort"):
        if params.get(key) not in (None, ""):
            out[key] = _json_param(params, key)
    return out


def datastore_search_sql(ctx: Context, params: Mapping[str, Any]) -> dict[str, Any]:
    sql = params.get("sql")
    if not isinstance(sql, str) or not sql.strip():
        raise BadInput("Missing value", column="sql")
    if len(sql) > 100_000:
        raise BadInput("the query is longer than 100,000 characters", column="sql")
    result = ctx.gate.sql(ctx.principal, sql, client=ctx.client)
    table = result.table
    out: dict[str, Any] = {
        "sql": sql,
        "fields": [{"id": f.name, "type": datastore_type(f.type)} for f in table.schema],
        "records": records_of(table),
    }
    if result.truncated:
        out["records_truncated"] = True
    return out


def status_show(ctx: Context, params: Mapping[str, Any]) -> dict[str, Any]:
    from datenlabor import __version__

    return {
        "site_title": "Datenlabor",
        "site_url": ctx.base_url,
        "ckan_version": "2.10.0",
        "datenlabor_version": __version__,
        "extensions": ["datastore"],
    }


ACTIONS: dict[str, Callable[[Context, Mapping[str, Any]], Any]] = {
    "package_list": package_list,
    "package_search": package_search,
    "package_show": package_show,
    "organization_list": organization_list,
    "organization_show": organization_show,
    "group_list": group_list,
    "group_show": group_show,
    "tag_list": tag_list,
    "resource_show": resource_show,
    "datastore_search": datastore_search,
    "datastore_search_sql": datastore_search_sql,
    "status_show": status_show,
}
