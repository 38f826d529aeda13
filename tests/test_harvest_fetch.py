"""Harvest HTTP: timeouts, retries, size limits and truncated bodies against a local server."""

from __future__ import annotations

import hashlib
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from datenlabor.interop.harvest_fetch import Fetcher, FetchError, Limits, file_name, unpack_single
from fixtures.harvest.catalogue_server import CatalogueServer, running

FAST = Limits(
    connect_timeout_s=1.0,
    read_timeout_s=0.5,
    page_timeout_s=3.0,
    download_timeout_s=3.0,
    retries=2,
    backoff_s=0.01,
    max_backoff_s=0.05,
)
CSV = "Kreis;Einwohner;Fläche\n01001;90164;56,73\n01002;246601;118,65\n".encode()


@pytest.fixture
def server() -> Iterator[CatalogueServer]:
    with running() as srv:
        yield srv


def test_download_streams_to_file_with_its_sha256(server: CatalogueServer, tmp_path: Path) -> None:
    url = server.add("/data/kreise.csv", CSV)
    with Fetcher(FAST) as f:
        got = f.download(url, tmp_path / "kreise.csv")
    assert got.path.read_bytes() == CSV
    assert got.sha256 == hashlib.sha256(CSV).hexdigest()
    assert got.size == len(CSV)
    assert got.content_type == "text/csv"


def test_5xx_is_retried_until_it_works(server: CatalogueServer, tmp_path: Path) -> None:
    url = server.add("/flaky.csv", CSV, fail_first=2)
    with Fetcher(FAST) as f:
        got = f.download(url, tmp_path / "flaky.csv")
    assert got.path.read_bytes() == CSV
    assert server.hits["/flaky.csv"] == 3


def test_persistent_500_fails_after_the_retries(server: CatalogueServer, tmp_path: Path) -> None:
    url = server.add("/broken.csv", b"oops", status=500)
    with Fetcher(FAST) as f, pytest.raises(FetchError) as exc:
        f.download(url, tmp_path / "broken.csv")
    assert exc.value.status == 500
    assert "HTTP 500" in str(exc.value) and "3 attempts" in str(exc.value)
    assert server.hits["/broken.csv"] == FAST.retries + 1
    assert not (tmp_path / "broken.csv").exists()


@pytest.mark.parametrize("retry_after,pause", [("2", 2.0), ("600", 5.0), (None, 0.01)])
def test_retry_after_is_honoured_up_to_the_cap(
    server: CatalogueServer, tmp_path: Path, retry_after: str | None, pause: float
) -> None:
    url = server.add("/busy.csv", CSV, fail_first=1, fail_status=429, retry_after=retry_after)
    pauses: list[float] = []
    limits = Limits(retries=2, backoff_s=0.01, max_backoff_s=5.0, download_timeout_s=60.0)
    with Fetcher(limits, sleep=pauses.append) as f:
        got = f.download(url, tmp_path / "busy.csv")
    assert got.path.read_bytes() == CSV
    assert pauses == [pytest.approx(pause)]


def test_404_is_not_retried(server: CatalogueServer, tmp_path: Path) -> None:
    with Fetcher(FAST) as f, pytest.raises(FetchError) as exc:
        f.download(server.url + "/missing.csv", tmp_path / "m.csv")
    assert exc.value.status == 404
    assert server.hits["/missing.csv"] == 1


def test_silent_server_times_out_within_the_limit(server: CatalogueServer, tmp_path: Path) -> None:
    url = server.add("/silent.csv", CSV, behaviour="hang")
    limits = Limits(
        connect_timeout_s=1.0,
        read_timeout_s=0.4,
        download_timeout_s=1.5,
        retries=10,
        backoff_s=0.01,
    )
    started = time.monotonic()
    with Fetcher(limits) as f, pytest.raises(FetchError) as exc:
        f.download(url, tmp_path / "silent.csv")
    elapsed = time.monotonic() - started
    assert "timed out" in str(exc.value)
    # the overall limit (1.5 s) ends the retries; one read may still be waiting (0.4 s)
    assert elapsed < 1.5 + 0.4 + 0.5, elapsed


def test_trickling_server_hits_the_download_limit(server: CatalogueServer, tmp_path: Path) -> None:
    url = server.add("/slow.csv", CSV * 20, behaviour="trickle")  # 5 bytes per second
    limits = Limits(read_timeout_s=1.0, download_timeout_s=1.0, retries=3, backoff_s=0.01)
    started = time.monotonic()
    with Fetcher(limits) as f, pytest.raises(FetchError) as exc:
        f.download(url, tmp_path / "slow.csv")
    assert time.monotonic() - started < 1.0 + 1.0 + 0.5
    assert "time limit" in str(exc.value)
    assert not (tmp_path / "slow.csv").exists()


def test_truncated_body_is_retried_then_reported(server: CatalogueServer, tmp_path: Path) -> None:
    url = server.add("/cut.csv", CSV * 100, behaviour="truncate")
    with Fetcher(FAST) as f, pytest.raises(FetchError) as exc:
        f.download(url, tmp_path / "cut.csv")
    assert "broke off" in str(exc.value)
    assert server.hits["/cut.csv"] == FAST.retries + 1
    assert not (tmp_path / "cut.csv").exists()


@pytest.mark.parametrize("behaviour", ["ok", "no-length"])
def test_size_limit(server: CatalogueServer, tmp_path: Path, behaviour: str) -> None:
    url = server.add("/big.csv", CSV * 1000, behaviour=behaviour)
    limits = Limits(max_download_bytes=10_000, retries=0)
    with Fetcher(limits) as f, pytest.raises(FetchError) as exc:
        f.download(url, tmp_path / "big.csv")
    assert "larger than the limit of 10,000 bytes" in str(exc.value)
    assert not (tmp_path / "big.csv").exists()
    assert server.hits["/big.csv"] == 1  # a size problem is not retried


def test_page_get_returns_body_type_and_final_url(server: CatalogueServer) -> None:
    url = server.add("/catalog.ttl", b"<a> <b> <c> .", content_type="text/turtle")
    with Fetcher(FAST) as f:
        body, ctype, final = f.get(url)
    assert (body, ctype, final) == (b"<a> <b> <c> .", "text/turtle", url)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/a.csv"])
def test_only_http_urls_are_fetched(tmp_path: Path, url: str) -> None:
    with Fetcher(FAST) as f, pytest.raises(FetchError, match="only http and https"):
        f.download(url, tmp_path / "x")


def test_connection_refused_is_reported(tmp_path: Path) -> None:
    srv = CatalogueServer()  # bound but closed at once: nothing listens on the port
    url = srv.url + "/x.csv"
    srv.httpd.server_close()
    with Fetcher(FAST) as f, pytest.raises(FetchError) as exc:
        f.download(url, tmp_path / "x.csv")
    assert "connection failed" in str(exc.value)


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_zip_with_one_table_is_unpacked(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "a.zip", {"README.txt.md": b"x", "daten/kreise.csv": CSV})
    out, sha = unpack_single(archive, tmp_path, 10**6)
    assert out.name == "kreise.csv" and out.read_bytes() == CSV
    assert sha == hashlib.sha256(CSV).hexdigest()


def test_zip_with_several_tables_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "b.zip", {"a.csv": CSV, "b.csv": CSV})
    with pytest.raises(FetchError, match="2 tables"):
        unpack_single(archive, tmp_path, 10**6)


def test_zip_member_larger_than_the_limit_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "c.zip", {"big.csv": b"0;" * 100_000})  # compresses to little
    with pytest.raises(FetchError, match="larger than the limit"):
        unpack_single(archive, tmp_path, 50_000)


def test_file_names_are_safe_and_keep_the_format() -> None:
    assert file_name("http://x/a/Bade%20stellen.csv?x=1", "csv") == "Bade_stellen.csv"
    assert file_name("http://x/api/download?id=7", "csv") == "download.csv"
    assert file_name("http://x/../../etc/passwd", None) == "passwd"
    assert file_name("http://x/data.zip", "csv") == "data.zip"
