"""Demo data: what an analyst in a German authority typically receives, generated here.

The generated files are synthetic but shaped like the real thing: a cp1252 CSV with `;`,
decimal comma, German dates, umlauts and `€`, and Kreis keys with leading zeros; an Excel
workbook; an NDJSON export. Real public GENESIS exports are loaded too when the shared
data folder is present (``DATENLABOR_SHARED_DATA`` or ``../shared/data``).
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

from datenlabor.pool.catalog import DatasetMeta
from datenlabor.pool.pool import Pool

# Real Kreis keys and names (AGS first five digits), Gebietsstand 2021.
KREISE = {
    "01001": "Flensburg, Stadt",
    "02000": "Hamburg",
    "03241": "Region Hannover",
    "05315": "Köln, Stadt",
    "06412": "Frankfurt am Main, Stadt",
    "08111": "Stuttgart, Stadtkreis",
    "08222": "Mannheim, Stadtkreis",
    "09162": "München, Landeshauptstadt",
    "11000": "Berlin",
    "14612": "Dresden, Stadt",
    "15003": "Potsdam, Stadt",
    "16051": "Erfurt, Stadt",
}
CHANNELS = ["Online-Portal", "Post", "Persönlich vor Ort", "E-Mail"]


def write_applications_csv(
    path: Path, *, months: int = 12, seed: int = 7, revised: bool = False
) -> Path:
    """Monthly applications for a benefit per Kreis and channel, as a cp1252 CSV."""
    rng = random.Random(seed)
    lines = [
        "Kreisschlüssel;Kreis;Monat;Eingangskanal;Anträge;Bewilligt;Ø Bearbeitungstage;Ausgezahlt €"
    ]
    start = date(2024, 1, 1)
    for m in range(months):
        first = (start.replace(day=1) + timedelta(days=32 * m)).replace(day=1)
        for key, name in KREISE.items():
            for channel in CHANNELS:
                n = rng.randint(0, 400)
                if revised and key == "08222" and m == 0:
                    n += 17  # a late correction in the revised delivery
                ok = int(n * rng.uniform(0.55, 0.9))
                days = rng.uniform(8, 95)
                paid = ok * rng.uniform(380, 1450)
                lines.append(
                    f"{key};{name};{first:%d.%m.%Y};{channel};{n};{ok};"
                    f"{_de(days, 1)};{_de(paid, 2)}"
                )
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    return path


def _de(value: float, digits: int) -> str:
    """Format like German office software: 1.234,56."""
    text = f"{value:,.{digits}f}"
    return text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")


def write_offices_xlsx(path: Path) -> Path:
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("Dienststellen")
    sheet.write_row(0, 0, ["Kreisschlüssel", "Dienststelle", "Stellen (VZÄ)", "Eröffnet am"])
    rng = random.Random(3)
    date_fmt = book.add_format({"num_format": "dd.mm.yyyy"})
    for i, (key, name) in enumerate(KREISE.items(), start=1):
        sheet.write_string(i, 0, key)
        sheet.write_string(i, 1, f"Leistungsstelle {name.split(',')[0]}")
        sheet.write_number(i, 2, round(rng.uniform(4, 60), 1))
        sheet.write_datetime(i, 3, _dt(date(2005 + i, 1 + i % 12, 1)), date_fmt)
    book.close()
    return path


def _dt(d: date) -> datetime:

    return datetime(d.year, d.month, d.day)


def write_requests_ndjson(path: Path, n: int = 200) -> Path:
    rng = random.Random(11)
    topics = ["Wohngeld", "Elterngeld", "BAföG", "Kindergeld", "Bürgergeld"]
    first = ["Anna", "Mehmet", "Jana", "Lukas", "Olga", "Jürgen", "Aylin", "Sören"]
    last = ["Schmidt", "Yılmaz", "Nowak", "Müller", "Becker", "Schäfer", "Kowalski", "Weiß"]
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            key = rng.choice(list(KREISE))
            fh.write(
                json.dumps(
                    {
                        "anfrage_id": f"A-2024-{i + 1:05d}",
                        "eingang": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}",
                        "ags_kreis": key,
                        "thema": rng.choice(topics),
                        "kanal": rng.choice(CHANNELS),
                        "erledigt": rng.random() < 0.8,
                        # personal data: withheld from other authorities by a grant
                        "antragsteller": f"{rng.choice(first)} {rng.choice(last)}",
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
    return path


def shared_data_dir() -> Path | None:
    configured = os.environ.get("DATENLABOR_SHARED_DATA")
    candidates = [Path(configured)] if configured else []
    candidates += [
        Path.cwd().parent / "shared" / "data",
        Path(__file__).resolve().parents[3] / "shared" / "data",
    ]
    return next((c for c in candidates if (c / "genesis").is_dir()), None)


BENEFITS = ["Wohngeld", "Kinderzuschlag", "Grundsicherung im Alter", "BAföG"]


def write_benefit_cases_csv(path: Path, *, n: int = 6000, seed: int = 11) -> Path:
    """Microdata: one row per approved benefit case (Kreis, month, benefit, amount, person).

    Skewed like real case loads: big cities carry most cases, a few Kreise and rare
    benefits give cells of one or two cases, which disclosure control must protect.
    """
    rng = random.Random(seed)
    keys = sorted(KREISE)
    weights = [1.0 / (1 + i % 7) ** 2 for i in range(len(keys))]
    lines = ["Kreis;Monat;Leistung;Betrag;Person"]
    for i in range(n):
        key = rng.choices(keys, weights)[0]
        benefit = rng.choices(BENEFITS, [60, 25, 12, 3])[0]
        month = date(2024, rng.randint(1, 12), 1)
        amount = round(rng.lognormvariate(5.8, 0.5), 2)
        lines.append(f"{key};{month:%Y-%m};{benefit};{_de(amount, 2)};P{i:06d}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# Disclosure-control rules of the confidential demo dataset (see docs/confidential.md).
BENEFIT_RULES = {
    "dims": [
        {"name": "Kreis", "hierarchy": "ags"},
        {"name": "Monat", "hierarchy": "time"},
        {"name": "Leistung", "hierarchy": "flat"},
    ],
}


def load_demo(pool: Pool, log: Callable[[str], None] = print) -> None:
    """Fill ``pool`` with demo datasets (idempotent: skips datasets that exist)."""
    existing = {d.slug for d in pool.datasets()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "antraege" not in existing:
            meta = DatasetMeta(
                title="Anträge auf Leistungen nach Kreis und Monat 2024",
                description="Eingegangene und bewilligte Anträge je Kreis, Monat und Eingangskanal "
                "(synthetische Demodaten).",
                publisher="bmas-demo",
                publisher_name="Bundesministerium (Demo)",
                licence="dl-de/by-2-0",
                visibility="public",
                keywords=["Anträge", "Verwaltungsverfahren"],
                themes=["SOCI"],
                spatial=sorted(KREISE),
                temporal_start=date(2024, 1, 1),
                temporal_end=date(2024, 12, 31),
                contact_point="datenlabor@example.org",
            )
            v1 = write_applications_csv(work / "antraege_2024.csv")
            pool.ingest(v1, dataset="antraege", key="Kreisschlüssel,Monat,Eingangskanal", meta=meta)
            log("antraege: version 1 (cp1252 CSV)")
            v2 = write_applications_csv(work / "antraege_2024_korrigiert.csv", revised=True)
            pool.ingest(v2, dataset="antraege", mode="upsert")
            log("antraege: version 2 (corrected delivery, upsert by key)")
        if "dienststellen" not in existing:
            pool.ingest(
                write_offices_xlsx(work / "dienststellen.xlsx"),
                dataset="dienststellen",
                meta=DatasetMeta(
                    title="Leistungsstellen je Kreis",
                    licence="dl-de/zero-2-0",
                    publisher="bmas-demo",
                ),
            )
            log("dienststellen: version 1 (XLSX)")
        if "anfragen" not in existing:
            pool.ingest(
                write_requests_ndjson(work / "anfragen.ndjson"),
                dataset="anfragen",
                key="anfrage_id",
                meta=DatasetMeta(
                    title="Bürgeranfragen (Demo)",
                    description="Anfragen von Bürgerinnen und Bürgern mit Namen (personenbezogen,"
                    " daher eingeschränkt sichtbar).",
                    licence="other-closed",
                    publisher="bmas-demo",
                    visibility="restricted",
                ),
            )
            log("anfragen: version 1 (NDJSON)")
        if "leistungsfaelle" not in existing:
            pool.ingest(
                write_benefit_cases_csv(work / "leistungsfaelle.csv"),
                dataset="leistungsfaelle",
                meta=DatasetMeta(
                    title="Bewilligte Leistungen: Einzelfälle 2024 (Demo, vertraulich)",
                    description="Ein Datensatz je bewilligtem Fall mit Kreis, Monat, Leistung "
                    "und Betrag (synthetische Einzeldaten). Außerhalb des Ministeriums nur als "
                    "geschützte Tabelle sichtbar: kleine Fallzahlen sind gesperrt.",
                    licence="other-closed",
                    publisher="bmas-demo",
                    visibility="internal",
                    themes=["SOCI"],
                ),
            )
            log("leistungsfaelle: version 1 (microdata CSV)")
    from datenlabor.dashboards.demo import load_demo_dashboards  # procedure dashboards

    load_demo_dashboards(pool, shared_data_dir(), log)
    shared = shared_data_dir()
    if shared is None:
        log("(shared GENESIS data not found; set DATENLABOR_SHARED_DATA to load real exports)")
        return
    real = {
        "bevoelkerung-altersjahre": (
            "genesis/12411-0006.csv",
            "Bevölkerung: Deutschland, Stichtag, Altersjahre",
        ),
        "lebendgeborene-monate": (
            "genesis/12612-0002.csv",
            "Lebendgeborene: Deutschland, Monate, Geschlecht",
        ),
        "haushalte-ausstattung": (
            "genesis/63111-0001.csv",
            "Ausstattung privater Haushalte mit Gebrauchsgütern",
        ),
        "bevoelkerung-kreise": (
            "genesis/ffcsv/12411-01-01-4_de_flat.csv",
            "Bevölkerungsstand nach Kreisen",
        ),
    }
    for slug, (rel, title) in real.items():
        if slug in existing:
            continue
        pool.ingest(
            shared / rel,
            dataset=slug,
            meta=DatasetMeta(
                title=title,
                publisher="destatis",
                publisher_name="Statistisches Bundesamt (Destatis)",
                licence="dl-de/by-2-0",
                visibility="public",  # official statistics are open data
            ),
        )
        log(f"{slug}: version 1 (GENESIS {rel})")


DEMO_PASSWORD = "datenlabor-demo"
DEMO_USERS = {
    # user: (organisation, role)
    "admin": ("bmas-demo", "admin"),
    "steward": ("bmas-demo", "steward"),
    "analyst-nrw": ("nrw-demo", "analyst"),
    "viewer": ("nrw-demo", "viewer"),
}


def load_demo_accounts(pool: Pool, log: Callable[[str], None] = print) -> None:
    """Demo organisations, users (password ``datenlabor-demo``) and one narrowing grant."""
    from datenlabor.access.principal import local_admin
    from datenlabor.errors import Conflict
    from datenlabor.service.gate import Gate
    from datenlabor.service.grants import add_grant, grants_of

    gate = Gate(pool)
    gate.accounts.add_org("bmas-demo", "Bundesministerium (Demo)")
    gate.accounts.add_org("nrw-demo", "Land Nordrhein-Westfalen (Demo)")
    for name, (org, role) in DEMO_USERS.items():
        try:
            gate.accounts.add_user(name, org=org, role=role, password=DEMO_PASSWORD)
        except Conflict:
            continue
    setup = local_admin("demo-setup")
    if not grants_of(gate, setup, "anfragen"):
        add_grant(
            gate,
            setup,
            "anfragen",
            org="nrw-demo",
            hide_columns=["antragsteller"],
            rows="ags_kreis LIKE '05%'",
        )
        log("anfragen: restricted; Land NRW (demo) sees its own Kreise without names")
    d = gate.load("leistungsfaelle", fresh=True)
    if d is not None and d.disclosure is None:
        from datenlabor.service.confidential import set_rules

        set_rules(gate, setup, "leistungsfaelle", BENEFIT_RULES)
        log("leistungsfaelle: confidential; others see the protected table (small cells as '.')")
    from datenlabor.assist.demo_requests import load_assist_demo

    load_assist_demo(gate, log)  # triage training data, model and open requests
