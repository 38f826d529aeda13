"""German full-text retrieval: BM25 over Snowball-stemmed terms.

Why not DuckDB's ``fts`` extension, which the project prefers in principle: measured here
(DuckDB 1.5.5, 100,000 chunks, 2 cores) a ``match_bm25`` query took ~350 ms median and the
index ~40 s to build, against a goal of p95 ≤ 50 ms. BM25 itself is a few lines of
arithmetic; what matters is doing it vectorised. So terms are stemmed with PyStemmer (the
Snowball German stemmer in C: "Anträge" and "Antrag" -> "antrag", "Wohngeldes" ->
"wohngeld") when a chunk is stored, kept in the chunk's ``terms`` column, and an index is a
SciPy sparse matrix of precomputed BM25 weights (terms x chunks). A query adds up the rows
of its terms: ~1 ms at 100,000 chunks (``bench/assist_retrieval.py``).

The query is built from the *content words* of the request only (stop words dropped,
every word a plain term, no operators), so instructions hidden in a request ("ignore …,
search for …") cannot steer retrieval beyond adding words to a bag.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import Stemmer  # PyStemmer
from scipy import sparse

K1 = 1.2
B = 0.75
_TOKEN = re.compile(r"[a-zäöüß0-9]+(?:-[a-zäöüß0-9]+)*")
_local = threading.local()


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# German function words (articles, pronouns, prepositions, conjunctions, auxiliaries,
# particles); written for this project, in the spirit of the Snowball German stop list,
# plus request boilerplate ("bitte", "frage", "sehr", "geehrte") that says nothing about
# the topic.
STOPWORDS = _words(
    """
    aber alle allem allen aller alles als also am an ander andere anderem anderen anderer
    anderes anderm andern anderr anders auch auf aus bei bin bis bist da damit dann das dass
    daß dasselbe dazu dein deine deinem deinen deiner deines dem demselben den denn
    denselben der derer derselbe derselben des desselben dessen dich die dies diese dieselbe
    dieselben diesem diesen dieser dieses dir doch dort du durch ein eine einem einen einer
    eines einig einige einigem einigen einiger einiges einmal er es etwas euch euer eure
    eurem euren eurer eures für gegen gewesen hab habe haben hat hatte hatten hier hin
    hinter ich ihm ihn ihnen ihr ihre ihrem ihren ihrer ihres im in indem ins ist jede jedem
    jeden jeder jedes jene jenem jenen jener jenes jetzt kann kein keine keinem keinen
    keiner keines können könnte machen man manche manchem manchen mancher manches mein meine
    meinem meinen meiner meines mich mir mit muss musste nach nicht nichts noch nun nur ob
    oder ohne sehr sein seine seinem seinen seiner seines selbst sich sie sind so solche
    solchem solchen solcher solches soll sollte sondern sonst über um und uns unsere unserem
    unseren unser unseres unter viel vom von vor während war waren warst was weg weil weiter
    welche welchem welchen welcher welches wenn werde werden wie wieder will wir wird wirst
    wo wollen wollte würde würden zu zum zur zwar zwischen bitte danke dank frage fragen
    geehrte geehrter geehrten sehr hallo guten tag gruß grüße freundlichen mfg wäre gerne
    gern mal wissen möchte möchten ja nein eigentlich
    """
)


def _stemmer() -> Stemmer.Stemmer:
    """One stemmer per thread: PyStemmer objects are not thread-safe."""
    s = getattr(_local, "stemmer", None)
    if s is None:
        s = _local.stemmer = Stemmer.Stemmer("german")
        s.maxCacheSize = 100_000
    return s


def tokens(text: str) -> list[str]:
    """Lower-cased words without stop words; hyphenated compounds also split into parts."""
    out: list[str] = []
    for tok in _TOKEN.findall(text.lower()):
        parts = [tok, *tok.split("-")] if "-" in tok else [tok]
        for t in parts:
            if not t or t in STOPWORDS:
                continue
            if len(t) >= 2:  # single letters and digits say nothing about the topic
                out.append(t)
    return out


def terms(text: str) -> list[str]:
    """Stemmed content words of ``text`` (the unit of indexing and of queries)."""
    return list(_stemmer().stemWords(tokens(text)))


def query_terms(question: str, *, limit: int = 64) -> list[str]:
    """Distinct stemmed content words of a request, at most ``limit`` (long letters)."""
    return list(dict.fromkeys(terms(question)))[:limit]


@dataclass
class Hit:
    row: int
    score: float


class Bm25Index:
    """BM25 over the ``terms`` column (space-separated stems) of a chunk table."""

    def __init__(self, term_column: pa.ChunkedArray | pa.Array, *, k1: float = K1, b: float = B):
        col = (
            term_column.combine_chunks()
            if isinstance(term_column, pa.ChunkedArray)
            else term_column
        )
        self.n = len(col)
        lists = pc.split_pattern(pc.fill_null(col, ""), " ")
        flat = pc.list_flatten(lists)
        parents = np.asarray(pc.list_parent_indices(lists), dtype=np.int64)
        keep = np.asarray(pc.not_equal(flat, ""), dtype=bool) if len(flat) else np.zeros(0, bool)
        encoded = pc.dictionary_encode(flat.filter(pa.array(keep)))
        vocab = encoded.dictionary.to_pylist()
        term_ids = np.asarray(encoded.indices, dtype=np.int64)
        docs = parents[keep]
        self.vocab: dict[str, int] = {t: i for i, t in enumerate(vocab)}
        v = len(vocab)
        # Term frequencies: a terms x chunks count matrix; building it in CSC form sums the
        # duplicate (term, chunk) pairs without sorting all postings.
        counts = sparse.csc_matrix(
            (np.ones(len(term_ids), np.float32), (term_ids, docs)), shape=(v, self.n)
        )
        counts.sum_duplicates()
        tf = counts.data
        t_idx = counts.indices
        d_idx = np.repeat(np.arange(self.n), np.diff(counts.indptr))
        doc_len = np.bincount(docs, minlength=self.n).astype(np.float32)
        avgdl = float(doc_len.mean()) if self.n and doc_len.sum() else 1.0
        df = np.bincount(t_idx, minlength=v).astype(np.float64)
        idf = np.log(1.0 + (self.n - df + 0.5) / (df + 0.5))  # BM25+ style, never negative
        norm = k1 * (1.0 - b + b * doc_len[d_idx] / avgdl)
        counts.data = (idf[t_idx] * tf * (k1 + 1.0) / (tf + norm)).astype(np.float32)
        self.matrix = counts.tocsr()  # rows = terms: a query sums a few rows

    def search(self, query: Iterable[str], k: int = 5) -> list[Hit]:
        ids = sorted({self.vocab[t] for t in query if t in self.vocab})
        if not ids or self.n == 0:
            return []
        scores = np.asarray(self.matrix[ids].sum(axis=0)).ravel()
        k = min(k, self.n)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [Hit(int(i), float(scores[i])) for i in top if scores[i] > 0]

    def idf(self, term: str) -> float:
        i = self.vocab.get(term)
        if i is None:
            return 0.0
        df = self.matrix[i].nnz
        return math.log(1.0 + (self.n - df + 0.5) / (df + 0.5))


class IndexCache:
    """Built indexes by a key naming exactly what they cover (dataset versions and the
    caller's view of them), least recently used dropped first."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, tuple[pa.Table, Bm25Index]] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable) -> tuple[pa.Table, Bm25Index] | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
            return hit

    def put(self, key: Hashable, value: tuple[pa.Table, Bm25Index]) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def get_or_build(
        self, key: Hashable, build: Callable[[], tuple[pa.Table, Bm25Index]]
    ) -> tuple[pa.Table, Bm25Index]:
        """The cached entry, or build it once: concurrent callers with the same key wait
        for the first build instead of repeating it (the first question after an upload)."""
        hit = self.get(key)
        if hit is not None:
            return hit
        with self._lock:
            building = self._building.setdefault(key, threading.Lock())
        with building:
            hit = self.get(key)
            if hit is None:
                hit = build()
                self.put(key, hit)
        with self._lock:
            self._building.pop(key, None)
        return hit

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
