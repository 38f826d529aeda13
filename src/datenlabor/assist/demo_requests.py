"""A synthetic, labelled set of citizens' requests for the triage demo and tests.

No public labelled set of German citizens' requests exists (requests carry personal data
and are not published), so this module writes one from templates. It is *synthetic*: the
texts are written here, names, addresses and IBANs are invented (IBANs use the German test
bank code 12345678 and do not pass the checksum on purpose). What it imitates:

- nine service categories of :mod:`datenlabor.assist.taxonomy` (Wohngeld, Elterngeld,
  Kfz-Zulassung, Meldewesen, Baugenehmigung, Hundesteuer, BAföG, Personalausweis,
  Gewerbeanmeldung), several templates each, formal and informal;
- personal data inside the texts (names, street addresses, IBAN, phone, e-mail, dates of
  birth), as real requests have;
- noise: typos (swapped, dropped, doubled letters), umlauts written as ``ae``/``oe``/``ue``,
  lower-case mails, missing punctuation; some requests mention documents, some are urgent;
- about 8 % in English, Turkish, Ukrainian or Arabic; vague requests (some without any hint
  of the topic), side remarks that belong to another service, and 3 % of labels misrouted
  as in a real historical record — so no model can be perfect on it.

Columns: ``request_id, received_at, channel, ags, language, text, category, unit, urgency``
(the last three are the caseworkers' final decisions). Seeded: the same arguments always
give the same rows.

>>> rows = generate(50, seed=1)
>>> sorted(rows[0])[:3]
['ags', 'category', 'channel']
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from datenlabor.assist.taxonomy import default_taxonomy

# Kreis keys (first five AGS digits) of the demo regions.
REGIONS = ["05315", "06412", "08111", "08222", "09162", "11000", "14612", "16051"]
CHANNELS = ["email", "portal", "post", "email", "portal"]
FIRST = ["Anna", "Mehmet", "Jana", "Lukas", "Olga", "Jürgen", "Aylin", "Sören", "Fatma",
         "Dmytro", "Sophie", "Karim", "Lea", "Hans-Peter", "Zeynep", "Marta", "Yusuf", "Ingrid"]  # fmt: skip
LAST = ["Schmidt", "Yılmaz", "Nowak", "Müller", "Becker", "Schäfer", "Kowalski", "Weiß",
        "Demir", "Bondarenko", "Hoffmann", "Al-Hassan", "Krüger", "Öztürk", "Wagner"]  # fmt: skip
STREETS = ["Hauptstraße", "Lindenweg", "Am Markt", "Goethestraße", "Bahnhofstr.", "Ringstraße",
           "Schillerplatz", "Gartenweg", "Kirchgasse", "Mühlenstraße"]  # fmt: skip
CITIES = ["Köln", "Frankfurt am Main", "Stuttgart", "Mannheim", "München", "Berlin", "Dresden",
          "Erfurt"]  # fmt: skip

GREET_FORMAL = ["Sehr geehrte Damen und Herren,", "Sehr geehrte Damen und Herren!",
                "Guten Tag,", "Sehr geehrtes Team des Bürgerservice,"]  # fmt: skip
GREET_INFORMAL = ["Hallo,", "hallo zusammen", "Moin,", "Hi,", "Guten Morgen,", ""]
CLOSE_FORMAL = ["Mit freundlichen Grüßen", "Freundliche Grüße", "Hochachtungsvoll",
                "Vielen Dank im Voraus und freundliche Grüße"]  # fmt: skip
CLOSE_INFORMAL = ["Danke!", "Gruß", "LG", "Viele Grüße", "danke schonmal"]

# category -> German request bodies; {slots} are filled from personal data.
BODIES: dict[str, list[str]] = {
    "wohngeld": [
        "ich möchte Wohngeld beantragen. Meine Miete ist seit {month} auf {amount} Euro gestiegen und mein Einkommen reicht nicht mehr.",
        "wie hoch wäre mein Anspruch auf Wohngeld? Ich bin Rentnerin und zahle {amount} Euro Warmmiete für meine Wohnung in der {street}.",
        "mein Wohngeldantrag vom {date} ist noch nicht bearbeitet. Können Sie mir sagen, wann ich mit einem Bescheid rechnen kann?",
        "ich beziehe Wohngeld und mein Arbeitgeber hat mir gekündigt. Muss ich die Änderung meines Einkommens melden?",
        "bitte um Weiterbewilligung des Mietzuschusses, der Bewilligungszeitraum endet am {date}.",
        "kann ich als Student Wohngeld bekommen, wenn ich kein BAföG erhalte? Ich wohne zur Miete.",
    ],
    "elterngeld": [
        "unser Kind {child} wurde am {date} geboren. Ich möchte Elterngeld beantragen und frage, welche Unterlagen Sie brauchen.",
        "ich plane 12 Monate Elternzeit und mein Partner 2 Monate. Wie beantragen wir Elterngeld Plus und Partnerschaftsbonus?",
        "mein Elterngeldbescheid ist falsch berechnet, das Einkommen vor der Geburt wurde zu niedrig angesetzt. Ich lege Widerspruch ein.",
        "wann wird das Elterngeld für {child} ausgezahlt? Die Zahlung für diesen Monat fehlt noch.",
        "ich bin selbständig und erwarte im {month} ein Baby. Wie wird mein Elterngeld berechnet?",
    ],
    "kfz_zulassung": [
        "ich möchte mein Auto ({car}) zulassen und brauche einen Termin bei der Zulassungsstelle.",
        "wie kann ich mein Fahrzeug online abmelden? Das Kennzeichen ist {plate}.",
        "ich habe einen Gebrauchtwagen gekauft und möchte ihn auf mich ummelden. Welche Unterlagen brauche ich für die Zulassung?",
        "mein Kfz-Kennzeichen {plate} wurde gestohlen, bitte um Auskunft zur Neuzuteilung.",
        "Wunschkennzeichen reservieren für meinen {car}, geht das auch per Mail?",
    ],
    "meldewesen": [
        "ich bin am {date} in die {street} umgezogen und möchte mich ummelden. Wann gibt es einen Termin im Bürgeramt?",
        "ich benötige eine Meldebescheinigung für meinen Arbeitgeber. Kann ich die schriftlich bekommen?",
        "wir ziehen aus dem Ausland zurück nach {city} und müssen uns anmelden. Was brauchen wir dafür?",
        "bitte eine erweiterte Meldebescheinigung für {name}, geboren am {birth}, zusenden.",
        "wie melde ich meinen Nebenwohnsitz ab? Ich wohne nur noch in {city}.",
    ],
    "baugenehmigung": [
        "wir möchten auf unserem Grundstück in der {street} ein Einfamilienhaus bauen. Wie stellen wir den Bauantrag?",
        "brauche ich für einen Carport von 3 x 6 Metern eine Baugenehmigung?",
        "der Bauantrag für unseren Anbau (Aktenzeichen B-{number}) liegt seit Monaten bei Ihnen. Wie ist der Stand?",
        "mein Nachbar baut eine Garage direkt an die Grundstücksgrenze. Liegt dafür eine Genehmigung vor?",
        "wir wollen das Dachgeschoss ausbauen und eine Gaube errichten. Ist das genehmigungspflichtig?",
    ],
    "hundesteuer": [
        "ich habe seit dem {date} einen Hund ({dog}) und möchte ihn zur Hundesteuer anmelden.",
        "unser Hund ist leider verstorben, bitte melden Sie ihn zum {date} ab und erstatten die zu viel gezahlte Hundesteuer.",
        "ich habe die Hundesteuermarke verloren. Wie bekomme ich eine neue Steuermarke?",
        "gibt es eine Ermäßigung der Hundesteuer für Empfänger von Bürgergeld?",
        "der Steuerbescheid für meinen Hund ist doppelt gekommen, bitte prüfen (Steuernummer {number}).",
    ],
    "bafoeg": [
        "ich beginne im Wintersemester ein Studium an der Universität und möchte BAföG beantragen.",
        "mein BAföG-Weiterförderungsantrag ist seit {date} offen, ich habe kein Geld mehr für die Miete.",
        "muss ich das Einkommen meiner Eltern angeben, wenn ich keinen Kontakt zu meinem Vater habe? (BAföG)",
        "ich mache eine schulische Ausbildung zur Erzieherin. Bekomme ich Schüler-BAföG?",
        "mein Studienfachwechsel nach dem 3. Semester, was bedeutet das für meine Ausbildungsförderung?",
    ],
    "personalausweis": [
        "mein Personalausweis läuft am {date} ab. Ich brauche einen Termin für einen neuen Ausweis.",
        "ich habe meinen Ausweis verloren und möchte einen neuen beantragen. Reicht ein vorläufiger Personalausweis für die Reise?",
        "wir brauchen einen Kinderreisepass für {child} für den Urlaub im {month}.",
        "ist mein neuer Reisepass schon abholbereit? Beantragt am {date}.",
        "kann ich die PIN für die Online-Ausweisfunktion neu setzen lassen?",
    ],
    "gewerbe": [
        "ich möchte ein Gewerbe als Hausmeisterservice anmelden. Geht das online?",
        "ich melde mein Gewerbe (Onlinehandel) zum {date} ab. Was muss ich tun?",
        "wir gründen eine GmbH und müssen das Gewerbe anmelden. Welche Unterlagen braucht das Gewerbeamt?",
        "Ummeldung meines Kiosk-Gewerbes an die neue Adresse {street}, {city}.",
        "brauche ich eine Reisegewerbekarte für den Verkauf auf Wochenmärkten?",
    ],
}
# Requests in other languages (category -> texts), about 8 % of the set.
FOREIGN: dict[str, dict[str, list[str]]] = {
    "en": {
        "meldewesen": ["Hello, I moved to {city} on {date} and need to register my new address. How can I book an appointment?"],
        "kfz_zulassung": ["Hi, I bought a used car and want to register it. Which documents do I need?"],
        "elterngeld": ["Dear Sir or Madam, our daughter was born on {date}. How do I apply for parental allowance (Elterngeld)?"],
        "bafoeg": ["Hello, I am an international student. Am I eligible for BAföG student financial aid?"],
        "personalausweis": ["I lost my passport and need a replacement before my trip in {month}."],
    },
    "tr": {
        "wohngeld": ["Merhaba, kira yardımı (Wohngeld) için başvurmak istiyorum. Kiram çok yükseldi."],
        "meldewesen": ["Merhaba, yeni adresime taşındım, ikametgah kaydı (Anmeldung) için randevu almak istiyorum."],
        "gewerbe": ["İyi günler, bir market açmak istiyorum. İşyeri kaydı (Gewerbeanmeldung) nasıl yapılır?"],
        "kfz_zulassung": ["Merhaba, arabamı kayıt ettirmek istiyorum, hangi belgeler gerekli?"],
    },
    "uk": {
        "meldewesen": ["Добрий день, я переїхала до {city} і хочу зареєструвати місце проживання (Anmeldung)."],
        "wohngeld": ["Добрий день, я хочу подати заяву на житлову допомогу (Wohngeld). Яки документи потрібні?"],
        "elterngeld": ["Добрий день, у нас народилася дитина. Як отримати батьківську допомогу (Elterngeld)?"],
    },
    "ar": {
        "meldewesen": ["مرحبا، انتقلت إلى عنوان جديد وأريد تسجيل السكن (Anmeldung). كيف أحجز موعدا؟"],
        "personalausweis": ["مرحبا، فقدت جواز سفري وأحتاج إلى وثيقة جديدة."],
        "wohngeld": ["مرحبا، أريد التقدم بطلب للحصول على إعانة السكن (Wohngeld)."],
    },
}  # fmt: skip
DOC_SENTENCES = ["Anbei sende ich Ihnen {doc}.", "Im Anhang finden Sie {doc}.",
                 "{doc} reiche ich nach.", "Eine Kopie von {doc} liegt bei."]  # fmt: skip
URGENT = ["Es ist dringend, bitte melden Sie sich umgehend!", "Die Frist läuft am {date} ab.",
          "Ich habe bereits eine Mahnung erhalten.", "Bitte um sofortige Rückmeldung, es eilt."]  # fmt: skip
VAGUE = ["ich habe eine Frage zu meinem Antrag, bitte rufen Sie mich an.",
         "bitte senden Sie mir die Unterlagen noch einmal zu.",
         "ich bin umgezogen und weiß nicht, welche Stelle jetzt für mich zuständig ist."]  # fmt: skip
# Side remarks that belong to another service: they make routing less obvious.
ASIDES: dict[str, list[str]] = {
    "wohngeld": ["Meine Miete ist übrigens auch gestiegen.", "Ich beziehe außerdem Wohngeld."],
    "elterngeld": ["Wir haben gerade ein Kind bekommen.", "Ich bin zurzeit in Elternzeit."],
    "kfz_zulassung": ["Mein Auto habe ich schon umgemeldet.", "Das Kennzeichen behalte ich."],
    "meldewesen": ["Ich bin letzten Monat umgezogen.", "Die neue Adresse ist schon angemeldet."],
    "baugenehmigung": ["Wir bauen gerade ein Haus.", "Der Anbau ist inzwischen fertig."],
    "hundesteuer": ["Unser Hund ist auch angemeldet.", "Wir haben einen Hund."],
    "bafoeg": ["Ich studiere noch.", "Meine Tochter bekommt BAföG."],
    "personalausweis": ["Mein Ausweis ist noch gültig.", "Ich habe nur meinen Reisepass."],
    "gewerbe": ["Ich bin selbständig.", "Mein Gewerbe habe ich schon angemeldet."],
}
CARS = ["VW Golf", "Opel Corsa", "Skoda Octavia", "BMW 318d", "Fiat 500", "Renault Zoe"]
DOGS = ["Labrador", "Dackel", "Mischling", "Schäferhund", "Beagle"]
MONTHS = ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September"]
_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.random()
    if kind < 0.4:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind < 0.7:
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def _noisy(text: str, rng: random.Random, informal: bool) -> str:
    words = text.split(" ")
    rate = 0.06 if informal else 0.015
    words = [_typo(w, rng) if rng.random() < rate else w for w in words]
    text = " ".join(words)
    if informal and rng.random() < 0.3:
        text = text.lower()
    if rng.random() < 0.1:
        text = text.translate(_UMLAUTS)
    if informal and rng.random() < 0.3:
        text = text.replace(".", "").replace(",", "")
    return text


def _person(rng: random.Random) -> dict[str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    day = datetime(2026, 1, 1) - timedelta(days=rng.randint(0, 400))
    return {
        "name": f"{first} {last}",
        "street": f"{rng.choice(STREETS)} {rng.randint(1, 140)}",
        "city": rng.choice(CITIES),
        "plz": f"{rng.randint(1067, 99998):05d}",
        "iban": f"DE{rng.randint(10, 99)} 1234 5678 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)} {rng.randint(10, 99)}",
        "phone": f"0{rng.randint(151, 179)} {rng.randint(1000000, 9999999)}",
        "email": f"{first.lower().replace('-', '')}.{last.lower().replace(' ', '')}@example.net",
        "birth": f"{rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.{rng.randint(1945, 2005)}",
        "date": day.strftime("%d.%m.%Y"),
        "month": rng.choice(MONTHS),
        "child": rng.choice(["Emma", "Noah", "Mia", "Elias", "Leyla", "Matteo"]),
        "car": rng.choice(CARS),
        "dog": rng.choice(DOGS),
        "plate": f"{rng.choice(['K', 'F', 'S', 'MA', 'M', 'B', 'DD', 'EF'])}-{rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ')}{rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ')} {rng.randint(1, 9999)}",
        "amount": str(rng.randint(450, 1400)),
        "number": str(rng.randint(10000, 99999)),
    }


def generate(n: int = 3000, *, seed: int = 42) -> list[dict[str, Any]]:
    """``n`` labelled requests (see the module docstring)."""
    rng = random.Random(seed)
    tax = default_taxonomy()
    cats = tax.ids()
    start = datetime(2025, 1, 2, 7, 0, tzinfo=UTC)
    rows = []
    for i in range(n):
        category = rng.choice(cats)
        person = _person(rng)
        informal = rng.random() < 0.35
        language = "de"
        foreign = [lang for lang, by in FOREIGN.items() if category in by]
        urgent = rng.random() < 0.15
        if foreign and rng.random() < 0.12:  # ~8 % overall: not every category has them
            language = rng.choice(foreign)
            text = rng.choice(FOREIGN[language][category]).format(**person)
            text += f"\n{person['name']}, {person['phone']}"
        else:
            body = rng.choice(BODIES[category])
            roll = rng.random()
            if roll < 0.06:  # vague: names the topic only in passing
                body = rng.choice(VAGUE) + f" Es geht um {tax.category(category).name['de']}."
            elif roll < 0.10:  # vague without any hint: a person must find out
                body = rng.choice(VAGUE)
            parts = [rng.choice(GREET_INFORMAL if informal else GREET_FORMAL), body]
            if rng.random() < 0.25:  # a remark that belongs to another service
                other = rng.choice([c for c in ASIDES if c != category])
                parts.append(rng.choice(ASIDES[other]))
            docs = tax.category(category).documents
            if docs and rng.random() < 0.4:
                doc = rng.choice(docs)
                parts.append(rng.choice(DOC_SENTENCES).format(doc=doc.name["de"]))
            if urgent:
                parts.append(rng.choice(URGENT))
            if rng.random() < 0.5:
                parts.append(
                    f"Meine Anschrift: {person['street']}, {person['plz']} {person['city']}."
                )
            if rng.random() < 0.2:
                parts.append(f"Bankverbindung: IBAN {person['iban']}.")
            if rng.random() < 0.3:
                parts.append(f"Telefon {person['phone']}, E-Mail {person['email']}.")
            parts.append(rng.choice(CLOSE_INFORMAL if informal else CLOSE_FORMAL))
            parts.append(person["name"])
            text = _noisy("\n".join(p for p in parts if p).format(**person), rng, informal)
        received = start + timedelta(minutes=rng.randint(0, 60 * 24 * 360))
        if rng.random() < 0.03:  # misrouted in the historical record, as happens
            category = rng.choice([c for c in cats if c != category])
        rows.append(
            {
                "request_id": f"R-{seed}-{i + 1:05d}",
                "received_at": received,
                "channel": rng.choice(CHANNELS),
                "ags": rng.choice(REGIONS),
                "language": language,
                "text": text,
                "category": category,
                "unit": tax.category(category).unit["de"],
                "urgency": "high" if urgent else "normal",
            }
        )
    return rows


def write_parquet(path: Path, n: int = 3000, *, seed: int = 42) -> Path:
    """The generated set as a Parquet file (what ``pool.ingest`` loads)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(generate(n, seed=seed)), path)
    return path


def write_csv(path: Path, n: int = 3000, *, seed: int = 42) -> Path:
    """The generated set as a UTF-8 CSV with ``;`` (texts quoted, line breaks kept)."""
    import csv

    rows = generate(n, seed=seed)
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter=";")
        w.writeheader()
        for r in rows:
            w.writerow({**r, "received_at": r["received_at"].isoformat()})
    return path


def load_assist_demo(gate: Any, log: Any = print, *, org: str = "bmas-demo") -> None:
    """Demo of the AI assistance (idempotent): decided requests for training and a held-out
    set as pool datasets, a trained triage model, and open requests in the inbox."""
    import tempfile

    from datenlabor.access.principal import local_admin
    from datenlabor.assist import inbox, registry
    from datenlabor.assist.triage import train
    from datenlabor.pool.catalog import DatasetMeta

    pool = gate.pool
    admin = local_admin("demo-setup")
    existing = {d.slug for d in pool.datasets()}
    sets = {
        "anfragen-historie": (2400, 101, "Entschiedene Anfragen 2025 (Demo, Training)"),
        "anfragen-test": (600, 202, "Entschiedene Anfragen 2025 (Demo, zurückgehalten)"),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for slug, (n, seed, title) in sets.items():
            if slug in existing:
                continue
            pool.ingest(
                write_parquet(Path(tmp) / f"{slug}.parquet", n, seed=seed),
                dataset=slug,
                meta=DatasetMeta(
                    title=title,
                    description="Synthetische Anfragen mit Namen, Adressen und IBAN im Text "
                    "(personenbezogen) und der endgültigen Zuordnung durch die Sachbearbeitung; "
                    "erzeugt von datenlabor.assist.demo_requests.",
                    publisher=org,
                    licence="other-closed",
                    visibility="restricted",
                    keywords=["Anfragen", "KI-Assistenz", "personenbezogen"],
                ),
            )
            log(f"{slug}: version 1 ({n} labelled demo requests)")
    gate.forget()
    if registry.active(pool, "triage") is None:
        info = train(gate, admin, "anfragen-historie", text="text", label="category")
        held = info.metrics.get("holdout", {})
        log(f"triage model {info.ref}: held-out accuracy {held.get('accuracy')}")
    if gate.load(pool.settings.assist_inbox_dataset) is None:
        rows = generate(12, seed=303)
        requests = [
            inbox.Request(text=r["text"], channel=r["channel"], ags=r["ags"],
                          received_at=r["received_at"], request_id=f"D-{i + 1:03d}")
            for i, r in enumerate(rows)
        ]  # fmt: skip
        added = inbox.add(gate, admin, requests, org=org)
        log(f"{added.dataset}: {len(added.ids)} open requests in the review queue")
