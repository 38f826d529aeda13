"""Verify that every sentence of a draft is supported by the passages it cites.

A sentence cites passages with markers ``[1]``, ``[2, 3]`` or ``[1][3]``. It counts as
*supported* when all of these hold:

1. it cites at least one passage that exists;
2. **verbatim quotes**: every quoted span („…“, "…", »…«) of four characters or more
   occurs word for word (case and spacing aside) in one of the cited passages;
3. **numbers**: every number in the sentence (amounts, days, years, § numbers) occurs in
   the cited passages — a claim with a wrong figure is not supported however similar its
   words are;
4. **lexical overlap**: at least ``OVERLAP_THRESHOLD`` (0.6) of the sentence's distinct
   stemmed content words (stop words dropped, Snowball German stems, see
   :mod:`datenlabor.assist.retrieval`) occur in the cited passages. 0.6 admits the
   paraphrase of a legal sentence in plainer words ("Wohngeld gibt es als Mietzuschuss
   für Mieter" against § 1 WoGG) but not a sentence that shares only the topic word.

Sentences with fewer than ``MIN_CLAIM_TERMS`` content words (greetings, "Mit freundlichen
Grüßen") are not claims and need no source. Unsupported claims lose their markers in the
shown text and are marked ``[nicht belegt]``: they are never shown as sourced.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from datenlabor.assist.chunking import split_sentences
from datenlabor.assist.retrieval import terms

OVERLAP_THRESHOLD = 0.6
MIN_CLAIM_TERMS = 3
UNSUPPORTED_MARK = "[nicht belegt]"
_MARKERS = re.compile(r"\s*((?:\[\s*\d+(?:\s*[,;]\s*\d+)*\s*\])+)")
_MARKER_NUMS = re.compile(r"\d+")
_QUOTES = re.compile(r"„([^“”\"]{4,})[“”\"]|\"([^\"]{4,})\"|»([^«]{4,})«|“([^”]{4,})”")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


@dataclass
class Sentence:
    text: str  # without markers
    cited: list[int] = field(default_factory=list)
    claim: bool = True
    supported: bool = False
    overlap: float = 0.0
    reason: str = ""
    block: int = 0  # paragraph of the draft the sentence stands in

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def normalise_markers(text: str) -> str:
    """Put markers that follow a full stop before it ("… Wohnens. [1]" -> "… Wohnens [1].")
    so that sentence splitting keeps them with their sentence."""
    return re.sub(r"([.!?])\s*((?:\[\s*\d+(?:\s*[,;]\s*\d+)*\s*\])+)", r" \2\1", text)


def parse(text: str) -> list[Sentence]:
    """Sentences of a draft with the passage numbers each cites."""
    out: list[Sentence] = []
    for block, para in enumerate(re.split(r"\n\s*\n", normalise_markers(text))):
        for raw in split_sentences(para.replace("\n", " ")):
            cited: list[int] = []
            for m in _MARKERS.finditer(raw):
                cited.extend(int(n) for n in _MARKER_NUMS.findall(m.group(1)))
            clean = _MARKERS.sub("", raw).strip()
            clean = re.sub(r"\s+([.!?,;:])", r"\1", clean)
            if clean:
                out.append(Sentence(clean, list(dict.fromkeys(cited)), block=block))
    return out


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def _numbers(text: str) -> set[str]:
    return {n.replace(".", "").replace(",", ".") for n in _NUMBER.findall(text)}


def check(sentence: Sentence, passages: dict[int, str]) -> Sentence:
    """Decide ``supported`` for one sentence given the passages by number (in place)."""
    own = set(terms(sentence.text))
    sentence.claim = len(own) >= MIN_CLAIM_TERMS
    valid = [n for n in sentence.cited if n in passages]
    if not sentence.cited:
        sentence.supported = not sentence.claim
        sentence.reason = "no source cited" if sentence.claim else "not a claim"
        return sentence
    if len(valid) < len(sentence.cited):
        sentence.supported = False
        missing = [n for n in sentence.cited if n not in passages]
        sentence.reason = f"cites unknown source {', '.join(map(str, missing))}"
        return sentence
    cited_text = "\n".join(passages[n] for n in valid)
    for m in _QUOTES.finditer(sentence.text):
        quote = next(g for g in m.groups() if g)
        if not any(_norm(quote) in _norm(passages[n]) for n in valid):
            sentence.supported = False
            sentence.reason = f"quote not found in the cited source: {quote[:60]!r}"
            return sentence
    missing_numbers = _numbers(sentence.text) - _numbers(cited_text)
    if missing_numbers:
        sentence.supported = False
        sentence.reason = f"numbers not in the cited source: {', '.join(sorted(missing_numbers))}"
        return sentence
    if not own:
        sentence.supported = True
        sentence.reason = "no content words"
        return sentence
    sentence.overlap = round(len(own & set(terms(cited_text))) / len(own), 3)
    sentence.supported = sentence.overlap >= OVERLAP_THRESHOLD
    sentence.reason = (
        "supported"
        if sentence.supported
        else f"only {sentence.overlap:.0%} of its words are in the cited source"
    )
    return sentence


def verify(text: str, passages: dict[int, str]) -> list[Sentence]:
    return [check(s, passages) for s in parse(text)]


def render(sentences: Sequence[Sentence]) -> str:
    """The text shown to the caseworker: supported sentences with their markers,
    unsupported claims without markers and marked."""
    blocks: dict[int, list[str]] = {}
    for s in sentences:
        body = s.text
        if s.supported and s.cited:
            end = body[-1] if body[-1] in ".!?:" else ""
            core = body[:-1] if end else body
            body = f"{core} [{', '.join(map(str, s.cited))}]{end}"
        elif not s.supported:
            body = f"{body} {UNSUPPORTED_MARK}"
        blocks.setdefault(s.block, []).append(body)
    return "\n\n".join(" ".join(b) for _, b in sorted(blocks.items()))
