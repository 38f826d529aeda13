"""The embedded triage classifier: word and character n-grams, linear model, calibrated.

Pipeline: TF-IDF of word uni- and bigrams plus TF-IDF of character 3–4-grams within word
boundaries (robust to typos and inflection), a linear SVM, and probabilities calibrated by
``CalibratedClassifierCV`` (sigmoid, cross-validated, ``ensemble=False``: one linear model
on all training rows, so its weights explain every prediction).

Evidence: the terms of the text that pushed the chosen class up the most — the largest
products of TF-IDF value and class weight over the features present in the text; character
n-grams are credited to the words of the text that contain them.
"""

from __future__ import annotations

import bisect
import itertools
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from datenlabor.assist.triage_features import NgramCounter
from datenlabor.errors import BadInput

DEFAULT_PARAMS: dict[str, Any] = {
    "word_ngrams": [1, 2],
    "char_ngrams": [3, 4],
    "char_min_df": 2,
    "C": 0.5,
    "calibration_cv": 3,
    "max_features": 200_000,
}


def _word(p: dict[str, Any]) -> TfidfVectorizer:
    return TfidfVectorizer(ngram_range=tuple(p["word_ngrams"]), sublinear_tf=True, dtype=np.float32)


def _char(p: dict[str, Any]) -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=tuple(p["char_ngrams"]),
        min_df=p["char_min_df"],
        sublinear_tf=True,
        max_features=p["max_features"],
        dtype=np.float32,
    )


def build(params: dict[str, Any] | None = None) -> Pipeline:
    p = {**DEFAULT_PARAMS, **(params or {})}
    features = FeatureUnion([("word", _word(p)), ("char", _char(p))])
    clf = CalibratedClassifierCV(
        LinearSVC(C=p["C"]), method="sigmoid", cv=p["calibration_cv"], ensemble=False
    )
    return Pipeline([("features", features), ("clf", clf)])


def fit(
    texts: Sequence[str], labels: Sequence[str], params: dict[str, Any] | None = None
) -> Pipeline:
    """Train on ``texts`` with ``labels``; BadInput when a class is too small to calibrate."""
    p = {**DEFAULT_PARAMS, **(params or {})}
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    if len(counts) < 2:
        raise BadInput("training needs at least two different labels", column="label")
    small = sorted(k for k, n in counts.items() if n < p["calibration_cv"])
    if small:
        raise BadInput(
            f"labels with fewer than {p['calibration_cv']} examples cannot be calibrated: "
            + ", ".join(repr(s) for s in small[:10]),
            column="label",
        )
    pipe = build(p)
    pipe.fit(list(texts), list(labels))
    return pipe


class TriageModel:
    """A fitted triage classifier reduced to plain arrays: vocabularies, IDF weights, the
    linear model and the sigmoid calibrators.

    Why not the scikit-learn objects themselves: pickles run code when loaded, and skops
    (the safe alternative) needs ~7 s to write and ~3 s to read the two vocabularies. The
    arrays here are saved as one ``.npz`` read with ``allow_pickle=False`` — no code at
    all — in milliseconds. Prediction re-does what ``CalibratedClassifierCV`` (sigmoid,
    one-vs-rest) computes; a test checks it against scikit-learn's own ``predict_proba``.
    """

    FORMAT = "datenlabor-triage-1"

    def __init__(self, params: dict[str, Any], word: TfidfVectorizer, char: TfidfVectorizer,
                 classes: list[str], coef: np.ndarray, intercept: np.ndarray,
                 cal_a: np.ndarray, cal_b: np.ndarray) -> None:  # fmt: skip
        self.params = params
        self.word, self.char = word, char
        self.classes = classes
        self.coef, self.intercept = coef, intercept
        self.cal_a, self.cal_b = cal_a, cal_b
        word_terms, char_terms = _terms(word), _terms(char)
        # per feature: the word n-gram itself, or the stripped character n-gram (evidence)
        self._terms = word_terms + [t.strip() for t in char_terms]
        self._n_word = len(word_terms)
        # weights per class for the evidence (binary: the negative class mirrors the positive)
        self.weights = np.vstack([-coef[0], coef[0]]) if coef.shape[0] == 1 else coef
        self._counters = (NgramCounter(word), NgramCounter(char))

    @classmethod
    def from_pipeline(cls, pipe: Pipeline, params: dict[str, Any] | None = None) -> TriageModel:
        union = pipe.named_steps["features"]
        word, char = (t for _n, t in union.transformer_list)
        clf = pipe.named_steps["clf"]
        calibrated = clf.calibrated_classifiers_[0]
        est = calibrated.estimator
        return cls(
            {**DEFAULT_PARAMS, **(params or {})},
            word,
            char,
            [str(c) for c in clf.classes_],
            np.asarray(est.coef_, dtype=np.float32),
            np.asarray(est.intercept_, dtype=np.float64),
            np.asarray([c.a_ for c in calibrated.calibrators], dtype=np.float64),
            np.asarray([c.b_ for c in calibrated.calibrators], dtype=np.float64),
        )

    # -- prediction ---------------------------------------------------------------------
    @property
    def names(self) -> np.ndarray:
        """Feature names in column order (``word__…``, ``char__…``)."""
        return np.asarray(
            [f"word__{t}" for t in _terms(self.word)] + [f"char__{t}" for t in _terms(self.char)],
            dtype=object,
        )

    def features(self, texts: Sequence[str]) -> Any:
        """TF-IDF matrix of word and character n-grams (what the fitted vectorizers give,
        counted faster: :mod:`datenlabor.assist.triage_features`)."""
        word, char = self._counters
        return sp.hstack([word.transform(texts), char.transform(texts)], format="csr")

    def predict(self, texts: Sequence[str]) -> tuple[Any, np.ndarray]:
        """(feature matrix, calibrated probabilities) for a batch."""
        x = self.features(list(texts))
        decision = np.asarray(x @ self.coef.T, dtype=np.float64) + self.intercept
        calibrated = expit(-(self.cal_a * decision + self.cal_b))
        if len(self.classes) == 2:
            proba = np.hstack([1.0 - calibrated, calibrated])
        else:
            total = calibrated.sum(axis=1, keepdims=True)
            uniform = np.full_like(calibrated, 1.0 / len(self.classes))
            proba = np.divide(calibrated, total, out=uniform, where=total != 0)
        proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
        return x, proba

    def evidence(self, x: Any, row: int, cls: int, text: str, top: int = 6) -> list[dict[str, Any]]:
        """The terms of ``text`` (row ``row`` of the CSR matrix ``x``) that raised class
        ``cls`` most, with where they occur."""
        lo, hi = x.indptr[row], x.indptr[row + 1]
        idx = x.indices[lo:hi]
        return self._evidence(idx, x.data[lo:hi] * self.weights[cls, idx], text, top)

    def evidence_batch(
        self, x: Any, classes: Sequence[int], texts: Sequence[str], top: int = 6
    ) -> list[list[dict[str, Any]]]:
        """:meth:`evidence` for every row of ``x`` (class ``classes[i]`` for row i), with
        the contributions of all rows computed in one step."""
        indptr = x.indptr
        rows = np.repeat(np.asarray(classes, dtype=np.int64), np.diff(indptr))
        contrib = x.data * self.weights[rows, x.indices]
        cut = indptr.tolist()
        return [
            self._evidence(x.indices[cut[i] : cut[i + 1]], contrib[cut[i] : cut[i + 1]], text, top)
            for i, text in enumerate(texts)
        ]

    def _evidence(
        self, idx: np.ndarray, contrib: np.ndarray, text: str, top: int
    ) -> list[dict[str, Any]]:
        keep = top * 4
        if len(contrib) > keep:
            part = np.argpartition(-contrib, keep)[:keep]
            order = part[np.argsort(-contrib[part])]
        else:
            order = np.argsort(-contrib)
        toks = Tokens(text)
        by_term: dict[str, float] = {}
        terms, n_word = self._terms, self._n_word
        for c, f in zip(contrib[order].tolist(), idx[order].tolist(), strict=True):
            if c <= 0:
                break
            if f < n_word:
                by_term[terms[f]] = by_term.get(terms[f], 0.0) + c
                continue
            frag = terms[f]
            if len(frag) < 3:
                continue
            hits = toks.containing(frag)
            for w in hits:  # a fragment shared by several words counts for each a part
                by_term[w] = by_term.get(w, 0.0) + c / len(hits)
        out = []
        for term, weight in sorted(by_term.items(), key=lambda kv: -kv[1]):
            spans = toks.spans(term)
            if spans:
                out.append({"term": text[spans[0][0] : spans[0][1]], "weight": round(weight, 4),
                            "spans": spans})  # fmt: skip
            if len(out) >= top:
                break
        return out

    # -- storage --------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        meta = {
            "format": self.FORMAT,
            "params": self.params,
            "classes": self.classes,
            "word_terms": _terms(self.word),
            "char_terms": _terms(self.char),
        }
        with path.open("wb") as fh:
            np.savez_compressed(
                fh,
                meta=np.asarray(json.dumps(meta, ensure_ascii=False)),
                word_idf=np.asarray(self.word.idf_),
                char_idf=np.asarray(self.char.idf_),
                coef=self.coef,
                intercept=self.intercept,
                cal_a=self.cal_a,
                cal_b=self.cal_b,
            )

    @classmethod
    def load(cls, path: Path) -> TriageModel:
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                arrays = {k: z[k] for k in z.files if k != "meta"}
        except (OSError, ValueError, KeyError) as exc:
            raise BadInput(f"not a triage model file: {exc}", file=str(path)) from exc
        if meta.get("format") != cls.FORMAT:
            raise BadInput(f"unknown model format {meta.get('format')!r}", file=str(path))
        p = meta["params"]
        word = _vectorizer(p, "word", meta["word_terms"], arrays["word_idf"])
        char = _vectorizer(p, "char", meta["char_terms"], arrays["char_idf"])
        return cls(p, word, char, meta["classes"], arrays["coef"], arrays["intercept"],
                   arrays["cal_a"], arrays["cal_b"])  # fmt: skip


def _terms(vec: TfidfVectorizer) -> list[str]:
    """The vocabulary in column order."""
    terms = [""] * len(vec.vocabulary_)
    for term, i in vec.vocabulary_.items():
        terms[i] = term
    return terms


def _vectorizer(p: dict[str, Any], kind: str, terms: list[str], idf: np.ndarray) -> TfidfVectorizer:
    """A fitted vectorizer rebuilt from its vocabulary and IDF weights."""
    vec = _word(p) if kind == "word" else _char(p)
    vec.set_params(vocabulary={t: i for i, t in enumerate(terms)}, min_df=1, max_features=None)
    vec._validate_vocabulary()  # what fit() does first with a given vocabulary
    vec.idf_ = idf
    return vec


# scikit-learn's default token pattern, captured for re.split
_TOKEN_SPLIT = re.compile(r"(?u)\b(\w\w+)\b")


class Tokens:
    """A text's tokens as the word n-gram features see them (lower-case), with their
    positions in the text; found on first use."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._bounds: list[int] = []
        self._low: list[str] | None = None
        self._distinct: list[str] | None = None
        self._joined: str | None = None
        self._starts: list[int] = []

    @property
    def low(self) -> list[str]:
        if self._low is None:
            # split() gives the same matches as finditer(), as plain strings: no match
            # objects for the garbage collector to track (that cost more than the search)
            parts = _TOKEN_SPLIT.split(self.text)  # gap, token, gap, token, …, gap
            self._bounds = list(itertools.accumulate(map(len, parts), initial=0))
            self._low = [t.lower() for t in parts[1::2]]
        return self._low

    def distinct(self) -> list[str]:
        """The lower-case tokens, each once, in order of first occurrence."""
        if self._distinct is None:
            self._distinct = list(dict.fromkeys(self.low))
        return self._distinct

    def containing(self, fragment: str) -> list[str]:
        """The distinct tokens that contain ``fragment``, in order of first occurrence.

        One ``str.find`` per hit on the tokens joined by newlines (which no token holds)
        instead of a substring test per token: evidence asks this for ~20 fragments."""
        words = self.distinct()
        if "\n" in fragment:
            return [w for w in words if fragment in w]
        if self._joined is None:
            self._joined = "\n".join(words)
            self._starts = list(itertools.accumulate((len(w) + 1 for w in words[:-1]), initial=0))
        joined, starts, hits = self._joined, self._starts, []
        pos = joined.find(fragment)
        while pos >= 0:
            k = bisect.bisect_right(starts, pos) - 1
            hits.append(words[k])
            if k + 1 == len(starts):
                break
            pos = joined.find(fragment, starts[k + 1])  # on from the next token
        return hits

    def spans(self, term: str, limit: int = 5) -> list[list[int]]:
        """[start, end] of the first ``limit`` occurrences of ``term`` (one or more words)
        as consecutive tokens, case-insensitive."""
        words = term.lower().split()
        if not words:
            return []
        low, k = self.low, len(words)
        out: list[list[int]] = []
        last, first, i = len(low) - k, words[0], -1
        while len(out) < limit:
            try:
                i = low.index(first, i + 1)  # scans in C: no Python loop over the tokens
            except ValueError:
                break
            if i > last:
                break
            if k == 1 or all(low[i + j] == words[j] for j in range(1, k)):
                # token i is part 2i+1 of the split: it starts at bound 2i+1
                out.append([self._bounds[2 * i + 1], self._bounds[2 * (i + k)]])
        return out


def find_spans(text: str, term: str) -> list[list[int]]:
    """[start, end] of each occurrence of ``term`` (one or more words) as consecutive
    tokens of ``text``, case-insensitive; at most five."""
    return Tokens(text).spans(term)
