"""A surveyed model whose every string is hostile: the site must show these as text, never run
or render them. Token texts, a corpus document, its title, model metadata and a run error all
carry ``<script>``, ``|``, backticks, Markdown links, attribute lists and HTML event handlers."""

from __future__ import annotations

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from db.engine import session_factory
from db.fixtures import (
    NOW,
    add_document,
    add_head_scores,
    add_unit,
    fixture_neuron,
    intervention_statistics,
    model_with_run,
)
from db.schema import NeuronExample, Run, Token, TokenizedDocument

HOSTILE = [
    "<script>alert('token')</script>",
    "<img src=x onerror=alert('img')>",
    "| a | b |",
    "`tick`",
    "[x](javascript:alert('link'))",
    '{: onclick="alert(1)" }',
    "**bold** _em_ \\",
    "&amp; &#60;b&#62;",
]
MODEL_NAME = "evil<script>alert('model')</script>|`m`"
TEXT = " ".join(HOSTILE)


def add_hostile_model(engine: Engine) -> None:
    """Add the hostile model (2 layers × 2 heads, one induction unit, one neuron unit)."""
    with session_factory(engine).begin() as session:
        model, run = model_with_run(session, MODEL_NAME, 2, 2)
        model.family, model.license = "[x](javascript:alert('family'))", "<b onmouseover=alert(1)>mit</b>"
        model.quantization = "<script>alert('quant')</script>"
        session.add(
            Run(
                model_id=model.id,
                code_version="fixture",
                config={"classifiers": ["name_mover"], "skipped": {"s_inhibition": "too few names <b>"}},
                device="cpu",
                dtype="float32",
                started_at=NOW,
                ended_at=NOW,
                status="failed",
                error="<img src=x onerror=alert('error')> | `x`",
            )
        )
        session.add_all(Token(model_id=model.id, token_id=i, text=t) for i, t in enumerate(HOSTILE))
        unit = add_unit(session, model.id, run.id, "head_classifier", "induction", 0.6, dataset_hash="e" * 64)
        pattern = {"probe": "repeated_random", "positions": [0, 1, 2], "token_ids": [0, 1, 2],
                   "weights": [[1.0], [0.5, 0.5], [0.2, 0.3, 0.5]]}  # fmt: skip
        ov = [{"input": 3, "top": [4, 5, 6, 7]}]
        evidence = [[{"note": HOSTILE[2 * layer + head + 1], "pattern": pattern, "ov_top_tokens": ov}
                     for head in range(2)] for layer in range(2)]  # fmt: skip
        add_head_scores(session, unit, np.array([[1.0, 1 / 2], [1 / 3, 1 / 4]]), evidence)
        _hostile_neurons(session, model.id, run.id)


def _hostile_neurons(session: Session, model_id: int, run_id: int) -> None:
    """A version-2 neuron unit: one neuron whose token-test candidate, promoted tokens and examples of
    both tails (the negative one on ``HOSTILE[1]``) are hostile, in a document with a hostile title."""
    document = add_document(session, HOSTILE[0], "h" * 64, HOSTILE[4], TEXT)
    unit = add_unit(session, model_id, run_id, "neuron_summary", "neurons", version=2,
                    config={"context_before": 2, "context_after": 2, "top_k": 20}, dataset_hash="h" * 64,
                    statistics=intervention_statistics({(0, 0): 3}))  # fmt: skip
    offsets, at = [], 0
    for piece in HOSTILE:
        offsets.append([at, at + len(piece)])
        at += len(piece) + 1
    session.add(
        TokenizedDocument(
            unit_id=unit.id, document_id=document.id, token_ids=list(range(len(HOSTILE))), offsets=offsets
        )
    )
    session.add(
        fixture_neuron(
            unit.id, 0, 0, max=4.0, min=-3.0, frac_active=0.5, frac_negative=0.3, hist_high=4.0,
            histogram=[3, 2, 1], family="token", sign=1, typical_top=3.0, first_max_abs=0.5,
            direction_norm=1.0, token_id=5, token_mean=2.0, token_count=9, matched_mean=0.2, check_overlap=3,
            top_tokens=[[i, 1.0] for i in range(4)], bottom_tokens=[[i, -1.0] for i in range(4, 8)],
        )
    )  # fmt: skip
    positive = np.array([[0.5, 1.0, 4.0, 1.0, 0.5], [0.1, 0.2, 2.0, 0.2, 0.1]], dtype=np.float16)
    negative = np.array([[np.nan, 0.5, -3.0, -0.5, 0.2]], dtype=np.float16)
    session.add_all([
        NeuronExample(unit_id=unit.id, layer=0, neuron=0, tail="positive", context_acts=positive.tobytes(),
                      examples=[[document.id, 2, 2, 4.0], [document.id, 5, 5, 2.0]]),
        NeuronExample(unit_id=unit.id, layer=0, neuron=0, tail="negative", context_acts=negative.tobytes(),
                      examples=[[document.id, 1, 1, -3.0]]),
    ])  # fmt: skip
