"""Streaming multipart uploads into the pool's tmp folder (datenlabor.web.uploads)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from datenlabor.errors import BadInput
from datenlabor.web.uploads import PayloadTooLarge, Upload, human_size, receive_upload

B = "----datenlabor-test-boundary-7f3a"
MULTIPART = f"multipart/form-data; boundary={B}"
MB = 2**20


def part(name: str, value: bytes | str = b"", filename: str | bytes | None = None) -> bytes:
    """One raw body part; names and file names are sent as raw UTF-8 like browsers do."""
    data = value.encode() if isinstance(value, str) else value
    disposition = f'form-data; name="{name}"'.encode()
    headers = b""
    if filename is not None:
        raw = filename.encode() if isinstance(filename, str) else filename
        disposition += b'; filename="' + raw + b'"'
        headers = b"\r\nContent-Type: text/csv"
    return b"Content-Disposition: " + disposition + headers + b"\r\n\r\n" + data


def body(*parts: bytes) -> bytes:
    out = b"".join(b"--" + B.encode() + b"\r\n" + p + b"\r\n" for p in parts)
    return out + b"--" + B.encode() + b"--\r\n"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(MB):
            digest.update(chunk)
    return digest.hexdigest()


def make_app(dest: Path, **limits: int) -> Starlette:
    limits.setdefault("max_bytes", 10 * MB)

    async def upload(request: Request) -> JSONResponse:
        try:
            up = await receive_upload(request, dest, **limits)  # type: ignore[arg-type]
        except BadInput as exc:
            return JSONResponse({"error": str(exc)}, getattr(exc, "status_code", 400))
        assert up.path is not None
        answer = {
            "fields": up.fields,
            "filename": up.filename,
            "size": up.size,
            "content_type": up.content_type,
            "sha256": sha256_file(up.path),
            "saved": up.path.name,
            "in_dest": up.path.parent == dest,
        }
        return JSONResponse(answer)

    return Starlette(routes=[Route("/upload", upload, methods=["POST"])])


def leftovers(dest: Path) -> list[Path]:
    return sorted(dest.glob("upload-*")) if dest.exists() else []


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "tmp"


@pytest.fixture
def client(dest: Path) -> Iterator[TestClient]:
    with TestClient(make_app(dest)) as c:
        yield c


def post(client: TestClient, content: bytes, ctype: str = MULTIPART) -> httpx.Response:
    return client.post("/upload", content=content, headers={"content-type": ctype})


def failed(response: httpx.Response, dest: Path, status: int = 400) -> str:
    """The error message of a refused upload, after checking nothing was left behind."""
    assert response.status_code == status, response.text
    assert leftovers(dest) == []
    return str(response.json()["error"])


@pytest.mark.parametrize("file_first", [True, False])
def test_fields_before_and_after_the_file(client: TestClient, dest: Path, file_first: bool):
    data = "Kreis;Einwohner\nMünchen;1512491\n".encode()
    file_part = part("file", data, filename="Bevölkerung 2023.csv")
    fields = [part("dataset", "bevölkerung"), part("title", "Einwohner nach Kreisen – Straße")]
    parts = [file_part, *fields] if file_first else [*fields, file_part]
    parts.append(part("mode", "append"))
    r = post(client, body(*parts))
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["fields"] == {
        "dataset": "bevölkerung",
        "title": "Einwohner nach Kreisen – Straße",
        "mode": "append",
    }
    assert got["filename"] == "Bevölkerung 2023.csv"
    assert got["size"] == len(data)
    assert got["sha256"] == hashlib.sha256(data).hexdigest()
    assert got["content_type"] == "text/csv"
    assert got["in_dest"]
    assert got["saved"].startswith("upload-") and got["saved"].endswith(".csv")
    assert [p.name for p in leftovers(dest)] == [got["saved"]]


def test_empty_file_and_no_fields(client: TestClient):
    r = post(client, body(part("file", b"", filename="leer.json")))
    assert r.status_code == 200, r.text
    assert r.json()["size"] == 0 and r.json()["fields"] == {}


@pytest.mark.parametrize(
    ("sent", "filename", "suffix"),
    [
        ("..\\..\\x.csv", "x.csv", ".csv"),
        ("/etc/x", "x", ""),
        ("../../Daten.XLSX", "Daten.XLSX", ".xlsx"),
        ("C:\\Users\\amt\\Tabelle.Parquet", "Tabelle.Parquet", ".parquet"),
        ("a/b\\..\\c.j$on", "c.j$on", ".jon"),
        ("Gemeinden.ö", "Gemeinden.ö", ""),
    ],
)
def test_path_components_are_stripped(
    client: TestClient, dest: Path, sent: str, filename: str, suffix: str
):
    r = post(client, body(part("file", b"1", filename=sent)))
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["filename"] == filename
    assert got["in_dest"]
    stem, _, ext = got["saved"].partition(".")
    assert stem.startswith("upload-") and len(stem) == len("upload-") + 32
    assert ("." + ext if ext else "") == suffix
    assert [p.name for p in dest.iterdir()] == [got["saved"]]


@pytest.mark.parametrize("sent", ["../", "..", "C:\\dir\\", ""])
def test_empty_filename_is_refused(client: TestClient, dest: Path, sent: str):
    r = post(client, body(part("dataset", "x"), part("file", b"1", filename=sent)))
    assert "file part 'file' has no file name" in failed(r, dest)


def test_missing_file_part(client: TestClient, dest: Path):
    r = post(client, body(part("dataset", "x"), part("title", "y")))
    assert failed(r, dest) == "expected multipart/form-data with a file part 'file'"
    r = post(client, body(part("file", "not a file")))
    assert "part 'file' must be a file" in failed(r, dest)


def test_two_files_leave_nothing_behind(client: TestClient, dest: Path):
    two = body(part("file", b"a" * 5000, filename="a.csv"), part("file", b"b", filename="b.csv"))
    assert "more than one file part 'file'" in failed(post(client, two), dest)
    other = body(part("file", b"a", filename="a.csv"), part("extra", b"b", filename="b.csv"))
    assert "unexpected file part 'extra'" in failed(post(client, other), dest)


def test_field_limits(dest: Path):
    with TestClient(make_app(dest, max_field_bytes=100, max_fields=3)) as c:
        file_part = part("file", b"x" * 1000, filename="a.csv")
        r = post(c, body(file_part, part("title", "ä" * 51)))
        assert "field 'title' is larger than 100 bytes" in failed(r, dest)
        r = post(c, body(*(part(f"f{i}", "v") for i in range(4)), file_part))
        assert "too many fields: at most 3; 'f3'" in failed(r, dest)
        r = post(c, body(file_part, part("title", b"Stra\xdfe")))
        assert "field 'title' is not valid UTF-8" in failed(r, dest)
        r = post(c, body(file_part, part("key", "a"), part("key", "b")))
        assert "field 'key' is given more than once" in failed(r, dest)
        r = post(c, body(part("title", "ä" * 50), part("a", ""), file_part))
        assert r.status_code == 200 and r.json()["fields"] == {"title": "ä" * 50, "a": ""}


class Body:
    """A request body from a generator that records how much of it was consumed."""

    def __init__(self, head: bytes, file_bytes: int, chunk: int = 64 * 1024) -> None:
        self.head, self.file_bytes, self.chunk, self.sent = head, file_bytes, chunk, 0

    def __iter__(self) -> Iterator[bytes]:
        for piece in self._pieces():
            self.sent += len(piece)
            yield piece

    def _pieces(self) -> Iterator[bytes]:
        yield self.head
        block = os.urandom(self.chunk)
        for i in range(0, self.file_bytes, self.chunk):
            yield block[: min(self.chunk, self.file_bytes - i)]
        yield b"\r\n--" + B.encode() + b"--\r\n"


def file_head(filename: str = "gross.csv") -> bytes:
    return b"--" + B.encode() + b"\r\n" + part("file", b"", filename=filename)


def test_too_large_by_content_length_is_refused_before_reading(dest: Path):
    with TestClient(make_app(dest, max_bytes=MB)) as c:
        gen = Body(file_head(), 30 * MB)
        headers = {"content-type": MULTIPART, "content-length": str(30 * MB + 200)}
        r = c.post("/upload", content=iter(gen), headers=headers)
        assert failed(r, dest, 413) == "the upload is larger than the limit of 1 MB"
        assert gen.sent == 0


def test_too_large_while_streaming_chunked(dest: Path):
    with TestClient(make_app(dest, max_bytes=3 * MB // 2)) as c:
        gen = Body(file_head(), 5 * MB)
        r = c.post("/upload", content=iter(gen), headers={"content-type": MULTIPART})
        assert r.request.headers.get("transfer-encoding") == "chunked"
        assert failed(r, dest, 413) == "the upload is larger than the limit of 1.5 MB"
        # exactly at the limit is fine
        gen = Body(file_head(), 3 * MB // 2)
        r = c.post("/upload", content=iter(gen), headers={"content-type": MULTIPART})
        assert r.status_code == 200 and r.json()["size"] == 3 * MB // 2


def test_too_large_stops_reading_at_the_limit(dest: Path):
    """The TestClient reads the whole body up front, so drive ``receive`` by hand."""
    gen = Body(file_head(), 100 * MB)
    pieces = iter(gen)

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": next(pieces), "more_body": True}

    scope = {"type": "http", "method": "POST", "headers": [(b"content-type", MULTIPART.encode())]}
    with pytest.raises(PayloadTooLarge, match="limit of 2 MB"):
        asyncio.run(receive_upload(Request(scope, receive), dest, max_bytes=2 * MB))
    assert 2 * MB < gen.sent < 2 * MB + 128 * 1024
    assert leftovers(dest) == []


def test_endless_epilogue_is_cut_off(dest: Path):
    """Bytes after the closing boundary are skipped by the parser but still counted."""
    with TestClient(make_app(dest, max_bytes=1000, max_fields=1, max_field_bytes=10)) as c:
        ok = body(part("file", b"1", filename="a.csv"))

        def endless() -> Iterator[bytes]:
            yield ok
            for _ in range(200):
                yield b"x" * 64 * 1024

        r = c.post("/upload", content=endless(), headers={"content-type": MULTIPART})
        failed(r, dest, 413)


@pytest.mark.parametrize(
    "raw",
    [
        b"this is not multipart at all",
        b"--" + B.encode() + b"\r\nno header line end" + b"x" * 10_000,
        body(part("file", b"abc", filename="a.csv"))[:-30],  # truncated, no closing boundary
        body(part("file", b"abc", filename="a.csv")).replace(b"Content-Disposition", b"X"),
        b"--" + B.encode() + b"\r\nX-Long: " + b"y" * 5000 + b"\r\n\r\n",
        b"--" + B.encode() + b"\r\n" + b"X: y\r\n" * 9 + b"\r\n",
    ],
)
def test_malformed_body(client: TestClient, dest: Path, raw: bytes):
    message = failed(post(client, raw), dest)
    assert "malformed" in message or "Content-Disposition" in message


@pytest.mark.parametrize(
    "ctype",
    [
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "multipart/mixed; boundary=" + B,
        "",
    ],
)
def test_wrong_content_type(client: TestClient, dest: Path, ctype: str):
    r = post(client, body(part("file", b"a", filename="a.csv")), ctype=ctype)
    assert failed(r, dest) == "expected multipart/form-data with a file part 'file'"


def run_asgi_upload(dest: Path, messages: list[dict[str, object]] | Exception) -> Upload:
    """Call receive_upload with a hand-made ``receive`` (disconnects, server errors)."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/upload",
        "headers": [(b"content-type", MULTIPART.encode())],
    }
    queue = list(messages) if isinstance(messages, list) else []

    async def receive() -> dict[str, object]:
        if not queue:
            assert isinstance(messages, Exception)
            raise messages
        return queue.pop(0)

    return asyncio.run(receive_upload(Request(scope, receive), dest, max_bytes=10 * MB))


def test_client_disconnect_deletes_partial_file(dest: Path):
    head = file_head() + b"a" * (3 * MB)  # more than one flush: data is on disk
    msgs: list[dict[str, object]] = [
        {"type": "http.request", "body": head, "more_body": True},
        {"type": "http.disconnect"},
    ]
    with pytest.raises(BadInput, match="interrupted: the client disconnected"):
        run_asgi_upload(dest, msgs)
    assert dest.is_dir() and leftovers(dest) == []


def test_any_error_deletes_partial_file(dest: Path):
    with pytest.raises(RuntimeError, match="boom"):
        run_asgi_upload(dest, RuntimeError("boom"))  # before any data
    calls: list[int] = []

    async def receive_then_fail() -> dict[str, object]:
        calls.append(1)
        if len(calls) == 1:
            return {"type": "http.request", "body": file_head() + b"a" * 100, "more_body": True}
        raise OSError("disk gone")

    scope = {"type": "http", "method": "POST", "headers": [(b"content-type", MULTIPART.encode())]}
    with pytest.raises(OSError, match="disk gone"):
        asyncio.run(receive_upload(Request(scope, receive_then_fail), dest, max_bytes=MB))
    assert leftovers(dest) == []


def test_cleanup_is_idempotent(dest: Path):
    msgs: list[dict[str, object]] = [
        {"type": "http.request", "body": body(part("file", b"abc", filename="a.TSV"))}
    ]
    up = run_asgi_upload(dest, msgs)
    assert up.path is not None and up.path.read_bytes() == b"abc"
    assert up.path.suffix == ".tsv" and up.size == 3 and up.filename == "a.TSV"
    up.cleanup()
    up.cleanup()
    assert leftovers(dest) == []
    Upload({}, None, None, 0, None).cleanup()


def test_payload_too_large_is_bad_input():
    exc = PayloadTooLarge("x")
    assert isinstance(exc, BadInput) and exc.status_code == 413
    assert human_size(2**30) == "1 GB"
    assert human_size(int(2.5 * 2**30)) == "2.5 GB"
    assert human_size(200 * MB) == "200 MB"
    assert human_size(1023 * MB) == "1023 MB"
    assert human_size(64 * 1024) == "64 KB"
    assert human_size(100) == "100 bytes"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def serve(dest: Path) -> Iterator[Callable[[int], str]]:
    """Start real uvicorn servers in threads (the way the service runs); stop them after."""
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(max_bytes: int) -> str:
        port = free_port()
        app = make_app(dest, max_bytes=max_bytes)
        srv = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        running.append((srv, thread))
        deadline = time.monotonic() + 10
        while not srv.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        return f"http://127.0.0.1:{port}/upload"

    yield start
    for srv, thread in running:
        srv.should_exit = True
        thread.join(10)


def test_real_server_refuses_too_large(serve: Callable[[int], str], dest: Path):
    url = serve(MB)
    with httpx.Client(timeout=60) as http:
        gen = Body(file_head(), 20 * MB)
        r = http.post(url, content=iter(gen), headers={"content-type": MULTIPART})
        assert failed(r, dest, 413) == "the upload is larger than the limit of 1 MB"
        ok = body(part("file", b"ok", filename="a.csv"))
        r = http.post(url, content=ok, headers={"content-type": MULTIPART})
        assert r.status_code == 200 and r.json()["size"] == 2


def test_real_server_streams_200_mb(serve: Callable[[int], str], dest: Path):
    url = serve(300 * MB)
    size = 200 * MB
    chunk = os.urandom(MB)
    expected = hashlib.sha256()

    def generate() -> Iterator[bytes]:
        yield b"--" + B.encode() + b"\r\n" + part("dataset", "groß") + b"\r\n"
        yield file_head("Bevölkerung 2023.csv")
        for i in range(size // MB):
            block = i.to_bytes(4, "big") + chunk[4:]  # every MB differs
            expected.update(block)
            yield block
        yield b"\r\n" + b"--" + B.encode() + b"\r\n" + part("mode", "replace")
        yield b"\r\n--" + B.encode() + b"--\r\n"

    proc = psutil.Process()
    baseline = proc.memory_info().rss
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.01):
            peak = max(peak, proc.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with httpx.Client(timeout=120) as http:
            r = http.post(url, content=generate(), headers={"content-type": MULTIPART})
    finally:
        done.set()
        sampler.join()
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["size"] == size
    assert got["sha256"] == expected.hexdigest()
    assert got["filename"] == "Bevölkerung 2023.csv"
    assert got["fields"] == {"dataset": "groß", "mode": "replace"}
    # client and server share this process: neither may hold the upload in memory
    assert peak - baseline < 60 * MB, f"RSS grew by {(peak - baseline) / MB:.0f} MB"
