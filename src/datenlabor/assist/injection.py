"""Request text is data, never instructions: defences against prompt injection.

Four layers, none of which relies on the model behaving:

1. **Retrieval** uses content words only, and sentences that talk to the machine
   ("Ignoriere alle vorherigen Anweisungen", "You are now …", "System: …") are dropped
   from the query first (:func:`query_text`). So an attack cannot add search words.
2. **Quoting**: passages and the request go to the LLM inside delimiters, after
   :func:`as_data` has neutralised anything that could close or open a delimiter or
   pose as a chat role (``<``, ``>``, ``<|im_start|>``, "### System").
3. **The system prompt is a constant** of :mod:`datenlabor.assist.answer`; nothing from a
   request or document is ever placed in it.
4. **Post-check** of the model's output (:func:`clean_output`): links, Markdown images
   and HTML are removed (no exfiltration through URLs the reviewer's browser would load),
   an answer that repeats the system prompt is rejected, and every sentence must then
   pass the citation check of :mod:`datenlabor.assist.citations`.

Extractive drafts apply :func:`findings` to every sentence they would copy from a passage
and skip those that address a machine. :func:`findings` also reports what looked like an
attack, in requests and in retrieved passages, so the reviewer sees it.
"""

from __future__ import annotations

import re

from datenlabor.assist.chunking import split_sentences

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "ignore-instructions",
        re.compile(
            r"\b(?:ignor\w*|vergiss|vergessen\s+sie|missachte\w*|disregard|forget)\b.{0,60}"
            r"\b(?:anweisung\w*|instruktion\w*|instruction\w*|regeln|rules|prompt\w*|vorgaben)"
            r"|\b(?:ignor\w*|disregard|forget)\s+(?:(?:all|alles|everything|the)\s+)*"
            r"(?:above|oben|previous|davor)\b",
            re.IGNORECASE | re.DOTALL,
        ),
    ),
    (
        "role-play",
        re.compile(
            r"\b(?:du bist (?:jetzt|ab sofort|nun)|sie sind (?:jetzt|ab sofort|nun)"
            r"|you are now|act as|pretend to be|spiel(?:e)? die rolle|tu so,? als"
            r"|verhalte dich wie|developer mode|entwicklermodus|jailbreak|\bDAN\b)",
            re.IGNORECASE,
        ),
    ),
    (
        "fake-system-message",
        re.compile(
            r"(?:^|\n)\s*(?:#{2,}\s*)?(?:system|assistant|developer|systemnachricht|system prompt)"
            r"\s*[:>\]]|<\|?(?:im_start|im_end|system|endoftext)\|?>|\[/?(?:INST|SYS)\]",
            re.IGNORECASE,
        ),
    ),
    (
        "prompt-extraction",
        re.compile(
            r"\b(?:gib|zeige?|nenne|verrate|print|reveal|show|repeat|wiederhole)\b.{0,40}"
            r"\b(?:system-?prompt|systemanweisung\w*|instructions|anweisungen|your prompt)",
            re.IGNORECASE | re.DOTALL,
        ),
    ),
    (
        "instruction-to-model",
        re.compile(
            r"\b(?:antworte|answer|respond|reply)\b[\s,]+(?:nur|immer|stets|"
            r"ausschließlich|mit|dass|that|only|with|always)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "exfiltration-link",
        re.compile(r"!\[[^\]]*\]\([^)]*\)|https?://\S+\?\S*=|<img\b", re.IGNORECASE),
    ),
]

_URL = re.compile(r"(?:https?|ftp)://[^\s)>\]\"']+", re.IGNORECASE)
_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\((?:[^)]*)\)")
_HTML_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_CHAT_TOKENS = re.compile(r"<\|[^|>]{1,20}\|>")


def findings(text: str) -> list[str]:
    """Names of the attack patterns found in ``text`` (empty when it looks harmless)."""
    return [name for name, pattern in _PATTERNS if pattern.search(text)]


def query_text(request: str) -> str:
    """The request without sentences that address the machine: what retrieval may use."""
    kept = []
    request = _HTML_TAG.sub(" ", re.sub(r"</?[a-zA-Z][^<>]{0,40}>", " ", request))  # markup
    for line in request.splitlines():
        for sentence in split_sentences(line):
            if not findings(sentence):
                kept.append(sentence)
    return " ".join(kept)


def as_data(text: str) -> str:
    """Text to place between delimiters: nothing in it can close the delimiter, open a
    new one or pose as a chat-format token."""
    text = _CHAT_TOKENS.sub(" ", text)
    return text.replace("<", "‹").replace(">", "›")


def clean_output(text: str, *, allowed_urls: set[str] | None = None) -> tuple[str, list[str]]:
    """Remove links, images and HTML from model output; returns the text and what was done."""
    notes: list[str] = []
    if _MD_IMAGE.search(text):
        text = _MD_IMAGE.sub(lambda m: m.group(1), text)
        notes.append("removed image reference")
    if _MD_LINK.search(text):
        text = _MD_LINK.sub(lambda m: m.group(1), text)
        notes.append("removed link markup")
    if _HTML_TAG.search(text):
        text = _HTML_TAG.sub("", text)
        notes.append("removed HTML")
    allowed = allowed_urls or set()

    def url(m: re.Match[str]) -> str:
        if m.group(0) in allowed:
            return m.group(0)
        notes.append(f"removed URL {m.group(0)[:80]}")
        return "[Link entfernt]"

    text = _URL.sub(url, text)
    return text.strip(), notes


def repeats(output: str, secret: str, *, words: int = 8) -> bool:
    """Whether ``output`` contains any run of ``words`` consecutive words of ``secret``."""
    out = " ".join(re.findall(r"\w+", output.lower()))
    toks = re.findall(r"\w+", secret.lower())
    return any(" ".join(toks[i : i + words]) in out for i in range(max(0, len(toks) - words + 1)))
