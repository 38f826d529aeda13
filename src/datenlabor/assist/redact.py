"""Replace personal data by placeholders before text leaves the authority, and restore it.

What is found, and how (rule-based, so that it runs offline, is explainable and testable;
the trade-off is recall on names, see below):

- ``EMAIL``: e-mail addresses.
- ``IBAN``: IBANs, with or without blanks, accepted only when the ISO 13616 mod-97 check
  holds (German IBANs also need 22 characters).
- ``STEUER_ID``: the 11-digit tax identification number (Steuer-ID, § 139b AO): accepted when
  the ISO 7064 MOD 11,10 check digit holds and the first digit is not 0, or whenever it
  follows a keyword such as "Steuer-ID"/"Identifikationsnummer".
- ``STEUERNUMMER``: tax numbers in the Länder format (``12/345/67890``, ``123/456/78901``)
  and the 13-digit federal format after a keyword.
- ``SVNR``: social insurance (pension insurance) numbers ``12 010180 A 12 3`` with their
  check digit.
- ``PHONE``: German and international phone numbers (``+49 30 1234567``, ``030/1234-567``,
  ``0171 2345678``) with 7 to 15 digits.
- ``DOB``: dates right after a birth keyword (``geb.``, ``geboren am``, ``Geburtsdatum``, ``*``).
  Other dates (deadlines, receipt dates) stay: answers need them.
- ``ADDRESS``: street and house number (street names ending in -straße, -weg, -platz, …,
  or starting with "Am", "An der", "Zum", …), with a following postcode and town.
- ``PERSON``: names, found by (1) a salutation or title (``Herr``, ``Frau``, ``Dr.``,
  ``Prof.``) followed by capitalised words, (2) a first name from the list below followed by
  a capitalised word, (3) the line after a closing formula ("Mit freundlichen Grüßen").
  Surnames alone ("Müller hat angerufen") are not found: without a named-entity model no
  rule can tell them from German nouns. Salutations stay in the text ("Frau [[PERSON_1]]")
  so the LLM can still write a correct letter.

Equal values get equal placeholders (``[[IBAN_1]]``), so the model can refer to them, and
:meth:`Redactor.restore` puts the originals back into its answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Common first names in Germany (birth registers of recent decades and of the older
# population, plus names frequent among immigrant communities). Hand-compiled; names
# that are also ordinary German words (e.g. "Rose", "Frank" at a sentence start) are
# only found together with a following capitalised word, like all others.
FIRST_NAMES = _words(
    """
    Aaron Adam Adrian Agnes Ahmad Ahmed Ahmet Aleksandra Alexander Alexandra Ali Alina
    Amelie Andrea Andreas Angelika Anja Anke Anna Anne Annette Anton Antonia Arne Astrid
    Ayse Ayşe Barbara Beate Ben Benedikt Benjamin Bernd Bernhard Bettina Birgit Björn
    Brigitte Carina Carla Carmen Carolin Caroline Charlotte Christa Christian Christiane
    Christina Christine Christoph Claudia Clara Constantin Cornelia Daniel Daniela David
    Denis Dennis Detlef Diana Dieter Dirk Dominik Doris Dorothea Edith Elena Elias Elisabeth
    Elke Ella Emil Emilia Emily Emine Emma Erik Erika Ernst Esra Eva Fabian Fatima Fatma
    Felix Finn Florian Franz Franziska Frieda Friedrich Fynn Gabriele Georg Gerda Gerhard
    Gisela Gudrun Günter Günther Hannah Hanna Hannelore Hans Harald Hassan Heike Heinz Helga
    Helmut Hendrik Herbert Hildegard Horst Hüseyin Ibrahim Ida Ilse Ines Inge Ingrid Irina
    Iris Irmgard Isabel Jan Jana Janina Jannik Jens Jessica Joachim Johann Johanna Johannes
    Jonas Jonathan Josef Julia Julian Juliane Jürgen Justus Jutta Kai Karin Karl Karla
    Katharina Kathrin Katja Kerstin Kevin Klara Klaus Konrad Kristina Lara Larissa Laura Lea
    Lena Leni Leon Leonie Liam Lina Linus Lisa Lotta Louis Luca Lucas Luisa Luise Lukas Luna
    Lutz Maja Malte Manfred Manuel Manuela Marcel Marco Marcus Maria Marie Marina Mario
    Marion Marius Mark Markus Marlene Martha Martin Martina Mathias Matthias Max Maximilian
    Mehmet Melanie Merve Mia Michael Michaela Milan Mila Mohammed Mohammad Monika Moritz
    Mustafa Nadine Nadja Natalie Natascha Nele Nicole Niklas Nico Nina Noah Nora Norbert Ole
    Olga Oliver Oskar Patricia Patrick Paul Paula Peter Petra Philipp Pia Rainer Ralf Ralph
    Rebecca Regina Reinhard Renate Robert Roland Rolf Rosemarie Ruth Sabine Sabrina Sandra
    Sara Sarah Sascha Sebastian Selin Sergej Silke Simon Simone Sofia Sophia Sophie Stefan
    Stefanie Steffen Stephan Susanne Svenja Sven Swen Sylvia Tanja Theo Thomas Thorsten Tim
    Timo Tobias Tom Torsten Ursula Ute Uwe Valentin Vanessa Verena Viktor Viktoria Volker
    Walter Waltraud Werner Wilhelm Wolfgang Yasemin Yusuf Zeynep
    """
)

SALUTATIONS = r"(?:Herrn?|Frau|Hr\.|Fr\.|Familie|Eheleute)"
TITLES = r"(?:(?:Dr\.|Prof\.|Dipl\.-[A-Z][a-z]+\.?|med\.|rer\.\s?nat\.|jur\.|phil\.)\s*)"
# A capitalised name word, also double names (Müller-Lüdenscheidt) and particles.
NAME_WORD = r"[A-ZÄÖÜ][a-zäöüßéèáàçşğı]+(?:-[A-ZÄÖÜ][a-zäöüßéèáàçşğı]+)?"
PARTICLE = r"(?:von|van|de|der|zu|vom|al|el)"
CLOSINGS = r"(?:Mit freundlichen Grüßen|Freundliche Grüße|Viele Grüße|Beste Grüße|Hochachtungsvoll)"
STREET_SUFFIX = (
    r"(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|ufer|chaussee|steig|pfad|markt"
    r"|berg|hof|kamp|stieg|twiete|wall|graben|park|tor)"
)
STREET_WORD = r"(?:Straße|Strasse|Str\.|Weg|Gasse|Platz|Allee|Ring|Damm|Ufer|Chaussee|Markt)"
STREET_PREFIX = r"(?:Am|An der|An den|Auf der|Auf dem|Im|In der|Zum|Zur|Unter den|Hinter der)"
HOUSE_NO = r"\d{1,4}\s?[a-zA-Z]?(?:\s?[-/]\s?\d{1,4}\s?[a-zA-Z]?)?"
POSTCODE_TOWN = r"(?:,?\s*(?:D-)?\d{5}\s+[A-ZÄÖÜ][\wäöüß.-]+(?:\s(?:am|an der|im|bei|ob der)\s[A-ZÄÖÜ][\wäöüß]+)?)"

_EMAIL = re.compile(r"\b[\w.+%-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
_STEUER_ID_CTX = re.compile(
    r"(?:Steuer-?ID|Steueridentifikationsnummer|Identifikationsnummer|IdNr\.?|Steuer-Identifikationsnummer)"
    r"[\s:.]*(?:lautet\s+)?(\d{2}\s?\d{3}\s?\d{3}\s?\d{3})\b",
    re.IGNORECASE,
)
_ELEVEN_DIGITS = re.compile(r"(?<![\d/.,-])(\d{2}\s?\d{3}\s?\d{3}\s?\d{3})(?![\d/.,-]\d)")
_STEUERNUMMER = re.compile(r"(?<![\d/])\d{2,3}/\d{3,4}/\d{4,5}(?![\d/])")
_STEUERNUMMER_CTX = re.compile(
    r"(?:Steuernummer|St\.?-?Nr\.?)[\s:.]*(\d{13}|\d{2,3}\s?/\s?\d{3,4}\s?/\s?\d{4,5})\b",
    re.IGNORECASE,
)
_SVNR = re.compile(r"\b(\d{2})\s?(\d{6})\s?([A-Z])\s?(\d{2})\s?(\d)\b")
_PHONE = re.compile(
    r"(?<![\w+/])(?:\+|00)\d{1,3}[\s./-]?(?:\(0\)\s?)?\(?\d{1,5}\)?(?:[\s./-]?\d{2,}){1,4}(?![\w/])"
    r"|(?<![\w/])\(?0\d{2,5}\)?(?:[\s./-]?\d+){1,5}(?![\w/.,]\d)"
)
_DATE = r"\d{1,2}\.\s?\d{1,2}\.\s?(?:19|20)\d{2}|\d{1,2}\.\s?(?:Januar|Februar|März|April|Mai|Juni|Juli|August|September|Oktober|November|Dezember)\s(?:19|20)\d{2}"
_DOB = re.compile(
    r"(?:geb\.|geboren(?:\s+am)?|Geburtsdatum|Geburtstag|\*)\s*:?\s*(?:am\s+)?(" + _DATE + r")",
    re.IGNORECASE,
)
# Words after "Im", "Am", … that start phrases, not street names ("Im Jahr 2023").
_NOT_STREETS = (
    r"(?:Jahre?|Monat|Übrigen|Falle?|Rahmen|Sinne|Zeitraum|Durchschnitt|Schnitt|Wesentlichen"
    r"|Ergebnis|Abschnitt|Kapitel|Absatz|Vorjahr|Vergleich|Januar|Februar|März|April|Mai|Juni"
    r"|Juli|August|September|Oktober|November|Dezember|Ende|Anfang|Tag|Laufe|Zuge)"
)
_ADDRESS = re.compile(
    r"(?<![\w-])(?:"
    r"(?:[A-ZÄÖÜ][\wäöüß]*-)*(?:[A-ZÄÖÜ][\wäöüß]*" + STREET_SUFFIX + r"|" + STREET_WORD + r")|"
    r""
    + STREET_PREFIX
    + r"\s+(?!"
    + _NOT_STREETS
    + r"\b)[A-ZÄÖÜ][\wäöüß-]+(?:\s[A-ZÄÖÜ][\wäöüß-]+)?|"
    r"[A-ZÄÖÜ][\wäöüß]+(?:e|er|es)\s" + STREET_WORD + r""
    r")\s+(?!(?:19|20)\d\d\b)" + HOUSE_NO + r"(?![\w])" + POSTCODE_TOWN + r"?"
)
_SALUTED = re.compile(
    r"\b" + SALUTATIONS + r"\s+" + TITLES + r"*((?:" + NAME_WORD + r"|" + PARTICLE + r")"
    r"(?:\s+(?:" + NAME_WORD + r"|" + PARTICLE + r")){0,3})"
)
_TITLED = re.compile(
    r"(?<![\w.])"
    + r"(?:Dr\.|Prof\.)\s*"
    + TITLES
    + r"*("
    + NAME_WORD
    + r"(?:\s+"
    + NAME_WORD
    + r"){0,2})"
)
_FIRST_LAST = re.compile(
    r"(?<![\w-])(" + "|".join(sorted(FIRST_NAMES, key=len, reverse=True)) + r")"
    r"((?:[\s-]+" + NAME_WORD + r")?(?:\s+" + PARTICLE + r")?\s+" + NAME_WORD + r")"
)
_SIGNATURE = re.compile(CLOSINGS + r",?\s*\n\s*((?:" + NAME_WORD + r"\s?){1,4})\s*$", re.MULTILINE)
# Words after a salutation that are not names ("Frau Bürgermeisterin", "Herr Präsident").
_NOT_NAMES = _words(
    """
    Bürgermeister Bürgermeisterin Präsident Präsidentin Minister Ministerin Direktor
    Direktorin Kollege Kollegin Doktor Professor Professorin Vorsitzender Vorsitzende
    Abgeordneter Abgeordnete Landrat Landrätin Staatssekretär Staatssekretärin
    Sachbearbeiter Sachbearbeiterin
    """
)
KEEP = "KEEP"  # span protected from other detectors, left unchanged
PLACEHOLDER = re.compile(r"\[\[([A-Z_]+)_(\d+)\]\]")


def iban_ok(value: str) -> bool:
    """ISO 13616 mod-97 check (``DE89 3704 0044 0532 0130 00`` -> True)."""
    s = value.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", s):
        return False
    if s.startswith("DE") and len(s) != 22:
        return False
    digits = "".join(str(int(c, 36)) for c in s[4:] + s[:4])
    return int(digits) % 97 == 1


def steuer_id_ok(value: str) -> bool:
    """ISO 7064 MOD 11,10 check digit of the Steuer-ID (11 digits, first not 0)."""
    s = re.sub(r"\s", "", value)
    if not re.fullmatch(r"[1-9]\d{10}", s):
        return False
    product = 10
    for ch in s[:10]:
        total = (int(ch) + product) % 10 or 10
        product = (total * 2) % 11
    check = 11 - product
    return (0 if check == 10 else check) == int(s[10])


def svnr_ok(area: str, birth: str, letter: str, serial: str, check: str) -> bool:
    """Check digit of the pension insurance number (letter as its 2-digit position)."""
    digits = area + birth + f"{ord(letter) - 64:02d}" + serial
    weights = (2, 1, 2, 5, 7, 1, 2, 1, 2, 1, 2, 1)
    total = sum(sum(divmod(int(d) * w, 10)) for d, w in zip(digits, weights, strict=True))
    day, month = int(birth[:2]), int(birth[2:4])
    return total % 10 == int(check) and 1 <= month <= 12 and 1 <= day <= 31


@dataclass
class _Span:
    start: int
    end: int
    kind: str


@dataclass
class Redactor:
    """Holds the placeholder mapping of one conversation; use one per LLM request."""

    mapping: dict[str, str] = field(default_factory=dict)  # placeholder -> original
    _reverse: dict[tuple[str, str], str] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=dict)

    def redact(self, text: str) -> str:
        spans = _resolve(list(find_personal_data(text)))
        out: list[str] = []
        pos = 0
        for sp in spans:
            if sp.kind == KEEP:
                continue
            out.append(text[pos : sp.start])
            out.append(self._placeholder(sp.kind, text[sp.start : sp.end]))
            pos = sp.end
        out.append(text[pos:])
        return "".join(out)

    def _placeholder(self, kind: str, value: str) -> str:
        key = (kind, value)
        if key not in self._reverse:
            n = self._counts.get(kind, 0) + 1
            self._counts[kind] = n
            ph = f"[[{kind}_{n}]]"
            self._reverse[key] = ph
            self.mapping[ph] = value
        return self._reverse[key]

    def restore(self, text: str) -> str:
        return PLACEHOLDER.sub(lambda m: self.mapping.get(m.group(0), m.group(0)), text)

    def restore_json(self, text: str) -> str:
        """Restore inside JSON text: values are escaped as JSON string content."""
        return PLACEHOLDER.sub(
            lambda m: (
                json.dumps(self.mapping[m.group(0)])[1:-1]
                if m.group(0) in self.mapping
                else m.group(0)
            ),
            text,
        )


def redact(text: str) -> tuple[str, Redactor]:
    """Redact one text; returns it and the :class:`Redactor` to restore answers with."""
    r = Redactor()
    return r.redact(text), r


def find_personal_data(text: str) -> Iterator[_Span]:
    """All candidate spans, in detector priority order (resolved by :func:`_resolve`)."""
    for m in _EMAIL.finditer(text):
        yield _Span(m.start(), m.end(), "EMAIL")
    for m in _IBAN.finditer(text):
        # An IBAN-shaped string failing the check stays as it is, and no other detector
        # may cut a "phone number" out of it either.
        yield _Span(m.start(), m.end(), "IBAN" if iban_ok(m.group(0)) else KEEP)
    for m in _SVNR.finditer(text):
        if svnr_ok(*m.groups()):
            yield _Span(m.start(), m.end(), "SVNR")
    for m in _STEUER_ID_CTX.finditer(text):
        yield _Span(m.start(1), m.end(1), "STEUER_ID")
    for m in _ELEVEN_DIGITS.finditer(text):
        if steuer_id_ok(m.group(1)):
            yield _Span(m.start(1), m.end(1), "STEUER_ID")
    for m in _STEUERNUMMER_CTX.finditer(text):
        yield _Span(m.start(1), m.end(1), "STEUERNUMMER")
    for m in _STEUERNUMMER.finditer(text):
        yield _Span(m.start(), m.end(), "STEUERNUMMER")
    for m in _DOB.finditer(text):
        yield _Span(m.start(1), m.end(1), "DOB")
    for m in _ADDRESS.finditer(text):
        yield _Span(m.start(), m.end(), "ADDRESS")
    yield from _names(text)
    for m in _PHONE.finditer(text):
        if 7 <= sum(c.isdigit() for c in m.group(0)) <= 15:
            yield _Span(m.start(), m.end(), "PHONE")


def _names(text: str) -> Iterator[_Span]:
    for pattern in (_SALUTED, _TITLED, _SIGNATURE):
        for m in pattern.finditer(text):
            # Word by word, so that trailing non-names ("Frau Müller Bürgermeisterin")
            # and particles are dropped with their exact positions.
            words = list(re.finditer(r"\S+", m.group(1)))
            while words and (
                words[-1].group(0) in _NOT_NAMES or re.fullmatch(PARTICLE, words[-1].group(0))
            ):
                words.pop()
            if not words or words[0].group(0) in _NOT_NAMES:
                continue
            base = m.start(1)
            yield _Span(base + words[0].start(), base + words[-1].end(), "PERSON")
    for m in _FIRST_LAST.finditer(text):
        yield _Span(m.start(), m.end(), "PERSON")


def _resolve(spans: list[_Span]) -> list[_Span]:
    """Non-overlapping spans: earlier detectors win, then longer spans."""
    chosen: list[_Span] = []
    for sp in spans:  # already in priority order
        if sp.end <= sp.start:
            continue
        if any(sp.start < c.end and c.start < sp.end for c in chosen):
            continue
        chosen.append(sp)
    chosen.sort(key=lambda s: s.start)
    return chosen
