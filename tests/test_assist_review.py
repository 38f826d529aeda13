"""Inbox, review queue and decision log through the API, on SQLite and PostgreSQL: who may do
what, e-mails with attachments, CSV/NDJSON deliveries, and that the AI never closes a case."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from datenlabor.access.principal import Principal
from datenlabor.assist import inbox, review
from datenlabor.errors import BadInput
from datenlabor.web.app import create_app
from test_assist_triage import install_model

PW = "assist-test-passwort-1"
USERS = {  # name: (organisation, role)
    "admin": ("amt", "admin"),
    "sb": ("amt", "analyst"),  # caseworker of the receiving authority
    "leitung": ("amt", "steward"),
    "fremd": ("kreis", "analyst"),  # caseworker of another authority
    "gast": ("amt", "viewer"),
}
WOHNGELD = (
    "Sehr geehrte Damen und Herren, ich möchte Wohngeld beantragen. Meine Miete ist auf 950 "
    "Euro gestiegen. Meine IBAN: DE02 1234 5678 0000 1111 22. Mit freundlichen Grüßen, Aylin Demir"
)
KFZ = (
    "Guten Tag, ich habe einen Gebrauchtwagen gekauft und möchte ihn zulassen. Welche "
    "Unterlagen brauche ich für die Zulassung? Gruß, Lukas Becker"
)
VAGUE = "Bitte senden Sie mir die Unterlagen noch einmal zu."


@pytest.fixture
def env(tmp_path: Path, pool: Any) -> Any:
    pool.settings.assist_min_confidence = 0.7
    app = create_app(pool)
    gate = app.state.gate
    gate.accounts.add_org("amt", "Wohngeld- und Bürgeramt")
    gate.accounts.add_org("kreis", "Kreisverwaltung")
    for name, (org, role) in USERS.items():
        gate.accounts.add_user(name, org=org, role=role, password=PW)
    tokens = {n: gate.accounts.create_token(n, scope="write") for n in USERS}
    tokens["sb-read"] = gate.accounts.create_token("sb", scope="read")
    install_model(pool)
    client = TestClient(app)
    yield client, tokens, gate
    client.close()


def h(tokens: dict[str, str], who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[who]}"}


def _submit(client: TestClient, tokens: dict[str, str], who: str = "leitung") -> dict[str, Any]:
    body = {"requests": [
        {"text": WOHNGELD, "ags": "05315", "received_at": "2026-02-03T09:15:00+01:00"},
        {"text": KFZ, "ags": "09162", "channel": "portal"},
        {"text": VAGUE, "request_id": "R-vage-1", "language": "de"},
    ]}  # fmt: skip
    r = client.post("/api/v1/assist/requests", json=body, headers=h(tokens, who))
    assert r.status_code == 201, r.text
    return r.json()


def test_review_flow_and_decision_log(env: Any) -> None:
    client, tokens, gate = env
    added = _submit(client, tokens)
    assert added["dataset"] == "posteingang" and added["version"] == 1
    assert len(added["ids"]) == 3 and len(added["suggestions"]) == 3 and "R-vage-1" in added["ids"]
    # The inbox is pool data: restricted, personal columns marked in the schema.
    d = gate.load("posteingang", fresh=True)
    assert d.visibility == "restricted" and d.publisher.slug == "amt"
    fields = {f["name"]: f for f in d.versions[-1].table_schema["fields"]}
    assert fields["text"]["personal"] is True and fields["sender"]["personal"] is True
    assert "personal" not in fields["ags"]
    assert gate.pool.dataset("posteingang").read(version=1).num_rows == 3

    queue = client.get("/api/v1/assist/queue", headers=h(tokens, "sb")).json()["requests"]
    by_id = {q["request_id"]: q["suggestions"][0] for q in queue}
    assert set(by_id) == set(added["ids"])
    assert all(s["status"] == "open" for s in by_id.values())  # the AI closes nothing
    wohn, kfz, vague = (by_id[i] for i in added["ids"])
    assert wohn["suggestion"]["label"] == "wohngeld" and wohn["confidence"] >= 0.7
    assert any(e["term"].lower() == "wohngeld" for e in wohn["suggestion"]["evidence"])
    assert vague["suggestion"]["label"] is None and vague["suggestion"]["routed_to_person"]
    assert wohn["training_data"] == {"dataset": "demo", "version": 1}

    page = client.get(f"/api/v1/assist/requests/{added['ids'][0]}", headers=h(tokens, "sb")).json()
    assert page["request"]["text"] == WOHNGELD and page["request"]["ags"] == "05315"
    assert page["request"]["received_at"].startswith("2026-02-03T08:15:00")  # stored in UTC
    assert page["closed"] is False

    def decide(sid: int, who: str = "sb", **body: Any) -> Any:
        return client.post(
            f"/api/v1/assist/suggestions/{sid}/decision", json=body, headers=h(tokens, who)
        )

    r = decide(wohn["id"], decision="accepted")
    assert r.status_code == 200, r.text
    assert r.json()["decision"]["final"] == {
        "label": "wohngeld",
        "unit": "Wohngeldstelle",
        "urgency": "normal",
    }
    assert decide(wohn["id"], decision="rejected").status_code == 409  # decided once only
    assert decide(vague["id"], decision="accepted").status_code == 400  # nothing to accept
    r = decide(vague["id"], who="leitung", decision="edited", label="meldewesen", urgency="high")
    assert r.status_code == 200, r.text
    assert r.json()["decision"]["edits"]["label"] == {"from": None, "to": "meldewesen"}
    assert decide(kfz["id"], decision="edited", label="kein-amt").status_code == 400
    r = decide(kfz["id"], decision="rejected", reason="Anfrage gehört zum Landkreis")
    assert r.status_code == 200 and r.json()["suggestion"]["status"] == "rejected"

    assert client.get("/api/v1/assist/queue", headers=h(tokens, "sb")).json()["requests"] == []
    rows = client.get("/api/v1/assist/decisions", headers=h(tokens, "sb")).json()["decisions"]
    assert [r["decision"] for r in rows] == ["accepted", "edited", "rejected"]
    first = rows[0]
    for key in ("request_id", "model", "training_dataset", "training_version", "template_version",
                "suggestion", "confidence", "reviewer", "decision", "final", "decided_at",
                "suggested_at", "request_dataset", "request_version"):  # fmt: skip
        assert first[key] not in (None, ""), key
    assert first["model"] == "triage@1" and first["reviewer"] == "sb" and first["override"] is False
    assert first["groups"] == {"ags": "05315", "language": None, "channel": "api"}
    assert (
        rows[1]["override"]
        and rows[1]["final_label"] == "meldewesen"
        and rows[1]["reviewer"] == "leitung"
    )
    assert rows[1]["routed_to_person"] and rows[1]["groups"]["language"] == "de"
    assert rows[2]["groups"]["channel"] == "portal" and rows[2]["edits"]["reason"]
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert client.get("/api/v1/assist/decisions", params={"since": later},
                      headers=h(tokens, "sb")).json()["decisions"] == []  # fmt: skip
    # Every step is in the audit log, with who did it.
    logged = [(e.action, e.actor) for e in gate.audit.entries(limit=200)]
    assert ("assist-inbox", "leitung") in logged and ("assist-suggest", "leitung") in logged
    assert sum(a == "assist-decide" for a, _who in logged) == 3
    assert ("assist-decide", "leitung") in logged


def test_permissions_per_role(env: Any) -> None:
    client, tokens, _gate = env
    one = {"requests": [{"text": KFZ}]}
    # The inbox is set up by a steward (or admin) of the receiving organisation ...
    assert (
        client.post("/api/v1/assist/requests", json=one, headers=h(tokens, "sb")).status_code == 403
    )
    added = _submit(client, tokens, "leitung")
    # ... then every caseworker of it may add requests.
    assert (
        client.post("/api/v1/assist/requests", json=one, headers=h(tokens, "sb")).status_code == 201
    )
    assert (
        client.post("/api/v1/assist/requests", json=one, headers=h(tokens, "fremd")).status_code
        == 403
    )
    rid, sid = added["ids"][0], added["suggestions"][0]
    for who, code in [("gast", 403), ("fremd", 403)]:
        assert client.get("/api/v1/assist/queue", headers=h(tokens, who)).status_code == code
        assert (
            client.get(f"/api/v1/assist/requests/{rid}", headers=h(tokens, who)).status_code == code
        )
        assert (
            client.post(
                "/api/v1/assist/triage", json={"text": KFZ}, headers=h(tokens, who)
            ).status_code
            == code
        )
        assert client.post(f"/api/v1/assist/suggestions/{sid}/decision", json={"decision": "accepted"},
                           headers=h(tokens, who)).status_code == code  # fmt: skip
        assert client.get("/api/v1/assist/decisions", headers=h(tokens, who)).status_code == code
    assert client.get("/api/v1/assist/queue").status_code == 401
    assert client.post("/api/v1/assist/triage", json={"text": KFZ}).status_code == 401
    # A read-only token may look but not decide.
    assert client.get("/api/v1/assist/queue", headers=h(tokens, "sb-read")).status_code == 200
    assert client.post(f"/api/v1/assist/suggestions/{sid}/decision", json={"decision": "accepted"},
                       headers=h(tokens, "sb-read")).status_code == 403  # fmt: skip
    # Viewers of the organisation do not see the requests' personal columns via the queue,
    # and the admin of the platform sees everything.
    assert client.get("/api/v1/assist/queue", headers=h(tokens, "admin")).status_code == 200
    r = client.post("/api/v1/assist/triage", json={"text": KFZ}, headers=h(tokens, "sb"))
    assert r.status_code == 200 and r.json()["label"] == "kfz_zulassung"


def _eml(tmp_path: Path) -> Path:
    msg = EmailMessage()
    msg["From"] = "Aylin Demir <aylin.demir@example.net>"
    msg["To"] = "buergerservice@stadt.example"
    msg["Subject"] = "Antrag auf Wohngeld"
    msg["Date"] = "Tue, 03 Feb 2026 10:20:00 +0100"
    msg["Message-ID"] = "<abc123@example.net>"
    msg.set_content("Guten Tag,\nanbei mein Antrag auf Wohngeld.\nGrüße, Aylin Demir")
    msg.add_alternative(
        "<p>Guten Tag,<br>anbei mein Antrag auf <b>Wohngeld</b>.</p>", subtype="html"
    )
    msg.add_attachment("Mietbescheinigung: Kaltmiete 720 Euro, Vermieter Krüger".encode(),
                       maintype="text", subtype="plain", filename="mietbescheinigung.txt")  # fmt: skip
    msg.add_attachment(
        b"\x89PNG\r\n\x1a\n" + b"\0" * 20, maintype="image", subtype="png", filename="foto.png"
    )
    path = tmp_path / "antrag.eml"
    path.write_bytes(bytes(msg))
    return path


def test_eml_with_attachments_via_upload(env: Any, tmp_path: Path) -> None:
    client, tokens, gate = env
    path = _eml(tmp_path)
    req = inbox.parse_eml(path.read_bytes(), path.name)
    assert req.subject == "Antrag auf Wohngeld" and "aylin.demir@example.net" in (req.sender or "")
    assert req.text.startswith("Guten Tag,\nanbei mein Antrag auf Wohngeld.")  # plain part chosen
    assert req.received_at == datetime(2026, 2, 3, 9, 20, tzinfo=UTC)
    assert "Kaltmiete 720 Euro" in req.attachment_text
    names = {a["name"]: a for a in req.attachments}
    assert names["mietbescheinigung.txt"]["chars"] > 0 and "chars" not in names["foto.png"]
    r = client.post("/api/v1/assist/requests/upload", headers=h(tokens, "leitung"),
                    files={"file": ("antrag.eml", path.read_bytes(), "message/rfc822")})  # fmt: skip
    assert r.status_code == 201, r.text
    [rid] = r.json()["ids"]
    assert rid == req.request_id and rid.startswith("M-")
    view = client.get(f"/api/v1/assist/requests/{rid}", headers=h(tokens, "sb")).json()
    triage = view["suggestions"][0]["suggestion"]
    assert triage["label"] == "wohngeld"
    assert [d["id"] for d in triage["documents_mentioned"]] == [
        "mietvertrag"
    ]  # from the attachment
    # The same mail again is refused by its id; the inbox keeps its one version.
    r = client.post("/api/v1/assist/requests/upload", headers=h(tokens, "sb"),
                    files={"file": ("antrag.eml", path.read_bytes(), "message/rfc822")})  # fmt: skip
    assert r.status_code == 400 and "request_id" in r.text
    assert [v.number for v in gate.load("posteingang", fresh=True).versions] == [1]


def test_eml_pdf_and_docx_attachments(tmp_path: Path) -> None:
    docx = pytest.importorskip("docx")
    fpdf = pytest.importorskip("fpdf")
    doc = docx.Document()
    doc.add_paragraph("Lohnabrechnung Januar 2026: netto 1.450 Euro")
    buf = io.BytesIO()
    doc.save(buf)
    pdf = fpdf.FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(text="Mietvertrag vom 01.01.2024")
    msg = EmailMessage()
    msg["From"] = "olga@example.net"
    msg["Subject"] = "Unterlagen"
    msg.set_content("Anbei die Unterlagen.")
    msg.add_attachment(buf.getvalue(), maintype="application",
                       subtype="vnd.openxmlformats-officedocument.wordprocessingml.document",
                       filename="lohn.docx")  # fmt: skip
    msg.add_attachment(
        bytes(pdf.output()), maintype="application", subtype="pdf", filename="miete.pdf"
    )
    req = inbox.parse_eml(bytes(msg))
    assert (
        "netto 1.450 Euro" in req.attachment_text
        and "Mietvertrag vom 01.01.2024" in req.attachment_text
    )
    assert req.request_id is None  # no Message-ID: the id is derived when stored


def test_csv_and_ndjson_deliveries(env: Any, tmp_path: Path) -> None:
    _client, _tokens, gate = env
    admin = Principal("admin", role="admin", organisation="amt", via="local")
    csv_file = tmp_path / "portal.csv"
    csv_file.write_text(
        "request_id;received_at;ags;text\n"
        'P-1;03.02.2026 08:00;05315;"Ich möchte meinen Hund zur Hundesteuer anmelden.\nDanke"\n'
        "P-2;2026-02-04;09162;Ich brauche eine Meldebescheinigung für den Arbeitgeber.\n",
        encoding="cp1252",
    )
    reqs = inbox.read_csv(csv_file)
    assert [r.request_id for r in reqs] == ["P-1", "P-2"] and reqs[0].channel == "csv"
    assert "\nDanke" in reqs[0].text and reqs[0].received_at == datetime(
        2026, 2, 3, 8, 0, tzinfo=UTC
    )
    added = inbox.add(gate, admin, reqs, org="amt")
    assert added.version == 1 and len(added.suggestions) == 2
    bad = tmp_path / "bad.ndjson"
    bad.write_text(
        '{"text": "Gewerbe anmelden", "request_id": "N-1"}\n{"text": ""}\n', encoding="utf-8"
    )
    with pytest.raises(BadInput) as exc:
        inbox.read_ndjson(bad)
    assert (exc.value.line, exc.value.column) == (2, "text")
    bad.write_text('{"text": "Gewerbe", "ags": 5315}\n', encoding="utf-8")
    with pytest.raises(BadInput) as exc:
        inbox.read_ndjson(bad)
    assert exc.value.column == "ags"
    good = tmp_path / "good.ndjson"
    good.write_text(
        json.dumps({"text": "Ich möchte ein Gewerbe anmelden.", "request_id": "P-1"}) + "\n"
    )
    with pytest.raises(BadInput, match="P-1"):  # id already in the inbox: nothing stored
        inbox.add(gate, admin, inbox.read_ndjson(good))
    assert [v.number for v in gate.load("posteingang", fresh=True).versions] == [1]


def test_the_ai_never_closes_a_case(env: Any) -> None:
    _client, _tokens, gate = env
    admin = Principal("admin", role="admin", organisation="amt", via="local")
    texts = [WOHNGELD, KFZ, VAGUE] * 4
    added = inbox.add(
        gate,
        admin,
        [inbox.Request(text=t, request_id=f"X-{i}") for i, t in enumerate(texts)],
        org="amt",
    )
    assert len(added.suggestions) == len(texts)
    queue = review.queue(gate, admin)
    assert sum(len(q["suggestions"]) for q in queue) == len(texts)
    assert all(
        s["status"] == "open" and not s["decisions"] for q in queue for s in q["suggestions"]
    )
    assert review.decisions(gate, admin) == []


# -- the pages (server-rendered; the browser test checks them in chromium) -----------------
def _login(c: TestClient, user: str) -> str:
    import re

    c.cookies.clear()
    page = c.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', page.text)
    assert token
    r = c.post("/login", data={"username": user, "password": PW, "login_token": token[1], "next": "/"},
               follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    found = re.search(r'name="csrf-token" content="([^"]+)"', c.get("/").text)
    assert found
    return found[1]


def test_pages_review_with_csrf(env: Any) -> None:
    client, tokens, _gate = env
    added = _submit(client, tokens)
    csrf = _login(client, "sb")
    home = client.get("/").text
    assert 'href="/assist"' in home  # the navigation shows the queue to caseworkers
    page = client.get("/assist")
    assert page.status_code == 200 and "Prüfliste" in page.text
    assert all(rid in page.text for rid in added["ids"])
    assert "an eine Person" in page.text  # the vague request has no suggestion
    rid, sid = added["ids"][0], added["suggestions"][0]
    page = client.get(f"/assist/requests/{rid}")
    assert page.status_code == 200
    assert "<mark>Wohngeld</mark>" in page.text and "Wohngeldstelle" in page.text
    assert "DE02 1234 5678" in page.text  # the caseworker sees the whole request
    assert "Die KI schließt keinen Vorgang" in page.text
    r = client.post(f"/assist/suggestions/{sid}/decision", data={"decision": "accepted"})
    assert r.status_code == 403  # no CSRF token
    r = client.post(f"/assist/suggestions/{sid}/decision",
                    data={"decision": "accepted", "csrf_token": csrf}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and r.headers["location"].startswith(
        f"/assist/requests/{rid}?done="
    )
    page = client.get(r.headers["location"]).text
    assert "Die Entscheidung ist gespeichert." in page and "übernommen von sb" in page
    assert 'value="accepted"' not in page  # decided: no more forms for it
    english = client.get(f"/assist/requests/{rid}?lang=en").text
    assert "Decided: accepted by sb" in english
    # Viewers get no queue and no link to it; anonymous callers are sent to sign in.
    _login(client, "gast")
    assert 'href="/assist"' not in client.get("/").text
    assert client.get("/assist").status_code == 403
    assert client.get(f"/assist/requests/{rid}").status_code == 403
    client.cookies.clear()
    r = client.get("/assist", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_answer_draft_with_sources_and_edit(env: Any) -> None:
    from conftest import FIXTURES
    from datenlabor.assist import kb

    client, tokens, gate = env
    admin = Principal("admin", role="admin", organisation="amt", via="local")
    doc = FIXTURES / "assist_kb" / "merkblatt_wohngeld.html"
    kb.add_documents(gate, admin, [(doc.name, doc)], org="amt")
    added = _submit(client, tokens)
    rid = added["ids"][0]
    r = client.post(f"/api/v1/assist/requests/{rid}/answer", headers=h(tokens, "sb"))
    assert r.status_code == 201, r.text
    sid = r.json()["suggestion"]
    view = client.get(f"/api/v1/assist/requests/{rid}", headers=h(tokens, "sb")).json()
    [answer] = [s for s in view["suggestions"] if s["kind"] == "answer"]
    assert answer["id"] == sid and answer["status"] == "open"
    assert answer["suggestion"]["citations"] and answer["retrieved"]
    assert answer["template_version"] and answer["suggestion"]["text"]
    assert view["closed"] is False
    csrf = _login(client, "sb")
    page = client.get(f"/assist/requests/{rid}").text
    first = answer["suggestion"]["citations"][0]["n"]
    assert f'href="#quelle-{sid}-{first}"' in page and f'id="quelle-{sid}-{first}"' in page
    final = "Sehr geehrte Frau Demir, Ihren Antrag auf Wohngeld haben wir erhalten."
    r = client.post(f"/assist/suggestions/{sid}/decision",
                    data={"decision": "edited", "text": final, "csrf_token": csrf}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    rows = review.decisions(gate, admin, kind="answer")
    assert len(rows) == 1 and rows[0]["final"] == {"text": final} and rows[0]["override"]
    assert rows[0]["edits"]["diff"].startswith("--- draft\n+++ final")
    assert rows[0]["retrieved"] and rows[0]["template_version"] == answer["template_version"]


def test_without_a_model_every_request_goes_to_a_person(tmp_path: Path, pool: Any) -> None:
    from datenlabor.service.gate import Gate

    gate = Gate(pool)
    admin = Principal("admin", role="admin", organisation="amt", via="local")
    added = inbox.add(gate, admin, [inbox.Request(text="Es ist dringend: " + KFZ)], org="amt")
    assert added.note and "no triage model" in added.note
    [item] = review.queue(gate, admin)
    [s] = item["suggestions"]
    assert s["status"] == "open" and s["model"] is None and s["confidence"] == 0.0
    assert s["suggestion"]["label"] is None and s["suggestion"]["routed_to_person"]
    assert s["suggestion"]["urgency"] == "high" and s["suggestion"]["language"] == "de"
    r = review.decide(gate, admin, s["id"], "edited", final={"label": "kfz_zulassung"})
    assert r.decision["final"]["unit"] == "Kfz-Zulassungsstelle"


def test_viewers_of_the_organisation_read_no_personal_columns(env: Any) -> None:
    client, tokens, _gate = env
    _submit(client, tokens)
    r = client.get("/api/v1/datasets/posteingang/rows", headers=h(tokens, "gast"))
    assert r.status_code == 403 or "text" not in r.json()["columns"]
