"""Who may do what: accounts, tokens, sessions, dataset visibility and grants, audit log."""

from datenlabor.access.principal import ANONYMOUS, Principal

__all__ = ["ANONYMOUS", "Principal"]
