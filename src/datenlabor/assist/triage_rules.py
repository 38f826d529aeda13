"""Rule-based parts of triage: language, urgency and documents that seem to be missing.

Rules, not a model, because they must be explainable word for word and configurable by the
authority: the cues come from the taxonomy (:mod:`datenlabor.assist.taxonomy`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from datenlabor.assist import triage_language
from datenlabor.assist.taxonomy import Category, Taxonomy


def language(text: str, languages: Sequence[str] = ()) -> tuple[str, float]:
    """(ISO 639-1 code, probability) of the text's language, judged from its first
    600 characters (:mod:`datenlabor.assist.triage_language`; a batch of
    texts is faster with :func:`~datenlabor.assist.triage_language.identify`)."""
    return triage_language.identify([text], languages)[0]


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
