"""Shared fixtures: pools on SQLite and PostgreSQL, the real data in ../shared/data."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
SHARED = Path(os.environ.get("DATENLABOR_SHARED_DATA", REPO.parent / "shared" / "data"))
PG_URL = os.environ.get(
    "DATENLABOR_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def shared_file(rel: str) -> Path:
    """A file of the real public data, or skip (never in CI, where it must be present)."""
    path = SHARED / rel
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"shared data missing in CI: {path}")
        pytest.skip(f"real data not present: {path} (set DATENLABOR_SHARED_DATA)")
    return path


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashing() -> Iterator[None]:
    """argon2id at production cost (64 MiB, 3 passes) takes ~0.5 s per hash, and the suite
    creates hundreds of accounts; tests of behaviour use the same algorithm at minimal cost.
    Production has no switch for this: the cost lives in the code, not in a setting."""
    from argon2 import PasswordHasher

    from datenlabor.access import passwords

    production = passwords._hasher
    passwords._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    passwords._hasher = production


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL on a fresh schema; skipped locally, failed in CI, when unreachable."""
    engine = create_engine(PG_URL, connect_args={"connect_timeout": 5})
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # any connection failure
        engine.dispose()
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL not reachable in CI at {PG_URL}: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """Parametrizes a test over both metadata stores (None = SQLite default in the pool)."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("pg_url")


@pytest.fixture
def pool(tmp_path: Path, store_url: str | None):  # type: ignore[no-untyped-def]
    import datenlabor

    p = datenlabor.open(tmp_path / "pool", database_url=store_url, user="test@example.org")
    yield p
    p.store.dispose()


@pytest.fixture
def sqlite_pool(tmp_path: Path):  # type: ignore[no-untyped-def]
    import datenlabor

    p = datenlabor.open(tmp_path / "pool", user="test@example.org")
    yield p
    p.store.dispose()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long variants (marked slow) run only with DATENLABOR_SLOW_TESTS=1; deselected otherwise."""
    if os.environ.get("DATENLABOR_SLOW_TESTS") == "1":
        return
    slow = [i for i in items if i.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [i for i in items if not i.get_closest_marker("slow")]
