"""GENESIS web-service connector against a local server that answers like the real service.

The server (a thread on 127.0.0.1) speaks the REST 2020 interface: POST with form-encoded
parameters and the credentials in the ``username``/``password`` headers; it answers with the
recorded ``metadata/table`` JSON in ``tests/fixtures/genesis_ws/`` and the real table exports
of ``../shared/data/genesis/`` packed as the service packs them (see SOURCES.md there).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from typer.testing import CliRunner

import datenlabor
from conftest import FIXTURES, shared_file
from datenlabor.errors import BadInput
from datenlabor.interop import genesis_import as gi
from datenlabor.interop.genesis_ws import (
    GenesisClient,
    GenesisCredentialsError,
    GenesisError,
    GenesisTableNotFound,
)
from datenlabor.pool.catalog import DatasetMeta

WS = FIXTURES / "genesis_ws"
USER, PASSWORD = "DE5256891X", "Geheim-Passwort-1"
TOKEN = "9f2c1e0d7b4a4c3e8d6f5a1b2c3d4e5f"
BASE = "/genesisWS/rest/2020/"
REGIO = "/genesisws/rest/2020/"


def _fixture(name: str, **fill: str) -> bytes:
    text = (WS / name).read_text(encoding="utf-8").strip()
    for key, value in fill.items():
        text = text.replace("{" + key + "}", value)
    return text.encode("utf-8")


class FakeGenesis:
    """What the service knows (tables, credentials) and how it behaves (jobs, delays)."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Any]] = {}
        self.large: set[str] = set()
        self.polls_until_done = 2
        self.delay_s = 0.0
        self.poll_delay_s = 0.0  # extra wait on catalogue/results (a job poll) only
        self.requests: list[dict[str, Any]] = []
        self.jobs: dict[str, int] = {}

    def add(self, code: str, meta_file: str, data: bytes, *, zipped: bool = True) -> None:
        meta = json.loads(_fixture(meta_file))
        self.tables[code] = {"meta": meta, "data": data, "zipped": zipped}

    def answer(self, path: str, headers: Any, form: dict[str, str]) -> tuple[int, str, bytes, dict]:
        self.requests.append({"path": path, "headers": dict(headers), "form": form})
        if self.delay_s:
            time.sleep(self.delay_s)
        endpoint = path.split("/rest/2020/", 1)[-1]
        if endpoint == "catalogue/results" and self.poll_delay_s:
            time.sleep(self.poll_delay_s)
        json_type = "application/json;charset=UTF-8"
        token_ok = headers.get("username") == TOKEN and headers.get("password") == ""
        user_ok = headers.get("username") == USER and headers.get("password") == PASSWORD
        if not (token_ok or user_ok):
            return 200, json_type, _fixture("logincheck_failed.json", username=USER), {}
        if endpoint == "helloworld/logincheck":
            return 200, json_type, _fixture("logincheck_ok.json", username=USER), {}
        code = form.get("name", "")
        if endpoint == "metadata/table":
            if code not in self.tables:
                return 200, json_type, _fixture("status_104_metadata_table.json"), {}
            body = json.dumps(self.tables[code]["meta"], ensure_ascii=False, separators=(",", ":"))
            return 200, json_type, body.encode("utf-8"), {}
        if endpoint == "data/tablefile":
            if code not in self.tables:
                return 200, json_type, _fixture("status_104_metadata_table.json"), {}
            if code in self.large and form.get("job") != "true":
                return 200, json_type, _fixture("status_98_tablefile.json"), {}
            if code in self.large:
                job = f"{code}_{len(self.jobs) + 903157}"
                self.jobs[job] = 0
                return 200, json_type, _fixture("status_99_tablefile.json", job=job), {}
            return self._file(code, form)
        if endpoint == "catalogue/results":
            job = form.get("selection", "")
            if job not in self.jobs or form.get("area") != "user":
                return 200, json_type, _fixture("catalogue_results_empty.json"), {}
            self.jobs[job] += 1
            if self.jobs[job] <= self.polls_until_done:
                return 200, json_type, _fixture("catalogue_results_empty.json"), {}
            done = _fixture(
                "catalogue_results_done.json", job=job, title=code, rows="1", date="", time=""
            )
            return 200, json_type, done, {}
        if endpoint == "data/resultfile":
            job = code
            if self.jobs.get(job, 0) <= self.polls_until_done:
                return 200, json_type, _fixture("status_104_metadata_table.json"), {}
            return self._file(job.rsplit("_", 1)[0], form)
        return 404, "text/plain", b"not found", {}

    def _file(self, code: str, form: dict[str, str]) -> tuple[int, str, bytes, dict]:
        table = self.tables[code]
        data: bytes = table["data"]
        if not table["zipped"] or form.get("format") == "csv":
            return 200, "text/csv;charset=UTF-8", data, {}
        name = f"{code}_1773175772751_de_flat"
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(f"{name}.csv", data)
        headers = {"Content-Disposition": f"attachment; filename={name}.zip"}
        return 200, "application/zip", buf.getvalue(), headers


@pytest.fixture
def service() -> Iterator[tuple[FakeGenesis, str]]:
    fake = FakeGenesis()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8")
            if (
                self.headers.get("Content-Type", "").split(";")[0]
                != "application/x-www-form-urlencoded"
            ):
                self.send_response(415)
                self.end_headers()
                return
            form = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
            try:
                status, ctype, body, extra = fake.answer(self.path, self.headers, form)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeouts)
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _settings(url: str, **extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "genesis_url": url + BASE,
        "genesis_regionalstatistik_url": url + REGIO,
        "genesis_zensus_url": url + "/api/rest/2020/",
        "genesis_username": USER,
        "genesis_password": PASSWORD,
        "genesis_timeout_s": 10.0,
        "genesis_retries": 1,
        "genesis_poll_s": 0.01,
        "genesis_job_timeout_s": 20.0,
    }
    values.update(extra)
    return values


def _open(tmp_path: Path, url: str, store_url: str | None = None, **extra: Any) -> Any:
    return datenlabor.open(
        tmp_path / "pool",
        database_url=store_url,
        user="test@example.org",
        **_settings(url, **extra),
    )


def _kreise(fake: FakeGenesis) -> bytes:
    data = shared_file("genesis/ffcsv/12411-01-01-4_de_flat.csv").read_bytes()
    fake.add("12411-01-01-4", "metadata_table_12411-01-01-4.json", data)
    return data


# -- import -------------------------------------------------------------------------------
def test_import_fills_catalogue_and_origin(service, tmp_path: Path, store_url) -> None:
    fake, url = service
    data = _kreise(fake)
    pool = _open(tmp_path, url, store_url)
    try:
        out = gi.import_table(
            pool, "12411-01-01-4", database="regionalstatistik", visibility="public"
        )
        assert (out.action, out.version, out.rows) == ("created", 1, 1467)
        slug = "genesis-12411-01-01-4"
        info = pool.dataset(slug).info()
        assert info.title.startswith("Bevölkerung nach Geschlecht - Stichtag 31.12.")
        assert "\n" not in info.title
        assert info.licence == "dl-de/by-2-0"
        assert info.publisher == "statistische-aemter"
        assert info.publisher_name == "Statistische Ämter des Bundes und der Länder"
        assert (str(info.temporal_start), str(info.temporal_end)) == ("1995-12-31", "2024-12-31")
        assert info.visibility == "public" and info.themes == ["SOCI"]
        assert {"12411-01-01-4", "Geschlecht", "Kreise und kreisfreie Städte"} <= set(info.keywords)
        assert "Datenlizenz Deutschland" in info.description and "31.03.2025" in info.description
        # The rows hold Kreis keys of all 16 Länder: the catalogue says so.
        assert info.spatial == [f"{n:02d}" for n in range(1, 17)]
        v = pool.dataset(slug).version()
        assert v.format == "ffcsv" and v.detection["genesis"]["table_code"] == "12411-01-01-4"
        origin = pool.origin(slug)
        assert origin["kind"] == "genesis" and origin["database"] == "regionalstatistik"
        assert origin["table"] == "12411-01-01-4" and origin["updated"] == "31.03.2025 11:18:07h"
        assert origin["updated_at"] == "2025-03-31T11:18:07"
        import hashlib

        assert origin["sha256"] == hashlib.sha256(data).hexdigest() == v.source_sha256
        assert origin["fetched_at"]
    finally:
        pool.store.dispose()
    # The request style of the 2020 interface: POST, form body, credentials in headers only.
    assert [r["path"].split("/rest/2020/")[1] for r in fake.requests] == [
        "helloworld/logincheck",
        "metadata/table",
        "data/tablefile",
    ]
    assert all(r["path"].startswith(REGIO) for r in fake.requests)
    for r in fake.requests:
        assert r["headers"]["username"] == USER and r["headers"]["password"] == PASSWORD
        assert USER not in r["path"] and "password" not in r["form"]
    assert fake.requests[2]["form"]["format"] == "ffcsv"
    assert fake.requests[2]["form"]["name"] == "12411-01-01-4"


def test_destatis_table_and_classic_csv(service, tmp_path: Path) -> None:
    fake, url = service
    fake.add(
        "12211-0001",
        "metadata_table_12211-0001.json",
        shared_file("genesis/ffcsv/12211-0001_de_flat.csv").read_bytes(),
    )
    classic = shared_file("genesis/63111-0001.csv").read_bytes()
    fake.add("63111-0001", "metadata_table_63111-0001.json", classic, zipped=False)
    pool = _open(tmp_path, url)
    try:
        a = gi.import_table(pool, "12211-0001")
        assert a.action == "created" and a.rows == 225
        info = pool.dataset("genesis-12211-0001").info()
        assert info.publisher == "destatis" and info.spatial == []  # Deutschland insgesamt
        assert (str(info.temporal_start), str(info.temporal_end)) == ("2020-01-01", "2024-12-31")
        assert info.themes == ["SOCI"]
        b = gi.import_table(pool, "63111-0001", dataset="haushalte", fmt="csv", publisher="statamt")
        assert b.action == "created" and b.rows == 1368
        v = pool.dataset("haushalte").version()
        assert v.format == "genesis" and v.detection["encoding"] == "cp1252"
        assert pool.dataset("haushalte").info().publisher == "statamt"
        assert pool.origin("haushalte")["format"] == "csv"
    finally:
        pool.store.dispose()


# -- refresh ------------------------------------------------------------------------------
def test_unchanged_table_gives_no_new_version(service, tmp_path: Path, store_url) -> None:
    fake, url = service
    _kreise(fake)
    pool = _open(tmp_path, url, store_url)
    try:
        gi.import_table(pool, "12411-01-01-4")
        fake.requests.clear()
        [out] = gi.refresh(pool)
        assert (out.action, out.version) == ("unchanged", 1)
        # The unchanged update stamp ended the check: nothing was downloaded.
        assert not [r for r in fake.requests if "/rest/2020/data/" in r["path"]]
        # Importing again downloads, finds the same content and keeps the version.
        again = gi.import_table(pool, "12411-01-01-4")
        assert (again.action, again.version) == ("unchanged", 1)
        assert [v.version for v in pool.dataset("genesis-12411-01-01-4").versions()] == [1]
    finally:
        pool.store.dispose()


def test_changed_table_gives_new_version(service, tmp_path: Path) -> None:
    fake, url = service
    data = _kreise(fake)
    pool = _open(tmp_path, url)
    try:
        gi.import_table(pool, "12411-01-01-4", dataset="kreise")
        first_sha = pool.origin("kreise")["sha256"]
        # A new stamp with the same content: no version, but the stamp is remembered.
        fake.tables["12411-01-01-4"]["meta"]["Object"]["Updated"] = "01.04.2025 08:00:00h"
        [same] = gi.refresh(pool, ["kreise"])
        assert (same.action, same.message) == ("unchanged", "content unchanged")
        assert pool.origin("kreise")["updated"] == "01.04.2025 08:00:00h"
        # An edit in Datenlabor survives a refresh; the source's own fields are updated.
        pool.update_metadata("kreise", DatasetMeta(title="Kreise (eigene Benennung)"))
        # Revised figures (Mannheim) and a new stamp: version 2 with the new value.
        assert b";158789;" in data
        fake.tables["12411-01-01-4"]["data"] = data.replace(b";158789;", b";158790;", 1)
        fake.tables["12411-01-01-4"]["meta"]["Object"]["Updated"] = "02.04.2025 09:30:00h"
        [out] = gi.refresh(pool)
        assert (out.action, out.version, out.rows) == ("new-version", 2, 1467)
        rows = pool.query(
            "SELECT value FROM kreise WHERE kreise_code = '08222' AND ges_code = 'GESW'"
        ).to_pylist()
        assert rows == [{"value": 158790.0}]
        origin = pool.origin("kreise")
        assert origin["sha256"] != first_sha and origin["updated"] == "02.04.2025 09:30:00h"
        info = pool.dataset("kreise").info()
        assert info.title == "Kreise (eigene Benennung)"
        assert "Stand 02.04.2025 09:30:00h" in info.description
    finally:
        pool.store.dispose()


def test_refresh_reports_failures_and_goes_on(service, tmp_path: Path) -> None:
    fake, url = service
    _kreise(fake)
    fake.add(
        "12211-0001",
        "metadata_table_12211-0001.json",
        shared_file("genesis/ffcsv/12211-0001_de_flat.csv").read_bytes(),
    )
    pool = _open(tmp_path, url)
    try:
        gi.import_table(pool, "12211-0001")
        gi.import_table(pool, "12411-01-01-4")
        del fake.tables["12211-0001"]  # withdrawn by the office
        outcomes = {o.dataset: o for o in gi.refresh(pool)}
        assert outcomes["genesis-12211-0001"].action == "failed"
        assert "no table '12211-0001'" in outcomes["genesis-12211-0001"].message
        assert outcomes["genesis-12411-01-01-4"].action == "unchanged"
        pool.ingest(FIXTURES / "genesis" / "46181-0001_flat_legacy.csv", dataset="upload")
        with pytest.raises(BadInput, match="not imported from GENESIS"):
            gi.refresh(pool, ["upload"])
        with pytest.raises(BadInput, match="exists and holds an upload"):
            gi.import_table(pool, "12411-01-01-4", dataset="upload")
        with pytest.raises(BadInput, match="holds 12411-01-01-4, not GENESIS table 12211-0001"):
            gi.import_table(pool, "12211-0001", dataset="genesis-12411-01-01-4")
        assert [v.version for v in pool.dataset("upload").versions()] == [1]
    finally:
        pool.store.dispose()


# -- errors -------------------------------------------------------------------------------
def test_wrong_credentials(service, tmp_path: Path) -> None:
    fake, url = service
    _kreise(fake)
    pool = _open(tmp_path, url, genesis_password="falsch")
    try:
        with pytest.raises(GenesisCredentialsError, match="does not accept the credentials"):
            gi.import_table(pool, "12411-01-01-4")
        assert pool.datasets() == []
    finally:
        pool.store.dispose()
    none = _open(tmp_path / "x", url, genesis_username=None, genesis_password=None)
    try:
        with pytest.raises(GenesisCredentialsError, match="DATENLABOR_GENESIS_USERNAME"):
            GenesisClient(none.settings)
    finally:
        none.store.dispose()


def test_api_token_and_size_limit(service, tmp_path: Path) -> None:
    fake, url = service
    _kreise(fake)
    pool = _open(tmp_path, url, genesis_username=None, genesis_password=None, genesis_token=TOKEN)
    try:
        assert gi.import_table(pool, "12411-01-01-4").action == "created"
        assert {(r["headers"]["username"], r["headers"]["password"]) for r in fake.requests} == {
            (TOKEN, "")
        }
    finally:
        pool.store.dispose()
    small = _open(tmp_path / "small", url, max_upload_bytes=10_000)
    try:
        with pytest.raises(GenesisError, match="more than DATENLABOR_MAX_UPLOAD_BYTES"):
            gi.import_table(small, "12411-01-01-4")
        assert small.datasets() == []
        assert not [p for p in (small.root / "tmp").iterdir()]  # nothing left behind
    finally:
        small.store.dispose()


def test_unknown_table_and_bad_code(service, tmp_path: Path) -> None:
    _fake, url = service
    pool = _open(tmp_path, url)
    try:
        with pytest.raises(GenesisTableNotFound, match=r"no table '99999-0001'.*status 104"):
            gi.import_table(pool, "99999-0001")
        with pytest.raises(BadInput, match="not a GENESIS table code"):
            gi.import_table(pool, "12411 0001; DROP")
        with pytest.raises(BadInput, match="unknown GENESIS database"):
            gi.import_table(pool, "12411-0001", database="eurostat")
        assert pool.datasets() == []
    finally:
        pool.store.dispose()


def test_large_table_through_a_job(service, tmp_path: Path) -> None:
    fake, url = service
    _kreise(fake)
    fake.large.add("12411-01-01-4")
    fake.polls_until_done = 2
    pool = _open(tmp_path, url)
    try:
        out = gi.import_table(pool, "12411-01-01-4")
        assert (out.action, out.rows) == ("created", 1467)
        [job] = fake.jobs
        assert pool.origin("genesis-12411-01-01-4")["job"] == job
        paths = [r["path"].split("/rest/2020/")[1] for r in fake.requests]
        assert paths.count("catalogue/results") == 3  # two "not yet", then listed
        assert paths[-1] == "data/resultfile"
        assert fake.requests[-1]["form"]["name"] == job
    finally:
        pool.store.dispose()


def test_job_that_never_finishes_hits_the_overall_limit(service, tmp_path: Path) -> None:
    fake, url = service
    _kreise(fake)
    fake.large.add("12411-01-01-4")
    fake.polls_until_done = 10**6
    pool = _open(tmp_path, url, genesis_poll_s=0.05, genesis_job_timeout_s=0.6)
    try:
        started = time.monotonic()
        with pytest.raises(GenesisError, match="not finished within"):
            gi.import_table(pool, "12411-01-01-4")
        assert time.monotonic() - started < 5
        assert pool.datasets() == []
    finally:
        pool.store.dispose()


def test_job_limit_running_out_during_a_poll_names_the_job_limit(
    service, tmp_path: Path
) -> None:
    # the first poll hangs longer than the whole limit: the limit runs out while GENESIS is
    # being asked about the job, and the error must name the job limit, not the poll
    fake, url = service
    _kreise(fake)
    fake.large.add("12411-01-01-4")
    fake.polls_until_done = 10**6
    fake.poll_delay_s = 3.0
    pool = _open(tmp_path, url, genesis_poll_s=0.05, genesis_job_timeout_s=1.5)
    try:
        with pytest.raises(GenesisError, match="not finished within"):
            gi.import_table(pool, "12411-01-01-4")
        assert pool.datasets() == []
    finally:
        pool.store.dispose()


def test_timeout_with_retries(service, tmp_path: Path) -> None:
    fake, url = service
    fake.delay_s = 0.8
    pool = _open(tmp_path, url, genesis_timeout_s=0.2, genesis_retries=1)
    try:
        started = time.monotonic()
        with pytest.raises(GenesisError, match=r"did not answer helloworld/logincheck.*2 time"):
            gi.import_table(pool, "12411-01-01-4")
        assert time.monotonic() - started < 4
        assert len(fake.requests) == 2  # the first try and one retry
    finally:
        pool.store.dispose()


# -- metadata parsing ---------------------------------------------------------------------
def test_table_meta_from_recorded_answer() -> None:
    obj = json.loads(_fixture("metadata_table_12211-0001.json"))
    meta = gi.TableMeta.of({**obj["Object"], "Copyright": obj["Copyright"]})
    assert meta.statistic_code == "12211" and meta.statistic_label == "Mikrozensus"
    assert ("ALT068", "Altersgruppen (u15-75m)") in meta.variables
    assert ("JAHR", "Jahr") in meta.variables
    assert meta.updated_at is not None and meta.updated_at.isoformat() == "2022-12-28T09:26:09"
    en = gi.TableMeta("x", "t", None, None, "2022-03", "2023-02", "2025-03-31 11:18:07h", None)
    assert en.updated_at is not None and en.updated_at.day == 31
    m = gi.dataset_meta(en, "destatis")
    assert (str(m.temporal_start), str(m.temporal_end)) == ("2022-03-01", "2023-02-28")


# -- CLI ----------------------------------------------------------------------------------
def test_cli_import_and_refresh(service, tmp_path: Path, monkeypatch) -> None:
    from datenlabor.cli import app

    fake, url = service
    _kreise(fake)
    for key, value in _settings(url).items():
        monkeypatch.setenv(f"DATENLABOR_{key.upper()}", str(value))
    runner = CliRunner()
    pool_dir = str(tmp_path / "pool")
    res = runner.invoke(
        app,
        ["--pool", pool_dir, "genesis", "import", "12411-01-01-4", "--database",
         "regionalstatistik", "--dataset", "kreise", "--visibility", "public", "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["action"] == "created"
    res = runner.invoke(app, ["--pool", pool_dir, "genesis", "refresh", "--json"])
    assert res.exit_code == 0, res.output
    assert [o["action"] for o in json.loads(res.stdout)] == ["unchanged"]
    del fake.tables["12411-01-01-4"]
    res = runner.invoke(app, ["--pool", pool_dir, "genesis", "refresh", "kreise"])
    assert res.exit_code == 1
    assert "kreise" in res.output and "no table" in res.output
    res = runner.invoke(app, ["--pool", pool_dir, "genesis", "import", "12411-01-01-4"])
    assert isinstance(res.exception, GenesisTableNotFound)
    # As a real process: the error message and the exit code of wrong credentials.
    env = {**os.environ, "DATENLABOR_GENESIS_PASSWORD": "falsch"}
    proc = subprocess.run(
        [sys.executable, "-m", "datenlabor.cli", "--pool", pool_dir, "genesis", "import", "1-2"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "not a GENESIS table code" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "datenlabor.cli", "--pool", pool_dir, "genesis", "import",
         "12411-01-01-4"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 6, proc.stderr
    assert "does not accept the credentials" in proc.stderr
