"""Granting and revoking read access to restricted datasets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from datenlabor.access.policy import require_manage
from datenlabor.access.principal import Principal
from datenlabor.errors import BadInput, NotFound
from datenlabor.service.gate import Gate
from datenlabor.store.models import Grant, Organisation, User


@dataclass
class GrantInfo:
    id: int
    dataset: str
    organisation: str | None
    user: str | None
    hidden_columns: list[str]
    row_filter: str | None
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, g: Grant, slug: str) -> GrantInfo:
        return cls(
            g.id,
            slug,
            g.organisation.slug if g.organisation else None,
            g.user.username if g.user else None,
            list(g.hidden_columns or []),
            g.row_filter,
            g.created_by,
            g.created_at,
        )

    def to_dict(self) -> dict[str, object]:
        d = dict(self.__dict__)
        d["created_at"] = self.created_at.isoformat()
        return d


def add_grant(
    gate: Gate,
    p: Principal,
    slug: str,
    *,
    org: str | None = None,
    user: str | None = None,
    hide_columns: list[str] | None = None,
    rows: str | None = None,
    client: str | None = None,
) -> GrantInfo:
    """Give an organisation or a user read access, optionally narrowed."""
    from datenlabor.query.sandbox import check_predicate

    if (org is None) == (user is None):
        raise BadInput("a grant is for exactly one organisation (--org) or one user (--user)")
    d = gate.load(slug, fresh=True)
    if d is None or not d.versions:
        raise NotFound(f"no dataset {slug!r}")
    require_manage(p, d)
    if d.visibility != "restricted":
        raise BadInput(
            f"dataset {slug!r} is {d.visibility}: everyone it is visible to sees it whole, so a "
            "grant would protect nothing; make it restricted first",
            column="visibility",
        )
    columns = [f["name"] for f in d.versions[-1].table_schema.get("fields", [])]
    hidden = [c.strip() for c in hide_columns or [] if c.strip()]
    unknown = [c for c in hidden if c not in columns]
    if unknown:
        raise BadInput(
            f"no column {', '.join(map(repr, unknown))} in {slug!r}; columns: {', '.join(columns)}",
            column="hide_columns",
        )
    predicate = check_predicate(rows, columns) if rows and rows.strip() else None
    with gate.pool.store.session() as s, s.begin():
        grant = Grant(
            dataset_id=d.id,
            hidden_columns=hidden,
            row_filter=predicate,
            created_by=p.label(),
        )
        if org is not None:
            o = s.scalar(select(Organisation).where(Organisation.slug == org))
            if o is None:
                raise NotFound(f"no organisation {org!r}")
            grant.organisation = o
        else:
            u = s.scalar(select(User).where(User.username == user))
            if u is None:
                raise NotFound(f"no user {user!r}")
            grant.user = u
        s.add(grant)
        s.flush()
        info = GrantInfo.of(grant, slug)
    gate.forget(slug)
    gate.audit.log(
        p,
        "grant",
        datasets={slug: d.versions[-1].number},
        publishers={slug: d.publisher.slug if d.publisher else None},
        detail={"grant": info.id, "to": org or user, "hidden": hidden, "rows": predicate},
        client=client,
    )
    return info


def grants_of(gate: Gate, p: Principal, slug: str) -> list[GrantInfo]:
    d = gate.load(slug, fresh=True)
    if d is None or not d.versions:
        raise NotFound(f"no dataset {slug!r}")
    require_manage(p, d)
    with gate.pool.store.session() as s:
        rows = s.scalars(select(Grant).where(Grant.dataset_id == d.id).order_by(Grant.id))
        return [GrantInfo.of(g, slug) for g in rows]


def revoke_grant(
    gate: Gate, p: Principal, slug: str, grant_id: int, *, client: str | None = None
) -> None:
    d = gate.load(slug, fresh=True)
    if d is None or not d.versions:
        raise NotFound(f"no dataset {slug!r}")
    require_manage(p, d)
    with gate.pool.store.session() as s, s.begin():
        g = s.get(Grant, grant_id)
        if g is None or g.dataset_id != d.id:
            raise NotFound(f"dataset {slug!r} has no grant {grant_id}")
        s.delete(g)
    gate.forget(slug)
    gate.audit.log(
        p,
        "revoke",
        datasets={slug: d.versions[-1].number},
        publishers={slug: d.publisher.slug if d.publisher else None},
        detail={"grant": grant_id},
        client=client,
    )
