"""The metadata store migrates and round-trips on SQLite and PostgreSQL alike."""

from __future__ import annotations

import multiprocessing
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from datenlabor.store import Dataset, Organisation, Store, Version
from datenlabor.store.db import head_revision


def _url(store_url: str | None, tmp_path: Path) -> str:
    return store_url or f"sqlite:///{tmp_path / 'meta.sqlite'}"


def test_migrates_to_head_and_creates_tables(store_url: str | None, tmp_path: Path) -> None:
    store = Store(_url(store_url, tmp_path), lock_dir=tmp_path)
    try:
        with store.engine.connect() as conn:
            rev = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        assert rev == head_revision()
        tables = set(inspect(store.engine).get_table_names())
        assert {"organisations", "datasets", "versions"} <= tables
        # Opening again is a no-op, not a second migration.
        Store(_url(store_url, tmp_path), lock_dir=tmp_path).dispose()
    finally:
        store.dispose()


def test_migrations_and_models_agree(store_url: str | None, tmp_path: Path) -> None:
    """What the migrations build is what the models declare (no forgotten migration)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from datenlabor.store.models import Base

    store = Store(_url(store_url, tmp_path), lock_dir=tmp_path)
    try:
        with store.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, Base.metadata)
        assert diff == []
    finally:
        store.dispose()


def test_round_trip_and_constraints(store_url: str | None, tmp_path: Path) -> None:
    store = Store(_url(store_url, tmp_path), lock_dir=tmp_path)
    try:
        with store.session() as s:
            org = Organisation(slug="destatis", name="Statistisches Bundesamt")
            ds = Dataset(
                slug="bevoelkerung",
                table_path="tables/bevoelkerung-1",
                title="Bevölkerung",
                description="Stichtag 31.12.",
                publisher=org,
                licence="dl-de/by-2-0",
                keywords=["Bevölkerung", "Zensus"],
                themes=["SOCI"],
                spatial=["01001000"],
                temporal_start=date(2020, 1, 1),
                temporal_end=date(2023, 12, 31),
                contact_point="info@destatis.de",
                primary_key=["Stichtag"],
                created_by="a@b.de",
            )
            s.add(ds)
            s.add(
                Version(
                    dataset=ds,
                    number=1,
                    delta_version=0,
                    mode="replace",
                    row_count=4437,
                    table_schema={"fields": [{"name": "Stichtag", "type": "date"}]},
                    source_name="12411-0006.csv",
                    source_sha256="ab" * 32,
                    source_bytes=192571,
                    source_format="genesis",
                    detection={"encoding": "cp1252"},
                    quality={},
                    created_by="a@b.de",
                )
            )
            s.commit()
        with store.session() as s:
            got = s.scalar(select(Dataset).where(Dataset.slug == "bevoelkerung"))
            assert got is not None
            assert got.keywords == ["Bevölkerung", "Zensus"]
            assert got.spatial == ["01001000"]  # keys stay text with leading zeros
            assert got.publisher is not None and got.publisher.name == "Statistisches Bundesamt"
            assert got.versions[0].detection == {"encoding": "cp1252"}
            assert got.versions[0].row_count == 4437
            s.add(
                Version(
                    dataset=got,
                    number=1,
                    delta_version=1,
                    mode="append",
                    row_count=1,
                    table_schema={},
                    source_format="csv",
                    detection={},
                    quality={},
                    created_by="x",
                )
            )
            with pytest.raises(IntegrityError):
                s.commit()  # version numbers are unique per dataset
    finally:
        store.dispose()


def _open(url: str, lock_dir: str) -> str | None:
    store = Store(url, lock_dir=Path(lock_dir))
    with store.engine.connect() as conn:
        rev = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    store.dispose()
    return rev


def test_concurrent_first_open_migrates_once(store_url: str | None, tmp_path: Path) -> None:
    url = _url(store_url, tmp_path)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as workers:
        revs = workers.starmap(_open, [(url, str(tmp_path))] * 3)
    assert revs == [head_revision()] * 3


def test_unreachable_store_gives_clear_error(tmp_path: Path) -> None:
    from datenlabor.errors import DatenlaborError

    with pytest.raises(DatenlaborError, match="metadata store not reachable"):
        Store("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
