"""Fast TF-IDF features for triage: the matrix a fitted ``TfidfVectorizer`` would give,
counted with per-word caches.

Why by hand: scikit-learn's ``transform`` walks every n-gram of every text in Python
(``_count_vocab``: ~190 µs per request for character 3–4-grams, most of the triage time).
Requests repeat the same words all the time, and a ``char_wb`` n-gram never crosses a
word, so the vocabulary ids of a word's n-grams are looked up once and cached; a batch is
then counted with one sparse-matrix pass. The TF-IDF weighting afterwards is the same
arithmetic as ``TfidfTransformer.transform`` (sublinear tf, idf, l2 norm) on the same
count matrix, so the result is identical, value for value (a test compares it with
``TfidfVectorizer.transform`` on held-out requests). Vectorizers configured differently
than the triage model builds them fall back to scikit-learn's own ``transform``.

>>> counter = NgramCounter(model.char)          # doctest: +SKIP
>>> counter.transform(["Ich möchte Wohngeld beantragen."])   # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize
from sklearn.utils.sparsefuncs_fast import inplace_csr_row_normalize_l2

CACHE_WORDS = 100_000  # cached words per vectorizer (~20 MB); emptied when full
_DEFAULT_TOKEN_PATTERN = r"(?u)\b\w\w+\b"


class NgramCounter:
    """Counts a fitted vectorizer's vocabulary in texts and applies its TF-IDF weights."""

    def __init__(self, vec: TfidfVectorizer) -> None:
        self.vec = vec
        self.vocabulary: dict[str, int] = vec.vocabulary_
        self.n_features = len(self.vocabulary)
        self.min_n, self.max_n = vec.ngram_range
        self.fast = _supported(vec)
        self._cache = _WordCache(self._word_char_ids)
        self._token = re.compile(vec.token_pattern) if vec.analyzer == "word" else None
        # word n-grams (n ≥ 2) keyed by their token tuple: no string joins per lookup
        self._tuples: dict[tuple[str, ...], int] = (
            {tuple(t.split(" ")): i for t, i in self.vocabulary.items() if " " in t}
            if vec.analyzer == "word"
            else {}
        )

    # -- counting -----------------------------------------------------------------------
    def counts(self, texts: Sequence[str]) -> Any:
        """The document-term count matrix (CSR, float32, sorted indices) of ``texts``."""
        if self.vec.analyzer == "char_wb":
            ids, lengths = self._char_wb_ids(texts)
        else:
            ids, lengths = self._word_ids(texts)
        indptr = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        x = sp.csr_matrix(
            (np.ones(len(ids), dtype=self.vec.dtype), ids, indptr),
            shape=(len(texts), self.n_features),
        )
        x.sum_duplicates()  # sorts each row's indices and adds up repeated n-grams
        if x.indptr[-1] <= np.iinfo(np.int32).max:  # scikit-learn's index type
            x.indices = x.indices.astype(np.int32, copy=False)
            x.indptr = x.indptr.astype(np.int32, copy=False)
        return x

    def _char_wb_ids(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        if len(self._cache) >= CACHE_WORDS:
            self._cache = _WordCache(self._word_char_ids)
        lookup = self._cache.__getitem__  # a miss computes the word's ids (__missing__)
        parts: list[np.ndarray] = []
        words_per_text = np.zeros(len(texts) + 1, dtype=np.int64)
        for k, text in enumerate(texts):
            # lower-case the whole text first, as scikit-learn's preprocessor does (case
            # mappings such as the Greek final sigma depend on the neighbours)
            words = text.lower().split()
            parts.extend(map(lookup, words))
            words_per_text[k + 1] = len(words)
        if not parts:
            return np.zeros(0, dtype=np.int64), np.zeros(len(texts), dtype=np.int64)
        ends = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, parts), dtype=np.int64, count=len(parts)), out=ends[1:])
        return np.concatenate(parts), np.diff(ends[np.cumsum(words_per_text)])

    def _word_char_ids(self, word: str) -> np.ndarray:
        """Vocabulary ids of the ``char_wb`` n-grams of one word (padded with a space each
        side; a word shorter than n counts once, as a whole)."""
        w = f" {word} "
        size, vocab, found = len(w), self.vocabulary, []
        for n in range(self.min_n, self.max_n + 1):
            for start in range(max(size - n + 1, 1)):
                i = vocab.get(w[start : start + n])
                if i is not None:
                    found.append(i)
            if size <= n:  # scikit-learn stops at the first n that covers the whole word
                break
        return np.asarray(found, dtype=np.int64)

    def _word_ids(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        assert self._token is not None
        findall, get, tuples = self._token.findall, self.vocabulary.get, self._tuples.get
        unigrams, missing = self.min_n == 1, itertools.repeat(-1)
        found: list[int] = []  # vocabulary ids, -1 for n-grams not in the vocabulary
        ends = [0]
        for text in texts:
            toks = findall(text.lower())
            if unigrams:
                found += map(get, toks, missing)
            for n in range(max(self.min_n, 2), min(self.max_n, len(toks)) + 1):
                found += map(tuples, zip(*(toks[j:] for j in range(n)), strict=False), missing)
            ends.append(len(found))
        all_ids = np.fromiter(found, dtype=np.int64, count=len(found))
        known = all_ids >= 0
        before = np.zeros(len(found) + 1, dtype=np.int64)  # known ids before each position
        np.cumsum(known, out=before[1:])
        return all_ids[known], np.diff(before[ends])

    # -- TF-IDF ---------------------------------------------------------------------------
    def transform(self, texts: Sequence[str]) -> Any:
        """What ``vec.transform(texts)`` returns: TF-IDF rows, l2-normalised."""
        if not self.fast:
            return self.vec.transform(texts)
        x = self.counts(texts)
        # the arithmetic of TfidfTransformer.transform, in its order
        if self.vec.sublinear_tf:
            np.log(x.data, x.data)
            x.data += 1.0
        if self.vec.use_idf:
            x.data *= self.vec.idf_[x.indices]
        if self.vec.norm == "l2":
            # what normalize(x, norm="l2") runs after its input checks (~0.5 ms per call)
            inplace_csr_row_normalize_l2(x)
        elif self.vec.norm is not None:
            x = normalize(x, norm=self.vec.norm, copy=False)
        return x


class _WordCache(dict[str, np.ndarray]):
    """word → vocabulary ids of its character n-grams; a miss computes and keeps them."""

    def __init__(self, compute: Any) -> None:
        super().__init__()
        self.compute = compute

    def __missing__(self, word: str) -> np.ndarray:
        ids = self[word] = self.compute(word)
        return ids


def _supported(vec: TfidfVectorizer) -> bool:
    """Whether the vectorizer's text processing is the one counted here."""
    plain = (
        vec.input == "content"
        and vec.lowercase
        and not vec.strip_accents
        and vec.preprocessor is None
        and vec.tokenizer is None
        and not vec.binary
    )
    if vec.analyzer == "char_wb":
        return plain
    return (
        plain
        and vec.analyzer == "word"
        and vec.stop_words is None
        and vec.token_pattern == _DEFAULT_TOKEN_PATTERN
    )
