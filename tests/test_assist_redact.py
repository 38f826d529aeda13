"""Redaction of personal data before text goes to an external LLM, and restoring it."""

from __future__ import annotations

import json

import pytest

from datenlabor.assist.redact import Redactor, iban_ok, redact, steuer_id_ok, svnr_ok

LETTER = """Sehr geehrte Damen und Herren,

ich, Hans-Peter Müller, geboren am 03.04.1961, wohnhaft Karl-Marx-Straße 12a, 10178 Berlin,
beantrage Wohngeld nach § 3 Abs. 2 WoGG ab dem 01.05.2024. Die Miete beträgt 654,30 Euro.
Bitte überweisen Sie auf DE89 3704 0044 0532 0130 00. Meine Steuer-ID lautet 86095742719,
Steuernummer 21/815/08150, Rentenversicherungsnummer 15 070649 C 10 3.
Rückfragen gern unter 030 12345678 oder +49 171 2345678 oder hp.mueller@example.org.
Meine Vermieterin, Frau Dr. Annegret Schulze-Wegener, Am Alten Markt 4, bestätigt das.

Mit freundlichen Grüßen
Hans-Peter Müller
"""

SECRETS = {
    "PERSON": ["Hans-Peter Müller", "Annegret Schulze-Wegener"],
    "DOB": ["03.04.1961"],
    "ADDRESS": ["Karl-Marx-Straße 12a, 10178 Berlin", "Am Alten Markt 4"],
    "IBAN": ["DE89 3704 0044 0532 0130 00"],
    "STEUER_ID": ["86095742719"],
    "STEUERNUMMER": ["21/815/08150"],
    "SVNR": ["15 070649 C 10 3"],
    "PHONE": ["030 12345678", "+49 171 2345678"],
    "EMAIL": ["hp.mueller@example.org"],
}


def test_every_kind_of_personal_data_is_replaced() -> None:
    text, r = redact(LETTER)
    for kind, values in SECRETS.items():
        for value in values:
            assert value not in text, (kind, value)
            assert r.mapping[next(ph for ph, v in r.mapping.items() if v == value)] == value
            assert any(ph.startswith(f"[[{kind}_") and v == value for ph, v in r.mapping.items())
    # what the answer needs stays: legal references, amounts, ordinary dates, salutations
    for kept in (
        "§ 3 Abs. 2 WoGG",
        "01.05.2024",
        "654,30 Euro",
        "Frau Dr.",
        "Sehr geehrte Damen und Herren",
    ):
        assert kept in text
    # the same person gets the same placeholder both times
    assert text.count("[[PERSON_1]]") == 2


def test_round_trip_restores_the_original() -> None:
    text, r = redact(LETTER)
    assert r.restore(text) == LETTER
    answer = "Sehr geehrter Herr [[PERSON_1]], wir zahlen auf [[IBAN_1]]. Unbekannt: [[PERSON_9]]."
    assert r.restore(answer) == (
        "Sehr geehrter Herr Hans-Peter Müller, wir zahlen auf DE89 3704 0044 0532 0130 00. "
        "Unbekannt: [[PERSON_9]]."
    )


def test_placeholders_are_shared_across_messages_of_one_request() -> None:
    r = Redactor()
    a = r.redact("Antrag von Frau Erika Mustermann")
    b = r.redact("Rückfrage an Frau Erika Mustermann, erika@example.org")
    assert a.endswith("[[PERSON_1]]") and "[[PERSON_1]]" in b and "[[EMAIL_1]]" in b


def test_json_restore_escapes_values() -> None:
    r = Redactor()
    r.redact('Frau Erika "Eri" Mustermann')  # a name with quotes would break JSON
    r.mapping["[[PERSON_1]]"] = 'Erika "Eri" Mustermann'
    out = r.restore_json('{"anrede": "Frau [[PERSON_1]]"}')
    assert json.loads(out) == {"anrede": 'Frau Erika "Eri" Mustermann'}


@pytest.mark.parametrize(
    "text",
    [
        "Der Antrag vom 12.03.2024 wurde nach § 7 Abs. 1 Nr. 5 SGB XII abgelehnt.",
        "Im Jahr 2023 wurden 12345678 Euro ausgezahlt, 1.234,56 Euro je Fall.",
        "Aktenzeichen WG-2024-00123, Frist 14 Tage, Zimmer 104.",
        "Herr Bürgermeister und Frau Ministerin haben zugestimmt.",
        "Die Postleitzahl 10178 gehört zu Berlin.",
    ],
)
def test_ordinary_administrative_text_is_left_alone(text: str) -> None:
    redacted, r = redact(text)
    assert redacted == text, r.mapping


def test_check_digits() -> None:
    assert iban_ok("DE89 3704 0044 0532 0130 00")
    assert not iban_ok("DE88 3704 0044 0532 0130 00")  # one digit off
    assert not iban_ok("DE89 3704 0044 0532 0130")  # German IBANs have 22 characters
    assert iban_ok("AT61 1904 3002 3457 3201")
    assert steuer_id_ok("86095742719")
    assert not steuer_id_ok("86095742718")
    assert not steuer_id_ok("06095742719")
    assert svnr_ok("15", "070649", "C", "10", "3")
    assert not svnr_ok("15", "070649", "C", "10", "4")
    # without a valid check digit only a keyword makes an 11-digit number a Steuer-ID
    assert redact("Vorgang 86095742718 erledigt")[0] == "Vorgang 86095742718 erledigt"
    assert "86095742718" not in redact("Steuer-ID: 86095742718")[0]
    assert redact("Konto DE88 3704 0044 0532 0130 00")[0] == "Konto DE88 3704 0044 0532 0130 00"
