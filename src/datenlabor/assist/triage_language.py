"""Language identification of request texts, a batch at a time.

The model is py3langid's (shipped inside the package): a byte n-gram naive Bayes whose
n-grams are found by walking a finite automaton over the UTF-8 bytes of the text. The
library walks it byte by byte in Python, one text at a time (~120 µs per request, as much
as the whole classifier); here the automaton is walked for a whole batch at once — one
numpy step per byte position moves every text of the batch — and only the scoring of each
text's (few) n-grams stays per text. Encoding, counting and scoring follow
``LanguageIdentifier.classify`` step by step on the same arrays, so code and probability
are identical to the library's (a test compares them on held-out requests).

Only the first ``LANGUAGE_SAMPLE`` characters are judged: plenty for a request, and the
cost grows with length.

>>> identify(["Ich möchte einen Termin.", "I need an appointment."], ("de", "en"))  # doctest: +SKIP
[('de', 1.0), ('en', 0.9998)]
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

LANGUAGE_SAMPLE = 600
BLOCK = 1024  # texts walked together (bounds the state matrix: BLOCK × longest text)
SMALL = 8  # fewer texts than this: the library's own per-text walk


class _Automaton:
    """py3langid's identifier with its automaton as numpy arrays."""

    def __init__(self, languages: tuple[str, ...]) -> None:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        if languages:
            known = [lang for lang in languages if lang in ident.nb_classes]
            if len(known) >= 2:  # limited to the languages the authority expects
                ident.set_languages(known)
        self.ident = ident
        self.next = np.asarray(ident.tk_nextmove, dtype=np.int64)
        self.rowbase = np.asarray(ident.tk_row, dtype=np.int64) << 8
        self.output = np.asarray(ident.tk_output, dtype=np.int64)
        self.n_features = int(self.output.max()) + 1

    def walk(self, data: list[bytes]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per text: (n-gram ids in order of first occurrence, how often each occurs) —
        what ``visit_counts`` returns as a Counter, for a block of encoded texts."""
        lengths = np.fromiter((len(b) for b in data), dtype=np.int64, count=len(data))
        longest = int(lengths.max(initial=0))
        order = np.argsort(-lengths, kind="stable")  # longest first: a shrinking prefix
        by_len = lengths[order]
        # bytes[t, j] = byte t of the j-th longest text (zero past its end)
        present = np.arange(longest)[:, None] < by_len[None, :]
        block = np.zeros((longest, len(data)), dtype=np.uint8)
        joined = b"".join(data[j] for j in order)
        # the byte matrix is filled column by column: transpose for the order of `joined`
        block.T[present.T] = np.frombuffer(joined, dtype=np.uint8)
        visited = np.full((longest, len(data)), -1, dtype=np.int32)
        state = np.zeros(len(data), dtype=np.int64)
        active = len(data)
        for t in range(longest):
            while active and by_len[active - 1] <= t:
                active -= 1
            s = self.next[self.rowbase[state[:active]] + block[t, :active]]
            state[:active] = s
            visited[t, :active] = s
        feats = np.where(present, self.output[np.maximum(visited, 0)], -1).T  # text × byte
        rows, cols = np.nonzero(feats >= 0)  # row-major: text by text, byte by byte
        key = rows * self.n_features + feats[rows, cols]
        uniq, first, counts = np.unique(key, return_index=True, return_counts=True)
        seq = np.argsort(first, kind="stable")  # first occurrence: the Counter's order
        uniq, counts = uniq[seq], counts[seq]
        text_of = uniq // self.n_features
        ids = uniq % self.n_features
        bounds = np.searchsorted(text_of, np.arange(len(data) + 1))
        out: list[tuple[np.ndarray, np.ndarray]] = [(ids[:0], counts[:0])] * len(data)
        for k, j in enumerate(order.tolist()):
            lo, hi = bounds[k], bounds[k + 1]
            out[j] = (ids[lo:hi], counts[lo:hi])
        return out

    def classify(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        ident = self.ident
        if len(texts) < SMALL:  # numpy steps cost more than they save on a few texts
            return [(str(c), float(p)) for c, p in map(ident.classify, texts)]
        data = [ident._encode(t) for t in texts]  # the library's own encoding
        table, prior, classes = ident.nb_ptc, ident.nb_pc, ident.nb_classes
        results = []
        for start in range(0, len(data), BLOCK):
            part = data[start : start + BLOCK]
            for raw, (ids, counts) in zip(part, self.walk(part), strict=True):
                # LanguageIdentifier._raw_score and _decide (norm_probs=True), step by step
                if len(ids):
                    scores = np.log1p(counts.astype(np.float32)) @ table[ids] + prior
                else:
                    scores = np.full(len(classes), 0.0, dtype=np.float32)
                scores *= 1.0 / math.sqrt(len(raw) or 1)
                np.exp(scores - scores.max(), out=scores)
                scores /= scores.sum()
                for i, j in ident._alias_pairs:
                    scores[i] += scores[j]
                    scores[j] = 0.0
                best = int(scores.argmax())
                results.append((str(classes[best]), float(scores[best])))
        return results


_automaton_lock = threading.Lock()


def automaton(languages: tuple[str, ...]) -> _Automaton:
    # Under a lock: lru_cache alone lets every concurrent first call build the model itself
    # (bench/load.py saw triage p95 of 30-47 s in freshly started workers).
    with _automaton_lock:
        return _automaton(languages)


@lru_cache(maxsize=8)
def _automaton(languages: tuple[str, ...]) -> _Automaton:
    return _Automaton(languages)


def identify(texts: Sequence[str], languages: Sequence[str] = ()) -> list[tuple[str, float]]:
    """(ISO 639-1 code, probability rounded to 4 places) of each text's language, judged
    from its first ``LANGUAGE_SAMPLE`` characters."""
    if not texts:
        return []
    found = automaton(tuple(languages)).classify([t[:LANGUAGE_SAMPLE] for t in texts])
    return [(code, round(p, 4)) for code, p in found]


def identifier(languages: Sequence[str] = ()) -> Any:
    """py3langid's identifier as configured here (the reference the batch walk follows)."""
    return automaton(tuple(languages)).ident
