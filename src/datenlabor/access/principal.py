"""The caller of an operation: a signed-in user (by session or token) or anonymous."""

from __future__ import annotations

from dataclasses import dataclass

from datenlabor.errors import Forbidden, Unauthenticated


@dataclass(frozen=True)
class Principal:
    """Resolved once per request; everything downstream decides on this alone."""

    username: str | None
    role: str | None = None  # admin | steward | analyst | viewer
    user_id: int | None = None
    organisation_id: int | None = None
    organisation: str | None = None  # slug
    # "session" (browser), "read"/"write" (API token scope), "local" (CLI on the pool)
    via: str = "session"

    @property
    def authenticated(self) -> bool:
        return self.username is not None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def can_write(self) -> bool:
        """Whether this credential may change anything (read-scoped tokens may not)."""
        return self.authenticated and self.via != "read"

    def label(self) -> str:
        return self.username or "anonymous"

    def require_login(self) -> None:
        if not self.authenticated:
            raise Unauthenticated("sign in or send an API token (Authorization: Bearer …)")

    def require_role(self, *roles: str) -> None:
        self.require_login()
        if self.role not in roles:
            raise Forbidden(f"this needs the role {' or '.join(roles)}; you are {self.role}")

    def require_write(self) -> None:
        self.require_login()
        if not self.can_write:
            raise Forbidden("this token has the scope 'read'; changes need a 'write' token")


ANONYMOUS = Principal(username=None)


def local_admin(username: str) -> Principal:
    """Whoever may run commands on the pool directory is its administrator."""
    return Principal(username=username, role="admin", via="local")
