"""Exceptions with enough context for a user to find and fix the problem."""

from __future__ import annotations


class DatenlaborError(Exception):
    """Base class of all errors Datenlabor raises on purpose."""

    exit_code = 1


class BadInput(DatenlaborError):
    """Input that cannot be accepted: names the file, line and column where known."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.reason = message
        self.file = file
        self.line = line
        self.column = column
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.file:
            where.append(str(self.file))
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.column:
            where.append(f"column {self.column!r}")
        prefix = ", ".join(where)
        return f"{prefix}: {self.reason}" if prefix else self.reason


class NotFound(DatenlaborError):
    """A dataset, version or other object does not exist."""

    exit_code = 3


class Conflict(DatenlaborError):
    """A concurrent change won; the caller may retry with fresh state."""

    exit_code = 4


class Forbidden(DatenlaborError):
    """The caller is known but may not do this (HTTP 403)."""

    exit_code = 5


class Unauthenticated(DatenlaborError):
    """The caller must sign in or present a valid token (HTTP 401)."""

    exit_code = 6
