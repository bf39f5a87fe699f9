"""Wiki build time and peak memory against the page count.

Generates synthetic survey databases (random scores for every head classifier, with evidence,
example patterns and a validation; a neuron unit with examples) sized to about 1k, 5k and 20k
pages, then runs ``survey site build`` on each in a fresh process and records wall time, the
render/mkdocs split and peak RSS. Linear scaling shows as a flat seconds-per-1000-pages column.

    .venv/bin/python bench/site_build.py [--sizes 1k,5k,20k] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from classifiers.base import ClassifierConfig
from classifiers.registry import classifier_class, classifier_names
from db.engine import open_database, session_factory
from db.schema import (
    Corpus,
    Document,
    HeadScore,
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

# pages ~ models * (1 + layers * (1 + heads)) + one per classifier + home + schema
SIZES = {"1k": (4, 12, 20), "5k": (8, 24, 25), "20k": (20, 32, 30)}
NOW = datetime(2026, 11, 26, tzinfo=UTC)
WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "i",
    "this",
]
CHILD = """
import json, resource, sys, time
from pathlib import Path
from survey.wiki.build import build_site
start = time.perf_counter()
report = build_site(sys.argv[1], Path(sys.argv[2]), lambda line: None)
print(json.dumps({"pages": report.pages, "render_s": report.render_s, "mkdocs_s": report.mkdocs_s,
                  "wall_s": time.perf_counter() - start,
                  "peak_rss_mb": max(resource.getrusage(who).ru_maxrss for who in
                                     (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024}))
"""


def fixture(url: str, n_models: int, n_layers: int, n_heads: int, seed: int = 0) -> None:
    """Fill an empty database with ``n_models`` synthetic models."""
    rng = np.random.default_rng(seed)
    engine = open_database(url)
    names = classifier_names()
    text = " ".join(rng.choice(WORDS, 400))
    spans, at = [], 0
    for word in text.split(" "):
        spans.append([at, at + len(word)])
        at += len(word) + 1
    with session_factory(engine).begin() as session:
        corpus = Corpus(name="bench", hash="b" * 64, description="synthetic")
        session.add(corpus)
        session.flush()
        document = Document(corpus_id=corpus.id, doc_index=0, title="bench document", text=text)
        session.add(document)
        session.flush()
        for m in range(n_models):
            model = Model(
                name=f"bench-model-{m:02d}",
                source="local",
                location="/bench",
                revision=None,
                resolved_sha=f"{m:064d}",
                family="bench",
                architecture="llama",
                n_layers=n_layers,
                n_heads=n_heads,
                n_kv_heads=n_heads,
                d_model=64 * n_heads,
                d_head=64,
                d_mlp=256,
                d_vocab=len(WORDS),
                n_params=10**8,
                parallel_attn_mlp=False,
                quantization=None,
                bos_token="<s>",
                license="mit",
                created_at=NOW,
            )
            session.add(model)
            session.flush()
            run = Run(
                model_id=model.id,
                code_version="bench",
                config={},
                device="cpu",
                dtype="float32",
                started_at=NOW,
                ended_at=NOW,
                status="done",
            )
            session.add(run)
            session.flush()
            insert_rows(
                session,
                Token,
                [{"model_id": model.id, "token_id": i, "text": w} for i, w in enumerate(WORDS)],
            )
            patterns = {kind: _pattern(rng, kind) for kind in ("natural_text", "repeated_random")}
            for name in names:
                threshold = classifier_class(name).default_config.threshold
                unit = Unit(model_id=model.id, run_id=run.id, kind="head_classifier", name=name, version=1,
                            config={"threshold": threshold}, threshold=threshold, dataset_hash="d" * 64,
                            dataset={"kind": "bench"}, created_at=NOW)  # fmt: skip
                session.add(unit)
                session.flush()
                scores = rng.beta(0.5, 4.0, (n_layers, n_heads))
                order = np.argsort(-scores.ravel())
                rank = np.empty_like(order)
                rank[order] = np.arange(1, order.size + 1)
                evidence = _evidence(name, patterns, rng)
                insert_rows(
                    session,
                    HeadScore,
                    [
                        {
                            "unit_id": unit.id,
                            "layer": layer,
                            "head": head,
                            "score": float(scores[layer, head]),
                            "label": bool(scores[layer, head] > threshold),
                            "rank": int(rank[layer * n_heads + head]),
                            "percentile": 100.0
                            * (order.size - rank[layer * n_heads + head] + 1)
                            / order.size,
                            "evidence": {"score": float(scores[layer, head]), **evidence},
                        }
                        for layer in range(n_layers)
                        for head in range(n_heads)
                    ],
                )
                session.add(
                    Validation(
                        unit_id=unit.id,
                        method="mean_ablation_top_k_vs_random",
                        metric="bench",
                        k=2,
                        heads=[[0, 0], [1, 1]],
                        baseline=1.0,
                        effect_top=2.0,
                        effect_random=[0.1],
                        effect_random_mean=0.1,
                        ratio=20.0,
                        supported=True,
                        details={},
                    )
                )
            _neurons(session, rng, model, run, document.id, spans, n_layers)


def _evidence(
    name: str, patterns: dict[str, dict[str, object]], rng: np.random.Generator
) -> dict[str, object]:
    """Evidence shaped like the real classifiers': an example pattern for the pattern
    classifiers (two share each probe), measures and OV tokens for the IOI ones."""
    config = classifier_class(name).default_config
    if isinstance(config, ClassifierConfig):
        return {"bos_mass": 0.5, "self_mass": 0.1, "n_queries": 500, "pattern": patterns[config.probe.kind]}
    ov = [{"input": int(i), "top": [int(t) for t in rng.integers(0, len(WORDS), 5)]} for i in range(3)]
    return {"dla": 0.1, "ld": 3.0, "attention_end_io": 0.4, "copy_score": 0.5, "ov_top_tokens": ov}


def _pattern(rng: np.random.Generator, probe: str, n: int = 17) -> dict[str, object]:
    weights = [list(np.round(rng.dirichlet(np.ones(q + 1)), 3)) for q in range(n)]
    return {
        "probe": probe,
        "positions": list(range(n)),
        "token_ids": [int(i) for i in rng.integers(0, len(WORDS), n)],
        "weights": [[float(w) for w in row] for row in weights],
    }


def _neurons(session, rng, model, run, document_id, spans, n_layers, per_layer: int = 30) -> None:  # type: ignore[no-untyped-def]
    unit = Unit(model_id=model.id, run_id=run.id, kind="neuron_summary", name="neurons", version=1,
                config={"context_before": 10, "context_after": 4}, threshold=None, dataset_hash="n" * 64,
                dataset={"kind": "bench"}, created_at=NOW)  # fmt: skip
    session.add(unit)
    session.flush()
    session.add(TokenizedDocument(unit_id=unit.id, document_id=document_id,
                                  token_ids=[0] * len(spans), offsets=spans))  # fmt: skip
    families = ["token", "prediction", "suppression", "partition", None]
    rows, examples = [], []
    for layer in range(n_layers):
        for n in range(per_layer):
            rows.append(
                {
                    "unit_id": unit.id,
                    "layer": layer,
                    "neuron": n,
                    "mean": 0.1,
                    "std": 1.0,
                    "skew": 0.5,
                    "kurtosis": 4.0,
                    "max": float(rng.gamma(2.0)),
                    "frac_active": 0.3,
                    "hist_low": -1.0,
                    "hist_high": 5.0,
                    "histogram": [int(c) for c in rng.integers(0, 1000, 32)],
                    "w_in_norm": 1.0,
                    "w_out_norm": 1.0,
                    "vocab_mean": 0.0,
                    "vocab_var": 0.01,
                    "vocab_skew": 0.2,
                    "vocab_kurtosis": 3.5,
                    "top_tokens": [[int(i), 1.0] for i in range(10)],
                    "bottom_tokens": [[int(i), -1.0] for i in range(10)],
                    "top_token_share": 0.2,
                    "family": families[n % len(families)],
                }
            )
            picks = rng.integers(20, len(spans) - 10, 5)
            examples.append(
                {
                    "unit_id": unit.id,
                    "layer": layer,
                    "neuron": n,
                    "examples": [[document_id, int(p), 0, float(5 - i)] for i, p in enumerate(picks)],
                    "context_acts": rng.random((5, 15)).astype("<f2").tobytes(),
                }
            )
    insert_rows(session, Neuron, rows)
    insert_rows(session, NeuronExample, examples)


def measure(url: str, out: Path) -> dict[str, float]:
    """Build the site in a fresh process; its timings and peak RSS."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, url, str(out)], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1k,5k,20k")
    args = parser.parse_args()
    print(
        f"{'size':>5} {'pages':>6} {'render s':>9} {'mkdocs s':>9} {'total s':>8} "
        f"{'s/1k pages':>11} {'peak MB':>8}"
    )
    for size in re.split(r"\s*,\s*", args.sizes):
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{folder}/bench.db"
            start = time.perf_counter()
            fixture(url, *SIZES[size])
            made = time.perf_counter() - start
            result = measure(url, Path(folder) / "site")
            print(
                f"{size:>5} {result['pages']:>6} {result['render_s']:>9.1f} {result['mkdocs_s']:>9.1f} "
                f"{result['wall_s']:>8.1f} {1000 * result['wall_s'] / result['pages']:>11.2f} "
                f"{result['peak_rss_mb']:>8.0f}   (fixture {made:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
