"""Cost of the units beyond the classic circuits, over a bare forward pass of what each reads.

For each model and unit, the baseline is one plain forward pass over the unit's own inputs on the
same machine: the logit lens's 8 corpus windows; the successor's ordinal tokens (each after BOS);
every clean few-shot prompt of the function-vector tasks; the induction probe for backups.

    .venv/bin/python bench/beyond_units.py [MODEL ...]

ratio = unit seconds / bare seconds. The function-vector unit's passes are dominated by one
last-token pass per 128 heads per shuffled prompt; backups by a dozen probe passes.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from classifiers.attention import REPEATED
from classifiers.backup import BackupInduction
from classifiers.function_vector import FunctionVectorHead
from classifiers.icl_prompts import generate_icl
from classifiers.ordinal import OrdinalSpec, generate_ordinal
from classifiers.probes import generate
from classifiers.validation import AblationConfig
from survey.catalog import load_catalog
from survey.loading.loaders import LoadedModel, load, resolve
from survey.units.backup import measure_backups
from survey.units.function_vectors import measure_function_vectors
from survey.units.logit_lens import LensConfig, plan_lens, run_lens
from survey.units.successor import successor_measures


def seconds(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def forward_each(loaded: LoadedModel, sequences: list[list[int]]) -> Callable[[], None]:
    """Plain forward passes, one sequence at a time (as the unit reads them)."""

    def run() -> None:
        with torch.inference_mode():
            for ids in sequences:
                loaded.model(input_ids=torch.tensor([ids]), use_cache=False)

    return run


def measure(loaded: LoadedModel) -> list[tuple[str, float, float]]:
    bos, quiet = loaded.bos.token_id, (lambda _line: None)
    rows = []
    lens = plan_lens(loaded, LensConfig())
    windows = loaded.bos.prepend(lens.windows.tokens).tolist()
    rows.append(
        ("logit_lens", seconds(lambda: run_lens(loaded, lens, quiet)), seconds(forward_each(loaded, windows)))
    )
    tasks = generate_ordinal(loaded.tokenizer, OrdinalSpec())
    singles = [[bos, t] if bos is not None else [t] for task in tasks.tasks for t in task.token_ids]
    rows.append((
        "successor", seconds(lambda: successor_measures(loaded.adapter, tasks)),
        seconds(forward_each(loaded, singles)),
    ))  # fmt: skip
    icl = generate_icl(loaded.tokenizer, bos, FunctionVectorHead.default_config.dataset)
    clean = [p.ids for task in icl.tasks for p in task.clean]
    config = FunctionVectorHead.default_config
    rows.append((
        "function_vector",
        seconds(lambda: measure_function_vectors(loaded.adapter, icl, config, AblationConfig(), quiet)),
        seconds(forward_each(loaded, clean)),
    ))  # fmt: skip
    probe = generate(REPEATED, loaded.tokenizer, bos, loaded.adapter.dims.d_vocab)
    null_spec = REPEATED.null()
    assert null_spec is not None
    null_probe = generate(null_spec, loaded.tokenizer, bos, loaded.adapter.dims.d_vocab)
    backup = BackupInduction.default_config
    rows.append((
        "backup_induction",
        seconds(lambda: measure_backups(loaded.adapter, probe, null_probe, backup, AblationConfig(), quiet)),
        seconds(forward_each(loaded, probe.tokens.tolist())),
    ))  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "models", nargs="*", default=["smollm2-135m-instruct", "gemma3-270m", "qwen2.5-coder-0.5b-instruct"]
    )
    args = parser.parse_args()
    print("| model | unit | unit s | bare forward s | ratio |\n|---|---|---|---|---|")
    for name in args.models:
        loaded = load(resolve(name, load_catalog()))
        forward_each(loaded, [[1, 2, 3]])()  # warm-up
        for unit, unit_s, bare_s in measure(loaded):
            print(f"| {name} | {unit} | {unit_s:.1f} | {bare_s:.2f} | {unit_s / bare_s:.1f} |", flush=True)


if __name__ == "__main__":
    main()
