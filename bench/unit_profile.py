"""Where a model's survey time goes: each unit's time, forward passes and tokens, and its cost
against bare forward passes over as many tokens.

Plans every unit of the main job (`survey run --neurons`: every classifier, the logit lens, the
neuron pass, with the CLI's defaults) for one embedded model and computes them in turn, storing
nothing. A pre-hook on the first decoder layer counts every pass through the network (calls, and
tokens: batch × positions, so a cached last-token pass counts its rows). The bare cost per token is
the median of three plain forward passes of 8 × 128 tokens; a unit's ratio is its time over its
tokens at that cost (passes of other shapes cost differently per token, so the ratio is the work a
unit does beyond its tokens' forward passes, not a measured overhead of one pass).

    .venv/bin/python bench/unit_profile.py [--model smollm2-135m-instruct]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from classifiers import parse_selection
from db.common.neuron_config import NeuronConfig
from survey.catalog import load_catalog
from survey.loading.loaders import LoadedModel, load, resolve
from survey.units.base import RunConfig, Shared, compute_all, plan
from survey.units.registry import unit_kinds

BARE_SHAPE = (8, 128)


def bare_seconds_per_token(loaded: LoadedModel) -> float:
    """Median time per token of a plain forward pass (no hooks, no grad) of ``BARE_SHAPE``."""
    ids = torch.randint(0, loaded.tokenizer.vocab_size, BARE_SHAPE)
    times = []
    with torch.no_grad():
        loaded.model(input_ids=ids)  # warm up
        for _ in range(3):
            started = time.perf_counter()
            loaded.model(input_ids=ids)
            times.append(time.perf_counter() - started)
    return statistics.median(times) / ids.numel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    args = parser.parse_args()
    started = time.perf_counter()
    loaded = load(resolve(args.model, load_catalog()))
    print(f"{args.model}: loaded in {time.perf_counter() - started:.1f} s, {torch.get_num_threads()} threads")
    per_token = bare_seconds_per_token(loaded)
    print(f"bare forward: {1 / per_token:,.0f} tokens/s at {BARE_SHAPE[0]} x {BARE_SHAPE[1]}")
    shared = Shared()
    config = RunConfig(neurons=NeuronConfig())
    shared.pending = plan(
        loaded, unit_kinds(parse_selection(None), config), shared, on_skip=lambda n, r: None
    )
    print(f"{'unit':<28} {'s':>8} {'passes':>8} {'tokens':>11} {'bare s':>8} {'ratio':>7}")
    total, passes, tokens = 0.0, 0, 0
    for result in compute_all(loaded, shared.pending, shared, progress=lambda line: None):
        bare = result.tokens * per_token
        ratio = f"{result.seconds / bare:7.1f}" if bare else "      —"
        total, passes, tokens = total + result.seconds, passes + result.passes, tokens + result.tokens
        name = result.planned.unit.name
        print(
            f"{name:<28} {result.seconds:8.1f} {result.passes:8,} {result.tokens:11,} {bare:8.1f} {ratio}",
            flush=True,
        )
    print(f"{'all units':<28} {total:8.1f} {passes:8,} {tokens:11,} {tokens * per_token:8.1f}")


if __name__ == "__main__":
    main()
