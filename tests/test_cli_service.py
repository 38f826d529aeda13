"""The service's command-line interface as the acceptance checks use it, with `serve`."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from test_cli import run

PW = {"DATENLABOR_PASSWORD": "ein-sehr-geheimes-pw-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_accounts_grants_serve_and_audit(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    run(pool, "orgs", "add", "bmi", "--name", "Bundesministerium des Innern")
    run(pool, "orgs", "add", "nrw", "--name", "Land Nordrhein-Westfalen")
    run(pool, "users", "add", "steward", "--org", "bmi", "--role", "steward", env=PW)
    run(pool, "users", "add", "ana", "--org", "nrw", "--role", "analyst", env=PW)
    # no password and no terminal: a clear error, no account
    nopw = {k: v for k, v in os.environ.items() if k != "DATENLABOR_PASSWORD"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "datenlabor.cli",
            "--pool",
            str(pool),
            "users",
            "add",
            "x",
            "--org",
            "bmi",
            "--role",
            "viewer",
        ],
        capture_output=True,
        text=True,
        env=nopw,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert proc.returncode == 2 and "DATENLABOR_PASSWORD" in proc.stderr
    token = run(pool, "tokens", "create", "ana").stdout
    assert token.strip().startswith("dl_") and token.count("\n") == 1  # only the token
    src = tmp_path / "f.csv"
    src.write_text("ags;ort;person\n05111000;Düsseldorf;Frau A\n09162000;München;Herr B\n")
    run(
        pool,
        "ingest",
        str(src),
        "--dataset",
        "faelle",
        "--org",
        "bmi",
        "--visibility",
        "restricted",
    )
    bad = run(pool, "grants", "add", "faelle", "--org", "nrw", "--rows", "nix = 1", check=False)
    assert bad.returncode == 2 and "nix" in bad.stderr
    run(
        pool,
        "grants",
        "add",
        "faelle",
        "--org",
        "nrw",
        "--hide-columns",
        "person",
        "--rows",
        "ags LIKE '05%'",
    )

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "datenlabor.cli", "--pool", str(pool), "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        h = {"Authorization": f"Bearer {token.strip()}"}
        listed = httpx.get(f"{base}/api/v1/datasets", headers=h).json()["datasets"]
        assert [d["slug"] for d in listed] == ["faelle"]
        rows = httpx.get(f"{base}/api/v1/datasets/faelle/rows?limit=10", headers=h).json()
        assert rows["rows"] == [{"ags": "05111000", "ort": "Düsseldorf"}]
        assert rows["provenance"]["datasets"][0]["slug"] == "faelle"
        q = httpx.post(
            f"{base}/api/v1/sql", headers=h, json={"sql": "SELECT count(*) AS n FROM faelle"}
        )
        assert q.json()["rows"] == [{"n": 1}]
        assert httpx.get(f"{base}/api/v1/datasets/faelle/rows").status_code == 404
    finally:
        server.terminate()
        server.wait(timeout=20)

    ok = run(pool, "audit", "verify")
    assert "intact" in ok.stdout
    listing = run(pool, "audit", "list", "--dataset", "faelle", "--json").stdout
    assert '"action": "query"' in listing and "SELECT count(*) AS n FROM faelle" in listing
    # tamper with one entry: verify names it and exits 1
    with sqlite3.connect(pool / "metadata.sqlite") as db:
        db.execute("UPDATE audit_log SET rows = 99 WHERE action = 'query'")
    broken = run(pool, "audit", "verify", check=False)
    assert broken.returncode == 1 and "TAMPERED" in broken.stderr


def test_soft_delete_restore_and_purge(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    src = tmp_path / "f.csv"
    src.write_text("a\n1\n")
    run(pool, "ingest", str(src), "--dataset", "weg")
    run(pool, "delete", "weg")
    assert "weg" not in run(pool, "datasets").stdout
    run(pool, "restore", "weg")
    assert "weg" in run(pool, "datasets").stdout
    # with no retention the next cleanup purges the data for good
    run(pool, "delete", "weg", env={"DATENLABOR_RETENTION_DAYS": "0"})
    report = run(pool, "cleanup", "--json").stdout
    assert '"purged_datasets": [\n    "weg"\n  ]' in report or '"weg"' in report
    assert not any((pool / "tables").iterdir())
    again = run(pool, "restore", "weg", check=False)
    assert again.returncode == 3
