"""Side by side with TransformerLens: both tools score previous-token, duplicate-token and induction
heads on the same model, weights and sequences, each in a fresh process.

The sequences are the survey's repeated-random probe for the model's tokenizer: 10 × [BOS] + r + r,
r 50 random tokens. The weights are the survey's (its GGUF loader, dequantized to fp32); the
TransformerLens process boots a ``TransformerBridge`` around the same Hugging Face model, and its
``to_tokens`` returns the probe's token ids for each sequence, so both read identical tokens.

- survey: one batched capture of the patterns on the probe and on its null ([BOS] + r + r'), the
  attended-token OV copy scores (one pass to block 0), then each class's score with its null;
- TransformerLens 4.3: ``detect_head(model, sequences, name)`` for the three names, one forward
  pass with a full activation cache per sequence per class, as documented.

Two ratios: scoring alone (model loaded), and process start to scores in memory (imports and the
model load included; both load the same cached weights). Validation is not part of either.

    pip install -e '.[bench]'   # TransformerLens 4.3, into its own environment
    python bench/vs_transformerlens.py [--model smollm2-135m-instruct] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

TL_NAMES = {
    "previous_token": "previous_token_head",
    "duplicate_token": "duplicate_token_head",
    "induction": "induction_head",
}


def _load(model: str) -> Any:
    from survey.catalog import load_catalog
    from survey.loading.loaders import load, resolve

    return load(resolve(model, load_catalog()))


def _probes(loaded: Any) -> tuple[Any, Any]:
    from classifiers.attention import REPEATED
    from classifiers.probes import generate

    def make(spec: Any) -> Any:
        return generate(spec, loaded.tokenizer, loaded.bos.token_id, loaded.adapter.dims.d_vocab)

    null = REPEATED.null()
    assert null is not None
    return make(REPEATED), make(null)


def survey_scores(loaded: Any, probe: Any, null_probe: Any) -> dict[str, Any]:
    """The survey's scores of the three classes on the probe, nulls and OV gate included."""
    from classifiers.attention import DuplicateToken, Induction, PreviousToken
    from survey.units.heads import captured_patterns
    from survey.units.induction import attended_copy

    patterns = captured_patterns(loaded, probe)
    null_patterns = captured_patterns(loaded, null_probe)
    copy = attended_copy(loaded.adapter, probe)
    return {
        "previous_token": PreviousToken().score(patterns, probe).scores,
        "duplicate_token": DuplicateToken().score(patterns, probe, null_patterns).scores,
        "induction": Induction().score(patterns, probe, null_patterns, copy).scores,
    }


def transformer_lens_scores(loaded: Any, probe: Any) -> dict[str, Any]:
    """TransformerLens's ``detect_head`` scores of the three classes on the probe's sequences."""
    import torch
    from transformer_lens.head_detector import detect_head
    from transformer_lens.model_bridge import TransformerBridge

    bridge = TransformerBridge.boot_transformers(
        "HuggingFaceTB/SmolLM2-135M", hf_model=loaded.model, tokenizer=loaded.tokenizer, device="cpu"
    )
    rows = {f"sequence {i}": probe.tokens[i : i + 1] for i in range(probe.tokens.shape[0])}

    def to_tokens(text: str | list[str], **_kwargs: Any) -> Any:
        """The probe's exact token ids for a sequence's name (or a list of names)."""
        return rows[text] if isinstance(text, str) else torch.cat([rows[t] for t in text])

    bridge.to_tokens = to_tokens
    return {ours: detect_head(bridge, list(rows), name) for ours, name in TL_NAMES.items()}


def child(tool: str, model: str, spawned: float) -> None:
    """One tool in this fresh process: print the time stamps and the scores as one JSON line."""
    import torch

    imported = time.time()
    loaded = _load(model)
    probe, null_probe = _probes(loaded)
    loaded_at = time.time()
    started = time.perf_counter()
    with torch.inference_mode():
        scores = (
            survey_scores(loaded, probe, null_probe)
            if tool == "survey"
            else transformer_lens_scores(loaded, probe)
        )
    scoring = time.perf_counter() - started
    ready = time.time()
    print(json.dumps({
        "tool": tool, "spawned": spawned, "imported": imported, "loaded": loaded_at, "ready": ready,
        "scoring_s": scoring, "threads": torch.get_num_threads(),
        "scores": {name: s.float().tolist() for name, s in scores.items()},
    }))  # fmt: skip


def run_child(tool: str, model: str) -> dict[str, Any]:
    spawned = time.time()
    out = subprocess.run(
        [sys.executable, __file__, "--child", tool, "--model", model, "--spawned", repr(spawned)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"{tool} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def correlation(a: list[list[float]], b: list[list[float]]) -> float:
    import torch

    x, y = torch.tensor(a).flatten(), torch.tensor(b).flatten()
    return float(torch.corrcoef(torch.stack([x, y]))[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per tool; medians reported")
    parser.add_argument("--child", choices=("survey", "transformer_lens"), help=argparse.SUPPRESS)
    parser.add_argument("--spawned", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.model, args.spawned)
        return
    runs: dict[str, list[dict[str, Any]]] = {"survey": [], "transformer_lens": []}
    for _ in range(args.repeats):
        for tool in runs:
            runs[tool].append(run_child(tool, args.model))
    threads = runs["survey"][0]["threads"]
    print(f"{args.model}, {threads} threads, {args.repeats} fresh processes per tool (medians)")
    print(f"{'tool':<18} {'import s':>9} {'load s':>8} {'scoring s':>10} {'process s':>10}")
    medians: dict[str, tuple[float, float]] = {}
    for tool, results in runs.items():
        imports = statistics.median(r["imported"] - r["spawned"] for r in results)
        loads = statistics.median(r["loaded"] - r["imported"] for r in results)
        scoring = statistics.median(r["scoring_s"] for r in results)
        whole = statistics.median(r["ready"] - r["spawned"] for r in results)
        medians[tool] = (scoring, whole)
        print(f"{tool:<18} {imports:9.1f} {loads:8.1f} {scoring:10.2f} {whole:10.1f}")
    (ours, ours_whole), (theirs, theirs_whole) = medians["survey"], medians["transformer_lens"]
    print(f"scoring: TransformerLens / survey = {theirs / ours:.1f}x")
    print(f"process start to scores in memory: TransformerLens / survey = {theirs_whole / ours_whole:.2f}x")
    for name in TL_NAMES:
        r = correlation(runs["survey"][0]["scores"][name], runs["transformer_lens"][0]["scores"][name])
        print(f"{name}: correlation of the two tools' head scores {r:.3f}")


if __name__ == "__main__":
    main()
