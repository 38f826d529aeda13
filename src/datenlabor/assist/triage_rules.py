"""Rule-based parts of triage: language, urgency and documents that seem to be missing.

Rules, not a model, because they must be explainable word for word and configurable by the
authority: the cues come from the taxonomy (:mod:`datenlabor.assist.taxonomy`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from datenlabor.assist.taxonomy import Category, Taxonomy

LANGUAGE_SAMPLE = 600


@lru_cache(maxsize=8)
def _identifier(languages: tuple[str, ...]) -> Any:
    """py3langid's identifier (the model ships inside the package), limited to the
    languages the authority expects: short texts are then far less often mistaken."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    if languages:
        known = [lang for lang in languages if lang in ident.nb_classes]
        if len(known) >= 2:
            ident.set_languages(known)
    return ident


def language(text: str, languages: Sequence[str] = ()) -> tuple[str, float]:
    """(ISO 639-1 code, probability) of the text's language, judged from its first
    ``LANGUAGE_SAMPLE`` characters (plenty for a request, and the cost grows with length)."""
    ident = _identifier(tuple(languages))
    code, prob = ident.classify(text[:LANGUAGE_SAMPLE])
    return str(code), round(float(prob), 4)


@lru_cache(maxsize=256)
def _cue_pattern(cues: tuple[str, ...]) -> re.Pattern[str] | None:
    """One alternation of all cues; a cue matches at the start of a word (stems allowed)."""
    if not cues:
        return None
    alts = sorted((re.escape(c) for c in cues), key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(alts) + ")", re.IGNORECASE)


def urgency(text: str, tax: Taxonomy) -> tuple[str, list[str]]:
    """("high" | "normal", the cues found)."""
    pattern = _cue_pattern(tax.urgent_cues)
    if pattern is None:
        return "normal", []
    found = list(dict.fromkeys(m.group(0).lower() for m in pattern.finditer(text)))
    return ("high" if found else "normal"), found


def documents(
    text: str, category: Category, attachments: Sequence[str] = ()
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(mentioned, missing) required documents of ``category``: a document counts as
    mentioned when one of its cues occurs in the text or in an attachment's file name."""
    haystack = text + "\n" + "\n".join(attachments)
    mentioned, missing = [], []
    for doc in category.documents:
        pattern = _cue_pattern(doc.cues)
        entry = {"id": doc.id, "de": doc.name["de"], "en": doc.name["en"]}
        if pattern is not None and pattern.search(haystack):
            mentioned.append(entry)
        else:
            missing.append(entry)
    return mentioned, missing
