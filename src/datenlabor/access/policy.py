"""Which datasets a caller sees, and how much of each: visibility plus grants.

The rules, in order:

1. Platform admins, and analysts and stewards of the publishing organisation, see a dataset
   whole. Columns the schema marks ``"personal": true`` are hidden from everyone else who
   sees the dataset (the organisation's viewers, readers of public and internal datasets),
   unless a grant shares them.
2. A *restricted* dataset is seen by others only through grants (to their organisation or to
   them personally). A grant may hide columns and restrict rows; with several grants the
   caller sees the union: a column is hidden only if every grant hides it, a row is visible
   if any grant's row filter admits it.
3. *internal* datasets are seen whole by every signed-in user, *public* ones by everyone.
   Grants matter only on restricted datasets; a narrowing grant on a dataset anyone may
   read whole would protect nothing, so it is refused when it is made.

4. A *confidential* dataset (one with disclosure-control rules, ``datasets.disclosure``) is
   seen by everyone but admins, the publisher's members and holders of a *microdata* grant
   only as its protected aggregate table (:mod:`datenlabor.service.confidential`): every
   cell and total, small or dominated cells suppressed. A microdata grant may be given on a
   confidential dataset of any visibility; narrowing grants without microdata would change
   nothing there (the protected table is the same for everyone) and are refused.

Deleted datasets are seen by nobody. Writing (new versions, metadata, grants, deletion)
is for admins and the publishing organisation's stewards.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Select, or_, select

from datenlabor.access.principal import Principal
from datenlabor.errors import Forbidden
from datenlabor.store.models import Dataset, Grant


@dataclass(frozen=True)
class DatasetView:
    """What of one dataset a caller may see."""

    slug: str
    hidden_columns: frozenset[str] = field(default_factory=frozenset)
    row_filters: tuple[str, ...] = ()  # OR-ed; empty = every row
    protected: bool = False  # only the protected aggregate table of a confidential dataset

    @property
    def whole(self) -> bool:
        return not self.hidden_columns and not self.row_filters and not self.protected

    def row_predicate(self) -> str | None:
        if not self.row_filters:
            return None
        return " OR ".join(f"({f})" for f in self.row_filters)


def _matches(g: Grant, p: Principal) -> bool:
    return (g.user_id is not None and g.user_id == p.user_id) or (
        g.organisation_id is not None and g.organisation_id == p.organisation_id
    )


def is_publisher_member(p: Principal, d: Dataset) -> bool:
    return p.organisation_id is not None and d.publisher_id == p.organisation_id


def view_of(p: Principal, d: Dataset) -> DatasetView | None:
    """The caller's view of a dataset, or None when the caller may not know it exists.

    ``d.grants`` must be loaded.
    """
    if d.deleted_at is not None:
        return None
    if p.is_admin or (is_publisher_member(p, d) and p.role in ("steward", "analyst")):
        return DatasetView(d.slug)
    personal = _personal(d)
    if is_publisher_member(p, d):
        return DatasetView(d.slug, personal)  # a viewer of the organisation
    grants = [g for g in d.grants if _matches(g, p)] if p.authenticated else []
    if d.disclosure is not None:
        micro = [g for g in grants if g.microdata]
        if micro:
            return _union(d.slug, micro)
        if grants or d.visibility == "public" or (d.visibility == "internal" and p.authenticated):
            return DatasetView(d.slug, protected=True)
        return None
    if d.visibility == "public" or (d.visibility == "internal" and p.authenticated):
        return DatasetView(d.slug, personal)
    if d.visibility != "restricted" or not grants:
        return None
    return _union(d.slug, grants)


def _personal(d: Dataset) -> frozenset[str]:
    """Columns the latest version's schema marks ``"personal": true``: seen only by admins
    and the publishing organisation's analysts and stewards, or through a grant that a
    steward made knowingly."""
    if not d.versions:
        return frozenset()
    fields = d.versions[-1].table_schema.get("fields", [])
    return frozenset(f["name"] for f in fields if f.get("personal"))


def _union(slug: str, grants: list[Grant]) -> DatasetView:
    """What several grants give together: a column stays hidden only if every grant hides
    it, a row is visible if any grant admits it."""
    hidden = frozenset.intersection(*(frozenset(g.hidden_columns or ()) for g in grants))
    filters: tuple[str, ...] = ()
    if all(g.row_filter for g in grants):
        filters = tuple(dict.fromkeys(g.row_filter for g in grants if g.row_filter))
    return DatasetView(slug, hidden, filters)


def visible_filter(p: Principal, q: Select) -> Select:
    """Narrow a ``select(Dataset)`` to what the caller may see, in SQL (for listings)."""
    q = q.where(Dataset.deleted_at.is_(None))
    if p.is_admin:
        return q
    if not p.authenticated:
        return q.where(Dataset.visibility == "public")
    granted = select(Grant.dataset_id).where(
        or_(Grant.user_id == p.user_id, Grant.organisation_id == p.organisation_id)
    )
    return q.where(
        or_(
            Dataset.visibility.in_(("public", "internal")),
            Dataset.publisher_id == p.organisation_id,
            Dataset.id.in_(granted),
        )
    )


def can_manage(p: Principal, d: Dataset | None, publisher_id: int | None = None) -> bool:
    """Whether the caller may write to a dataset (or create one for ``publisher_id``)."""
    if not p.can_write:
        return False
    if p.is_admin:
        return True
    org = d.publisher_id if d is not None else publisher_id
    return p.role == "steward" and org is not None and org == p.organisation_id


def require_manage(p: Principal, d: Dataset | None, publisher_id: int | None = None) -> None:
    p.require_write()
    if not can_manage(p, d, publisher_id):
        what = f"dataset {d.slug!r}" if d is not None else "datasets of this organisation"
        raise Forbidden(
            f"only admins and stewards of the publishing organisation may change {what}"
        )
