"""Organisations, users, API tokens and browser sessions in the metadata store."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from datenlabor.access.passwords import check_strength, hash_password, needs_rehash, verify_password
from datenlabor.access.principal import Principal
from datenlabor.errors import BadInput, Conflict, NotFound, Unauthenticated
from datenlabor.store import Store
from datenlabor.store.models import ROLES, ApiToken, Organisation, User, WebSession

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
ORG_SLUG = re.compile(r"^[a-z][a-z0-9-]{0,99}$")
TOKEN_PREFIX = "dl_"
SCOPES = ("read", "write")
SESSION_HOURS = 8
TOKEN_CACHE_SECONDS = 2.0  # a working day; the browser must sign in again after that


def _now() -> datetime:
    return datetime.now(UTC)


def _sha256(secret: str) -> str:
    # Tokens and session ids carry 256 random bits, so a fast hash suffices (no guessing).
    return hashlib.sha256(secret.encode()).hexdigest()


def _aware(ts: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything here is stored in UTC."""
    if ts is not None and ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    return ts


def principal_of(user: User, via: str) -> Principal:
    return Principal(
        username=user.username,
        role=user.role,
        user_id=user.id,
        organisation_id=user.organisation_id,
        organisation=user.organisation.slug,
        via=via,
    )


@dataclass
class UserInfo:
    username: str
    display_name: str
    email: str | None
    organisation: str
    role: str
    active: bool
    sso: bool

    @classmethod
    def of(cls, u: User) -> UserInfo:
        return cls(
            u.username,
            u.display_name,
            u.email,
            u.organisation.slug,
            u.role,
            u.active,
            u.oidc_subject is not None,
        )


@dataclass
class TokenInfo:
    id: int
    prefix: str
    name: str
    scope: str
    created_at: datetime
    expires_at: datetime | None
    revoked: bool
    last_used_at: datetime | None


class Accounts:
    """All account operations; each method is one transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # token hash -> (reuse until (monotonic), principal, token expiry)
        self._tokens: dict[str, tuple[float, Principal, datetime | None]] = {}

    # -- organisations -------------------------------------------------------------------
    def add_org(self, slug: str, name: str) -> Organisation:
        if not ORG_SLUG.match(slug):
            raise BadInput(
                f"organisation slug {slug!r} must be lower-case letters, digits and '-'",
                column="slug",
            )
        if not name.strip():
            raise BadInput("the organisation needs a name", column="name")
        with self.store.session() as s, s.begin():
            existing = s.scalar(select(Organisation).where(Organisation.slug == slug))
            if existing is not None:
                if existing.name != name:
                    existing.name = name  # naming an existing organisation updates it
                return existing
            org = Organisation(slug=slug, name=name.strip())
            s.add(org)
            return org

    def orgs(self) -> list[Organisation]:
        with self.store.session() as s:
            return list(s.scalars(select(Organisation).order_by(Organisation.slug)))

    def org(self, s: Session, slug: str) -> Organisation:
        org = s.scalar(select(Organisation).where(Organisation.slug == slug))
        if org is None:
            raise NotFound(f"no organisation {slug!r}; create it with `orgs add {slug}`")
        return org

    # -- users ---------------------------------------------------------------------------
    def add_user(
        self,
        username: str,
        *,
        org: str,
        role: str,
        password: str | None = None,
        display_name: str = "",
        email: str | None = None,
        oidc_subject: str | None = None,
    ) -> UserInfo:
        if not USERNAME.match(username):
            raise BadInput(f"user name {username!r} has characters that are not allowed")
        if role not in ROLES:
            raise BadInput(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
        if password is not None:
            check_strength(password)
        with self.store.session() as s, s.begin():
            organisation = self.org(s, org)
            if s.scalar(select(User).where(User.username == username)) is not None:
                raise Conflict(f"user {username!r} exists already")
            user = User(
                username=username,
                organisation=organisation,
                role=role,
                password_hash=hash_password(password) if password else None,
                display_name=display_name or username,
                email=email,
                oidc_subject=oidc_subject,
            )
            s.add(user)
            try:
                s.flush()
            except IntegrityError as exc:
                raise Conflict(f"user {username!r} exists already") from exc
            return UserInfo.of(user)

    def _user(self, s: Session, username: str) -> User:
        user = s.scalar(
            select(User).options(joinedload(User.organisation)).where(User.username == username)
        )
        if user is None:
            raise NotFound(f"no user {username!r}")
        return user

    def user(self, username: str) -> UserInfo:
        with self.store.session() as s:
            return UserInfo.of(self._user(s, username))

    def users(self, org: str | None = None) -> list[UserInfo]:
        with self.store.session() as s:
            q = select(User).options(joinedload(User.organisation)).order_by(User.username)
            if org:
                q = q.where(User.organisation_id == self.org(s, org).id)
            return [UserInfo.of(u) for u in s.scalars(q)]

    def update_user(
        self,
        username: str,
        *,
        role: str | None = None,
        org: str | None = None,
        active: bool | None = None,
        password: str | None = None,
    ) -> UserInfo:
        with self.store.session() as s, s.begin():
            user = self._user(s, username)
            if role is not None:
                if role not in ROLES:
                    raise BadInput(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
                user.role = role
            if org is not None:
                user.organisation = self.org(s, org)
            if active is not None:
                user.active = active
                if not active:  # a deactivated account loses its sessions at once
                    s.execute(delete(WebSession).where(WebSession.user_id == user.id))
            if password is not None:
                check_strength(password)
                user.password_hash = hash_password(password)
            info = UserInfo.of(user)
        self.forget_tokens()  # role, organisation or activity of token holders may differ now
        return info

    def authenticate(self, username: str, password: str) -> Principal:
        """Check a local password; the same error for unknown users and wrong passwords."""
        with self.store.session() as s, s.begin():
            user = s.scalar(
                select(User).options(joinedload(User.organisation)).where(User.username == username)
            )
            ok = verify_password(user.password_hash if user else None, password)
            if user is None or not ok or not user.active:
                raise Unauthenticated("unknown user name or wrong password")
            assert user.password_hash is not None
            if needs_rehash(user.password_hash):
                user.password_hash = hash_password(password)
            return principal_of(user, "session")

    def user_by_oidc(self, subject: str) -> Principal | None:
        with self.store.session() as s:
            user = s.scalar(
                select(User)
                .options(joinedload(User.organisation))
                .where(User.oidc_subject == subject)
            )
            if user is None or not user.active:
                return None
            return principal_of(user, "session")

    def link_oidc(self, username: str, subject: str) -> None:
        with self.store.session() as s, s.begin():
            self._user(s, username).oidc_subject = subject

    # -- API tokens ----------------------------------------------------------------------
    def create_token(
        self, username: str, *, scope: str = "read", days: int | None = 90, name: str = ""
    ) -> str:
        """A new token, returned once; only its hash is kept."""
        if scope not in SCOPES:
            raise BadInput(f"unknown scope {scope!r}; choose read or write")
        if days is not None and days <= 0:
            raise BadInput("a token must be valid for at least one day")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.store.session() as s, s.begin():
            user = self._user(s, username)
            s.add(
                ApiToken(
                    user_id=user.id,
                    token_hash=_sha256(token),
                    prefix=token[:10],
                    name=name,
                    scope=scope,
                    expires_at=_now() + timedelta(days=days) if days else None,
                )
            )
        return token

    def tokens(self, username: str) -> list[TokenInfo]:
        with self.store.session() as s:
            user = self._user(s, username)
            rows = s.scalars(
                select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
            )
            return [
                TokenInfo(
                    t.id,
                    t.prefix,
                    t.name,
                    t.scope,
                    t.created_at,
                    _aware(t.expires_at),
                    t.revoked_at is not None,
                    _aware(t.last_used_at),
                )
                for t in rows
            ]

    def revoke_token(self, username: str, token_id: int) -> None:
        with self.store.session() as s, s.begin():
            user = self._user(s, username)
            t = s.get(ApiToken, token_id)
            if t is None or t.user_id != user.id:
                raise NotFound(f"user {username!r} has no token {token_id}")
            t.revoked_at = t.revoked_at or _now()
        self.forget_tokens()

    def resolve_token(self, token: str) -> Principal:
        """The token's user; reused for ``TOKEN_CACHE_SECONDS`` without asking the store
        (revocations and deactivations through this process apply at once)."""
        digest = _sha256(token)
        now_mono = time.monotonic()
        hit = self._tokens.get(digest)
        if hit is not None and hit[0] > now_mono and (hit[2] is None or hit[2] > _now()):
            return hit[1]
        principal, expires = self._resolve_token(digest)
        self._tokens[digest] = (now_mono + TOKEN_CACHE_SECONDS, principal, expires)
        return principal

    def forget_tokens(self) -> None:
        self._tokens.clear()

    def _resolve_token(self, digest: str) -> tuple[Principal, datetime | None]:
        with self.store.session() as s, s.begin():
            t = s.scalar(
                select(ApiToken)
                .options(joinedload(ApiToken.user).joinedload(User.organisation))
                .where(ApiToken.token_hash == digest)
            )
            now = _now()
            expires = _aware(t.expires_at) if t else None
            if t is None or t.revoked_at is not None or not t.user.active:
                raise Unauthenticated("unknown or revoked API token")
            if expires is not None and expires <= now:
                raise Unauthenticated("this API token has expired")
            last = _aware(t.last_used_at)
            if last is None or now - last > timedelta(minutes=5):  # not a write per request
                t.last_used_at = now
            return principal_of(t.user, t.scope), expires

    # -- browser sessions ----------------------------------------------------------------
    def start_session(self, username: str) -> tuple[str, str]:
        """(session id for the cookie, CSRF token for the forms)."""
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self.store.session() as s, s.begin():
            user = self._user(s, username)
            s.execute(delete(WebSession).where(WebSession.expires_at < _now()))
            s.add(
                WebSession(
                    session_hash=_sha256(sid),
                    user_id=user.id,
                    csrf_token=csrf,
                    expires_at=_now() + timedelta(hours=SESSION_HOURS),
                )
            )
        return sid, csrf

    def resolve_session(self, sid: str) -> tuple[Principal, str] | None:
        with self.store.session() as s:
            ws = s.scalar(
                select(WebSession)
                .options(joinedload(WebSession.user).joinedload(User.organisation))
                .where(WebSession.session_hash == _sha256(sid))
            )
            expires = _aware(ws.expires_at) if ws else None
            if ws is None or expires is None or expires <= _now() or not ws.user.active:
                return None
            return principal_of(ws.user, "session"), ws.csrf_token

    def end_session(self, sid: str) -> None:
        with self.store.session() as s, s.begin():
            s.execute(delete(WebSession).where(WebSession.session_hash == _sha256(sid)))
