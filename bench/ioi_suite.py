"""IOI suite time over bare forward-pass time, on the same IOI prompts and the same machine.

For each model: generate the IOI prompts for its tokenizer, then time (a) one bare forward pass
over every clean prompt, group by group as the suite batches them, and (b) the whole IOI suite
(measurement, the four classifiers, both validations). A warm-up of each comes first; the
median of ``--repeats`` rounds is reported.

    .venv/bin/python bench/ioi_suite.py [MODEL ...] [--repeats 1]

ratio = suite / one bare pass over the clean prompts. "full passes" counts the suite's passes over
every clean prompt: 2 for the clean measurements, one with the name movers ablated, one per name
mover alone and per random draw, and 2 + draws for the backups. Path patching comes on top: one
END-token pass per chunk of sender heads per prompt group.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from classifiers import parse_selection
from classifiers.ioi import IOIClassifier, IOISpec
from classifiers.ioi_prompts import IOIPrompts, generate_ioi
from classifiers.validation import AblationConfig
from survey.catalog import load_catalog
from survey.loading.loaders import LoadedModel, load, resolve
from survey.units.ioi import IOIOutcome, run_ioi

IOI_CLASSIFIERS = "name_mover,negative_name_mover,backup_name_mover,s_inhibition"


def bare_forward(loaded: LoadedModel, prompts: IOIPrompts) -> float:
    """Seconds for plain forward passes over every clean prompt, one batch per group."""
    started = time.perf_counter()
    with torch.inference_mode():
        for group in prompts.groups:
            loaded.model(input_ids=group.clean, use_cache=False)
    return time.perf_counter() - started


def suite(loaded: LoadedModel, prompts: IOIPrompts) -> tuple[float, IOIOutcome]:
    classifiers = [cls() for cls in parse_selection(IOI_CLASSIFIERS)]
    assert all(isinstance(c, IOIClassifier) for c in classifiers)
    started = time.perf_counter()
    outcome = run_ioi(loaded.adapter, prompts, classifiers, loaded.bos.token_id, AblationConfig())  # type: ignore[arg-type]
    return time.perf_counter() - started, outcome


def measure(name: str, repeats: int) -> dict[str, float]:
    loaded = load(resolve(name, load_catalog()))
    spec = IOISpec()
    prompts = generate_ioi(loaded.tokenizer, loaded.bos.token_id, spec.per_group, spec.seed)
    bare_forward(loaded, prompts)
    _, outcome = suite(loaded, prompts)
    bare, total = [], []
    for _ in range(repeats):
        bare.append(bare_forward(loaded, prompts))
        seconds, outcome = suite(loaded, prompts)
        total.append(seconds)
    return {
        "prompts": prompts.n_prompts,
        "bare": statistics.median(bare),
        "suite": statistics.median(total),
        "passes": outcome.forward_passes,
        "movers": len(outcome.measures.name_movers),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=["smollm2-135m-instruct"])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    print("| model | prompts | bare forward s | IOI suite s | ratio | full passes | name movers |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models:
        m = measure(name, args.repeats)
        print(
            f"| {name} | {m['prompts']:.0f} | {m['bare']:.2f} | {m['suite']:.1f} | "
            f"{m['suite'] / m['bare']:.1f} | {m['passes']:.0f} | {m['movers']:.0f} |"
        )


if __name__ == "__main__":
    main()
