"""The CLI invocations the issue names, run as real processes."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from datenlabor.demo import write_applications_csv

KEY = "Kreisschlüssel,Monat,Eingangskanal"


def run(
    pool: Path, *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    cmd = [sys.executable, "-m", "datenlabor.cli"]
    if pool is not None:
        cmd += ["--pool", str(pool)]
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, env=full_env, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    return proc


def test_cli_end_to_end(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    a1 = write_applications_csv(tmp_path / "a1.csv", months=2)
    a2 = write_applications_csv(tmp_path / "a2.csv", months=2, revised=True)
    run(pool, "ingest", str(a1), "--dataset", "antraege", "--key", KEY, "--licence", "dl-de/by-2-0")
    run(
        pool,
        "ingest",
        str(a2),
        "--dataset",
        "antraege",
        "--mode",
        "upsert",
        "--key",
        KEY,
        "--format",
        "csv",
    )

    ds = json.loads(run(pool, "datasets", "--json").stdout)
    assert [d["slug"] for d in ds] == ["antraege"] and ds[0]["current_version"] == 2

    vs = json.loads(run(pool, "versions", "antraege", "--json").stdout)
    assert [v["version"] for v in vs] == [1, 2]
    assert all({"version", "rows", "created_at"} <= set(v) for v in vs)
    assert vs[1]["rows"] == 96 and vs[1]["mode"] == "upsert"

    rows = json.loads(
        run(
            pool,
            "sql",
            'SELECT "Kreisschlüssel", sum("Anträge") AS n, '
            'avg("Ø Bearbeitungstage") AS t, NULL AS nichts FROM antraege '
            "GROUP BY 1 ORDER BY 1 LIMIT 2",
            "--format",
            "json",
        ).stdout
    )
    assert rows[0]["Kreisschlüssel"] == "01001"
    assert isinstance(rows[0]["n"], int) and isinstance(rows[0]["t"], float)
    assert rows[0]["nichts"] is None

    out = run(
        pool,
        "sql",
        'SELECT "Kreisschlüssel", Monat FROM "antraege@1" ORDER BY 1, 2 LIMIT 3',
        "--format",
        "csv",
    ).stdout
    parsed = list(csv.reader(io.StringIO(out)))
    assert parsed[0] == ["Kreisschlüssel", "Monat"]
    assert parsed[1] == ["01001", "2024-01-01"] and len(parsed) == 4

    q = json.loads(run(pool, "quality", "antraege", "--version", "1", "--json").stdout)
    assert q["row_count"] == 96
    assert [c["name"] for c in q["columns"]][:3] == ["Kreisschlüssel", "Kreis", "Monat"]
    text = run(pool, "quality", "antraege").stdout
    assert "Kreisschlüssel" in text and "96" in text

    d = json.loads(run(pool, "diff", "antraege", "1", "2", "--json").stdout)
    assert d["rows"] == {"added": 0, "removed": 0, "changed": 4}

    for fmt in ("csv", "parquet", "xlsx"):
        target = tmp_path / f"export.{fmt}"
        run(pool, "export", "antraege", "--version", "1", "--format", fmt, "-o", str(target))
        assert target.stat().st_size > 0
    with open(tmp_path / "export.csv", encoding="utf-8") as fh:
        assert sum(1 for _ in fh) == 97


def test_pool_from_environment(tmp_path: Path) -> None:
    f = tmp_path / "x.csv"
    f.write_text("a\n1\n", encoding="utf-8")
    env = {"DATENLABOR_POOL": str(tmp_path / "envpool")}
    run(None, "ingest", str(f), "--dataset", "x", env=env)  # type: ignore[arg-type]
    assert json.loads(run(None, "datasets", "--json", env=env).stdout)[0]["slug"] == "x"  # type: ignore[arg-type]
    assert (tmp_path / "envpool" / "metadata.sqlite").exists()


def test_bad_input_exits_2_with_location(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    bad = tmp_path / "bad.csv"
    bad.write_text("a;b\n1;2\n3;4;5\n", encoding="utf-8")
    proc = run(pool, "ingest", str(bad), "--dataset", "bad", check=False)
    assert proc.returncode == 2
    assert "bad.csv" in proc.stderr and "line 3" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run(pool, "sql", "DELETE FROM bad", check=False)
    assert proc.returncode == 2 and "only read-only queries" in proc.stderr
    proc = run(pool, "versions", "nothing", "--json", check=False)
    assert proc.returncode == 3 and "no dataset 'nothing'" in proc.stderr


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_sql_empty_result(tmp_path: Path, fmt: str) -> None:
    pool = tmp_path / "pool"
    f = tmp_path / "x.csv"
    f.write_text("a\n1\n", encoding="utf-8")
    run(pool, "ingest", str(f), "--dataset", "x")
    out = run(pool, "sql", "SELECT a FROM x WHERE a > 5", "--format", fmt).stdout
    assert out.strip() == ("[]" if fmt == "json" else "a")
