"""Reading CKAN Action API answers: packages in, :class:`Record` list out.

A CKAN source is paged with ``package_search`` (``rows``/``start``, sorted by creation so that
datasets added during a harvest land on later pages instead of shifting earlier ones), as
GovData runs it. A local JSON file holding a ``package_search`` or ``package_show`` answer
(the envelope ``{"success": true, "result": …}``, as ``ckanapi`` writes it) is one page.

Package fields follow CKAN core plus the DCAT-AP.de extras GovData's ckanext-dcatde adds
(``publisher_name``, ``contact_email``, ``politicalGeocodingURI``, ``temporal_start`` …);
where an extra repeats a key, the first value wins.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from datenlabor.errors import BadInput
from datenlabor.interop.harvest_record import Distribution, Record, format_of

PAGE_ROWS = 100
SORT = "metadata_created asc, id asc"
_ACTION_PATHS = ("/api/3/action/", "/api/action/", "/api/2/action/")


@dataclass
class Page:
    records: list[Record]
    total: int | None
    returned: int  # packages on this page (records may be fewer: none are dropped here)


def api_base(url: str) -> str:
    """The portal root of a CKAN URL (``…/api/3/action/package_search`` -> ``…``)."""
    parts = urlsplit(url)
    path = parts.path
    for marker in _ACTION_PATHS:
        if marker in path:
            path = path.split(marker, 1)[0]
            break
    return urlunsplit((parts.scheme, parts.netloc, path.rstrip("/"), "", ""))


def search_url(base: str) -> str:
    return f"{base}/api/3/action/package_search"


def is_action_url(url: str) -> bool:
    return any(marker in urlsplit(url).path for marker in _ACTION_PATHS)


def parse_answer(body: bytes, *, url: str) -> Page:
    """Records of a ``package_search`` or ``package_show`` answer; BadInput on anything else."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise BadInput(f"not a CKAN API answer (invalid JSON: {exc})", file=url) from None
    if isinstance(doc, dict) and doc.get("success") is False:
        error = doc.get("error") or {}
        message = error.get("message") if isinstance(error, dict) else str(error)
        raise BadInput(f"CKAN reports an error: {message or error}", file=url)
    if not isinstance(doc, dict) or "result" not in doc:
        raise BadInput("not a CKAN API answer (no 'result')", file=url)
    result = doc["result"]
    if isinstance(result, dict) and isinstance(result.get("results"), list):
        packages = result["results"]
        total = result.get("count") if isinstance(result.get("count"), int) else None
    elif isinstance(result, dict) and "resources" in result:
        packages, total = [result], 1
    else:
        raise BadInput("CKAN answer is neither package_search nor package_show", file=url)
    records = [record_of(p, base=api_base(url)) for p in packages if isinstance(p, dict)]
    return Page(records=records, total=total, returned=len(packages))


def _extras(package: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in package.get("extras") or []:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            value = item.get("value")
            if value not in (None, "") and item["key"] not in out:
                out[item["key"]] = str(value)
    return out


def _list(value: str | None) -> list[str]:
    """An extra that is either one value or a JSON list of values."""
    if not value:
        return []
    text = value.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            return [text]
        return [str(i) for i in items if str(i).strip()]
    return [text]


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def record_of(package: dict[str, Any], *, base: str = "") -> Record:
    extras = _extras(package)
    identifier = _text(package.get("id")) or _text(package.get("name")) or ""
    org = package.get("organization") if isinstance(package.get("organization"), dict) else {}
    publisher = (
        _text(extras.get("publisher_name"))
        or _text((org or {}).get("title"))
        or _text(package.get("author"))
        or _text(package.get("maintainer"))
    )
    resources = sorted(
        (r for r in package.get("resources") or [] if isinstance(r, dict)),
        key=lambda r: r["position"] if isinstance(r.get("position"), int) else 0,
    )
    dists = []
    for r in resources:
        url = _text(r.get("download_url")) or _text(r.get("url")) or ""
        fmt, zipped = format_of(_text(r.get("format")), _text(r.get("mimetype")), url)
        dists.append(
            Distribution(
                url=url,
                stated_format=_text(r.get("format")) or _text(r.get("mimetype")) or "",
                format=fmt,
                zipped=zipped,
                title=_text(r.get("name")),
                modified=_text(r.get("last_modified")) or _text(r.get("modified")),
            )
        )
    licence = _text(package.get("license_id"))
    if licence is None:
        stated = sorted({_text(r.get("license")) for r in resources} - {None})  # type: ignore[type-var]
        licence = stated[0] if stated else None
    themes = [
        g["name"] for g in package.get("groups") or [] if isinstance(g, dict) and g.get("name")
    ]
    themes += _list(extras.get("theme"))
    contact = next(
        (
            c
            for c in (
                _text(extras.get("contact_email")),
                _text(package.get("maintainer_email")),
                _text(package.get("author_email")),
            )
            if c and "@" in c
        ),
        None,
    )
    name = _text(package.get("name"))
    landing = _text(package.get("url")) or (f"{base}/dataset/{name}" if base and name else None)
    kind = _text(package.get("type"))
    return Record(
        identifier=identifier,
        title=_text(package.get("title")) or name,
        description=_text(package.get("notes")),
        publisher_name=publisher,
        licence=licence,
        keywords=[
            str(t.get("display_name") or t.get("name"))
            for t in package.get("tags") or []
            if isinstance(t, dict) and (t.get("display_name") or t.get("name"))
        ],
        themes=themes,
        geocoding=_list(extras.get("politicalGeocodingURI")),
        temporal_start=_text(extras.get("temporal_start")),
        temporal_end=_text(extras.get("temporal_end")),
        contact=contact,
        landing_page=landing,
        modified=_text(package.get("metadata_modified")),
        distributions=dists,
        not_a_dataset="a CKAN harvest source, not a dataset" if kind == "harvest" else None,
    )
