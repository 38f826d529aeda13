"""Finding datasets: full-text search over the catalogue with facets."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from datenlabor.access.policy import DatasetView
from datenlabor.access.principal import Principal
from datenlabor.pool import ags
from datenlabor.pool.info import DatasetInfo
from datenlabor.service.gate import Gate
from datenlabor.store.models import Dataset

FACETS = ("organisation", "theme", "licence", "format", "spatial_level", "visibility")


@dataclass
class Hit:
    info: DatasetInfo
    format: str
    spatial_levels: list[str]
    restricted_view: bool  # the caller sees only part (hidden columns or rows)

    def to_dict(self) -> dict[str, Any]:
        d = self.info.to_dict()
        d.update(
            format=self.format, spatial_levels=self.spatial_levels, partial=self.restricted_view
        )
        return d


@dataclass
class SearchResult:
    hits: list[Hit]
    facets: dict[str, dict[str, int]] = field(default_factory=dict)


def _facet_values(hit: Hit) -> dict[str, list[str]]:
    return {
        "organisation": [hit.info.publisher] if hit.info.publisher else [],
        "theme": list(hit.info.themes),
        "licence": [hit.info.licence] if hit.info.licence else [],
        "format": [hit.format],
        "spatial_level": hit.spatial_levels,
        "visibility": [hit.info.visibility],
    }


def _text(d: Dataset) -> str:
    parts = [d.slug, d.title, d.description, *d.keywords, *d.themes]
    if d.publisher:
        parts += [d.publisher.slug, d.publisher.name]
    return " ".join(parts).casefold()


def _hit(d: Dataset, view: DatasetView) -> Hit:
    info = DatasetInfo.of(d)
    if view.row_filters:
        info.rows = None
    levels = sorted({lvl for key in d.spatial if (lvl := ags.level_of(key))})
    return Hit(info, d.versions[-1].source_format, levels, not view.whole)


def search(
    gate: Gate, p: Principal, q: str = "", filters: dict[str, list[str]] | None = None
) -> SearchResult:
    """Datasets the caller may see that contain every word of ``q`` and match the filters.

    Facet counts are computed over the text matches with every *other* facet's filter
    applied, so a user sees how many hits picking another value would give.
    """
    words = q.casefold().split()
    filters = {k: v for k, v in (filters or {}).items() if k in FACETS and v}
    candidates = [_hit(d, view) for d, view in gate.visible(p) if all(w in _text(d) for w in words)]

    def keep(hit: Hit, skip: str | None = None) -> bool:
        values = _facet_values(hit)
        return all(
            any(v in values[name] for v in wanted)
            for name, wanted in filters.items()
            if name != skip
        )

    facets: dict[str, dict[str, int]] = {}
    for name in FACETS:
        counts: Counter[str] = Counter()
        for hit in candidates:
            if keep(hit, skip=name):
                counts.update(set(_facet_values(hit)[name]))
        facets[name] = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return SearchResult([h for h in candidates if keep(h)], facets)
