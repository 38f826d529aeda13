"""Knowledge base: extraction of each format, chunk structure, German retrieval, permissions."""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from datenlabor.access.principal import ANONYMOUS, Principal
from datenlabor.assist import kb
from datenlabor.assist.chunking import MAX_CHARS, chunk_document, split_sentences
from datenlabor.assist.extract import extract_text
from datenlabor.assist.retrieval import Bm25Index, query_terms, terms
from datenlabor.errors import BadInput, Forbidden
from datenlabor.service import grants
from datenlabor.service.gate import Gate

KB_DIR = Path(__file__).parent / "fixtures" / "assist_kb"
PW = "ein-sehr-geheimes-pw-1"


def docx_bytes() -> bytes:
    """A small Word document with German heading styles, numbered paragraphs and a table."""
    import docx

    d = docx.Document()
    d.core_properties.title = "Hinweise Elterngeld"
    d.add_heading("Hinweise zum Elterngeld", level=1)
    d.add_heading("1 Anspruch", level=2)
    d.add_paragraph(
        "(1) Elterngeld erhalten Mütter und Väter, die ihr Kind nach der Geburt selbst betreuen."
    )
    d.add_paragraph("(2) Der Antrag ist schriftlich bei der Elterngeldstelle zu stellen.")
    d.add_heading("2 Höhe", level=2)
    d.add_paragraph("Das Elterngeld beträgt mindestens 300 Euro und höchstens 1.800 Euro im Monat.")
    table = d.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Basiselterngeld"
    table.cell(0, 1).text = "bis 14 Monate"
    table.cell(1, 0).text = "ElterngeldPlus"
    table.cell(1, 1).text = "doppelt so lange"
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def pdf_bytes(*, text: bool = True) -> bytes:
    """A two-page PDF with a text layer (or none: a 'scan')."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title("Satzung Hundesteuer")
    pdf.set_font("Helvetica", size=11)
    pdf.add_page()
    if text:
        pdf.multi_cell(
            0,
            6,
            "§ 1 Steuergegenstand\n\n(1) Gegenstand der Steuer ist das Halten von Hunden im Stadtgebiet.\n(2) Steuerpflichtig ist, wer einen Hund in seinen Haushalt aufgenommen hat.",
        )
        pdf.add_page()
        pdf.multi_cell(
            0, 6, "§ 2 Steuersatz\n\n(1) Die Steuer beträgt für den ersten Hund 96 Euro im Jahr."
        )
    else:
        pdf.rect(20, 20, 100, 60, style="F")
    return bytes(pdf.output())


# -- extraction ---------------------------------------------------------------------------
def test_markdown_statute_keeps_structure() -> None:
    ex = extract_text(KB_DIR / "wogg.md")
    assert ex.format == "markdown" and ex.title == "Wohngeldgesetz"
    para = next(
        b
        for b in ex.blocks
        if b["text"].startswith("(2) Wohngeldberechtigte Person ist für den Lastenzuschuss")
    )
    assert para["heading"].endswith("§ 3 Wohngeldberechtigung")
    assert para["heading"].startswith("Wohngeldgesetz (WoGG) › Teil 1")
    assert para["para"] == "(2)"
    item = ex.blocks[ex.blocks.index(para) + 1]
    assert item["text"] == "1. die erbbauberechtigte Person," and item["para"] == "1."
    assert "layout: default" not in ex.text  # front matter is metadata, not text


def test_html_skips_navigation_and_scripts() -> None:
    ex = extract_text(KB_DIR / "merkblatt_wohngeld.html")
    assert ex.title == "Merkblatt Wohngeldantrag – Stadt Musterstadt"
    assert "nicht indexieren" not in ex.text and "Startseite" not in ex.text
    rows = [b["text"] for b in ex.blocks if "|" in b["text"]]
    assert "Einkommen steigt um mehr als 15 Prozent | unverzüglich" in rows
    li = next(b for b in ex.blocks if b["text"].startswith("eine Mietbescheinigung"))
    assert li["heading"].endswith("2 Welche Unterlagen sind einzureichen?")


def test_docx_headings_paragraphs_and_tables() -> None:
    ex = extract_text(docx_bytes(), "elterngeld.docx")
    assert ex.format == "docx" and ex.title == "Hinweise Elterngeld"
    first = ex.blocks[0]
    assert first["heading"] == "Hinweise zum Elterngeld › 1 Anspruch" and first["para"] == "(1)"
    assert any(b["text"] == "Basiselterngeld | bis 14 Monate" for b in ex.blocks)
    assert ex.blocks[-1]["heading"].endswith("2 Höhe")


def test_pdf_pages_and_paragraphs() -> None:
    ex = extract_text(pdf_bytes(), "hundesteuer.pdf")
    assert ex.format == "pdf" and ex.pages == 2 and ex.title == "Satzung Hundesteuer"
    by_text = {b["text"][:30]: b for b in ex.blocks}
    steuer = next(b for t, b in by_text.items() if t.startswith("(1) Die Steuer beträgt"))
    assert steuer["page"] == 2 and steuer["heading"] == "§ 2 Steuersatz" and steuer["para"] == "(1)"
    chunks = chunk_document(ex, "hundesteuer.pdf")
    assert {c.page for c in chunks} == {1, 2}
    assert any(c.label == "Satzung Hundesteuer, § 2 Steuersatz, Abs. 1, S. 2" for c in chunks)


def test_plain_text_in_cp1252() -> None:
    raw = "Hinweis\n\nDie Gebühr für die Meldebescheinigung beträgt 10 €.\n".encode("cp1252")
    ex = extract_text(raw, "hinweis.txt")
    assert ex.encoding == "cp1252" and "10 €" in ex.text and ex.title == "Hinweis"


def test_bad_documents_are_refused_with_the_file_name(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"tabelle\.xlsx: unsupported document type"):
        extract_text(b"PK\x03\x04", "tabelle.xlsx")
    with pytest.raises(BadInput, match=r"kaputt\.pdf: not a readable PDF"):
        extract_text(b"%PDF-1.7\nnonsense", "kaputt.pdf")
    with pytest.raises(BadInput, match=r"scan\.pdf: no text found.*OCR"):
        extract_text(pdf_bytes(text=False), "scan.pdf")
    with pytest.raises(BadInput, match=r"leer\.md: no text found"):
        extract_text(b"   \n", "leer.md")
    with pytest.raises(BadInput, match=r"kaputt\.docx: not a readable DOCX"):
        extract_text(b"PK\x03\x04 not a zip", "kaputt.docx")
    with pytest.raises(BadInput, match=r"fehlt\.txt: cannot read"):
        extract_text(tmp_path / "fehlt.txt")


# -- chunking -----------------------------------------------------------------------------
def test_chunks_follow_paragraphs_with_their_items() -> None:
    chunks = chunk_document(extract_text(KB_DIR / "wogg.md"), "wogg.md")
    abs2 = next(c for c in chunks if c.label == "Wohngeldgesetz, § 3 Wohngeldberechtigung, Abs. 2")
    assert abs2.para == "(2)"
    assert abs2.text.startswith("(2) Wohngeldberechtigte Person ist für den Lastenzuschuss")
    assert "3. die Person, die einen Anspruch auf Bestellung" in abs2.text  # items stay with it
    assert "(3)" not in abs2.text
    assert all(len(c.text) <= MAX_CHARS for c in chunks)
    assert len({c.chunk_id for c in chunks}) == len(chunks)
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    # a chunk never spans two headings
    assert all("§ 4" not in c.text or (c.heading and "§ 4" in c.heading) for c in chunks)


def test_long_paragraphs_split_between_sentences() -> None:
    sentence = "Der Antrag ist nach § 3 Abs. 2 Nr. 1 WoGG vollständig einzureichen und zu prüfen. "
    ex = extract_text((sentence * 40).encode(), "lang.txt")
    chunks = chunk_document(ex, "lang.txt", max_chars=400)
    assert len(chunks) > 5 and all(len(c.text) <= 400 for c in chunks)
    assert all(c.text.endswith("prüfen.") for c in chunks)
    assert split_sentences("Nach § 3 Abs. 2 gilt das. Z.B. nicht. Neu") == [
        "Nach § 3 Abs. 2 gilt das.",
        "Z.B. nicht.",
        "Neu",
    ]


# -- German retrieval ---------------------------------------------------------------------
def test_german_stemming_unifies_inflections() -> None:
    assert terms("Anträge") == terms("Antrag") == ["antrag"]
    assert terms("des Wohngeldes") == terms("Wohngeld") == ["wohngeld"]
    assert terms("Haushaltsmitglieder") == terms("Haushaltsmitglied")
    assert query_terms("Ich möchte bitte wissen, wie das geht?") == ["geht"]  # stop words go


def test_bm25_ranks_and_finds_inflected_forms() -> None:
    docs = [
        "Der Antrag auf Wohngeld ist schriftlich zu stellen.",
        "Die Hundesteuer beträgt 96 Euro.",
        "Mehrere Anträge derselben Person werden zusammen bearbeitet. Anträge, Anträge.",
        "Das Wohngeld wird als Mietzuschuss geleistet.",
    ]
    index = Bm25Index(pa.array([" ".join(terms(d)) for d in docs]))
    hits = index.search(query_terms("Anträge"), 5)
    assert [h.row for h in hits] == [2, 0]  # both forms found, the denser chunk first
    assert [h.row for h in index.search(query_terms("Höhe des Wohngeldes"), 5)][:2] in (
        [0, 3],
        [3, 0],
    )
    assert index.search(query_terms("Reisepass"), 5) == []
    assert Bm25Index(pa.array([], pa.string())).search(["x"], 5) == []


# -- the knowledge base in the pool -------------------------------------------------------
@pytest.fixture
def gate(pool) -> Gate:  # type: ignore[no-untyped-def]
    g = Gate(pool)
    g.accounts.add_org("sozialamt", "Sozialamt Musterstadt")
    g.accounts.add_org("ordnungsamt", "Ordnungsamt Musterstadt")
    g.accounts.add_user("admin", org="sozialamt", role="admin", password=PW)
    g.accounts.add_user("steward", org="sozialamt", role="steward", password=PW)
    g.accounts.add_user("sachb", org="sozialamt", role="analyst", password=PW)
    g.accounts.add_user("ordnung", org="ordnungsamt", role="analyst", password=PW)
    return g


def who(gate: Gate, user: str) -> Principal:
    return gate.accounts.authenticate(user, PW)


def _files(*names: str) -> list[tuple[str, Path | bytes]]:
    return [(n, KB_DIR / n) for n in names]


def test_restricted_documents_are_never_retrieved_for_others(gate: Gate) -> None:
    steward = who(gate, "steward")
    kb.add_documents(
        gate, steward, _files("wogg.md", "merkblatt_wohngeld.html"), visibility="public"
    )
    kb.add_documents(gate, steward, _files("dienstanweisung_wohngeld.txt"), visibility="restricted")
    question = "Wann ist eine Plausibilitätsprüfung beim Wohngeld durchzuführen? Prüfcode W-17"

    inside = kb.retrieve(gate, who(gate, "sachb"), question)
    assert inside[0].document == "dienstanweisung_wohngeld.txt"
    assert inside[0].dataset == "kb__default__restricted__sozialamt"
    for p in (who(gate, "ordnung"), ANONYMOUS):
        found = kb.retrieve(gate, p, question, k=50)
        assert found, "the public documents are still found"
        assert all(x.document != "dienstanweisung_wohngeld.txt" for x in found)
        assert all("W-17" not in x.text for x in found)
    docs = {d["document"] for d in kb.list_documents(gate, who(gate, "ordnung"))}
    assert docs == {"wogg.md", "merkblatt_wohngeld.html"}
    # a grant opens the partition like any dataset; revoking it closes it again
    info = grants.add_grant(gate, steward, "kb__default__restricted__sozialamt", org="ordnungsamt")
    gate.forget()
    assert (
        kb.retrieve(gate, who(gate, "ordnung"), question)[0].document
        == "dienstanweisung_wohngeld.txt"
    )
    grants.revoke_grant(gate, steward, "kb__default__restricted__sozialamt", info.id)
    gate.forget()
    assert all(
        x.document != "dienstanweisung_wohngeld.txt"
        for x in kb.retrieve(gate, who(gate, "ordnung"), question, k=50)
    )


def test_add_replace_and_failed_batch_keep_versions(gate: Gate, tmp_path: Path) -> None:
    steward = who(gate, "steward")
    first = kb.add_documents(gate, steward, _files("wogg.md", "gebuehren_buergerbuero.md"))
    assert [a.status for a in first] == ["added", "added"] and first[0].version == 1
    slug = first[0].dataset
    assert slug == "kb__default__internal__sozialamt"
    again = kb.add_documents(gate, steward, _files("wogg.md"))
    assert again[0].status == "unchanged" and again[0].version is None
    assert len(gate.versions(steward, slug)) == 1

    changed = tmp_path / "gebuehren_buergerbuero.md"
    changed.write_text(
        "# Gebühren\n\n1.1 Eine Meldebescheinigung kostet jetzt 12 Euro.\n", encoding="utf-8"
    )
    replaced = kb.add_documents(gate, steward, [("gebuehren_buergerbuero.md", changed)])
    assert replaced[0].status == "replaced" and replaced[0].version == 2
    docs = {d["document"]: d for d in kb.list_documents(gate, steward)}
    assert docs["gebuehren_buergerbuero.md"]["chunks"] == 1
    assert docs["wogg.md"]["chunks"] == 23 and docs["wogg.md"]["version"] == 2
    hit = kb.retrieve(gate, steward, "Was kostet eine Meldebescheinigung?")[0]
    assert "12 Euro" in hit.text and hit.version == 2 and hit.sha256 == replaced[0].sha256

    # one unreadable file stops the batch: nothing written, version 2 stays current
    with pytest.raises(BadInput, match=r"kaputt\.pdf"):
        kb.add_documents(
            gate, steward, [*_files("merkblatt_wohngeld.html"), ("kaputt.pdf", b"%PDF-1.4 x")]
        )
    assert len(gate.versions(steward, slug)) == 2
    assert "merkblatt_wohngeld.html" not in {
        d["document"] for d in kb.list_documents(gate, steward)
    }
    # the old version is still readable (time travel as for any dataset)
    assert gate.source(steward, slug, 1).version == 1


def test_only_stewards_of_the_organisation_write(gate: Gate) -> None:
    with pytest.raises(Forbidden):
        kb.add_documents(gate, who(gate, "sachb"), _files("wogg.md"))
    with pytest.raises(Forbidden):
        kb.add_documents(gate, who(gate, "steward"), _files("wogg.md"), org="ordnungsamt")
    with pytest.raises(BadInput, match="knowledge base name"):
        kb.add_documents(gate, who(gate, "steward"), _files("wogg.md"), kb="Falsch Name")
    with pytest.raises(BadInput, match="visibility"):
        kb.add_documents(gate, who(gate, "steward"), _files("wogg.md"), visibility="geheim")


def test_retrieval_is_audited(gate: Gate) -> None:
    steward = who(gate, "steward")
    kb.add_documents(gate, steward, _files("wogg.md"), visibility="public")
    kb.retrieve(gate, ANONYMOUS, "Wer ist Haushaltsmitglied?")
    from datenlabor.store.models import AuditEntry

    with gate.pool.store.session() as s:
        actions = [e.action for e in s.query(AuditEntry).order_by(AuditEntry.id)]
    assert actions[-2:] == ["upload", "assist-retrieve"]


# -- CLI ----------------------------------------------------------------------------------
def run_cli(pool: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    """In-process (a subprocess costs seconds of imports); ``main()`` only adds exit codes."""
    from typer.testing import CliRunner

    from datenlabor.cli import app

    clean = {k: None for k in os.environ if k.startswith("DATENLABOR_")}
    return CliRunner().invoke(app, ["--pool", str(pool), *args], env={**clean, **(env or {})})


def test_cli_kb_add_list_and_ask_json(tmp_path: Path) -> None:
    from fixtures.openai_server import running_openai_server

    pool = tmp_path / "pool"
    (tmp_path / "elterngeld.docx").write_bytes(docx_bytes())
    added = run_cli(
        pool, "assist", "kb", "add", str(KB_DIR / "wogg.md"), str(tmp_path / "elterngeld.docx")
    )
    assert added.exit_code == 0, added.output
    assert "wogg.md: 23 Abschnitte, added" in added.stderr
    listed = json.loads(run_cli(pool, "assist", "kb", "list", "--json").stdout)
    assert {d["document"] for d in listed} == {"wogg.md", "elterngeld.docx"}

    asked = run_cli(pool, "assist", "ask", "Wie hoch ist das Elterngeld im Monat?", "--json")
    assert asked.exit_code == 0, asked.output
    out = json.loads(asked.stdout)
    assert {"answer", "citations"} <= set(out)
    assert out["citations"] and all({"source", "passage"} <= set(c) for c in out["citations"])
    assert out["citations"][0]["source"].startswith("elterngeld.docx")
    assert "1.800 Euro" in out["citations"][0]["passage"] and "1.800 Euro" in out["answer"]

    bad = run_cli(pool, "assist", "kb", "add", str(tmp_path / "fehlt.pdf"))
    assert isinstance(bad.exception, BadInput) and "fehlt.pdf" in str(bad.exception)
    assert bad.exception.exit_code == 2

    with running_openai_server() as llm:

        def answer(body: dict[str, Any]) -> str:
            user = body["messages"][1]["content"]
            n = re.findall(r'<quelle nr="(\d+)"[^>]*>\n[^<]*1\.800 Euro', user)[0]
            return f"Das Elterngeld beträgt mindestens 300 Euro und höchstens 1.800 Euro im Monat [{n}]."

        llm.responder = answer
        env = {"DATENLABOR_ASSIST_LLM_URL": llm.url, "DATENLABOR_ASSIST_LLM_MODEL": "lokal"}
        via_llm = run_cli(pool, "assist", "ask", "Wie hoch ist das Elterngeld?", "--json", env=env)
    assert via_llm.exit_code == 0, via_llm.output
    data = json.loads(via_llm.stdout)
    assert data["mode"] == "llm" and data["unsupported"] == 0
    assert data["answer"].startswith(
        "Das Elterngeld beträgt mindestens 300 Euro und höchstens 1.800"
    )
    assert data["citations"][0]["source"].startswith("elterngeld.docx")
    assert llm.requests[-1].body["model"] == "lokal"


# -- HTTP API -----------------------------------------------------------------------------
def test_api_upload_list_and_ask_follow_permissions(gate: Gate) -> None:
    from fastapi.testclient import TestClient

    from datenlabor.web.app import create_app

    tokens = {
        u: gate.accounts.create_token(u, scope="write") for u in ("steward", "sachb", "ordnung")
    }

    def auth(user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[user]}"}

    with TestClient(create_app(gate.pool)) as client:
        url = "/api/v1/assist/kb/default/documents"
        up = client.post(url, headers=auth("steward"), data={"visibility": "restricted"},
                         files={"file": ("dienstanweisung_wohngeld.txt", (KB_DIR / "dienstanweisung_wohngeld.txt").read_bytes())})  # fmt: skip
        assert up.status_code == 201, up.text
        assert up.json()["documents"][0]["dataset"] == "kb__default__restricted__sozialamt"
        up = client.post(url, headers=auth("steward"), data={"visibility": "public"},
                         files={"file": ("elterngeld.docx", docx_bytes())})  # fmt: skip
        assert up.status_code == 201, up.text
        denied = client.post(url, headers=auth("sachb"), files={"file": ("x.md", b"# X\n\nText.")})
        assert denied.status_code == 403
        bad = client.post(url, headers=auth("steward"), files={"file": ("kaputt.pdf", b"%PDF-1 x")})
        assert bad.status_code == 400 and "kaputt.pdf" in bad.text

        docs = client.get(url, headers=auth("ordnung")).json()["documents"]
        assert [d["document"] for d in docs] == ["elterngeld.docx"]
        assert {d["document"] for d in client.get(url, headers=auth("sachb")).json()["documents"]} == {
            "elterngeld.docx", "dienstanweisung_wohngeld.txt"}  # fmt: skip
        kbs = client.get("/api/v1/assist/kb").json()["knowledge_bases"]
        assert kbs == [{"name": "default", "datasets": ["kb__default__public__sozialamt"]}]

        question = {"question": "Wann ist eine Plausibilitätsprüfung durchzuführen?", "llm": False}
        inside = client.post(
            "/api/v1/assist/kb/default/ask", headers=auth("sachb"), json=question
        ).json()
        assert inside["citations"][0]["document"] == "dienstanweisung_wohngeld.txt"
        assert inside["sentences"] and inside["template_version"] == "kb-extractive-1"
        outside = client.post(
            "/api/v1/assist/kb/default/ask", headers=auth("ordnung"), json=question
        ).json()
        assert all(c["document"] != "dienstanweisung_wohngeld.txt" for c in outside["citations"])
        assert "Plausibilitätsprüfung" not in outside["answer"]
        empty = client.post("/api/v1/assist/kb/default/ask", json={"question": ""})
        assert empty.status_code == 400  # the app answers validation errors with 400

        page = client.get("/assist/kb", headers=auth("sachb"))
        assert page.status_code == 200 and 'name="question"' in page.text
        asked = client.post("/assist/kb", headers=auth("sachb"),
                            data={"kb": "default", "question": question["question"]})  # fmt: skip
        assert asked.status_code == 200
        assert 'href="#quelle-1"' in asked.text and 'id="quelle-1"' in asked.text
        assert "dienstanweisung_wohngeld.txt" in asked.text
        other = client.post("/assist/kb", headers=auth("ordnung"),
                            data={"kb": "default", "question": question["question"]})  # fmt: skip
        assert other.status_code == 200 and "dienstanweisung_wohngeld.txt" not in other.text


def test_index_cache_never_mixes_pools(tmp_path: Path) -> None:
    """Two pools with the same KB partition name and version must not share an index."""
    import datenlabor
    from datenlabor.access.principal import local_admin

    answers = []
    for n, text in enumerate(
        ("Die Hundesteuer beträgt 96 Euro.", "Die Hundesteuer beträgt 120 Euro.")
    ):
        g = Gate(datenlabor.open(tmp_path / f"pool{n}", user="admin"))
        kb.add_documents(
            g, local_admin("admin"), [("steuer.md", text.encode())], visibility="public"
        )
        answers.append(kb.retrieve(g, ANONYMOUS, "Hundesteuer", audit=False)[0].text)
    assert answers == ["Die Hundesteuer beträgt 96 Euro.", "Die Hundesteuer beträgt 120 Euro."]


def test_concurrent_first_queries_build_the_index_once() -> None:
    import threading
    import time

    from datenlabor.assist.retrieval import IndexCache

    cache = IndexCache(size=2)
    calls = []

    def build() -> tuple[pa.Table, Bm25Index]:
        calls.append(1)
        time.sleep(0.2)
        return pa.table({"x": [1]}), Bm25Index(pa.array(["antrag"]))

    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_build("k", build)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 4 and all(r is results[0] for r in results)
    cache.get_or_build("a", build)
    cache.get_or_build("b", build)
    assert cache.get("k") is None  # least recently used dropped beyond ``size``
