"""Triage: which service category and unit a request belongs to, how urgent it is, which
required documents seem missing, and its language — each with its evidence.

The category comes from the active model (:mod:`datenlabor.assist.registry`): the embedded
scikit-learn classifier (:mod:`datenlabor.assist.triage_model`), or — when configured — an
LLM endpoint with the embedded model as fallback (:mod:`datenlabor.assist.triage_llm`).
Below ``assist_min_confidence`` no category is suggested: the request goes to a person.
Urgency, documents and language are rules (:mod:`datenlabor.assist.triage_rules`).

Models are trained on a pinned pool dataset version and evaluated on held-out rows::

    info = train(gate, admin, "anfragen-historie", text="text", label="category")
    report = evaluate(gate, admin, "anfragen-test", text="text", label="category")
    [result] = Triager.for_pool(gate.pool).triage(["Ich möchte Wohngeld beantragen."])
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from datenlabor.access.principal import Principal
from datenlabor.assist import registry, triage_language, triage_rules
from datenlabor.assist.taxonomy import Taxonomy, load_taxonomy
from datenlabor.assist.triage_eval import metrics
from datenlabor.assist.triage_model import TriageModel, fit
from datenlabor.config import Settings
from datenlabor.errors import BadInput, NotFound
from datenlabor.pool.pool import Pool
from datenlabor.query.connection import quote_ident
from datenlabor.service.gate import Gate

MODEL_NAME = "triage"
TEMPLATE = "triage-rules-1"  # version of the rule set and output shape


@dataclass
class TriageResult:
    """One request's triage. ``label`` is None when confidence is too low: a person routes."""

    label: str | None
    confidence: float
    candidates: list[dict[str, Any]]  # best three {"label", "probability"}
    evidence: list[dict[str, Any]]  # {"term", "weight", "spans": [[start, end], …]}
    unit: str | None
    urgency: str
    urgency_cues: list[str]
    documents_mentioned: list[dict[str, str]]
    documents_missing: list[dict[str, str]]
    language: str
    language_confidence: float
    routed_to_person: bool
    model: str  # name@version of the model, "llm:<model>" for the LLM path
    taxonomy: str  # name@version
    engine: str = "sklearn"  # sklearn | llm
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Triager:
    """The active model, its explainer and the taxonomy, ready for batches."""

    _per_pool: ClassVar[dict[tuple[str, int], Triager]] = {}
    _lock = threading.Lock()
    _load_lock = threading.Lock()

    def __init__(
        self,
        model: TriageModel,
        info: registry.ModelInfo,
        taxonomy: Taxonomy,
        min_confidence: float,
        settings: Settings | None = None,
    ) -> None:
        self.explainer = model
        self.info = info
        self.taxonomy = taxonomy
        self.min_confidence = min_confidence
        self.settings = settings  # None: no LLM path

    @classmethod
    def for_pool(cls, pool: Pool) -> Triager:
        """The triager of the pool's active model (reused while that model stays active)."""
        info = registry.active(pool, MODEL_NAME)
        if info is None:
            raise NotFound(
                "no triage model is trained yet: datenlabor assist train DATASET --text COL "
                "--label COL"
            )
        key = (str(pool.root), info.id)
        with cls._lock:
            hit = cls._per_pool.get(key)
        if hit is not None:
            return hit
        # One load per model: concurrent first requests wait for it instead of each loading
        # the model themselves.
        with cls._load_lock:
            with cls._lock:
                hit = cls._per_pool.get(key)
            if hit is None:
                s = pool.settings
                hit = cls(
                    registry.load(pool, info),
                    info,
                    load_taxonomy(s.assist_taxonomy),
                    s.assist_min_confidence,
                    s,
                )
                with cls._lock:
                    cls._per_pool = {k: v for k, v in cls._per_pool.items() if k[0] != key[0]}
                    cls._per_pool[key] = hit
        return hit

    def triage(
        self,
        texts: Sequence[str],
        *,
        attachments: Sequence[Sequence[str]] | None = None,
        known_categories: Sequence[str | None] | None = None,
        use_llm: bool | None = None,
    ) -> list[TriageResult]:
        """Triage a batch (vectorised: one matrix for all texts)."""
        texts = [t if isinstance(t, str) else "" for t in texts]
        if not texts:
            return []
        s = self.settings
        want_llm = s is not None and (use_llm if use_llm is not None else s.assist_triage_llm)
        x, proba = self.explainer.predict(texts)
        classes = self.explainer.classes
        llm = None
        if want_llm and s is not None:
            from datenlabor.assist import triage_llm

            llm = triage_llm.classify_batch(s, self.taxonomy, texts)
        best = proba.argmax(axis=1).tolist()
        tops = np.argsort(-proba, axis=1)[:, :3].tolist()
        chosen = []  # (label, confidence, engine, model, notes) per request
        for i in range(len(texts)):
            b = best[i]
            label, conf, engine, model = classes[b], float(proba[i, b]), "sklearn", self.info.ref
            notes = []
            if llm is not None:
                answer = llm[i]
                if answer.label is not None:
                    label, conf, engine, model = (
                        answer.label,
                        answer.confidence,
                        "llm",
                        answer.model,
                    )
                else:
                    notes.append(f"llm: {answer.error}; embedded model used")
            chosen.append((label, conf, engine, model, notes))
        # Evidence for the embedded model's class; for the LLM path, for the class the
        # LLM chose, so a person can check it against the text in either case.
        index = {c: j for j, c in enumerate(classes)}
        evidence = self.explainer.evidence_batch(
            x, [index.get(c[0], best[i]) for i, c in enumerate(chosen)], texts
        )
        languages = triage_language.identify(texts, self.taxonomy.languages)
        out = []
        for i, text in enumerate(texts):
            label, conf, engine, model, notes = chosen[i]
            row = proba[i]
            known = known_categories[i] if known_categories else None
            if known and self.taxonomy.get(known) is not None:
                notes.append("category given with the request")
            routed = conf < self.min_confidence
            cat = self.taxonomy.get(known or (None if routed else label))
            att = list(attachments[i]) if attachments else []
            mentioned, missing = triage_rules.documents(text, cat, att) if cat else ([], [])
            urgency, cues = triage_rules.urgency(text, self.taxonomy)
            lang, lang_p = languages[i]
            out.append(
                TriageResult(
                    label=None if routed else label,
                    confidence=round(conf, 4),
                    candidates=[
                        {"label": classes[j], "probability": round(float(row[j]), 4)}
                        for j in tops[i]
                    ],
                    evidence=evidence[i],
                    unit=cat.unit["de"] if cat else None,
                    urgency=urgency,
                    urgency_cues=cues,
                    documents_mentioned=mentioned,
                    documents_missing=missing,
                    language=lang,
                    language_confidence=lang_p,
                    routed_to_person=routed,
                    model=model,
                    taxonomy=self.taxonomy.ref,
                    engine=engine,
                    notes=notes,
                )
            )
        return out


def unrouted(text: str, reason: str, taxonomy_path: Any = None) -> TriageResult:
    """A result without a category (no model available): the request goes to a person;
    the rules (urgency, language) still apply."""
    tax = load_taxonomy(taxonomy_path)
    urgency, cues = triage_rules.urgency(text, tax)
    lang, lang_p = triage_rules.language(text, tax.languages) if text.strip() else ("und", 0.0)
    return TriageResult(
        label=None, confidence=0.0, candidates=[], evidence=[], unit=None, urgency=urgency,
        urgency_cues=cues, documents_mentioned=[], documents_missing=[], language=lang,
        language_confidence=lang_p, routed_to_person=True, model="none", taxonomy=tax.ref,
        engine="none", notes=[reason],
    )  # fmt: skip


# -- training and evaluation on pool datasets ---------------------------------------------
@dataclass
class LabelledRows:
    slug: str
    version: int
    texts: list[str]
    labels: list[str]
    groups: dict[str, list[Any]]
    skipped: int


def labelled_rows(
    gate: Gate,
    p: Principal,
    slug: str,
    *,
    text: str,
    label: str,
    version: int | None = None,
    groups: Sequence[str] = (),
    purpose: str,
) -> LabelledRows:
    """Text and label (and group) columns of a dataset version the caller may read.

    Rows without text or label are skipped (counted); the read is audited."""
    src = gate.source(p, slug, version)
    names = src.schema.names
    for role, col in [("--text", text), ("--label", label), *(("--group", g) for g in groups)]:
        if col not in names:
            raise BadInput(
                f"dataset {slug!r} version {src.version} has no column {col!r} ({role}); "
                f"columns: {', '.join(names)}",
                column=col,
            )
    cols = [text, label, *groups]
    select = ", ".join(f"CAST({quote_ident(c)} AS VARCHAR)" for c in cols)
    with gate.connection() as con:
        gate.register(con, "labelled", src)
        rows = con.execute(f"SELECT {select} FROM labelled").fetchall()
    gate.record(p, "read", [src], rows=len(rows), detail={"purpose": purpose})
    kept = [r for r in rows if r[0] and r[0].strip() and r[1] is not None and str(r[1]).strip()]
    return LabelledRows(
        slug,
        src.version,
        [r[0] for r in kept],
        [str(r[1]).strip() for r in kept],
        {g: [r[2 + i] for r in kept] for i, g in enumerate(groups)},
        len(rows) - len(kept),
    )


def train(
    gate: Gate,
    p: Principal,
    slug: str,
    *,
    text: str,
    label: str,
    version: int | None = None,
    holdout: float = 0.2,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    activate: bool = True,
) -> registry.ModelInfo:
    """Train the triage model on a pinned dataset version; held-out metrics recorded.

    With ``holdout`` > 0 a stratified share of the rows is kept out of training and the
    stored metrics are measured on it (the stored model is the one trained without it)."""
    from sklearn.model_selection import train_test_split

    p.require_role("admin", "steward")
    if not 0.0 <= holdout < 0.9:
        raise BadInput("the held-out share must be between 0 and 0.9", column="holdout")
    data = labelled_rows(
        gate, p, slug, text=text, label=label, version=version, purpose="assist-train"
    )
    if len(data.texts) < 10:
        raise BadInput(
            f"dataset {slug!r} version {data.version} has {len(data.texts)} usable rows; "
            "training needs at least 10",
            column=label,
        )
    tr_x, tr_y, te_x, te_y = data.texts, data.labels, [], []
    if holdout > 0:
        try:
            tr_x, te_x, tr_y, te_y = train_test_split(
                data.texts, data.labels, test_size=holdout, random_state=seed, stratify=data.labels
            )
        except ValueError as exc:
            raise BadInput(f"cannot hold out {holdout:.0%} per label: {exc}", column=label) from exc
    model = TriageModel.from_pipeline(fit(tr_x, tr_y, params), params)
    result: dict[str, Any] = {"train_rows": len(tr_x), "skipped_rows": data.skipped}
    if te_x:
        _x, proba = model.predict(te_x)
        pred = [model.classes[i] for i in proba.argmax(axis=1)]
        result["holdout"] = metrics(
            te_y, pred, proba.max(axis=1), threshold=gate.pool.settings.assist_min_confidence
        )
    info = registry.register(
        gate.pool,
        model,
        name=MODEL_NAME,
        dataset=slug,
        dataset_version=data.version,
        params={
            **model.params,
            "text_column": text,
            "label_column": label,
            "holdout": holdout,
            "seed": seed,
            "classes": sorted(set(data.labels)),
        },
        metrics=result,
        user=p.label(),
        activate=activate,
    )
    gate.audit.log(
        p,
        "assist-train",
        datasets={slug: data.version},
        rows=len(tr_x),
        detail={"model": info.ref, "accuracy": result.get("holdout", {}).get("accuracy")},
    )
    return info


def evaluate(
    gate: Gate,
    p: Principal,
    slug: str,
    *,
    text: str,
    label: str,
    version: int | None = None,
    groups: Sequence[str] = (),
    model_version: int | None = None,
) -> dict[str, Any]:
    """Figures of a model (the active one by default) on a held-out dataset version."""
    p.require_role("admin", "steward", "analyst")
    info = (
        registry.get(gate.pool, MODEL_NAME, model_version)
        if model_version is not None
        else registry.active(gate.pool, MODEL_NAME)
    )
    if info is None:
        raise NotFound("no triage model is trained yet")
    data = labelled_rows(
        gate,
        p,
        slug,
        text=text,
        label=label,
        version=version,
        groups=groups,
        purpose="assist-evaluate",
    )
    if not data.texts:
        raise BadInput(f"dataset {slug!r} has no rows with text and label", column=label)
    if info.dataset == slug and info.dataset_version == data.version:
        note = "evaluated on the training dataset version itself: figures are optimistic"
    else:
        note = None
    ex: TriageModel = registry.load(gate.pool, info)
    _x, proba = ex.predict(data.texts)
    pred = [ex.classes[i] for i in proba.argmax(axis=1)]
    out = metrics(
        data.labels,
        pred,
        proba.max(axis=1),
        groups=data.groups,
        threshold=gate.pool.settings.assist_min_confidence,
    )
    out.update(
        {
            "model": info.ref,
            "trained_on": {"dataset": info.dataset, "version": info.dataset_version},
            "evaluated_on": {"dataset": slug, "version": data.version},
            "skipped_rows": data.skipped,
            "unknown_labels": sorted(set(data.labels) - set(ex.classes)),
        }
    )
    if note:
        out["note"] = note
    return out
