"""``datenlabor harvest`` as a user runs it: exit codes, report file, and a SIGKILLed process.

Most tests run the CLI's ``main()`` in this process (what the console script calls, exit codes
included); the kill test needs a separate process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import shared_file
from datenlabor.interop.harvest import source_id
from fixtures.harvest.catalogue_server import CatalogueServer, running, wait_until
from fixtures.harvest.catalogues import BADE_ID, HAUSHALT_CSV, HAUSHALT_ID, DcatCatalogue

FAST = ["--timeout", "1", "--download-timeout", "3", "--retries", "1"]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    from datenlabor.cli import main

    def run(pool: Path, *args: str) -> Result:
        monkeypatch.setattr(sys, "argv", ["datenlabor", "--pool", str(pool), *args])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def srv() -> Iterator[CatalogueServer]:
    with running() as s:
        yield s


def test_exit_codes_report_file_and_printed_failures(
    cli: Any, tmp_path: Path, srv: CatalogueServer
) -> None:
    cat = DcatCatalogue(srv)
    srv.add("/files/haushalt_2021.csv", b"", status=503)
    pool, report = tmp_path / "pool", tmp_path / "harvest.json"
    proc = cli(pool, "harvest", cat.url, "--report", str(report), *FAST)
    assert proc.returncode == 1, proc.stderr
    assert HAUSHALT_ID in proc.stderr and "HTTP 503" in proc.stderr
    assert srv.url + "/files/haushalt_2021.csv" in proc.stderr
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["exit_code"] == 1 and data["complete"] is True
    assert data["counts"]["created"] == 2 and data["counts"]["failed"] == 1
    assert data["failures"] == [
        {
            "identifier": HAUSHALT_ID,
            "url": srv.url + "/files/haushalt_2021.csv",
            "error": "HTTP 503 Service Unavailable (2 attempts)",
        }
    ]

    cat.haushalt(HAUSHALT_CSV)  # the server is back
    proc = cli(pool, "harvest", cat.url, "--report", str(report), *FAST)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["counts"]["created"] == 1 and data["counts"]["unchanged"] == 2

    listed = json.loads(cli(pool, "datasets", "--json").stdout)
    assert len(listed) == 3


def test_unreadable_catalogue_exits_8(cli: Any, tmp_path: Path, srv: CatalogueServer) -> None:
    url = srv.add("/catalog.ttl", b"@prefix broken", "text/turtle")
    proc = cli(tmp_path / "pool", "harvest", url, *FAST)
    assert proc.returncode == 8
    assert "could not be read" in proc.stderr and "catalog.ttl" in proc.stderr


def test_bad_arguments_exit_2(cli: Any, tmp_path: Path) -> None:
    proc = cli(tmp_path / "pool", "harvest", str(tmp_path / "missing.ttl"))
    assert proc.returncode == 2 and "catalogue file not found" in proc.stderr
    catalogue = shared_file("dcat/v2.0/dcat_ap_de-RefImp_TTL_SIMPLE.ttl")
    proc = cli(tmp_path / "pool", "harvest", str(catalogue), "--visibility", "secret")
    assert proc.returncode == 2 and "unknown visibility" in proc.stderr


def test_local_ckan_file_needs_no_network(cli: Any, tmp_path: Path) -> None:
    answer = shared_file("ckan/v2016/package_search_response.json")
    proc = cli(tmp_path / "pool", "harvest", str(answer), "--report", str(tmp_path / "r.json"))
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert data["kind"] == "ckan" and data["counts"]["skipped"] == 10


@pytest.mark.slow  # a second Python process; the in-process variants in test_harvest.py run always
def test_killed_harvest_resumes_where_it_stopped(
    cli: Any, tmp_path: Path, srv: CatalogueServer
) -> None:
    cat = DcatCatalogue(srv)
    srv.add("/files/haushalt_2021.csv", HAUSHALT_CSV * 50, behaviour="trickle")  # page 2
    pool = tmp_path / "pool"
    state = pool / "harvest" / source_id(f"dcat:{cat.url}") / "state.json"
    cmd = [sys.executable, "-m", "datenlabor.cli", "--pool", str(pool), "harvest", cat.url]
    proc = subprocess.Popen(
        [*cmd, "--timeout", "30", "--download-timeout", "60"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(lambda: srv.hits["/files/haushalt_2021.csv"] > 0, timeout=60)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    killed = json.loads(state.read_text(encoding="utf-8"))
    assert killed["page"] == 2 and killed["done"] == [] and killed["finished_at"] is None
    assert list((pool / "staging").iterdir())  # the dead process's download is still there

    cat.haushalt(HAUSHALT_CSV)
    proc2 = cli(pool, "harvest", cat.url, "--report", str(tmp_path / "r.json"), *FAST)
    assert proc2.returncode == 0, proc2.stderr
    data = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert data["resumed"] is True and data["complete"] is True
    assert data["run"] == killed["run_id"]
    outcomes = {r["identifier"]: r["outcome"] for r in data["records"]}
    assert outcomes[BADE_ID] == "created" and outcomes[HAUSHALT_ID] == "created"
    assert srv.hits["/catalog/page1.ttl"] == 1  # finished before the kill: not read again
    assert srv.hits["/files/bade.zip"] == 1
    assert not list((pool / "staging").iterdir())  # the ingest cleared the dead leftovers
