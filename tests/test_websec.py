"""Web security against the real app: CSRF, session fixation, security headers, path
traversal, ZIP bombs, XML entity attacks, oversized bodies and slow clients.

The app is driven in-process (Starlette's TestClient) and, where the transport matters
(bodies that are never finished, clients that trickle bytes), as a real uvicorn server on
a free loopback port.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.testclient import TestClient

import datenlabor
from datenlabor.errors import BadInput
from datenlabor.pool.catalog import DatasetMeta
from datenlabor.web.app import create_app
from datenlabor.web.limits import server_options

PW = "Websec-Passwort-2024"
TEMPLATES = Path(__file__).resolve().parents[1] / "src" / "datenlabor" / "web" / "templates"
MB = 1024 * 1024


# -- set-up ---------------------------------------------------------------------------------
def _app(tmp_path: Path, **settings: Any) -> Any:
    pool = datenlabor.open(tmp_path / "pool", user="setup", max_upload_bytes=4 * MB, **settings)
    app = create_app(pool)
    acc = app.state.gate.accounts
    acc.add_org("bmi", "Bundesministerium des Innern")
    acc.add_user("admin", org="bmi", role="admin", password=PW)
    acc.add_user("analyst", org="bmi", role="analyst", password=PW)
    app.state.admin_token = acc.create_token("admin", scope="write")
    data = tmp_path / "kreise.csv"
    data.write_text("ags;einwohner\n05111;620523\n05315;1084831\n", encoding="utf-8")
    pool.ingest(data, dataset="offen", meta=DatasetMeta(publisher="bmi", visibility="public"))
    return app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Any]:
    application = _app(tmp_path)
    yield application
    application.state.pool.store.dispose()


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def login(c: TestClient, user: str = "admin") -> httpx.Response:
    page = c.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', page.text)
    assert token, page.text
    return c.post(
        "/login",
        data={"username": user, "password": PW, "login_token": token[1]},
        follow_redirects=False,
    )


def csrf_of(c: TestClient) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', c.get("/").text)
    assert found, "not signed in"
    return found[1]


def session_cookie(response: httpx.Response) -> str | None:
    for header in response.headers.get_list("set-cookie"):
        m = re.match(r"dl_session=([^;]*)", header)
        if m:
            return m[1]
    return None


def routes(app: Any) -> Iterator[tuple[str, str]]:
    """(method, path) of every state-changing route, through included routers."""

    def walk(items: list[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
        for r in items:
            inner = getattr(r, "original_router", None)
            if inner is not None:
                yield from walk(inner.routes, prefix + r.include_context.prefix)
            elif getattr(r, "methods", None):
                for method in sorted(set(r.methods) - {"GET", "HEAD", "OPTIONS"}):
                    yield method, prefix + r.path

    yield from walk(app.routes)


# -- CSRF -----------------------------------------------------------------------------------
PARAMS = {"slug": "offen", "action": "package_search", "kb": "handbuch"}


def test_every_state_changing_route_refuses_a_cookie_call_without_csrf_token(app: Any) -> None:
    c = TestClient(app)
    assert login(c).status_code == 303
    checked = []
    for method, path in routes(app):
        if path == "/login":
            continue  # no session yet: its own double-submit token, tested below
        url = re.sub(r"\{(\w+)\}", lambda m: PARAMS.get(m[1], "1"), path)
        if path in ("/upload", "/api/v1/datasets", "/api/v1/datasets/{slug}/versions"):
            kwargs: dict[str, Any] = {
                "files": {"file": ("a.csv", b"a;b\n1;2\n", "text/csv")},
                "data": {"dataset": "neu"},
            }
        elif path.startswith("/api"):
            kwargs = {"json": {}}
        else:
            kwargs = {"data": {"name": "x"}}
        for headers in ({}, {"x-csrf-token": "forged"}):
            r = c.request(method, url, headers=headers, follow_redirects=False, **kwargs)
            assert r.status_code == 403, (method, url, r.status_code, r.text[:200])
            assert "CSRF" in r.text or "csrf" in r.text.lower() or "Formular" in r.text, url
        checked.append(path)
    ui_forms = {p for p in checked if not p.startswith("/api")}
    assert {"/logout", "/upload", "/sql", "/admin/users", "/datasets/{slug}/grants"} <= ui_forms
    assert len(checked) >= 50
    # nothing happened: no dataset, organisation or user was created or deleted
    gate = app.state.gate
    assert [d.slug for d in app.state.pool.datasets()] == ["offen"]
    assert [o.slug for o in gate.accounts.orgs()] == ["bmi"]


def test_csrf_token_lets_the_same_calls_through(app: Any) -> None:
    c = TestClient(app)
    login(c)
    token = csrf_of(c)
    r = c.post("/admin/orgs", data={"slug": "nrw", "name": "Land NRW"}, follow_redirects=False)
    assert r.status_code == 403
    r = c.post(
        "/admin/orgs",
        data={"slug": "nrw", "name": "Land NRW", "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303
    r = c.post("/api/v1/sql", json={"sql": "SELECT count(*) AS n FROM offen"})
    assert r.status_code == 403
    r = c.post(
        "/api/v1/sql",
        json={"sql": "SELECT count(*) AS n FROM offen"},
        headers={"x-csrf-token": token},
    )
    assert r.status_code == 200 and r.json()["rows"] == [{"n": 2}]
    # a bearer token is no ambient credential: no CSRF token needed (nor accepted as a cookie)
    api = TestClient(app)
    r = api.post(
        "/api/v1/sql",
        json={"sql": "SELECT 1 AS x"},
        headers={"Authorization": f"Bearer {app.state.admin_token}"},
    )
    assert r.status_code == 200
    assert "nrw" in [o.slug for o in app.state.gate.accounts.orgs()]


def test_sign_in_form_needs_its_own_token(app: Any) -> None:
    c = TestClient(app)
    r = c.post("/login", data={"username": "admin", "password": PW}, follow_redirects=False)
    assert r.status_code == 403 and session_cookie(r) is None
    c.get("/login")  # sets the double-submit cookie
    r = c.post(
        "/login",
        data={"username": "admin", "password": PW, "login_token": "guessed"},
        follow_redirects=False,
    )
    assert r.status_code == 403 and session_cookie(r) is None


# -- sessions -------------------------------------------------------------------------------
def test_session_id_rotates_at_login_and_dies_at_logout(app: Any) -> None:
    c = TestClient(app)
    planted = "attacker-chosen-session-id-0123456789abcdef"
    c.cookies.set("dl_session", planted)
    assert c.get("/api/v1/me").json()["authenticated"] is False
    r = login(c)
    sid = session_cookie(r)
    assert r.status_code == 303 and sid and sid != planted
    c.cookies.set("dl_session", sid)
    assert c.get("/api/v1/me").json()["username"] == "admin"
    victim = TestClient(app, cookies={"dl_session": planted})
    assert victim.get("/api/v1/me").json()["authenticated"] is False
    # signing in again (e.g. as someone else) gives yet another id
    c.cookies.clear()
    c.cookies.set("dl_session", planted)
    second = session_cookie(login(c, "analyst"))
    assert second and second not in (sid, planted)
    c.cookies.clear()
    c.cookies.set("dl_session", second)
    token = csrf_of(c)
    r = c.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    assert any(
        h.startswith("dl_session=") and "Max-Age=0" in h for h in r.headers.get_list("set-cookie")
    )
    replay = TestClient(app, cookies={"dl_session": second})
    assert replay.get("/api/v1/me").json()["authenticated"] is False
    assert replay.get("/admin", follow_redirects=False).status_code == 303  # to the sign-in page
    r = replay.post("/api/v1/sql", json={"sql": "SELECT 1"}, headers={"x-csrf-token": token})
    assert r.status_code in (401, 403)


def test_session_cookie_attributes(tmp_path: Path) -> None:
    for secure in (False, True):
        application = _app(tmp_path / str(secure), secure_cookies=secure)
        header = next(
            h
            for h in login(TestClient(application)).headers.get_list("set-cookie")
            if h.startswith("dl_session=")
        )
        attrs = {a.strip().split("=")[0].lower() for a in header.split(";")[1:]}
        assert {"httponly", "samesite", "path"} <= attrs
        assert "samesite=lax" in header.lower()
        assert ("secure" in attrs) is secure
        application.state.pool.store.dispose()


# -- security headers -----------------------------------------------------------------------
def _requests(app: Any) -> list[tuple[str, str, dict[str, Any]]]:
    bearer = {"Authorization": f"Bearer {app.state.admin_token}"}
    return [
        ("GET", "/", {}),
        ("GET", "/login", {}),
        ("GET", "/datasets/offen", {}),
        ("GET", "/gibt-es-nicht", {}),
        ("GET", "/admin", {}),  # redirect to the sign-in page
        ("GET", "/docs", {}),
        ("GET", "/openapi.json", {}),
        ("GET", "/healthz", {}),
        ("GET", "/api/v1/datasets", {}),
        ("GET", "/api/v1/datasets/gibt-es-nicht", {}),
        ("GET", "/api/v1/datasets/offen/rows?limit=1", {}),
        ("GET", "/api/v1/datasets/offen/download?format=csv", {}),
        ("GET", "/api/v1/datasets/offen/download?format=parquet", {}),
        ("GET", "/api/v1/datasets/offen/download?format=xlsx", {}),
        ("POST", "/api/v1/sql", {"json": {"sql": "SELECT 1"}, "headers": bearer}),
        ("POST", "/api/v1/sql", {"json": {"sql": "DROP TABLE offen"}, "headers": bearer}),
        ("POST", "/api/v1/sql", {"content": b"x" * (2 * MB), "headers": bearer}),  # 413
        ("GET", "/api/3/action/package_list", {}),
        ("GET", "/static/ui/datenlabor.css", {}),
        ("GET", "/static/swagger/swagger-ui.css", {}),
    ]


def test_security_headers_on_every_response_type(client: TestClient, app: Any) -> None:
    seen_types = set()
    for method, url, kwargs in _requests(app):
        r = client.request(method, url, follow_redirects=False, **kwargs)
        h = r.headers
        where = f"{method} {url} -> {r.status_code} {h.get('content-type')}"
        seen_types.add((h.get("content-type") or "").split(";")[0])
        assert h.get("x-content-type-options") == "nosniff", where
        assert h.get("referrer-policy") in ("same-origin", "no-referrer"), where
        csp = h.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp and h.get("x-frame-options") == "DENY", where
        directives = dict(([*d.strip().split(" ", 1), ""])[:2] for d in csp.split(";") if d.strip())
        scripts = directives.get("script-src", directives.get("default-src", ""))
        assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts, where
        assert "http:" not in csp and "https:" not in csp and "*" not in csp, where
        if not url.startswith("/static/"):
            assert "no-store" in h.get("cache-control", ""), where
        assert "strict-transport-security" not in h, where  # plain http: no HSTS
    assert {"text/html", "application/json", "text/csv", "text/css"} <= seen_types
    assert any("parquet" in t or "octet" in t for t in seen_types)


def test_hsts_when_served_over_https(tmp_path: Path) -> None:
    application = _app(tmp_path, public_url="https://daten.bund.example")
    c = TestClient(application)
    for url in ("/", "/api/v1/datasets", "/static/ui/datenlabor.css", "/gibt-es-nicht"):
        hsts = c.get(url).headers.get("strict-transport-security", "")
        assert (
            re.match(r"max-age=(\d+)", hsts) and int(hsts.split("=")[1].split(";")[0]) >= 15552000
        )
    application.state.pool.store.dispose()


def test_pages_need_no_inline_script(client: TestClient) -> None:
    """A strict script-src only works if no page relies on inline code."""
    offline_print = {"governance_report_print.html"}  # printed to PDF from a file, never served
    for template in sorted(TEMPLATES.glob("*.html")):
        if template.name in offline_print:
            continue
        text = template.read_text(encoding="utf-8")
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag or 'type="application/json"' in tag, (template.name, tag)
        assert not re.search(r"\son[a-z]+\s*=", text), template.name
        assert "javascript:" not in text.lower(), template.name
    docs = client.get("/docs").text
    for m in re.finditer(r"<script\b([^>]*)>(.*?)</script>", docs, re.S):
        assert "src=" in m[1] and not m[2].strip(), m[0]
    assert client.get("/static/ui/swagger-init.js").status_code == 200


# -- path traversal ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sent",
    ["../../../../evil.csv", "..\\..\\..\\evil.csv", "/etc/../evil.csv", "C:\\temp\\evil.csv"],
)
def test_upload_names_cannot_leave_the_work_folder(app: Any, tmp_path: Path, sent: str) -> None:
    c = TestClient(app)
    r = c.post(
        "/api/v1/datasets",
        files={"file": (sent, b"a;b\n1;2\n", "text/csv")},
        data={"dataset": "hochgeladen", "org": "bmi"},
        headers={"Authorization": f"Bearer {app.state.admin_token}"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["provenance"]["uploaded"] == "evil.csv"
    assert not list(tmp_path.rglob("evil.csv")), "a file named by the client was left behind"
    assert not Path("/evil.csv").exists() and not (tmp_path.parent / "evil.csv").exists()


def test_odd_upload_names_get_a_clear_answer(app: Any) -> None:
    c = TestClient(app)
    bearer = {"Authorization": f"Bearer {app.state.admin_token}"}
    for name in ("x" * 300 + ".csv", "ä" * 200 + ".csv", "..", "\x00.csv", "a\r\nX-Evil: 1.csv"):
        r = c.post(
            "/api/v1/datasets",
            files={"file": (name, b"a;b\n1;2\n", "text/csv")},
            data={"dataset": "name-test", "org": "bmi"},
            headers=bearer,
        )
        assert r.status_code in (201, 400), (name[:20], r.status_code, r.text[:200])
        assert "x-evil" not in r.headers


def test_download_and_static_paths_stay_inside(client: TestClient, app: Any) -> None:
    bearer = {"Authorization": f"Bearer {app.state.admin_token}"}
    app_py = (Path(datenlabor.__file__).parent / "web" / "app.py").read_text()
    for url in (
        "/static/ui/../app.py",
        "/static/ui/%2e%2e/app.py",
        "/static/ui/..%2fapp.py",
        "/static/ui/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc/passwd",
        "/static/swagger/../../../../../etc/passwd",
        "/api/v1/datasets/..%2f..%2fetc%2fpasswd/download?format=csv",
        "/api/v1/datasets/offen/download?format=../../etc/passwd",
        "/datasets/..%2F..%2Fetc%2Fpasswd",
        "/datasets/offen%2F..%2F..%2Fpool.ttl",
    ):
        r = client.get(url, headers=bearer)
        assert r.status_code in (400, 404, 422), (url, r.status_code)
        assert "root:" not in r.text and app_py[:200] not in r.text, url
    r = client.get("/api/v1/datasets/offen/download?format=csv", headers=bearer)
    disposition = r.headers["content-disposition"]
    assert re.fullmatch(r'attachment; filename="offen-v1\.csv"', disposition), disposition


# -- ZIP bombs ------------------------------------------------------------------------------
def _bomb_zip(path: Path, parts: dict[str, bytes], bomb_name: str, bomb_mb: int) -> Path:
    """A valid ZIP with small ``parts`` and one part of ``bomb_mb`` MB of XML whitespace.

    Built without compressing a GB: after a full flush every 1 MB block of blanks deflates
    to the same bytes, so the block's deflate output is written ``bomb_mb`` times.
    """
    block = b" " * MB
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = b'<?xml version="1.0"?>'
    first = comp.compress(head) + comp.flush(zlib.Z_FULL_FLUSH)
    repeated = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    tail_xml = parts.pop("__tail__", b"")
    tail = comp.compress(tail_xml) + comp.flush()
    crc = zlib.crc32(head)
    block_crc_state = crc
    for _ in range(bomb_mb):
        block_crc_state = zlib.crc32(block, block_crc_state)
    crc = zlib.crc32(tail_xml, block_crc_state)
    size = len(head) + bomb_mb * MB + len(tail_xml)
    data_len = len(first) + bomb_mb * len(repeated) + len(tail)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in parts.items():
            zf.writestr(name, content)
    # append the bomb part by hand: local header, data, then a new central directory
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
    raw = path.read_bytes()
    cd_start = struct.unpack("<I", raw[-6:-2])[0]
    body, central = raw[:cd_start], raw[cd_start:-22]
    name = bomb_name.encode()
    offset = len(body)
    local = struct.pack(
        "<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, data_len, size, len(name), 0
    )
    entry = struct.pack(
        "<IHHHHHHIIIHHHHHII",
        0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, data_len, size, len(name), 0, 0, 0, 0, 0, offset,
    )  # fmt: skip
    with path.open("wb") as fh:
        fh.write(body + local + name + first)
        for _ in range(bomb_mb):
            fh.write(repeated)
        fh.write(tail)
        cd_offset = fh.tell()
        cd = central + entry + name
        fh.write(cd)
        fh.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(infos) + 1, len(infos) + 1,
                             len(cd), cd_offset, 0))  # fmt: skip
    return path


XLSX_PARTS = {
    "[Content_Types].xml": b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/'
    b'package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.'
    b'openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType='
    b'"application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.'
    b'openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName='
    b'"/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.'
    b'spreadsheetml.worksheet+xml"/></Types>',
    "_rels/.rels": b'<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/'
    b'package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.'
    b'org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
    b"</Relationships>",
    "xl/workbook.xml": b'<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/'
    b'spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/'
    b'relationships"><sheets><sheet name="Daten" sheetId="1" r:id="rId1"/></sheets></workbook>',
    "xl/_rels/workbook.xml.rels": b'<?xml version="1.0"?><Relationships xmlns="http://schemas.'
    b'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://'
    b'schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target='
    b'"worksheets/sheet1.xml"/></Relationships>',
}


def test_xlsx_zip_bomb_is_refused_quickly(app: Any, tmp_path: Path) -> None:
    parts = dict(XLSX_PARTS)
    parts["__tail__"] = (
        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        b'<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>a</t></is></c></row>'
        b"</sheetData></worksheet>"
    )
    bomb = _bomb_zip(tmp_path / "bombe.xlsx", parts, "xl/worksheets/sheet1.xml", 1100)
    assert bomb.stat().st_size < 4 * MB  # a GB of XML in a few MB
    with zipfile.ZipFile(bomb) as zf:  # a well-formed archive, not a broken one
        assert zf.getinfo("xl/worksheets/sheet1.xml").file_size > 1024 * MB
    started = time.monotonic()
    with pytest.raises(BadInput, match=r"bombe\.xlsx.*ZIP bomb"):
        app.state.pool.ingest(bomb, dataset="bombe")
    assert time.monotonic() - started < 10  # unpacking would take minutes
    r = TestClient(app).post(
        "/api/v1/datasets",
        files={"file": ("bombe.xlsx", bomb.read_bytes(), "application/octet-stream")},
        data={"dataset": "bombe", "org": "bmi"},
        headers={"Authorization": f"Bearer {app.state.admin_token}"},
    )
    assert r.status_code == 400 and "ZIP bomb" in r.json()["error"]
    assert "bombe" not in [d.slug for d in app.state.pool.datasets()]


def test_docx_zip_bomb_is_refused_quickly(tmp_path: Path) -> None:
    from datenlabor.assist.extract import extract_text

    parts = {
        "[Content_Types].xml": b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.'
        b'org/package/2006/content-types"><Default Extension="xml" ContentType="application/'
        b'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
        "__tail__": b"<w:document/>",
    }
    bomb = _bomb_zip(tmp_path / "bombe.docx", parts, "word/document.xml", 1024)
    started = time.monotonic()
    with pytest.raises(BadInput, match=r"bombe\.docx.*ZIP bomb"):
        extract_text(bomb.read_bytes(), "bombe.docx")
    assert time.monotonic() - started < 10


# -- XML entity attacks ---------------------------------------------------------------------
LAUGHS = (
    '<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i else "&lol;" * 10}">'
        for i in range(9)
    )
    + "]>"
)


def _xxe(secret: Path) -> str:
    return f'<!DOCTYPE x [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>'


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "geheim.txt"
    path.write_text("STRENG-GEHEIM-4711", encoding="utf-8")
    return path


def _refused_or_clean(call: Callable[[], Any], secret_text: str = "STRENG-GEHEIM-4711") -> None:
    started = time.monotonic()
    try:
        result = call()
    except BadInput:
        result = None
    assert time.monotonic() - started < 10, "entity expansion took too long"
    text = repr(result)
    assert secret_text not in text and "lollollollollollollollollollol" not in text


def test_xes_refuses_entities(tmp_path: Path, secret: Path) -> None:
    from datenlabor.procedures.xes import read_xes

    for i, doctype in enumerate((LAUGHS, _xxe(secret))):
        path = tmp_path / f"angriff{i}.xes"
        path.write_text(
            f'<?xml version="1.0"?>{doctype}<log xes.version="1.0"><trace>'
            '<string key="concept:name" value="&lol9;&xxe;"/><event>'
            '<string key="concept:name" value="A"/><date key="time:timestamp" '
            'value="2024-01-01T00:00:00"/></event></trace></log>',
            encoding="utf-8",
        )
        with pytest.raises(BadInput, match="DOCTYPE"):
            read_xes(path, tmp_path)


def test_rdf_xml_entities_are_not_expanded(secret: Path) -> None:
    from datenlabor.interop.harvest_dcat import parse_page

    for doctype, ref in ((LAUGHS, "&lol9;"), (_xxe(secret), "&xxe;")):
        body = (
            f'<?xml version="1.0"?>{doctype}<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-'
            'syntax-ns#" xmlns:dcat="http://www.w3.org/ns/dcat#" xmlns:dct="http://purl.org/dc/'
            'terms/"><dcat:Dataset rdf:about="https://x.example/ds"><dct:title>'
            f"{ref}</dct:title></dcat:Dataset></rdf:RDF>"
        ).encode()
        _refused_or_clean(lambda b=body: parse_page(b, url="https://x.example/catalog.rdf"))


def test_xlsx_and_docx_entities_are_not_expanded(app: Any, tmp_path: Path, secret: Path) -> None:
    import docx

    from datenlabor.assist.extract import extract_text

    for i, (doctype, ref) in enumerate(((LAUGHS, "&lol9;"), (_xxe(secret), "&xxe;"))):
        path = tmp_path / f"angriff{i}.xlsx"
        with zipfile.ZipFile(path, "w") as zf:
            for name, content in XLSX_PARTS.items():
                zf.writestr(name, content)
            zf.writestr(
                "xl/worksheets/sheet1.xml",
                f'<?xml version="1.0"?>{doctype}<worksheet xmlns="http://schemas.openxmlformats.'
                'org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr">'
                f'<is><t>name</t></is></c></row><row r="2"><c r="A2" t="inlineStr"><is><t>{ref}'
                "</t></is></c></row></sheetData></worksheet>",
            )

        def ingest(p: Path = path, n: int = i) -> Any:
            app.state.pool.ingest(p, dataset=f"xml-{n}")
            return app.state.pool.dataset(f"xml-{n}").read().to_pylist()

        _refused_or_clean(ingest)
        buf = tmp_path / f"angriff{i}.docx"
        docx.Document().save(str(buf))
        with zipfile.ZipFile(buf) as src:
            items = {n: src.read(n) for n in src.namelist()}
        body = items["word/document.xml"].decode()
        body = body.replace("?>", "?>" + doctype, 1).replace(
            "<w:body>", f"<w:body><w:p><w:r><w:t>{ref}</w:t></w:r></w:p>", 1
        )
        items["word/document.xml"] = body.encode()
        with zipfile.ZipFile(buf, "w") as dst:
            for n, content in items.items():
                dst.writestr(n, content)
        _refused_or_clean(lambda b=buf: extract_text(b.read_bytes(), b.name))


def test_html_and_mail_entities_are_not_expanded(secret: Path) -> None:
    from datenlabor.assist.extract import extract_text
    from datenlabor.assist.inbox import parse_eml

    for doctype, ref in ((LAUGHS, "&lol9;"), (_xxe(secret), "&xxe;")):
        html = f"{doctype}<html><body><h1>Titel</h1><p>Text {ref} Ende</p></body></html>"
        _refused_or_clean(lambda h=html: extract_text(h.encode(), "angriff.html"))
        mail = (
            "From: a@example.org\r\nSubject: x\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
            + html
        )
        _refused_or_clean(lambda m=mail: parse_eml(m.encode(), "angriff.eml"))


def test_genesis_ws_answers_that_are_xml_are_refused() -> None:
    from datenlabor.interop.genesis_ws import GenesisError, _json

    answer = httpx.Response(200, content=f"<?xml version='1.0'?>{LAUGHS}<a>&lol9;</a>".encode())
    started = time.monotonic()
    with pytest.raises(GenesisError, match="not JSON"):
        _json(answer)
    assert time.monotonic() - started < 5


# -- oversized bodies -----------------------------------------------------------------------
def test_oversized_forms_and_multipart_get_413(app: Any) -> None:
    c = TestClient(app)
    login(c)
    token = csrf_of(c)
    big = "x" * (2 * MB)
    r = c.post("/admin/orgs", data={"slug": "x", "name": big, "csrf_token": token})
    assert r.status_code == 413
    r = c.post(
        "/assist/kb",
        files={"file": ("gross.md", big.encode(), "text/markdown")},
        data={"csrf_token": token},
    )
    assert r.status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield b"name=" + b"y" * 65536

    r = c.post(
        "/sql",
        content=chunks(),
        headers={"content-type": "application/x-www-form-urlencoded", "x-csrf-token": token},
    )
    assert r.status_code == 413
    # the streamed upload routes have their own (larger) limit
    r = c.post(
        "/api/v1/datasets",
        files={"file": ("gross.csv", b"a\n" + b"1\n" * (3 * MB), "text/csv")},
        data={"dataset": "gross", "org": "bmi"},
        headers={"x-csrf-token": token},
    )
    assert r.status_code == 413


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(app: Any) -> Iterator[tuple[str, int]]:
    """The app under uvicorn with the options ``datenlabor serve`` uses (web.limits)."""
    port = _free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", **server_options()
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    yield "127.0.0.1", port
    srv.should_exit = True
    thread.join(10)


def _raw(addr: tuple[str, int], head: str, body: bytes = b"") -> socket.socket:
    s = socket.create_connection(addr, timeout=10)
    s.sendall(head.encode() + body)
    return s


def _status(s: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1])


def test_announced_huge_bodies_are_refused_before_they_are_sent(
    server: tuple[str, int], app: Any
) -> None:
    token = app.state.admin_token
    for path, ctype in (
        ("/api/v1/sql", "application/json"),
        ("/admin/orgs", "application/x-www-form-urlencoded"),
        ("/api/v1/datasets", "multipart/form-data; boundary=xyz"),
    ):
        s = _raw(
            server,
            f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {50 * 1024 * MB}\r\n\r\n",
            b"{",
        )
        started = time.monotonic()
        assert _status(s) == 413, path  # answered although 50 GB are still "to come"
        assert time.monotonic() - started < 5
        s.close()


# -- slow clients ---------------------------------------------------------------------------
def test_slow_clients_do_not_block_others(server: tuple[str, int]) -> None:
    slow: list[socket.socket] = []
    try:
        for i in range(60):  # slowloris: headers that never end, bodies that never come
            if i % 2:
                s = _raw(server, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            else:
                s = _raw(
                    server,
                    "POST /api/v1/sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    "Content-Length: 1000\r\n\r\n",
                    b'{"sql": "',
                )
            slow.append(s)
        with httpx.Client(base_url=f"http://{server[0]}:{server[1]}", timeout=10) as http:
            for _ in range(3):
                for s in slow[::2]:
                    s.send(b"a")  # keep trickling
                started = time.monotonic()
                r = http.get("/api/v1/datasets")
                assert r.status_code == 200 and r.json()["datasets"][0]["slug"] == "offen"
                assert http.get("/healthz").status_code == 200
                assert time.monotonic() - started < 5
            big_but_allowed = {"X-Long": "b" * 12_000}  # the head limit is 16 KiB
            assert http.get("/healthz", headers=big_but_allowed).status_code == 200
        # an endless header line is cut off (h11 limit), not buffered without bound
        s = _raw(server, "GET / HTTP/1.1\r\nHost: x\r\nX-Long: ")
        s.settimeout(10)
        try:
            for _ in range(64):
                s.sendall(b"a" * 4096)
            status = _status(s)
        except (BrokenPipeError, ConnectionResetError):
            status = 400  # the server closed the connection while we were still sending
        assert status in (400, 413, 431)
        s.close()
    finally:
        for s in slow:
            s.close()
