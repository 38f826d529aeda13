"""Acceptance: ``datenlabor --engine spark sql`` prints what ``--engine duckdb sql`` prints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import datenlabor
from conftest import shared_file

QUERY = (
    'SELECT "Geschlecht", "Altersjahre", sum(value) AS summe, avg(value) AS mittel, '
    'count(status) AS markiert, min("Stichtag") AS erster FROM "bev@1" '
    "WHERE \"Altersjahre\" LIKE 'unter%' OR \"Altersjahre\" LIKE '8%' "
    "GROUP BY ALL ORDER BY 1, 2"
)


@pytest.fixture(scope="module")
def pool_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-engines") / "pool"
    pool = datenlabor.open(root)
    pool.ingest(shared_file("genesis/12411-0006.csv"), dataset="bev")
    pool.store.dispose()
    return root


def run(pool_dir: Path, *args: str) -> str:
    env = {**os.environ, "DATENLABOR_POOL": str(pool_dir)}
    env.pop("DATENLABOR_ENGINE", None)
    done = subprocess.run(
        [sys.executable, "-m", "datenlabor.cli", *args],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_spark_sql_prints_what_duckdb_prints(pool_dir: Path) -> None:
    for fmt in ("csv", "json"):
        duck = run(pool_dir, "--engine", "duckdb", "sql", QUERY, "--format", fmt)
        spark = run(pool_dir, "--engine", "spark", "sql", QUERY, "--format", fmt)
        assert duck.count("\n") > 10
        assert spark == duck, fmt


def test_unsupported_construct_is_named(pool_dir: Path) -> None:
    env = {**os.environ, "DATENLABOR_POOL": str(pool_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "datenlabor.cli", "--engine", "spark", "sql",
         "SELECT date_diff('year', DATE '2020-01-01', DATE '2024-06-01')"],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "date_diff('year'" in done.stderr and "Spark" in done.stderr
