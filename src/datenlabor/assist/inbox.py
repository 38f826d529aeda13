"""The inbox: requests from the API, CSV/NDJSON files and e-mails (.eml), stored as pool data.

All requests live in one pool dataset (``assist_inbox_dataset``, default ``posteingang``);
every delivery appends a new version (key ``request_id``, so a request delivered twice is
refused with its id). The dataset is *restricted* and its personal-data columns are marked
in the version's Table Schema (``"personal": true`` on the field, with a description) and
listed in :data:`PERSONAL`; the dataset description says so too. Grants can then hide them
(``hidden_columns``) from anyone outside the receiving organisation.

E-mails are parsed with the standard library (``email``, ``policy.default``): the text/plain
body (or text/html converted to text), and the text of attachments that are text, HTML,
Markdown, PDF or DOCX (:mod:`datenlabor.assist.extract`); other attachments are listed by
name and type only.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from datenlabor.access.principal import Principal
from datenlabor.errors import BadInput, Forbidden
from datenlabor.pool.catalog import DatasetMeta
from datenlabor.service.gate import Gate

CHANNELS = ("api", "email", "portal", "post", "csv", "ndjson", "phone")
PERSONAL = ("subject", "text", "sender", "attachment_text")
MAX_TEXT = 100_000  # characters of one request (body plus attachments) that are kept
_FIELDS: list[tuple[str, pa.DataType, str, str]] = [
    ("request_id", pa.string(), "string", "Kennung der Anfrage / request id"),
    ("received_at", pa.timestamp("us", tz="UTC"), "datetime", "Eingang (UTC) / received"),
    ("channel", pa.string(), "string", "Eingangskanal / channel"),
    ("subject", pa.string(), "string", "Betreff (personenbezogen) / subject (personal data)"),
    ("text", pa.string(), "string", "Text der Anfrage (personenbezogen) / text (personal data)"),
    ("sender", pa.string(), "string", "Absender (personenbezogen) / sender (personal data)"),
    ("ags", pa.string(), "string", "Amtlicher Gemeindeschlüssel der Region / AGS region key"),
    ("language", pa.string(), "string", "Sprache, falls bekannt / language when known"),
    ("category", pa.string(), "string", "Leistung, falls bekannt / category when known"),
    ("attachments", pa.string(), "string", "Anhänge (JSON: Name, Typ, Zeichen) / attachments"),
    ("attachment_text", pa.string(), "string", "Text der Anhänge (personenbezogen) / attachment text"),
    ("source", pa.string(), "string", "Datei oder Schnittstelle / file or interface"),
]  # fmt: skip
ARROW_SCHEMA = pa.schema([(n, t) for n, t, _ts, _d in _FIELDS])
TABLE_SCHEMA: dict[str, Any] = {
    "fields": [
        {"name": n, "type": ts, "description": d, **({"personal": True} if n in PERSONAL else {})}
        for n, _t, ts, d in _FIELDS
    ],
    "primaryKey": ["request_id"],
}
DESCRIPTION = (
    "Eingegangene Anfragen und Anträge für die KI-gestützte Vorsortierung. Enthält "
    "personenbezogene Daten in den Spalten " + ", ".join(PERSONAL) + " (im Schema als "
    "'personal' markiert); nur für Sachbearbeitung der empfangenden Behörde."
)


@dataclass
class Request:
    text: str
    channel: str = "api"
    received_at: datetime | None = None
    request_id: str | None = None
    subject: str | None = None
    sender: str | None = None
    ags: str | None = None
    language: str | None = None
    category: str | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    attachment_text: str = ""
    source: str | None = None

    def full_text(self) -> str:
        """What triage reads: subject, body and the attachments' text."""
        parts = [self.subject or "", self.text, self.attachment_text]
        return "\n\n".join(p for p in parts if p).strip()

    def row(self) -> dict[str, Any]:
        received = self.received_at or datetime.now(UTC)
        rid = self.request_id or _derived_id(self.channel, received, self.text)
        return {
            "request_id": rid,
            "received_at": received.astimezone(UTC),
            "channel": self.channel,
            "subject": self.subject,
            "text": self.text[:MAX_TEXT],
            "sender": self.sender,
            "ags": self.ags,
            "language": self.language,
            "category": self.category,
            "attachments": json.dumps(self.attachments, ensure_ascii=False),
            "attachment_text": self.attachment_text[:MAX_TEXT] or None,
            "source": self.source,
        }


def _derived_id(channel: str, received: datetime, text: str) -> str:
    """A stable id for requests delivered without one: the same delivery gives the same id."""
    digest = hashlib.sha256(f"{channel}|{received.isoformat()}|{text}".encode()).hexdigest()
    return f"{channel[:1].upper()}-{digest[:16]}"


def parse_when(value: Any, *, file: str | None = None, line: int | None = None) -> datetime | None:
    """ISO 8601 or German ``31.12.2025[ 14:30]``; naive times are taken as UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).strip()
    m = re.fullmatch(
        r"(\d{1,2})\.(\d{1,2})\.(\d{4})(?:[ ,T]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?", text
    )
    try:
        if m:
            d, mo, y, h, mi, s = m.groups()
            return datetime(
                int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), tzinfo=UTC
            )
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(
            f"{text!r} is not a date and time (ISO 8601 or DD.MM.YYYY HH:MM)",
            file=file, line=line, column="received_at",
        ) from None  # fmt: skip
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def from_record(
    rec: dict[str, Any], *, channel: str, source: str | None, file: str | None = None,
    line: int | None = None,
) -> Request:  # fmt: skip
    """A request from a mapping (API body, CSV row, NDJSON line); ``text`` is required."""
    text = rec.get("text")
    if not isinstance(text, str) or not text.strip():
        raise BadInput("the request has no text", file=file, line=line, column="text")
    given_channel = rec.get("channel")
    if given_channel is not None and given_channel not in CHANNELS:
        raise BadInput(
            f"unknown channel {given_channel!r}; choose one of {', '.join(CHANNELS)}",
            file=file, line=line, column="channel",
        )  # fmt: skip
    ags = rec.get("ags")
    if ags not in (None, ""):
        from datenlabor.pool.ags import is_valid_format

        if not isinstance(ags, str) or not is_valid_format(ags):
            raise BadInput(
                f"{ags!r} is not an AGS/ARS key: give it as text of 2, 3, 5, 8, 9 or 12 digits "
                "with its leading zeros",
                file=file,
                line=line,
                column="ags",
            )
    rid = rec.get("request_id")
    if rid is not None and (not str(rid).strip() or len(str(rid)) > 200):
        raise BadInput(
            "request_id must be 1-200 characters", file=file, line=line, column="request_id"
        )

    def opt(name: str) -> str | None:
        v = rec.get(name)
        return str(v).strip() or None if v is not None else None

    return Request(
        text=text.strip(),
        channel=given_channel or channel,
        received_at=parse_when(rec.get("received_at"), file=file, line=line),
        request_id=str(rid).strip() if rid is not None else None,
        subject=opt("subject"),
        sender=opt("sender"),
        ags=opt("ags"),
        language=opt("language"),
        category=opt("category"),
        source=source,
    )


def read_csv(path: Path) -> list[Request]:
    """A CSV with a header (``;``, ``,`` or tab; UTF-8 or cp1252) and at least ``text``."""
    from datenlabor.assist.extract import decode

    content, _enc = decode(path.read_bytes(), path.name)
    try:
        dialect = csv.Sniffer().sniff(content[:20_000], delimiters=";,\t")
    except csv.Error:
        dialect = csv.excel
        dialect.delimiter = ";"
    reader = csv.DictReader(io.StringIO(content, newline=""), dialect=dialect)
    if not reader.fieldnames or "text" not in reader.fieldnames:
        raise BadInput(
            f"the header needs a column 'text' (found: {', '.join(reader.fieldnames or [])})",
            file=str(path), line=1,
        )  # fmt: skip
    out = []
    for rec in reader:
        out.append(
            from_record(rec, channel="csv", source=path.name, file=str(path), line=reader.line_num)
        )
    return out


def read_ndjson(path: Path) -> list[Request]:
    out = []
    with path.open(encoding="utf-8-sig") as fh:
        for n, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise BadInput(f"not valid JSON: {exc.msg}", file=str(path), line=n) from exc
            if not isinstance(rec, dict):
                raise BadInput("each line must be a JSON object", file=str(path), line=n)
            out.append(from_record(rec, channel="ndjson", source=path.name, file=str(path), line=n))
    return out


def _html_text(html: str) -> str:
    import lxml.html

    try:
        doc = lxml.html.fromstring(html)
    except Exception:  # lxml raises several types on broken markup; keep the raw text then
        return html
    for bad in doc.xpath("//script|//style"):
        bad.drop_tree()
    return re.sub(r"\n\s*\n+", "\n\n", doc.text_content()).strip()


def _has_body(msg: EmailMessage) -> bool:
    """Whether the message has a body, without decoding it by its charset label: the stdlib
    does that in ``get_payload()`` and raises ValueError for a label holding a NUL byte."""
    return msg.is_multipart() or bool(msg.get_payload(decode=True))


def parse_eml(data: bytes, name: str = "message.eml") -> Request:
    """A request from one e-mail (RFC 5322 bytes)."""
    msg = BytesParser(policy=policy.default).parsebytes(data)
    if not isinstance(msg, EmailMessage) or (not _header(msg, "from") and not _has_body(msg)):
        raise BadInput("not an e-mail message (no headers or body)", file=name)
    body_part = msg.get_body(preferencelist=("plain", "html"))
    body = ""
    if body_part is not None:
        try:
            content = body_part.get_content()
        except (LookupError, UnicodeError, ValueError):  # unknown or lying charset label
            raw = body_part.get_payload(decode=True)
            content = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
        body = _html_text(content) if body_part.get_content_type() == "text/html" else content
    attachments, texts = [], []
    for part in msg.iter_attachments():
        filename = part.get_filename() or "attachment"
        entry: dict[str, Any] = {"name": filename, "type": part.get_content_type()}
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            entry["bytes"] = len(payload)
            text = _attachment_text(payload, filename, part.get_content_type(), entry)
            if text:
                texts.append(f"[Anhang: {filename}]\n{text}")
                entry["chars"] = len(text)
        attachments.append(entry)
    when = None
    if _header(msg, "date"):
        try:
            when = parsedate_to_datetime(_header(msg, "date"))
        except (TypeError, ValueError, OverflowError):  # a year of 30 digits overflows
            when = None
    mid = _header(msg, "message-id").strip()
    rid = "M-" + hashlib.sha256(mid.encode()).hexdigest()[:16] if mid else None
    if not body.strip() and not texts:
        raise BadInput("the e-mail has no text (neither body nor readable attachments)", file=name)
    return Request(
        text=body.strip() or "(ohne Text)",
        channel="email",
        received_at=when if when is None or when.tzinfo else when.replace(tzinfo=UTC),
        request_id=rid,
        subject=_header(msg, "subject") or None,
        sender=_header(msg, "from") or None,
        attachments=attachments,
        attachment_text="\n\n".join(texts),
        source=name,
    )


def _header(msg: EmailMessage, name: str) -> str:
    """A header as text. Where the standard library's header parser fails on a malformed
    value (it raises AttributeError, IndexError, … for some address lists), the value is
    taken as it was sent."""
    try:
        value = msg.get(name)
    except Exception:  # whatever email.headerregistry raises: fall back to the raw text
        value = next((v for k, v in msg.raw_items() if k.lower() == name), None)
    return str(value or "")


def _attachment_text(payload: bytes, filename: str, ctype: str, entry: dict[str, Any]) -> str:
    from datenlabor.assist.extract import extract_text

    readable = ctype.startswith("text/") or ctype in (
        "application/pdf",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    )
    if not readable and not filename.lower().endswith((".pdf", ".docx", ".txt", ".md", ".html")):
        return ""
    name = filename
    if ctype == "text/plain" and "." not in filename:
        name = filename + ".txt"
    try:
        return extract_text(payload, name).text
    except BadInput as exc:  # unreadable attachment: keep the mail, record why
        entry["error"] = exc.reason
        return ""


def read_files(paths: Iterable[Path]) -> list[Request]:
    """Requests from files by suffix: .eml, .csv, .ndjson/.jsonl."""
    out: list[Request] = []
    for path in paths:
        if not path.is_file():
            raise BadInput("file not found", file=str(path))
        suffix = path.suffix.lower()
        if suffix == ".eml":
            out.append(parse_eml(path.read_bytes(), path.name))
        elif suffix in (".csv", ".txt"):
            out.extend(read_csv(path))
        elif suffix in (".ndjson", ".jsonl"):
            out.extend(read_ndjson(path))
        else:
            raise BadInput("unsupported inbox file; use .eml, .csv or .ndjson", file=str(path))
    return out


# -- storing ------------------------------------------------------------------------------
def inbox_slug(gate: Gate) -> str:
    return gate.pool.settings.assist_inbox_dataset


def require_caseworker(gate: Gate, p: Principal) -> None:
    """Caseworkers are admins and the receiving organisation's stewards and analysts."""
    p.require_login()
    if p.is_admin:
        return
    if p.role not in ("steward", "analyst"):
        raise Forbidden("the inbox and its review are for caseworkers (steward or analyst)")
    d = gate.load(inbox_slug(gate))
    if d is not None and d.publisher_id is not None and d.publisher_id != p.organisation_id:
        raise Forbidden("the inbox belongs to another organisation")


@dataclass
class Added:
    dataset: str
    version: int
    ids: list[str]
    suggestions: list[int]
    note: str | None = None


def add(
    gate: Gate,
    p: Principal,
    requests: Sequence[Request],
    *,
    org: str | None = None,
    triage: bool = True,
    client: str | None = None,
) -> Added:
    """Append requests to the inbox dataset (one new version) and triage them."""
    import pyarrow.parquet as pq

    require_caseworker(gate, p)
    p.require_write()
    if not requests:
        raise BadInput("no requests to add")
    rows = [r.row() for r in requests]
    ids = [r["request_id"] for r in rows]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise BadInput(
            f"request ids occur twice in this delivery: {', '.join(dupes[:5])}", column="request_id"
        )
    slug = inbox_slug(gate)
    existing = gate.load(slug, fresh=True)
    publisher = org or p.organisation
    if existing is None and publisher is None:
        raise BadInput("say which organisation receives the requests (--org)", column="org")
    if existing is None and not (
        p.is_admin or (p.role == "steward" and publisher == p.organisation)
    ):
        raise Forbidden(
            "the inbox is set up by an admin or a steward of the receiving organisation"
        )
    meta = DatasetMeta(
        title="Posteingang: Anfragen und Anträge",
        description=DESCRIPTION,
        publisher=publisher,
        licence="other-closed",
        keywords=["Anfragen", "personenbezogen", "KI-Assistenz"],
        visibility="restricted",
    ) if existing is None else DatasetMeta()  # fmt: skip
    path = (
        gate.pool.root
        / "tmp"
        / f"inbox-{hashlib.sha256(''.join(ids).encode()).hexdigest()[:12]}.parquet"
    )
    try:
        pq.write_table(pa.Table.from_pylist(rows, schema=ARROW_SCHEMA), path)
        version = gate.pool.ingest(
            path, dataset=slug, mode="append", key="request_id", format="parquet",
            schema=TABLE_SCHEMA, meta=meta, user=p.label(), allow_duplicate=True,
        )  # fmt: skip
    finally:
        path.unlink(missing_ok=True)
        gate.forget(slug)
    gate.audit.log(
        p,
        "assist-inbox",
        datasets={slug: version.version},
        publishers={slug: publisher},
        rows=len(rows),
        detail={"channels": sorted({r["channel"] for r in rows}), "ids": ids[:20]},
        client=client,
    )
    added = Added(slug, version.version, ids, [])
    if triage:
        from datenlabor.assist import review
        from datenlabor.assist.triage import Triager, unrouted
        from datenlabor.errors import NotFound

        try:
            triager = Triager.for_pool(gate.pool)
        except NotFound as exc:
            # No model yet: every request still enters the queue, for a person to route.
            added.note = str(exc)
            tax = gate.pool.settings.assist_taxonomy
            results = [unrouted(r.full_text(), str(exc), tax) for r in requests]
            added.suggestions = review.record_triage(
                gate, p, ids, results, dataset=slug, version=version.version, model=None
            )
            return added
        results = triager.triage(
            [r.full_text() for r in requests],
            attachments=[[a["name"] for a in r.attachments] for r in requests],
            known_categories=[r.category for r in requests],
        )
        added.suggestions = review.record_triage(
            gate, p, ids, results, dataset=slug, version=version.version, model=triager.info
        )
    return added
