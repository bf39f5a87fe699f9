"""A tiny, hand-made survey database for the researcher-access tests and examples (in the
spirit of datasette's fixtures.py): two models, the four v1 classifiers, an induction
validation, and a neuron unit with every family, examples and the documents they point at."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from db.engine import session_factory
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

NOW = datetime(2026, 11, 25, tzinfo=UTC)
THRESHOLDS = {"previous_token": 0.4, "duplicate_token": 0.3, "induction": 0.4, "attention_sink": 0.3}
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
FAMILIES = ["dead", "token", "prediction", "suppression", "partition", None]
TEXT = "The cat sat on the mat. The dog sat on the log."


NEURON_STATS = {
    "mean": 0.1, "std": 1.0, "skew": 0.0, "kurtosis": 3.0, "hist_low": -1.0, "hist_high": 1.0,
    "histogram": [1, 2, 3], "w_in_norm": 1.0, "w_out_norm": 1.0, "vocab_mean": 0.0, "vocab_var": 0.01,
    "vocab_skew": 1.0, "vocab_kurtosis": 12.0, "top_tokens": [[1, 2.0]], "bottom_tokens": [[2, -2.0]],
    "top_token_share": 0.5,
}  # fmt: skip


def fixture_neuron(unit_id: int, layer: int, neuron: int, **fields: object) -> Neuron:
    """A neuron row with plain statistics; ``fields`` sets max, family and anything else."""
    return Neuron(unit_id=unit_id, layer=layer, neuron=neuron, **(NEURON_STATS | fields))


def _model(name: str, layers: int, heads: int) -> Model:
    return Model(
        name=name,
        source="local",
        location=f"/fixtures/{name}",
        revision=None,
        resolved_sha=name * 4,
        family="fixture",
        architecture="gpt2",
        n_layers=layers,
        n_heads=heads,
        n_kv_heads=heads,
        d_model=16,
        d_head=4,
        d_mlp=6,
        d_vocab=8,
        n_params=1000,
        parallel_attn_mlp=False,
        quantization=None,
        bos_token="<s>",
        license="mit",
        created_at=NOW,
    )


def model_with_run(session: Session, name: str, layers: int, heads: int) -> tuple[Model, Run]:
    """Insert a fixture model and one finished run of it; both have their ids."""
    model = _model(name, layers, heads)
    session.add(model)
    session.flush()
    run = Run(
        model_id=model.id, code_version="fixture", config={}, device="cpu", dtype="float32", started_at=NOW,
        ended_at=NOW, status="done",
    )  # fmt: skip
    session.add(run)
    session.flush()
    return model, run


def _unit(model: Model, run: Run, kind: str, name: str, threshold: float | None) -> Unit:
    return Unit(
        model_id=model.id,
        run_id=run.id,
        kind=kind,
        name=name,
        version=1,
        config={"threshold": threshold},
        threshold=threshold,
        dataset_hash="f" * 64,
        dataset={"kind": "fixture"},
        created_at=NOW,
    )


def build_fixture(engine: Engine) -> None:
    """Fill an empty, migrated database."""
    with session_factory(engine).begin() as session:
        corpus = Corpus(name="fixture-corpus", hash="c" * 64, description="two sentences")
        session.add(corpus)
        session.flush()
        document = Document(corpus_id=corpus.id, doc_index=0, title="pets", text=TEXT)
        session.add(document)
        session.flush()
        words = [(i, i + len(w)) for i, w in ((TEXT.index(w), w) for w in ["The", "cat", "sat", "on", "the"])]
        for name, (layers, heads, scores) in MODELS.items():
            model, run = model_with_run(session, name, layers, heads)
            for classifier, planted in scores.items():
                unit = _unit(model, run, "head_classifier", classifier, THRESHOLDS[classifier])
                session.add(unit)
                session.flush()
                grid = [
                    ((layer, head), planted.get((layer, head), 0.05))
                    for layer in range(layers)
                    for head in range(heads)
                ]
                order = sorted(grid, key=lambda item: -item[1])
                for (layer, head), score in grid:
                    rank = order.index(((layer, head), score)) + 1
                    session.add(
                        HeadScore(
                            unit_id=unit.id,
                            layer=layer,
                            head=head,
                            score=score,
                            label=score > THRESHOLDS[classifier],
                            rank=rank,
                            percentile=100.0 * (len(grid) - rank + 1) / len(grid),
                            evidence={"target_mass": score},
                        )
                    )
                if classifier == "induction":
                    session.add(
                        Validation(
                            unit_id=unit.id,
                            method="mean_ablation_top_k_vs_random",
                            metric="second_repeat_loss",
                            k=2,
                            heads=[list(h) for h in planted],
                            baseline=1.0,
                            effect_top=2.0,
                            effect_random=[0.1, 0.2],
                            effect_random_mean=0.15,
                            ratio=13.3,
                            supported=True,
                            details={},
                        )
                    )
            lens = _unit(model, run, "layer_summary", "logit_lens", None)
            session.add(lens)
            session.flush()
            session.add_all(
                LogitLens(
                    unit_id=lens.id,
                    layer=layer,
                    kl_to_final=0.5 * (layers - 1 - layer),
                    top1_agreement=(layer + 1) / layers,
                    entropy=2.0 + layer,
                )  # fmt: skip
                for layer in range(layers)
            )
            neurons = _unit(model, run, "neuron_summary", "neurons", None)
            neurons.config = {"context_before": 1, "context_after": 1}
            session.add(neurons)
            session.flush()
            session.add_all(Token(model_id=model.id, token_id=i, text=f"t{i}") for i in range(8))
            session.add(
                TokenizedDocument(
                    unit_id=neurons.id,
                    document_id=document.id,
                    token_ids=[0, 1, 2, 3, 4],
                    offsets=[list(w) for w in words],
                )
            )
            for layer in range(2):
                for n, family in enumerate(FAMILIES):
                    session.add(
                        fixture_neuron(
                            neurons.id, layer, n, max=float(n + layer), family=family,
                            frac_active=0.0 if family == "dead" else 0.4,
                        )
                    )  # fmt: skip
                    acts = np.array([[0.1, float(n + layer), 0.2], [np.nan, 0.5, 0.1]], dtype=np.float16)
                    session.add(
                        NeuronExample(
                            unit_id=neurons.id,
                            layer=layer,
                            neuron=n,
                            examples=[[document.id, 1, 1, float(n + layer)], [document.id, 0, 0, 0.5]],
                            context_acts=acts.tobytes(),
                        )
                    )


def _scored_unit(
    session: Session,
    model: Model,
    run: Run,
    name: str,
    threshold: float,
    evidence: dict[tuple[int, int], dict],
) -> Unit:  # type: ignore[type-arg]
    """A head-classifier unit whose listed heads score 0.6 (labelled) with their evidence; the rest
    score 0.0 with ``evidence[(-1, -1)]``."""
    unit = _unit(model, run, "head_classifier", name, threshold)
    session.add(unit)
    session.flush()
    heads = [(layer, head) for layer in range(model.n_layers) for head in range(model.n_heads)]
    for rank, (layer, head) in enumerate(sorted(heads, key=lambda h: h not in evidence), start=1):
        planted = (layer, head) in evidence
        session.add(HeadScore(
            unit_id=unit.id, layer=layer, head=head, score=0.6 if planted else 0.0, label=planted, rank=rank,
            percentile=100.0 * (len(heads) - rank + 1) / len(heads),
            evidence=evidence.get((layer, head), evidence[(-1, -1)]),
        ))  # fmt: skip
    return unit


def add_beyond_units(engine: Engine) -> None:
    """fixture-b gets a backup-induction, a function-vector (with its zero-shot validation) and a
    successor unit, as the survey stores them."""
    with session_factory(engine).begin() as session:
        model = session.scalars(select(Model).where(Model.name == "fixture-b")).one()
        run = session.scalars(select(Run).where(Run.model_id == model.id)).first()
        assert run is not None
        ablated = {"induction_heads_ablated": [[2, 0], [4, 1]], "compensation": 0.0}
        _scored_unit(
            session,
            model,
            run,
            "backup_induction",
            0.05,
            {(5, 1): {**ablated, "compensation": 0.3}, (-1, -1): ablated},
        )
        cie = {"per_task_cie": {"antonym": 0.2, "country_capital": 0.1}}
        fv = _scored_unit(
            session, model, run, "function_vector", 0.01, {(3, 0): cie, (-1, -1): {"per_task_cie": {}}}
        )
        per_task = {
            task: {"before": 0.0, "after": after, "random_after": [0.0, 0.1], "clean_accuracy": 0.9}
            for task, after in (("antonym", 0.5), ("country_capital", 0.25))
        }
        session.add(Validation(
            unit_id=fv.id, method="function_vector_zero_shot", metric="zero_shot_accuracy", k=1,
            heads=[[3, 0]], baseline=0.0, effect_top=0.375, effect_random=[0.0, 0.1], effect_random_mean=0.05,
            ratio=7.5, supported=True, details={"layer_added": 2, "per_task": per_task},
        ))  # fmt: skip
        example = {"task": "days", "input": "Monday", "top": "Tuesday", "successor": "Tuesday"}
        successor = {"per_task": {"days": 1.0, "months": 0.5}, "pairs": 17, "successor_examples": [example]}
        _scored_unit(session, model, run, "successor", 0.5, {(1, 1): successor, (-1, -1): {"per_task": {}}})
