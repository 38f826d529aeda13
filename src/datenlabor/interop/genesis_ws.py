"""Client of the GENESIS web service (REST/JSON interface 2020) of the statistical offices.

Three databases speak the same interface: GENESIS-Online (Destatis), the Regionaldatenbank
Deutschland and the Zensus 2022 database; :data:`DATABASES` names them, the base URL and the
credentials of each come from the settings (``genesis_*``).

How we call the service (the 2020 interface as Destatis documents it and as the recorded
answers in ``tests/fixtures/genesis_ws/`` show):

* every call is a ``POST`` to ``{base}{service}/{method}`` with the parameters
  form-encoded in the body; the credentials travel in the request headers ``username`` and
  ``password`` (never in the URL, where proxies would log them). An API token goes in
  ``username`` with an empty ``password``.
* JSON answers carry ``Status: {Code, Content, Type}``; code 0 is success, 22 success with
  adjusted parameters, 90/104 "no such object", 98 "table too large: start a job",
  99 "job created" (the job name follows a colon in ``Content``), 50 "no newer data".
  ``helloworld/logincheck`` answers ``{"Status": "<text>", "Username": …}``, where the text
  reports an error for wrong credentials.
* ``data/tablefile`` answers the file itself: a ZIP archive holding one CSV (2025 and
  later), or the CSV as ``text/csv`` (older servers), or JSON with a status.
* a table too large for a direct answer is fetched as a background job: the same call with
  ``job=true``, then ``catalogue/results`` (``area=user``) is polled until the job's result
  is listed, then ``data/resultfile`` delivers it. One overall time limit
  (``genesis_job_timeout_s``) covers all of this.

httpx retries only the connection set-up, so the small retry loop for timeouts, 5xx and 429
answers (exponential back-off, within the overall limit) is written here.
"""

from __future__ import annotations

import json
import re
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from datenlabor import __version__
from datenlabor.config import Settings
from datenlabor.errors import BadInput, DatenlaborError, NotFound

#: Database name -> (settings prefix, label, publisher slug, publisher name).
DATABASES: dict[str, tuple[str, str, str, str]] = {
    "destatis": (
        "genesis",
        "GENESIS-Online (Statistisches Bundesamt)",
        "destatis",
        "Statistisches Bundesamt (Destatis)",
    ),
    "regionalstatistik": (
        "genesis_regionalstatistik",
        "Regionaldatenbank Deutschland",
        "statistische-aemter",
        "Statistische Ämter des Bundes und der Länder",
    ),
    "zensus": (
        "genesis_zensus",
        "Zensus 2022 Datenbank",
        "statistische-aemter",
        "Statistische Ämter des Bundes und der Länder",
    ),
}
FORMATS = ("ffcsv", "csv")
# Table codes: "12411-0006", "12411-01-01-4", "1000A-0000", "AI-N-01-2-5", "86000U-Z-01".
TABLE_CODE = re.compile(r"^[0-9A-Z][0-9A-Za-z]{1,14}(?:-[0-9A-Za-z]{1,10}){1,5}$")
_JOB_NAME = re.compile(r":\s*(\S+_\d+)\s*$")
_MAX_BACKOFF_S = 30.0

# Status codes of the 2020 interface we act on.
OK, ADJUSTED, NO_NEWER_DATA, NOT_PRESENT, TOO_LARGE, JOB_CREATED, NOTHING_FOUND = (
    0,
    22,
    50,
    90,
    98,
    99,
    104,
)


class GenesisError(DatenlaborError):
    """The GENESIS service refused or failed a request, or did not answer in time."""


class GenesisCredentialsError(GenesisError):
    """The service does not accept the configured credentials."""

    exit_code = 6


class GenesisTableNotFound(NotFound):
    """The database has no table with this code (or not for this account)."""


@dataclass
class Download:
    """A table file as the service delivered it, extracted to ``path``."""

    path: Path
    media_type: str
    archive_member: str | None
    job: str | None  # name of the background job that produced it, if any


def database_names() -> str:
    return ", ".join(DATABASES)


def check_database(name: str) -> str:
    if name not in DATABASES:
        raise BadInput(
            f"unknown GENESIS database {name!r}; choose one of {database_names()}",
            column="database",
        )
    return name


def check_table_code(code: str) -> str:
    code = (code or "").strip()
    if not TABLE_CODE.match(code):
        raise BadInput(
            f"{code!r} is not a GENESIS table code (e.g. 12411-0001 or 12411-01-01-4)",
            column="table",
        )
    return code


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    return str(value.get_secret_value() if hasattr(value, "get_secret_value") else value)


class GenesisClient:
    """One database of the GENESIS web service, with the credentials from ``settings``."""

    def __init__(
        self,
        settings: Settings,
        database: str | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.database = check_database(database or settings.genesis_database)
        prefix, self.label, self.publisher, self.publisher_name = DATABASES[self.database]
        self.base_url = str(getattr(settings, f"{prefix}_url")).rstrip("/") + "/"
        self.settings = settings
        self._sleep = sleep
        token = _secret(getattr(settings, f"{prefix}_token")) or _secret(settings.genesis_token)
        user = getattr(settings, f"{prefix}_username") or settings.genesis_username
        password = _secret(getattr(settings, f"{prefix}_password"))
        if password is None and getattr(settings, f"{prefix}_username") is None:
            password = _secret(settings.genesis_password)
        if token:
            self._auth = {"username": token, "password": ""}
        elif user and password is not None:
            self._auth = {"username": user, "password": password}
        else:
            raise GenesisCredentialsError(
                f"no credentials for {self.label}: set DATENLABOR_{prefix.upper()}_USERNAME and "
                f"DATENLABOR_{prefix.upper()}_PASSWORD (or DATENLABOR_{prefix.upper()}_TOKEN)"
            )
        timeout = httpx.Timeout(
            settings.genesis_timeout_s, connect=min(10.0, settings.genesis_timeout_s)
        )
        self._http = httpx.Client(
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": f"datenlabor/{__version__}"},
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GenesisClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ------------------------------------------------------------------------
    def _post(self, endpoint: str, params: dict[str, str], deadline: float) -> httpx.Response:
        """POST with retries for timeouts, connection failures, 429 and 5xx, until ``deadline``."""
        url = self.base_url + endpoint
        attempts = max(0, self.settings.genesis_retries) + 1
        last: str = ""
        for attempt in range(attempts):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                response = self._http.post(
                    url,
                    data=params,
                    headers=self._auth,
                    timeout=httpx.Timeout(
                        min(self.settings.genesis_timeout_s, left), connect=min(10.0, left)
                    ),
                )
            except httpx.TimeoutException:
                last = f"no answer within {min(self.settings.genesis_timeout_s, left):.0f} s"
            except httpx.TransportError as exc:
                last = f"connection failed ({exc.__class__.__name__}: {exc})"
            else:
                if response.status_code in (401, 403):
                    raise GenesisCredentialsError(
                        f"{self.label} refused the credentials (HTTP {response.status_code})"
                    )
                if response.status_code == 429 or response.status_code >= 500:
                    last = f"HTTP {response.status_code}"
                elif response.status_code >= 400:
                    raise GenesisError(
                        f"{self.label}: {endpoint} answered HTTP {response.status_code}"
                        f"{_status_text(response)}"
                    )
                else:
                    return response
            if attempt + 1 < attempts:
                pause = min(_MAX_BACKOFF_S, 0.5 * 2**attempt, max(0.0, deadline - time.monotonic()))
                self._sleep(pause)
        raise GenesisError(
            f"{self.label} at {self.base_url} did not answer {endpoint}: {last or 'time limit reached'}"
            f" (tried {attempts} time(s); limits: DATENLABOR_GENESIS_TIMEOUT_S, "
            "DATENLABOR_GENESIS_JOB_TIMEOUT_S)"
        )

    def _deadline(self) -> float:
        return time.monotonic() + self.settings.genesis_job_timeout_s

    # -- calls ----------------------------------------------------------------------------
    def logincheck(self) -> None:
        """Raise :class:`GenesisCredentialsError` unless the service accepts the credentials."""
        response = self._post("helloworld/logincheck", {"language": "de"}, self._deadline())
        body = _json(response)
        status = body.get("Status") if isinstance(body, dict) else None
        text = status if isinstance(status, str) else json.dumps(status, ensure_ascii=False)
        if not isinstance(status, str) or "fehler" in text.lower() or "error" in text.lower():
            raise GenesisCredentialsError(
                f"{self.label} does not accept the credentials (logincheck: {text})"
            )

    def table_metadata(self, code: str, *, language: str = "de") -> dict[str, Any]:
        """The ``Object`` of ``metadata/table`` plus the ``Copyright`` line."""
        code = check_table_code(code)
        params = {"name": code, "area": "all", "language": language}
        body = self._status_checked(
            self._post("metadata/table", params, self._deadline()), code, "metadata/table"
        )
        obj = body.get("Object")
        if not isinstance(obj, dict):
            raise GenesisTableNotFound(f"{self.label} has no table {code!r}")
        out = dict(obj)
        out["Copyright"] = body.get("Copyright")
        return out

    def tablefile(
        self, code: str, target_dir: Path, *, fmt: str = "ffcsv", language: str = "de"
    ) -> Download:
        """Download table ``code`` into ``target_dir`` (a job for large tables)."""
        code = check_table_code(code)
        if fmt not in FORMATS:
            raise BadInput(f"unknown GENESIS format {fmt!r}; choose ffcsv or csv", column="format")
        deadline = self._deadline()
        params = {
            "name": code,
            "area": "all",
            "compress": "false",
            "format": fmt,
            "language": language,
            "quality": "off",
            "job": "false",
        }
        response = self._post("data/tablefile", params, deadline)
        job = None
        if _is_json(response):
            body = _json(response)
            code_ = _status_code(body)
            if code_ != TOO_LARGE:
                self._status_checked(response, code, "data/tablefile")
                raise GenesisError(f"{self.label}: data/tablefile answered without a table file")
            job = self._start_job(params, deadline, code)
            self._wait_for_job(job, deadline)
            result = {k: v for k, v in params.items() if k not in ("job", "name")}
            result.update(name=job, area="user")
            response = self._post("data/resultfile", result, deadline)
            if _is_json(response):
                self._status_checked(response, code, "data/resultfile")
                raise GenesisError(f"{self.label}: data/resultfile answered without a table file")
        return _save(response, target_dir, code, fmt, job, self.settings.max_upload_bytes)

    def _start_job(self, params: dict[str, str], deadline: float, code: str) -> str:
        body = self._status_checked(
            self._post("data/tablefile", {**params, "job": "true"}, deadline),
            code,
            "data/tablefile",
        )
        content = str((body.get("Status") or {}).get("Content") or "")
        found = _JOB_NAME.search(content)
        if _status_code(body) != JOB_CREATED or found is None:
            raise GenesisError(
                f"{self.label} did not start a background job for {code}: {content or 'no status'}"
            )
        return found.group(1)

    def _wait_for_job(self, job: str, deadline: float) -> None:
        params = {"selection": job, "area": "user", "pagelength": "5", "language": "de"}
        while True:
            try:
                response = self._post("catalogue/results", params, deadline)
            except GenesisCredentialsError:
                raise
            except GenesisError:
                if time.monotonic() < deadline:
                    raise
                # the overall limit ran out during a poll: name that limit, not the poll
                raise self._not_finished(job) from None
            body = _json(response)
            listed = body.get("List") if isinstance(body, dict) else None
            if isinstance(listed, list) and any(
                isinstance(e, dict) and e.get("Code") == job for e in listed
            ):
                return
            if _status_code(body) not in (OK, ADJUSTED, NOTHING_FOUND):
                self._status_checked(response, job, "catalogue/results")
            pause = self.settings.genesis_poll_s
            if time.monotonic() + pause >= deadline:
                raise self._not_finished(job)
            self._sleep(pause)

    def _not_finished(self, job: str) -> GenesisError:
        return GenesisError(
            f"{self.label}: job {job} was not finished within "
            f"{self.settings.genesis_job_timeout_s:.0f} s (DATENLABOR_GENESIS_JOB_TIMEOUT_S)"
        )

    def _status_checked(self, response: httpx.Response, code: str, endpoint: str) -> dict[str, Any]:
        """The JSON body, or the error its ``Status`` stands for."""
        body = _json(response)
        if not isinstance(body, dict):
            raise GenesisError(f"{self.label}: {endpoint} answered JSON without a status")
        status = body.get("Status")
        if isinstance(status, str):  # the logincheck shape: a plain text status
            if "fehler" in status.lower() or "error" in status.lower():
                raise GenesisCredentialsError(f"{self.label}: {status}")
            return body
        number = _status_code(body)
        text = str((status or {}).get("Content") or "").strip()
        kind = str((status or {}).get("Type") or "").lower()
        if number in (NOT_PRESENT, NOTHING_FOUND):
            raise GenesisTableNotFound(
                f"{self.label} has no table {code!r} (GENESIS status {number}: {text})"
            )
        if number == NO_NEWER_DATA:
            return body
        if number in (OK, ADJUSTED, TOO_LARGE, JOB_CREATED) and kind not in ("fehler", "error"):
            return body
        if _looks_like_login(text):
            raise GenesisCredentialsError(f"{self.label} refused the credentials: {text}")
        raise GenesisError(
            f"{self.label}: {endpoint} failed (GENESIS status {number}: {text or 'no message'})"
        )


def _looks_like_login(text: str) -> bool:
    lowered = text.lower()
    return any(w in lowered for w in ("passwort", "password", "kennung", "anmeld", "login"))


def _is_json(response: httpx.Response) -> bool:
    ctype = response.headers.get("content-type", "").lower()
    return "json" in ctype or response.content[:1] == b"{"


def _json(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise GenesisError(
            f"the GENESIS service answered something that is not JSON: {exc}"
        ) from exc


def _status_code(body: Any) -> int | None:
    status = body.get("Status") if isinstance(body, dict) else None
    if not isinstance(status, dict):
        return None
    try:
        return int(str(status.get("Code")))
    except ValueError:
        return None


def _status_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    status = body.get("Status") if isinstance(body, dict) else None
    if isinstance(status, dict) and status.get("Content"):
        return f": {status['Content']}"
    return ""


def _save(
    response: httpx.Response, target_dir: Path, code: str, fmt: str, job: str | None, limit: int
) -> Download:
    """Write the table file: the CSV inside a ZIP answer, or the CSV answer itself.

    The file is named after the table code so that the GENESIS reader recognises it
    (``{code}_flat.csv`` for ffcsv, ``{code}.csv`` for the classic export).
    """
    target_dir.mkdir(parents=True, exist_ok=True)
    name = f"{code}_flat.csv" if fmt == "ffcsv" else f"{code}.csv"
    target = target_dir / name
    data = response.content
    media = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if not data:
        raise GenesisError(f"the GENESIS service sent an empty file for {code}")
    if data.startswith(b"PK\x03\x04"):
        archive = target_dir / f"{code}.zip"
        archive.write_bytes(data)
        try:
            with zipfile.ZipFile(archive) as zf:
                members = [i for i in zf.infolist() if i.filename.lower().endswith(".csv")]
                if len(members) != 1:
                    raise GenesisError(
                        f"the ZIP answer for {code} holds {len(members)} CSV files, expected one"
                    )
                member = members[0]
                if member.file_size > limit:
                    raise GenesisError(
                        f"the CSV in the ZIP answer for {code} is {member.file_size:,} bytes, "
                        f"more than DATENLABOR_MAX_UPLOAD_BYTES ({limit:,})"
                    )
                with zf.open(member) as src, target.open("wb") as out:
                    copied = 0
                    while chunk := src.read(1024 * 1024):
                        copied += len(chunk)
                        if copied > limit:  # a lying header must not fill the disk
                            raise GenesisError(
                                f"the ZIP answer for {code} unpacks beyond the limit"
                            )
                        out.write(chunk)
        except zipfile.BadZipFile as exc:
            raise GenesisError(f"the ZIP answer for {code} is broken: {exc}") from exc
        finally:
            archive.unlink(missing_ok=True)
        return Download(target, media or "application/zip", member.filename, job)
    target.write_bytes(data)
    return Download(target, media or "text/csv", None, job)
