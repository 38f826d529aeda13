"""HTTP for harvesting: bounded in time and size, retried on transient failures.

Every request a harvest makes goes through :class:`Fetcher`:

* connect and read timeouts on each attempt, and an overall time limit per catalogue page and
  per download that also covers the retries, so a server that accepts the connection and then
  sends nothing (or trickles) cannot stall a harvest: each read waits at most
  ``read_timeout_s``, the whole fetch ends at most ``read_timeout_s`` after its limit;
* retries with exponential backoff on connection errors, timeouts, truncated bodies, HTTP 5xx,
  408 and 429 (``Retry-After`` honoured up to ``max_backoff_s``); other 4xx fail at once;
* a size limit checked against ``Content-Length`` before reading and counted while reading;
* downloads stream into a file (never into memory) while their SHA-256 is computed.

The retry loop is written here rather than taken from a library (httpx retries only failed
connects; tenacity is not a dependency) because it must share one deadline across attempts,
read ``Retry-After`` and restart a stream into a fresh file.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from datenlabor import __version__
from datenlabor.errors import DatenlaborError

USER_AGENT = f"Datenlabor-Harvester/{__version__}"
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Time and size limits of one harvest (seconds, bytes)."""

    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    page_timeout_s: float = 300.0  # one catalogue page, all attempts together
    download_timeout_s: float = 1800.0  # one distribution, all attempts together
    max_page_bytes: int = 64 * 1024**2
    max_download_bytes: int = 2 * 1024**3
    retries: int = 3
    backoff_s: float = 1.0  # first pause; doubles per retry
    max_backoff_s: float = 30.0


class FetchError(DatenlaborError):
    """A URL could not be fetched within the limits; ``url`` and ``status`` say where/why."""

    def __init__(self, url: str, message: str, *, status: int | None = None) -> None:
        self.url = url
        self.status = status
        self.reason = message
        super().__init__(f"{url}: {message}")


class _Retryable(Exception):
    def __init__(self, message: str, *, status: int | None = None, wait: float | None = None):
        super().__init__(message)
        self.status = status
        self.wait = wait


@dataclass
class Downloaded:
    path: Path
    sha256: str
    size: int
    content_type: str | None
    url: str  # after redirects


class Fetcher:
    """One httpx client with the harvest's limits; use as a context manager."""

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limits = limits or Limits()
        self._sleep = sleep
        self.client = httpx.Client(
            follow_redirects=True,
            headers={"User-Agent": USER_AGENT},
            transport=transport,
            trust_env=False,  # no proxy or netrc surprises from the environment
        )

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    # -- public -------------------------------------------------------------------------
    def get(
        self, url: str, *, accept: str | None = None, params: dict[str, Any] | None = None
    ) -> tuple[bytes, str | None, str]:
        """(body, content type, final URL) of a catalogue page or API answer."""
        headers = {"Accept": accept} if accept else {}
        chunks: list[bytes] = []

        def sink() -> Callable[[bytes], None]:
            chunks.clear()
            return chunks.append

        response = self._run(
            url,
            params=params,
            headers=headers,
            budget=self.limits.page_timeout_s,
            max_bytes=self.limits.max_page_bytes,
            sink=sink,
        )
        return b"".join(chunks), response.headers.get("content-type"), str(response.url)

    def download(self, url: str, target: Path) -> Downloaded:
        """Stream ``url`` into ``target`` (replaced on each attempt) and hash it."""
        state: dict[str, Any] = {}

        def sink() -> Callable[[bytes], None]:
            if "fh" in state:
                state["fh"].close()
            state["fh"] = target.open("wb")
            state["hash"] = hashlib.sha256()
            state["size"] = 0

            def write(chunk: bytes) -> None:
                state["fh"].write(chunk)
                state["hash"].update(chunk)
                state["size"] += len(chunk)

            return write

        try:
            response = self._run(
                url,
                params=None,
                headers={},
                budget=self.limits.download_timeout_s,
                max_bytes=self.limits.max_download_bytes,
                sink=sink,
            )
        except BaseException:
            if "fh" in state:
                state["fh"].close()
            target.unlink(missing_ok=True)
            raise
        state["fh"].close()
        return Downloaded(
            path=target,
            sha256=state["hash"].hexdigest(),
            size=state["size"],
            content_type=response.headers.get("content-type"),
            url=str(response.url),
        )

    # -- the loop -----------------------------------------------------------------------
    def _run(
        self,
        url: str,
        *,
        params: dict[str, Any] | None,
        headers: dict[str, str],
        budget: float,
        max_bytes: int,
        sink: Callable[[], Callable[[bytes], None]],
    ) -> httpx.Response:
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            raise FetchError(url, "only http and https URLs are fetched")
        lim = self.limits
        deadline = time.monotonic() + budget
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FetchError(url, f"gave up after the time limit of {budget:g} s")
            try:
                return self._attempt(url, params, headers, deadline, remaining, max_bytes, sink)
            except _Retryable as exc:
                attempt += 1
                pause = min(lim.backoff_s * 2 ** (attempt - 1), lim.max_backoff_s)
                if exc.wait is not None:
                    pause = min(max(exc.wait, pause), lim.max_backoff_s)
                tries = f"{attempt} attempt{'s' if attempt > 1 else ''}"
                if attempt > lim.retries:
                    raise FetchError(url, f"{exc} ({tries})", status=exc.status) from None
                if time.monotonic() + pause >= deadline:
                    raise FetchError(
                        url,
                        f"{exc} ({tries}; time limit of {budget:g} s reached)",
                        status=exc.status,
                    ) from None
                self._sleep(pause)

    def _attempt(
        self,
        url: str,
        params: dict[str, Any] | None,
        headers: dict[str, str],
        deadline: float,
        remaining: float,
        max_bytes: int,
        sink: Callable[[], Callable[[bytes], None]],
    ) -> httpx.Response:
        lim = self.limits
        timeout = httpx.Timeout(
            connect=min(lim.connect_timeout_s, remaining),
            read=min(lim.read_timeout_s, remaining),
            write=min(lim.read_timeout_s, remaining),
            pool=min(lim.connect_timeout_s, remaining),
        )
        try:
            with self.client.stream(
                "GET", url, params=params, headers=headers, timeout=timeout
            ) as response:
                status = response.status_code
                if status in RETRY_STATUS:
                    raise _Retryable(
                        f"HTTP {status} {response.reason_phrase}".strip(),
                        status=status,
                        wait=_retry_after(response.headers.get("retry-after")),
                    )
                if status >= 400:
                    raise FetchError(
                        url, f"HTTP {status} {response.reason_phrase}".strip(), status=status
                    )
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise FetchError(url, _too_big(int(declared), max_bytes), status=status)
                write = sink()
                size = 0
                for chunk in response.iter_bytes():  # as data arrives, so limits act at once
                    size += len(chunk)
                    if size > max_bytes:
                        raise FetchError(url, _too_big(size, max_bytes, more=True), status=status)
                    write(chunk)
                    if time.monotonic() > deadline:
                        raise FetchError(url, "transfer did not finish within the time limit")
                return response
        except httpx.TimeoutException as exc:
            raise _Retryable(f"timed out ({type(exc).__name__})") from None
        except httpx.RemoteProtocolError as exc:
            raise _Retryable(f"connection broke off: {exc}") from None
        except httpx.UnsupportedProtocol as exc:  # e.g. redirected to ftp:// or file://
            raise FetchError(url, f"unsupported URL: {exc}") from None
        except httpx.TransportError as exc:
            raise _Retryable(f"connection failed: {exc or type(exc).__name__}") from None
        except httpx.InvalidURL as exc:
            raise FetchError(url, f"invalid URL: {exc}") from None
        except httpx.HTTPError as exc:  # too many redirects, undecodable content, …
            raise FetchError(url, f"{type(exc).__name__}: {exc}") from None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _too_big(size: int, limit: int, *, more: bool = False) -> str:
    return f"{'more than ' if more else ''}{size:,} bytes, larger than the limit of {limit:,} bytes"


# -- files --------------------------------------------------------------------------------
SUFFIXES = {"csv": ".csv", "xlsx": ".xlsx", "parquet": ".parquet", "json": ".json"}
_TABULAR_MEMBER = re.compile(r"\.(csv|tsv|txt|xlsx|parquet|json)$", re.IGNORECASE)


def file_name(url: str, fmt: str | None) -> str:
    """A safe local file name for a download: the URL's last segment with the right suffix."""
    tail = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", tail).strip("._") or "download"
    name = name[:120]
    suffix = SUFFIXES.get(fmt or "")
    if suffix and not name.lower().endswith(suffix) and not name.lower().endswith(".zip"):
        name += suffix
    return name


def is_zip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == b"PK\x03\x04"


def unpack_single(archive: Path, target_dir: Path, max_bytes: int) -> tuple[Path, str]:
    """The one tabular file inside a ZIP archive, extracted into ``target_dir``, and its SHA-256.

    Distributions are often zipped CSV files. Archives with no or several tabular members are
    refused (which one is "the" data would be a guess); so is a member larger than
    ``max_bytes`` once unpacked (counted while copying, not trusted from the header).
    """
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [
                m for m in zf.infolist() if not m.is_dir() and _TABULAR_MEMBER.search(m.filename)
            ]
            members = [m for m in members if not Path(m.filename).name.startswith(".")]
            if not members:
                names = ", ".join(m.filename for m in zf.infolist()[:10]) or "nothing"
                raise FetchError(str(archive.name), f"ZIP archive holds no table ({names})")
            if len(members) > 1:
                names = ", ".join(m.filename for m in members[:10])
                raise FetchError(
                    str(archive.name),
                    f"ZIP archive holds {len(members)} tables ({names}); harvest takes one",
                )
            member = members[0]
            name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(member.filename).name) or "data.csv"
            out = target_dir / name
            copied = 0
            digest = hashlib.sha256()
            with zf.open(member) as src, out.open("wb") as dst:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    copied += len(chunk)
                    if copied > max_bytes:
                        raise FetchError(
                            str(archive.name),
                            f"{member.filename}: {_too_big(copied, max_bytes, more=True)}",
                        )
                    dst.write(chunk)
            return out, digest.hexdigest()
    except zipfile.BadZipFile as exc:
        raise FetchError(str(archive.name), f"not a readable ZIP archive: {exc}") from None


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
