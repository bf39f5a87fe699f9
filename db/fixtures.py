"""Survey databases made up for tests, benchmarks and the wheel check (in the spirit of datasette's
fixtures.py); nothing here loads a model.

``build_fixture`` writes the small hand-made database the tests assert on: two models, the four v1
classifiers with planted scores and label statistics, an induction validation per model (fixture-a's
supported, fixture-b's failed, so its induction labels are unconfirmed), a logit lens and a neuron
unit with every family, examples and the document they point at (fixture-a's a version-2 unit with
both tails, the first-position list, token tests and an intervention check; fixture-b's as stored
before migration 0009: version 1, the new columns NULL, only the positive tail);
``add_beyond_units`` adds the later classifiers to one model (the function-vector unit as stored
before label statistics, all NULL). ``build_synthetic`` writes one of any size, deterministic in its
seed: random scores for every registered classifier with evidence shaped like the real ones', a
validation each (some failing), a logit lens and a version-2 neuron unit with both tails.

    python -m db.fixtures OUT.db [--models N] [--layers N] [--heads N] [--neurons N] [--examples N]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from classifiers import (
    ClassifierConfig,
    PatternClassifier,
    classifier_class,
    classifier_names,
    rank_and_percentile,
)
from classifiers.statistics import ALPHA, benjamini_hochberg, mean_pairwise_jaccard, null_percentiles
from db.common.errors import SurveyError
from db.engine import open_database, session_factory
from db.schema import (
    Corpus,
    Document,
    HeadScore,
    LogitLens,
    Model,
    Neuron,
    NeuronExample,
    Run,
    Token,
    TokenizedDocument,
    Unit,
    Validation,
)
from db.store import insert_rows

NOW = datetime(2026, 11, 25, tzinfo=UTC)
# model -> (layers, heads, {classifier: {(layer, head): score}}); unlisted heads score 0.05
MODELS = {
    "fixture-a": (
        4,
        3,
        {
            "previous_token": {(0, 2): 0.9, (1, 0): 0.6},
            "duplicate_token": {(0, 1): 0.7},
            "induction": {(0, 1): 0.5, (2, 1): 0.9},
            "attention_sink": {(3, 0): 0.8, (2, 1): 0.6},
        },
    ),
    "fixture-b": (
        6,
        2,
        {
            "previous_token": {(1, 1): 0.8},
            "duplicate_token": {(1, 0): 0.5},
            "induction": {(2, 0): 0.7, (4, 1): 0.45},
            "attention_sink": {(2, 0): 0.9},
        },
    ),
}
# induction validations: model -> (effect_top, min_effect); the random draws are DRAWS
INDUCTION_CHECKS = {"fixture-a": (0.9, 0.1), "fixture-b": (0.265, 0.1)}
DRAWS = [round(0.1 + 0.01 * i, 2) for i in range(20)]
STABILITY_SEEDS = [0, 1, 2]
FAMILIES = ["dead", "token", "prediction", "suppression", "partition", None]  # those of version 1
FAMILIES_V2 = [*FAMILIES, "first_position"]
FAMILY_NULL = {"kurtosis": 9.5, "skew_high": 1.8, "skew_low": -1.6, "variance": 0.004, "draws": 1000}
CHECK_MIN_OVERLAP = 8  # of the 10 promoted tokens, for a read-out to count as confirmed
# fixture-a's intervention check: (layer, neuron) -> how many of its 10 promoted tokens rose
CHECKED = {(0, 2): 8, (1, 1): 9, (1, 2): 3}
TEXT = "The cat sat on the mat. The dog sat on the log."
WORDS = [
    "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on",
    "not", "he", "i", "this",
]  # fmt: skip

# the evidence of a labelled head of the later classifiers, as the survey stores it
CIE = {"per_task_cie": {"antonym": 0.2, "country_capital": 0.1}}
SUCCESSOR_EXAMPLE = {"task": "days", "input": "Monday", "top": "Tuesday", "successor": "Tuesday"}
SUCCESSOR = {"per_task": {"days": 1.0, "months": 0.5}, "pairs": 17, "successor_examples": [SUCCESSOR_EXAMPLE]}

NEURON_STATS = {
    "mean": 0.1, "std": 1.0, "skew": 0.0, "kurtosis": 3.0, "hist_low": -1.0, "hist_high": 1.0,
    "histogram": [1, 2, 3], "w_in_norm": 1.0, "w_out_norm": 1.0, "vocab_mean": 0.0, "vocab_var": 0.01,
    "vocab_skew": 1.0, "vocab_kurtosis": 12.0, "top_tokens": [[1, 2.0]], "bottom_tokens": [[2, -2.0]],
    "top_token_share": 0.5,
}  # fmt: skip


def fixture_neuron(unit_id: int, layer: int, neuron: int, **fields: object) -> Neuron:
    """A neuron row with plain statistics; ``fields`` sets max, family and anything else."""
    return Neuron(unit_id=unit_id, layer=layer, neuron=neuron, **(NEURON_STATS | fields))


def intervention_statistics(overlaps: dict[tuple[int, int], int]) -> dict[str, Any]:
    """A version-2 neuron unit's ``statistics``: the family null and the intervention check
    summarised from each sampled neuron's ``(layer, neuron) -> check_overlap``."""
    confirmed = [o >= CHECK_MIN_OVERLAP for o in overlaps.values()]
    by_layer: dict[str, dict[str, int]] = {}
    for (layer, _), overlap in sorted(overlaps.items()):
        counts = by_layer.setdefault(str(layer), {"neurons": 0, "confirmed": 0})
        counts["neurons"] += 1
        counts["confirmed"] += overlap >= CHECK_MIN_OVERLAP
    return {
        "family_null": FAMILY_NULL,
        "intervention": {
            "neurons": len(overlaps), "windows": 16, "tokens": 33, "min_overlap": CHECK_MIN_OVERLAP,
            "agreement": sum(confirmed) / len(confirmed) if confirmed else None,
            "mean_overlap": sum(overlaps.values()) / max(len(overlaps), 1), "by_layer": by_layer,
        },
    }  # fmt: skip


def model_with_run(
    session: Session, name: str, layers: int, heads: int, **fields: object
) -> tuple[Model, Run]:
    """Insert a fixture model (``fields`` overrides its columns) and one finished run of it; both
    have their ids."""
    model = Model(**{
        "name": name, "source": "local", "location": f"/fixtures/{name}", "revision": None,
        "resolved_sha": name * 4, "family": "fixture", "architecture": "gpt2", "n_layers": layers,
        "n_heads": heads, "n_kv_heads": heads, "d_model": 16, "d_head": 4, "d_mlp": 6, "d_vocab": 10,
        "n_params": 1000, "parallel_attn_mlp": False, "quantization": None, "bos_token": "<s>",
        "license": "mit", "created_at": NOW,
    } | fields)  # fmt: skip
    session.add(model)
    session.flush()
    run = Run(
        model_id=model.id, code_version="fixture", config={}, device="cpu", dtype="float32", started_at=NOW,
        ended_at=NOW, status="done", code_dirty=False,
        libraries={library: "fixture" for library in ("torch", "transformers", "gguf")},
    )  # fmt: skip
    session.add(run)
    session.flush()
    return model, run


def add_unit(
    session: Session, model_id: int, run_id: int, kind: str, name: str, threshold: float | None = None,
    **fields: Any,
) -> Unit:  # fmt: skip
    """Add (and flush, so it has an id) a version-1 unit; ``fields`` overrides its columns."""
    config = fields.pop("config", {"threshold": threshold})
    null = classifier_class(name).null if name in classifier_names() else "fixture null"
    definition = {
        "kind": kind,
        "name": name,
        "version": fields.get("version", 1),
        "dtype": "float32",
        "classifier": {"config": config, "threshold": threshold, "null": null},
    }  # as a unit stores it
    unit = Unit(**{
        "model_id": model_id, "run_id": run_id, "kind": kind, "name": name, "version": 1, "config": config,
        "threshold": threshold, "dataset_hash": "f" * 64, "dataset": {"kind": "fixture"},
        "definition_hash": "d" * 64, "definition": definition, "created_at": NOW,
    } | fields)  # fmt: skip
    session.add(unit)
    session.flush()
    return unit


def add_head_scores(
    session: Session, unit: Unit, scores: np.ndarray, evidence: list[list[dict[str, Any]]],
    statistics: bool = True,
) -> None:  # fmt: skip
    """One row per head of ``scores [layer, head]``, ranked and with percentiles as the survey stores
    them; ``evidence[layer][head]`` is the head's evidence. With ``statistics``, each head gets a
    made-up interval, null, p and q (see :func:`planted_statistics`), a label needs q < ALPHA beside the
    threshold, and the unit gets its ``statistics``; without, the rows are as stored before migration
    0008 (label: score > threshold, the statistics NULL)."""
    grid = np.asarray(scores, dtype=np.float64)
    rank, percentile = rank_and_percentile(torch.from_numpy(grid))
    threshold = unit.threshold if unit.threshold is not None else float("inf")
    labels = grid > threshold
    per_head: dict[str, np.ndarray] = {}
    if statistics:
        per_head = planted_statistics(grid)
        labels &= per_head["q_value"] < ALPHA
        unit.statistics = _unit_statistics(unit.name, grid, labels, per_head["null_score"], threshold)
    rows = []
    for (layer, head), score in np.ndenumerate(grid):
        row = {
            "unit_id": unit.id, "layer": layer, "head": head, "score": float(score),
            "label": bool(labels[layer, head]), "rank": int(rank[layer, head]),
            "percentile": float(percentile[layer, head]), "evidence": evidence[layer][head],
        } | {name: float(values[layer, head]) for name, values in per_head.items()}  # fmt: skip
        if statistics:
            row["reason"] = _reason(bool(score > threshold), bool(labels[layer, head]))
        rows.append(row)
    insert_rows(session, HeadScore, rows)


def planted_statistics(scores: np.ndarray) -> dict[str, np.ndarray]:
    """Plausible ``head_scores`` statistics for ``scores [layer, head]``: an interval that widens with
    the score, a null at a tenth of it, p falling with the gap to the null, q by Benjamini-Hochberg."""
    width = 0.02 + 0.05 * np.abs(scores)
    null = 0.1 * scores
    p = np.minimum(1.0, np.exp(-40.0 * (scores - null)))
    as_tensor = torch.from_numpy
    return {
        "ci_low": scores - width, "ci_high": scores + width, "null_score": null,
        "null_percentile": null_percentiles(as_tensor(scores), as_tensor(null)).double().numpy(),
        "p_value": p, "q_value": benjamini_hochberg(as_tensor(p)).double().numpy(),
    }  # fmt: skip


def _reason(above_threshold: bool, labelled: bool) -> str:
    if labelled:
        return "labelled"
    return "within_null" if above_threshold else "below_threshold"


def _unit_statistics(
    name: str, scores: np.ndarray, labels: np.ndarray, null: np.ndarray, threshold: float
) -> dict[str, Any]:
    """A unit's ``statistics``; for a pattern class, its labels on three probe seeds: the third
    seed loses the weakest label (when there are two or more)."""
    cls = classifier_class(name) if name in classifier_names() else None
    found: dict[str, Any] = {
        "null": cls.null if cls else "fixture null", "alpha": ALPHA,
        "null_label_rate": 0.0, "null_fp_rate": float((null > threshold).mean()),
    }  # fmt: skip
    if cls is None or not issubclass(cls, PatternClassifier):
        return found
    heads = sorted(((int(layer), int(head)) for layer, head in np.argwhere(labels)), key=lambda h: -scores[h])
    by_seed = [set(heads), set(heads), set(heads[:-1] if len(heads) > 1 else heads)]
    return found | {
        "seeds": STABILITY_SEEDS, "labels_by_seed": [sorted([*h] for h in seed) for seed in by_seed],
        "seed_jaccard": round(mean_pairwise_jaccard(by_seed), 6),
    }  # fmt: skip


def add_validation(
    session: Session, unit_id: int, heads: list[list[int]], effect_top: float = 2.0,
    effect_random: list[float] | None = None, min_effect: float | None = 0.1, **fields: Any,
) -> None:  # fmt: skip
    """A top-k-versus-random ablation check of ``heads``: its rank, z-score and support follow from
    ``effect_top`` against the random draws (default ``DRAWS``); ``fields`` overrides any column."""
    draws = DRAWS if effect_random is None else effect_random
    mean, std = float(np.mean(draws)), float(np.std(draws, ddof=1))
    rank = 1 + sum(draw >= effect_top for draw in draws)
    session.add(Validation(**{
        "unit_id": unit_id, "method": "mean_ablation_top_k_vs_random", "metric": "second_repeat_loss", "k": 2,
        "heads": heads, "baseline": 1.0, "effect_top": effect_top, "effect_random": draws,
        "effect_random_mean": mean, "ratio": None, "rank": rank,
        "z_score": round((effect_top - mean) / std, 3) if std > 0 else None, "min_effect": min_effect,
        "supported": rank == 1 and effect_top >= (min_effect or 0.0), "details": {},
    } | fields))  # fmt: skip


def _zero_shot_validation(
    session: Session, unit_id: int, head: list[int], layer_added: int, **fields: Any
) -> None:
    """A function-vector unit's zero-shot check, its vector made from ``head``; ``fields`` overrides
    its columns."""
    per_task = {
        task: {"before": 0.0, "after": after, "random_after": [0.0, 0.1], "clean_accuracy": 0.9}
        for task, after in (("antonym", 0.5), ("country_capital", 0.25))
    }
    settings: dict[str, Any] = {
        "effect_top": 0.375, "effect_random": [0.0, 0.1] * 10, "min_effect": 0.05,
        "method": "function_vector_zero_shot", "metric": "zero_shot_accuracy", "k": 1, "baseline": 0.0,
        "details": {"layer_added": layer_added, "per_task": per_task},
    } | fields  # fmt: skip
    add_validation(session, unit_id, [head], **settings)


def add_document(session: Session, corpus: str, corpus_hash: str, title: str, text: str) -> Document:
    """A one-document corpus; the document has its id."""
    row = Corpus(name=corpus, hash=corpus_hash, description=f"{corpus}, made up")
    session.add(row)
    session.flush()
    document = Document(corpus_id=row.id, doc_index=0, title=title, text=text)
    session.add(document)
    session.flush()
    return document


def _word_spans(text: str) -> list[list[int]]:
    """[[start, end], ...] of each space-separated word of ``text``."""
    spans, at = [], 0
    for word in text.split(" "):
        spans.append([at, at + len(word)])
        at += len(word) + 1
    return spans


def _add_lens(session: Session, model: Model, run: Run) -> None:
    """A logit-lens unit that agrees more with the output at every layer."""
    unit = add_unit(session, model.id, run.id, "layer_summary", "logit_lens")
    layers = model.n_layers
    session.add_all(
        LogitLens(
            unit_id=unit.id,
            layer=layer,
            kl_to_final=0.5 * (layers - 1 - layer),
            top1_agreement=(layer + 1) / layers,
            entropy=2.0 + layer,
        )
        for layer in range(layers)
    )


def _neuron_unit(
    session: Session, model: Model, run: Run, document: Document, token_ids: list[int], context: int,
    **fields: Any,
) -> Unit:  # fmt: skip
    """A neuron unit (``context`` tokens either side of an example) with its tokenized document;
    ``fields`` overrides the unit's columns (version, statistics)."""
    unit = add_unit(
        session, model.id, run.id, "neuron_summary", "neurons",
        config={"context_before": context, "context_after": context, "top_k": 20}, **fields,
    )  # fmt: skip
    spans = _word_spans(document.text)[: len(token_ids)]
    session.add(
        TokenizedDocument(unit_id=unit.id, document_id=document.id, token_ids=token_ids, offsets=spans)
    )
    return unit


def build_fixture(engine: Engine) -> None:
    """Fill an empty, migrated database with the hand-made fixture."""
    with session_factory(engine).begin() as session:
        document = add_document(session, "fixture-corpus", "c" * 64, "pets", TEXT)
        for name, (layers, heads, planted) in MODELS.items():
            families = FAMILIES_V2 if name == "fixture-a" else FAMILIES
            model, run = model_with_run(session, name, layers, heads, d_mlp=len(families))
            for classifier, scored in planted.items():
                unit = add_unit(
                    session,
                    model.id,
                    run.id,
                    "head_classifier",
                    classifier,
                    classifier_class(classifier).default_config.threshold,
                )
                scores = np.full((layers, heads), 0.05)
                for (layer, head), score in scored.items():
                    scores[layer, head] = score
                add_head_scores(
                    session, unit, scores, [[{"target_mass": s} for s in row] for row in scores.tolist()]
                )
                if classifier == "induction":
                    effect_top, min_effect = INDUCTION_CHECKS[name]
                    add_validation(session, unit.id, [list(h) for h in scored], effect_top, None, min_effect)
            _add_lens(session, model, run)
            session.add_all(Token(model_id=model.id, token_id=i, text=f"t{i}") for i in range(10))
            if name == "fixture-a":
                unit = _neuron_unit(
                    session, model, run, document, [0, 1, 2, 3, 4], 1, version=2,
                    statistics=intervention_statistics(CHECKED),
                )  # fmt: skip
                _neurons_v2(session, unit, document)
            else:
                _neurons_v1(
                    session, _neuron_unit(session, model, run, document, [0, 1, 2, 3, 4], 1), document
                )


def _neurons_v1(session: Session, unit: Unit, document: Document) -> None:
    """Two layers of one neuron per version-1 family, stored as before migration 0009: the new
    columns NULL and one (positive) example list each."""
    for layer in range(2):
        for n, family in enumerate(FAMILIES):
            top = float(n + layer)
            session.add(
                fixture_neuron(
                    unit.id, layer, n, max=top, family=family, frac_active=0.0 if family == "dead" else 0.4
                )
            )
            acts = np.array([[0.1, top, 0.2], [np.nan, 0.5, 0.1]], dtype=np.float16)
            session.add(NeuronExample(
                unit_id=unit.id, layer=layer, neuron=n, context_acts=acts.tobytes(),
                examples=[[document.id, 1, 1, top], [document.id, 0, 0, 0.5]],
            ))  # fmt: skip


def _neurons_v2(session: Session, unit: Unit, document: Document) -> None:
    """Two layers of one neuron per version-2 family. Neuron n's largest activation is n + layer,
    and its typical top activation grows with n as well, but the first_position neuron's largest
    activation (60 + layer, at a window's first position) is by far the largest while its typical
    top is the smallest: ranked by typical top it comes last, by max it would come first (and its
    layer-0 twin, whose max is smaller but typical top larger, ranks before it in its family).
    Neurons 3 and 5 fire mainly negative. Each neuron has its positive and negative example lists
    (first positions left out); the first_position neuron its first-position list too."""
    for layer in range(2):
        for n, family in enumerate(FAMILIES_V2):
            first = family == "first_position"
            sign = -1 if n in (3, 5) else 1
            top = 60.0 + layer if first else float(n + layer)  # the largest activation, anywhere
            positive = 0.6 if first else top  # the largest away from first positions
            bottom = top + 0.5 if sign < 0 else 0.5 * positive  # the most negative, as |activation|
            typical = 0.5 - 0.1 * layer if first else 0.75 * (bottom if sign < 0 else positive)
            candidate = n == 1
            session.add(fixture_neuron(
                unit.id, layer, n, max=top, min=-bottom, family=family, sign=sign, typical_top=typical,
                frac_active=0.0 if family == "dead" else 0.4, frac_negative=0.0 if family == "dead" else 0.3,
                first_max_abs=top if first else 0.5, direction_norm=1.0,
                token_id=1 if candidate else None, token_mean=0.9 * typical if candidate else None,
                token_count=12 if candidate else 0, matched_mean=0.1 if candidate else None,
                check_overlap=CHECKED.get((layer, n)),
                top_tokens=[[t, round(2.0 - 0.1 * t, 2)] for t in range(10)], bottom_tokens=[[0, -2.0]],
            ))  # fmt: skip
            lists = {
                "positive": ([[document.id, 1, 1, positive], [document.id, 4, 4, 0.4]],
                             [[0.1, positive, 0.2], [0.2, 0.4, np.nan]]),
                "negative": ([[document.id, 2, 2, -bottom], [document.id, 3, 3, -0.5 * bottom]],
                             [[0.1, -bottom, -0.2], [-0.2, -0.5 * bottom, 0.1]]),
            }  # fmt: skip
            if first:
                lists["first"] = ([[document.id, 0, 0, top]], [[np.nan, top, 0.1]])
            for tail, (examples, acts) in lists.items():
                session.add(NeuronExample(
                    unit_id=unit.id, layer=layer, neuron=n, tail=tail, examples=examples,
                    context_acts=np.array(acts, dtype=np.float16).tobytes(),
                ))  # fmt: skip


def _scored_unit(
    session: Session, model: Model, run: Run, name: str, threshold: float,
    evidence: dict[tuple[int, int], dict[str, Any]], statistics: bool = True,
) -> Unit:  # fmt: skip
    """A head-classifier unit whose listed heads score 0.6 (labelled) with their evidence; the rest
    score 0.0 with ``evidence[(-1, -1)]``."""
    unit = add_unit(session, model.id, run.id, "head_classifier", name, threshold)
    scores = np.zeros((model.n_layers, model.n_heads))
    for layer, head in evidence:
        if layer >= 0:
            scores[layer, head] = 0.6
    add_head_scores(session, unit, scores, [
        [evidence.get((layer, head), evidence[(-1, -1)]) for head in range(model.n_heads)]
        for layer in range(model.n_layers)
    ], statistics)  # fmt: skip
    return unit


def add_beyond_units(engine: Engine) -> None:
    """fixture-b gets a backup-induction, a function-vector (with its zero-shot validation) and a
    successor unit, as the survey stores them; the function-vector unit and its validation are as
    stored before migration 0008 (no statistics, a ratio instead of a rank)."""
    with session_factory(engine).begin() as session:
        model = session.scalars(select(Model).where(Model.name == "fixture-b")).one()
        run = session.scalars(select(Run).where(Run.model_id == model.id)).first()
        assert run is not None
        ablated = {"induction_heads_ablated": [[2, 0], [4, 1]], "compensation": 0.0}
        compensated = {(5, 1): {**ablated, "compensation": 0.3}, (-1, -1): ablated}
        _scored_unit(session, model, run, "backup_induction", 0.05, compensated)
        fv = _scored_unit(
            session, model, run, "function_vector", 0.01, {(3, 0): CIE, (-1, -1): {"per_task_cie": {}}}, False
        )
        legacy = {
            "effect_random": [0.0, 0.1],
            "ratio": 7.5,
            "rank": None,
            "z_score": None,
            "min_effect": None,
        }
        _zero_shot_validation(session, fv.id, [3, 0], 2, **legacy, supported=True)
        _scored_unit(session, model, run, "successor", 0.5, {(1, 1): SUCCESSOR, (-1, -1): {"per_task": {}}})


@dataclass(frozen=True)
class ScaleModel:
    """One model of :func:`build_at_scale`: its shape, and its neuron summary (neurons per layer,
    examples per tail)."""

    name: str
    layers: int
    heads: int
    neurons: int
    examples: int


def build_synthetic(
    engine: Engine, models: int = 2, layers: int = 4, heads: int = 4, neurons: int = 8, examples: int = 3,
    seed: int = 0,
) -> None:  # fmt: skip
    """Fill an empty, migrated database with ``models`` random ones of ``layers`` x ``heads``,
    ``neurons`` summarised per layer with ``examples`` examples each, over one 400-word document."""
    rng = np.random.default_rng(seed)
    words = [str(w) for w in rng.choice(WORDS, 400)]
    with session_factory(engine).begin() as session:
        document = add_document(session, "synthetic", "s" * 64, "synthetic document", " ".join(words))
        for m in range(models):
            model, run = _synthetic_model(
                session, rng, m, ScaleModel(f"synthetic-{m:02d}", layers, heads, neurons, examples)
            )
            _synthetic_neurons(session, rng, model, run, document, [WORDS.index(w) for w in words], examples)


def _synthetic_model(
    session: Session, rng: np.random.Generator, index: int, shape: ScaleModel
) -> tuple[Model, Run]:
    """A synthetic model of ``shape`` with its run, vocabulary, every head classifier scored at
    random (evidence and a validation) and a logit lens; its neurons are the caller's."""
    model, run = model_with_run(
        session, shape.name, shape.layers, shape.heads, family="synthetic", architecture="llama",
        resolved_sha=f"{index:064d}", d_model=64 * shape.heads, d_head=64, d_mlp=shape.neurons,
        d_vocab=len(WORDS), n_params=10**8,
    )  # fmt: skip
    insert_rows(
        session, Token, [{"model_id": model.id, "token_id": i, "text": w} for i, w in enumerate(WORDS)]
    )
    patterns = {probe: _pattern(rng, probe) for probe in ("natural_text", "repeated_random")}
    for name in classifier_names():
        _random_head_unit(session, rng, model, run, name, patterns)
    _add_lens(session, model, run)
    return model, run


def _random_head_unit(
    session: Session, rng: np.random.Generator, model: Model, run: Run, name: str,
    patterns: dict[str, dict[str, Any]], **fields: Any,
) -> Unit:  # fmt: skip
    """A unit of classifier ``name`` with random scores, evidence shaped like the real one's and a
    validation (a zero-shot check for function vectors); ``fields`` overrides the unit's columns."""
    layers, heads = model.n_layers, model.n_heads
    unit = add_unit(
        session, model.id, run.id, "head_classifier", name, classifier_class(name).default_config.threshold,
        **fields,
    )  # fmt: skip
    scores = rng.beta(0.5, 4.0, (layers, heads))
    shared = _evidence(name, patterns, rng)
    add_head_scores(session, unit, scores, [[{"score": s, **shared} for s in row] for row in scores.tolist()])
    draws = [round(float(d), 4) for d in rng.gamma(2.0, 0.05, len(DRAWS))]
    effect_top = round(float(max(draws) * rng.uniform(0.7, 3.0)), 4)
    if name == "function_vector":
        _zero_shot_validation(
            session, unit.id, [0, 0], layers // 2, effect_top=effect_top, effect_random=draws
        )
    else:
        add_validation(session, unit.id, [[0, 0], [layers - 1, heads - 1]], effect_top, draws)
    return unit


def _evidence(name: str, patterns: dict[str, dict[str, Any]], rng: np.random.Generator) -> dict[str, Any]:
    """Evidence shaped like the real classifiers': an example pattern for the pattern classifiers
    (those of one probe share it), that of the later classifiers, measures and OV tokens for the
    name-mover family."""
    config = classifier_class(name).default_config
    if isinstance(config, ClassifierConfig):
        return {"bos_mass": 0.5, "self_mass": 0.1, "n_queries": 500, "pattern": patterns[config.probe.kind]}
    later: dict[str, dict[str, Any]] = {
        "backup_induction": {"induction_heads_ablated": [[0, 0]], "compensation": 0.3},
        "function_vector": CIE,
        "successor": SUCCESSOR,
    }
    if name in later:
        return later[name]
    ov = [{"input": i, "top": [int(t) for t in rng.integers(0, len(WORDS), 5)]} for i in range(3)]
    return {"dla": 0.1, "ld": 3.0, "attention_end_io": 0.4, "copy_score": 0.5, "ov_top_tokens": ov}


def _pattern(rng: np.random.Generator, probe: str, n: int = 17) -> dict[str, Any]:
    """A causal attention pattern over ``n`` random tokens of ``probe``."""
    return {
        "probe": probe,
        "positions": list(range(n)),
        "token_ids": [int(i) for i in rng.integers(0, len(WORDS), n)],
        "weights": [[round(float(w), 3) for w in rng.dirichlet(np.ones(q + 1))] for q in range(n)],
    }


def _synthetic_neurons(
    session: Session, rng: np.random.Generator, model: Model, run: Run, document: Document,
    token_ids: list[int], examples: int, context: int = 7,
) -> None:  # fmt: skip
    """A version-2 unit: ``model.d_mlp`` neurons a layer, families in turn, each with random
    statistics, a positive and a negative example list with context (first_position neurons a
    first-position list too); neuron 1 of each layer is checked by intervention."""
    unit = _neuron_unit(session, model, run, document, token_ids, context, version=2)
    rows, tops, checked = [], [], {}
    for layer in range(model.n_layers):
        for n in range(model.d_mlp):
            family = FAMILIES_V2[n % len(FAMILIES_V2)]
            high, low = float(rng.gamma(2.0)), -float(rng.gamma(1.5))
            sign = 1 if high >= -low else -1
            typical = 0.6 * (high if sign > 0 else -low)
            first = 10.0 * typical if family == "first_position" else 0.5 * typical
            if n == 1:
                checked[(layer, n)] = int(rng.integers(0, 11))
            live = family != "dead"
            rows.append(NEURON_STATS | {
                "unit_id": unit.id, "layer": layer, "neuron": n, "max": max(high, first), "min": low,
                "frac_active": 0.3 if live else 0.0, "frac_negative": 0.2 if live else 0.0,
                "hist_low": -5.0, "hist_high": 5.0, "family": family, "sign": sign, "typical_top": typical,
                "first_max_abs": first, "direction_norm": 1.0, "token_id": None, "token_mean": None,
                "token_count": 0, "matched_mean": None, "check_overlap": checked.get((layer, n)),
                "histogram": [int(c) for c in rng.integers(0, 1000, 32)],
                "top_tokens": [[i, 1.0] for i in range(10)],
                "bottom_tokens": [[i, -1.0] for i in range(10, 20)],
            })  # fmt: skip
            tails = {"positive": high, "negative": low}
            if family == "first_position":
                tails["first"] = first
            for tail, extreme in tails.items():
                at = rng.integers(context, len(token_ids) - context, examples)
                acts = rng.random((examples, 2 * context + 1)) * (-1.0 if tail == "negative" else 1.0)
                tops.append({
                    "unit_id": unit.id, "layer": layer, "neuron": n, "tail": tail,
                    "examples": [[document.id, int(p), token_ids[p], extreme * (examples - i) / examples]
                                 for i, p in enumerate(at)],
                    "context_acts": acts.astype("<f2").tobytes(),
                })  # fmt: skip
    insert_rows(session, Neuron, rows)
    insert_rows(session, NeuronExample, tops)
    unit.statistics = intervention_statistics(checked)


NEURON_COLUMNS = (
    "unit_id", "layer", "neuron", "mean", "std", "skew", "kurtosis", "max", "min", "frac_active",
    "frac_negative", "hist_low", "hist_high", "histogram", "sign", "typical_top", "first_max_abs",
    "w_in_norm", "w_out_norm", "direction_norm", "vocab_mean", "vocab_var", "vocab_skew", "vocab_kurtosis",
    "top_tokens", "bottom_tokens", "top_token_share", "token_count", "check_overlap", "family",
)  # fmt: skip
HISTOGRAMS = 512  # distinct random histograms the neurons of a scaled database draw from


def build_at_scale(path: Path, models: list[ScaleModel], seed: int = 0) -> None:
    """A new, migrated SQLite database at ``path`` holding ``models`` as :func:`build_synthetic`
    writes them (random scores, evidence and a validation for every classifier, a logit lens, a
    version-2 neuron unit with both tails), but fast enough for a nightly-sized database: one
    transaction with the journal and syncing off, and the neuron rows drawn a layer at a time and
    written with sqlite3's ``executemany``."""
    open_database(f"sqlite:///{path}").dispose()
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA journal_mode = OFF")
    raw.execute("PRAGMA synchronous = OFF")
    engine = create_engine("sqlite://", creator=lambda: raw, poolclass=StaticPool)
    rng = np.random.default_rng(seed)
    words = [str(w) for w in rng.choice(WORDS, 400)]
    token_ids = [WORDS.index(w) for w in words]
    try:
        with session_factory(engine).begin() as session:
            document = add_document(session, "synthetic", "s" * 64, "synthetic document", " ".join(words))
            for m, shape in enumerate(models):
                model, run = _synthetic_model(session, rng, m, shape)
                unit = _neuron_unit(session, model, run, document, token_ids, 7, version=2)
                checked = _bulk_neurons(raw, rng, unit.id, shape, document.id, token_ids, 7)
                unit.statistics = intervention_statistics(checked)
        raw.execute("PRAGMA journal_mode = WAL")
    finally:
        engine.dispose()
        raw.close()


def _bulk_neurons(
    raw: sqlite3.Connection, rng: np.random.Generator, unit_id: int, shape: ScaleModel, document_id: int,
    token_ids: list[int], context: int,
) -> dict[tuple[int, int], int]:  # fmt: skip
    """The neurons and example lists of :func:`_synthetic_neurons`, drawn a layer at a time; returns
    the intervention check's overlaps (neuron 1 of each layer)."""
    n, k, width = shape.neurons, shape.examples, 2 * context + 1
    family = [FAMILIES_V2[i % len(FAMILIES_V2)] for i in range(n)]
    first_family = np.array([f == "first_position" for f in family])
    live = np.array([f != "dead" for f in family])
    histograms = [json.dumps(rng.integers(0, 1000, 32).tolist()) for _ in range(HISTOGRAMS)]
    top, bottom = json.dumps([[i, 1.0] for i in range(10)]), json.dumps([[i, -1.0] for i in range(10, 20)])
    insert = (
        f"INSERT INTO neurons ({', '.join(NEURON_COLUMNS)}) VALUES ({', '.join('?' * len(NEURON_COLUMNS))})"
    )
    checked: dict[tuple[int, int], int] = {}
    for layer in range(shape.layers):
        high, low = rng.gamma(2.0, size=n), -rng.gamma(1.5, size=n)
        sign = np.where(high >= -low, 1, -1)
        typical = 0.6 * np.where(sign > 0, high, -low)
        first = np.where(first_family, 10.0 * typical, 0.5 * typical)
        if n > 1:
            checked[(layer, 1)] = int(rng.integers(0, 11))
        hist = [histograms[p] for p in rng.integers(0, HISTOGRAMS, n).tolist()]
        drawn = zip(np.maximum(high, first).tolist(), low.tolist(), (0.3 * live).tolist(), sign.tolist(),
                    typical.tolist(), first.tolist(), hist, family, strict=True)  # fmt: skip
        raw.executemany(insert, (
            (unit_id, layer, i, 0.1, 1.0, 0.0, 3.0, peak, lo, active, 2 * active / 3, -5.0, 5.0, histogram, s,
             t, f, 1.0, 1.0, 1.0, 0.0, 0.01, 1.0, 12.0, top, bottom, 0.5, 0, checked.get((layer, i)), fam)
            for i, (peak, lo, active, s, t, f, histogram, fam) in enumerate(drawn)
        ))  # fmt: skip
        for tail, extreme, which in (
            ("positive", high, np.arange(n)), ("negative", low, np.arange(n)),
            ("first", first, np.flatnonzero(first_family)),
        ):  # fmt: skip
            at = rng.integers(context, len(token_ids) - context, (len(which), k)).tolist()
            acts = (rng.random((len(which), k * width)) * (-1.0 if tail == "negative" else 1.0)).astype("<f2")
            values = (extreme[which, None] * (k - np.arange(k)) / k).tolist()
            raw.executemany(
                "INSERT INTO neuron_examples (unit_id, layer, neuron, tail, examples, context_acts) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    (unit_id, layer, i, tail, json.dumps(
                        [[document_id, p, token_ids[p], v] for p, v in zip(at[j], values[j], strict=True)]
                    ), acts[j].tobytes())
                    for j, i in enumerate(which.tolist())
                ),
            )  # fmt: skip
    return checked


def add_rescored_unit(engine: Engine, model: str, classifier: str, seed: int = 1) -> int:
    """Give ``model`` a new unit of ``classifier`` with fresh random scores, evidence and
    validation (a new definition hash, so it is the model's newest): the one-model change an
    incremental site build must pick up. Returns the unit's id."""
    rng = np.random.default_rng(seed)
    patterns = {probe: _pattern(rng, probe) for probe in ("natural_text", "repeated_random")}
    with session_factory(engine).begin() as session:
        row = session.scalars(select(Model).where(Model.name == model)).one()
        run = session.scalars(select(Run).where(Run.model_id == row.id)).first()
        if run is None:
            raise ValueError(f"model {model!r} has no run")
        return _random_head_unit(
            session, rng, row, run, classifier, patterns, definition_hash=f"{seed:064x}"
        ).id


class _Parser(argparse.ArgumentParser):
    """Bad arguments fail with one line, not the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> None:
    """Write a synthetic survey database to a new SQLite file."""
    parser = _Parser(prog="python -m db.fixtures", description=main.__doc__)
    parser.add_argument("out", type=Path, help="the SQLite file to create")
    for name, default in (("models", 2), ("layers", 4), ("heads", 4), ("neurons", 8), ("examples", 3)):
        parser.add_argument(f"--{name}", type=_count, default=default, metavar="N", help=f"default {default}")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="default 0")
    args = parser.parse_args(argv)
    if args.out.exists():
        parser.error(f"{args.out} exists; name a new file")
    try:
        engine = open_database(f"sqlite:///{args.out}")
    except SurveyError as exc:
        parser.error(str(exc))
    build_synthetic(engine, args.models, args.layers, args.heads, args.neurons, args.examples, args.seed)
    engine.dispose()
    print(f"wrote {args.out}: {args.models} synthetic models of {args.layers} x {args.heads} heads")


if __name__ == "__main__":
    main()
