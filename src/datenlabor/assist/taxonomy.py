"""The triage taxonomy: service categories, responsible units, required documents, urgency.

A taxonomy is configurable (``DATENLABOR_ASSIST_TAXONOMY`` = a JSON file in the format of
:data:`DEFAULT`); without one the embedded default is used. The default is a small subset of
services that municipal and Land authorities provide, named as in the federal service
catalogue LeiKa ("Leistungskatalog der öffentlichen Verwaltung", maintained by the FIM
programme). The LeiKa keys (14 digits) are deliberately left empty: an installation fills
them from the catalogue version it uses, they are not guessed here.

The cues (lower-case words or stems) drive the rule-based parts of triage: a required
document counts as mentioned when one of its cues occurs in the request or in the name of
an attachment; urgency is "high" when an urgency cue occurs.

>>> tax = default_taxonomy()
>>> tax.category("wohngeld").unit["de"]
'Wohngeldstelle'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datenlabor.errors import BadInput


@dataclass(frozen=True)
class Document:
    id: str
    name: dict[str, str]
    cues: tuple[str, ...]


@dataclass(frozen=True)
class Category:
    id: str
    name: dict[str, str]  # {"de": …, "en": …}
    unit: dict[str, str]  # responsible unit
    leika: str | None = None  # LeiKa key, when the installation records it
    documents: tuple[Document, ...] = ()


@dataclass(frozen=True)
class Taxonomy:
    name: str
    version: str
    source: str
    categories: tuple[Category, ...]
    urgent_cues: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    _by_id: dict[str, Category] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_id.update({c.id: c for c in self.categories})

    @property
    def ref(self) -> str:
        """``name@version``: recorded with every suggestion made under this taxonomy."""
        return f"{self.name}@{self.version}"

    def ids(self) -> list[str]:
        return [c.id for c in self.categories]

    def category(self, cid: str) -> Category:
        try:
            return self._by_id[cid]
        except KeyError:
            raise BadInput(
                f"unknown category {cid!r}; the taxonomy {self.ref} has {', '.join(self.ids())}",
                column="label",
            ) from None

    def get(self, cid: str | None) -> Category | None:
        return self._by_id.get(cid) if cid is not None else None


def _docs(*items: tuple[str, str, str, tuple[str, ...]]) -> tuple[Document, ...]:
    return tuple(Document(i, {"de": de, "en": en}, cues) for i, de, en, cues in items)


_ID = ("ausweis", "Personalausweis oder Reisepass", "identity card or passport",
       ("personalausweis", "ausweis", "reisepass", "passport", "identity card", "id card", "kimlik", "паспорт"))  # fmt: skip
_INCOME = ("einkommen", "Einkommensnachweise", "proof of income",
           ("lohnabrechnung", "gehaltsabrechnung", "einkommensnachweis", "verdienstbescheinigung",
            "rentenbescheid", "payslip", "proof of income", "salary", "maaş bordrosu"))  # fmt: skip

# fmt: off
DEFAULT: dict[str, Any] = {
    "name": "leika-auswahl",
    "version": "2026-1",
    "source": "Subset of LeiKa service names (FIM); documents and cues by the Datenlabor project",
    "urgent_cues": [
        "dringend", "eilig", "eilt", "sofort", "umgehend", "frist", "läuft ab", "mahnung",
        "räumung", "zwangsräumung", "kündigung", "obdachlos", "vollstreckung", "sperre",
        "notfall", "urgent", "asap", "deadline", "eviction", "acil", "терміново", "عاجل",
    ],
    "languages": ["de", "en", "tr", "uk", "ru", "ar", "pl", "ro", "fr", "it", "es", "fa"],
    "categories": [
        {"id": "wohngeld", "name": {"de": "Wohngeld", "en": "Housing benefit"},
         "unit": {"de": "Wohngeldstelle", "en": "Housing benefit office"},
         "documents": [
             ["mietvertrag", "Mietvertrag oder Mietbescheinigung", "tenancy agreement",
              ["mietvertrag", "mietbescheinigung", "tenancy", "rental agreement", "kira sözleşmesi"]],
             list(_INCOME)]},
        {"id": "elterngeld", "name": {"de": "Elterngeld", "en": "Parental allowance"},
         "unit": {"de": "Elterngeldstelle", "en": "Parental allowance office"},
         "documents": [
             ["geburtsurkunde", "Geburtsbescheinigung des Kindes", "child's birth certificate",
              ["geburtsurkunde", "geburtsbescheinigung", "birth certificate", "doğum belgesi"]],
             list(_INCOME)]},
        {"id": "kfz_zulassung", "name": {"de": "Kfz-Zulassung", "en": "Vehicle registration"},
         "unit": {"de": "Kfz-Zulassungsstelle", "en": "Vehicle registration office"},
         "documents": [
             ["zb2", "Zulassungsbescheinigung Teil II (Fahrzeugbrief)", "registration certificate part II",
              ["zulassungsbescheinigung", "fahrzeugbrief", "teil ii", "teil 2", "certificate part ii"]],
             ["evb", "eVB-Nummer der Versicherung", "insurance confirmation (eVB)",
              ["evb", "versicherungsbestätigung", "insurance confirmation"]],
             ["sepa", "SEPA-Lastschriftmandat für die Kfz-Steuer", "SEPA direct debit mandate",
              ["sepa", "lastschrift", "iban", "direct debit"]]]},
        {"id": "meldewesen", "name": {"de": "Meldebescheinigung und Wohnsitzanmeldung",
                                      "en": "Registration of address"},
         "unit": {"de": "Bürgeramt (Meldebehörde)", "en": "Citizens' office (registration)"},
         "documents": [
             list(_ID),
             ["wohnungsgeber", "Wohnungsgeberbestätigung", "landlord's confirmation",
              ["wohnungsgeberbestätigung", "wohnungsgeber", "landlord confirmation", "vermieterbescheinigung"]]]},
        {"id": "baugenehmigung", "name": {"de": "Baugenehmigung", "en": "Building permit"},
         "unit": {"de": "Bauaufsichtsbehörde", "en": "Building control authority"},
         "documents": [
             ["bauzeichnungen", "Bauzeichnungen", "construction drawings",
              ["bauzeichnung", "grundriss", "ansichten", "drawings", "floor plan"]],
             ["lageplan", "Lageplan", "site plan", ["lageplan", "site plan", "flurkarte"]],
             ["baubeschreibung", "Baubeschreibung", "building description",
              ["baubeschreibung", "building description"]]]},
        {"id": "hundesteuer", "name": {"de": "Hundesteuer", "en": "Dog tax"},
         "unit": {"de": "Steueramt", "en": "Municipal tax office"},
         "documents": [
             ["haftpflicht", "Nachweis der Hundehaftpflichtversicherung", "dog liability insurance",
              ["haftpflicht", "versicherungsnachweis", "liability insurance"]],
             ["chip", "Chip- bzw. Transpondernummer", "microchip number",
              ["chip", "transponder", "microchip"]]]},
        {"id": "bafoeg", "name": {"de": "BAföG", "en": "Student financial aid (BAföG)"},
         "unit": {"de": "Amt für Ausbildungsförderung", "en": "Student finance office"},
         "documents": [
             ["immatrikulation", "Immatrikulations- oder Schulbescheinigung", "certificate of enrolment",
              ["immatrikulation", "studienbescheinigung", "schulbescheinigung", "formblatt 2", "enrolment", "enrollment"]],
             ["einkommen_eltern", "Einkommensnachweise der Eltern", "parents' proof of income",
              ["einkommen der eltern", "steuerbescheid", "einkommensteuerbescheid", "parents' income", "formblatt 3"]]]},
        {"id": "personalausweis", "name": {"de": "Personalausweis und Reisepass",
                                           "en": "Identity card and passport"},
         "unit": {"de": "Bürgeramt (Pass- und Ausweisbehörde)", "en": "Citizens' office (ID cards)"},
         "documents": [
             ["passfoto", "biometrisches Passfoto", "biometric photo",
              ["passfoto", "passbild", "lichtbild", "biometric photo", "foto"]],
             ["alter_ausweis", "bisheriger Ausweis oder Verlustanzeige", "old ID card or loss report",
              ["alter ausweis", "bisheriger ausweis", "verlustanzeige", "diebstahlanzeige", "old id", "loss report"]]]},
        {"id": "gewerbe", "name": {"de": "Gewerbeanmeldung", "en": "Business registration"},
         "unit": {"de": "Gewerbeamt", "en": "Trade office"},
         "documents": [
             list(_ID),
             ["handelsregister", "Handelsregisterauszug (bei juristischen Personen)", "commercial register extract",
              ["handelsregister", "hra", "hrb", "commercial register"]]]},
    ],
}
# fmt: on


def parse_taxonomy(data: Any, *, file: str | None = None) -> Taxonomy:
    """A taxonomy from its JSON form; BadInput names the field that is wrong."""

    def need(obj: Any, key: str, where: str) -> Any:
        if not isinstance(obj, dict) or key not in obj:
            raise BadInput(f"{where}: {key!r} is missing", file=file, column=key)
        return obj[key]

    def names(value: Any, where: str) -> dict[str, str]:
        if isinstance(value, str):
            return {"de": value, "en": value}
        if not isinstance(value, dict) or not isinstance(value.get("de"), str):
            raise BadInput(f"{where}: give a text or {{'de': …, 'en': …}}", file=file)
        return {"de": value["de"], "en": str(value.get("en") or value["de"])}

    def cues(value: Any, where: str) -> tuple[str, ...]:
        if not isinstance(value, list | tuple) or not all(isinstance(c, str) and c for c in value):
            raise BadInput(f"{where}: cues must be a list of non-empty texts", file=file)
        return tuple(c.lower() for c in value)

    cats = []
    raw = need(data, "categories", "taxonomy")
    if not isinstance(raw, list) or not raw:
        raise BadInput("taxonomy: 'categories' must be a non-empty list", file=file)
    for i, c in enumerate(raw):
        where = f"category {i + 1}"
        cid = need(c, "id", where)
        if not isinstance(cid, str) or not cid.strip():
            raise BadInput(f"{where}: 'id' must be a non-empty text", file=file, column="id")
        docs = []
        for j, d in enumerate(c.get("documents") or []):
            dwhere = f"{where} ({cid}), document {j + 1}"
            if isinstance(d, list) and len(d) == 4:
                d = {"id": d[0], "name": {"de": d[1], "en": d[2]}, "cues": d[3]}
            docs.append(
                Document(
                    str(need(d, "id", dwhere)),
                    names(need(d, "name", dwhere), dwhere),
                    cues(need(d, "cues", dwhere), dwhere),
                )
            )
        cats.append(
            Category(
                id=cid,
                name=names(need(c, "name", where), where),
                unit=names(c.get("unit") or c["name"], where),
                leika=c.get("leika"),
                documents=tuple(docs),
            )
        )
    ids = [c.id for c in cats]
    dupes = sorted({x for x in ids if ids.count(x) > 1})
    if dupes:
        raise BadInput(f"taxonomy: category ids must be unique: {', '.join(dupes)}", file=file)
    return Taxonomy(
        name=str(data.get("name") or "taxonomy"),
        version=str(data.get("version") or "1"),
        source=str(data.get("source") or ""),
        categories=tuple(cats),
        urgent_cues=cues(data.get("urgent_cues") or [], "urgent_cues"),
        languages=tuple(data.get("languages") or ()),
    )


def default_taxonomy() -> Taxonomy:
    return parse_taxonomy(DEFAULT)


def load_taxonomy(path: str | Path | None) -> Taxonomy:
    """The taxonomy in ``path`` (JSON), or the embedded default when ``path`` is None."""
    if path is None:
        return default_taxonomy()
    file = Path(path)
    if not file.is_file():
        raise BadInput("taxonomy file not found", file=str(file))
    try:
        data = json.loads(file.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise BadInput(f"not valid JSON: {exc.msg}", file=str(file), line=exc.lineno) from exc
    return parse_taxonomy(data, file=str(file))
