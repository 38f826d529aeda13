"""Password hashing with argon2id (argon2-cffi's RFC 9106 low-memory profile)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from datenlabor.errors import BadInput

_hasher = PasswordHasher()
MIN_LENGTH = 12


def check_strength(password: str) -> None:
    """Reject passwords that are too short to stand an offline guessing attack."""
    if len(password) < MIN_LENGTH:
        raise BadInput(f"the password must have at least {MIN_LENGTH} characters")
    if len(set(password)) < 5:
        raise BadInput("the password repeats too few different characters")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    if not stored:
        # Spend the same time as a real check so timing does not reveal which accounts exist.
        _hasher.hash(password)
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)
