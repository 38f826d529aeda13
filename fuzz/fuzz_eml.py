"""Fuzz target: e-mails (RFC 5322 with MIME parts and attachments) for the request inbox."""

from __future__ import annotations

import harness

TARGET = "eml"
INSTRUMENT = ("datenlabor", "email")
MAX_LEN = 32 * 1024


def seeds() -> harness.Iterator[harness.Seed]:
    from email.message import EmailMessage

    plain = EmailMessage()
    plain["From"] = "Erika Mustermann <erika@example.org>"
    plain["To"] = "buergerbuero@stadt.example"
    plain["Subject"] = "Antrag auf Wohngeld – Rückfrage"
    plain["Date"] = "Mon, 03 Jun 2024 09:15:00 +0200"
    plain["Message-ID"] = "<a1@example.org>"
    plain.set_content("Sehr geehrte Damen und Herren,\n\nwie lange dauert mein Antrag?\n")
    yield "plain.eml", plain.as_bytes()
    mixed = EmailMessage()
    mixed["From"] = "max@example.org"
    mixed["Subject"] = "=?utf-8?q?Anh=C3=A4nge?="
    mixed.set_content("Siehe Anhang.")
    mixed.add_alternative("<p>Siehe <b>Anhang</b>.</p>", subtype="html")
    mixed.add_attachment(
        b"Einkommen 2023: 21.000 EUR\n", maintype="text", subtype="plain", filename="einkommen.txt"
    )
    mixed.add_attachment(
        b"%PDF-1.4 broken", maintype="application", subtype="pdf", filename="bescheid.pdf"
    )
    yield "mixed.eml", mixed.as_bytes()
    yield from harness.regressions(TARGET)


def prepare() -> None:
    import datenlabor.assist.extract
    import datenlabor.assist.inbox  # noqa: F401


def one_input(data: bytes) -> None:
    from datenlabor.assist.inbox import parse_eml

    parse_eml(data, "fuzz.eml").row()


if __name__ == "__main__":
    harness.main(__name__)
