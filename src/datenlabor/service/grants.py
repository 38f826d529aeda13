"""Granting and revoking read access to restricted datasets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

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
    microdata: bool
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
            bool(g.microdata),
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
    microdata: bool = False,
    client: str | None = None,
) -> GrantInfo:
    """Give an organisation or a user read access, optionally narrowed.

    On a confidential dataset (one with disclosure-control rules) a grant either gives
    ``microdata`` access, optionally narrowed, on any visibility, or, on a restricted
    dataset, access to the protected table, which is the same for everyone and cannot be
    narrowed.
    """
    from datenlabor.query.sandbox import check_predicate

    if (org is None) == (user is None):
        raise BadInput("a grant is for exactly one organisation (--org) or one user (--user)")
    d = gate.managed(p, slug)  # 401/404/403: tells no more than the caller knows
    hidden = [c.strip() for c in hide_columns or [] if c.strip()]
    narrows = bool(hidden) or bool(rows and rows.strip())
    if microdata and d.disclosure is None:
        raise BadInput(
            f"dataset {slug!r} is not confidential: there is no protected table to grant "
            "microdata access beyond",
            column="microdata",
        )
    if d.disclosure is not None and narrows and not microdata:
        raise BadInput(
            f"dataset {slug!r} is confidential: without microdata access a grantee sees its "
            "protected table, the same for everyone; it cannot be narrowed",
            column="microdata",
        )
    if d.visibility != "restricted" and not microdata:
        raise BadInput(
            f"dataset {slug!r} is {d.visibility}: everyone it is visible to sees it whole, so a "
            "grant would protect nothing; make it restricted first",
            column="visibility",
        )
    columns = [f["name"] for f in d.versions[-1].table_schema.get("fields", [])]
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
            microdata=microdata,
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
        detail={
            "grant": info.id,
            "to": org or user,
            "hidden": hidden,
            "rows": predicate,
            "microdata": microdata,
        },
        client=client,
    )
    return info


def grants_of(gate: Gate, p: Principal, slug: str) -> list[GrantInfo]:
    d = gate.managed(p, slug, write=False)  # 401/404/403: tells no more than the caller knows
    with gate.pool.store.session() as s:
        rows = s.scalars(select(Grant).where(Grant.dataset_id == d.id).order_by(Grant.id))
        return [GrantInfo.of(g, slug) for g in rows]


def revoke_grant(
    gate: Gate, p: Principal, slug: str, grant_id: int, *, client: str | None = None
) -> None:
    d = gate.managed(p, slug)  # 401/404/403: tells no more than the caller knows
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
