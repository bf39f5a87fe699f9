"""Head-survey overhead: capture + scoring + storing, over bare forward passes on the same batches.

For each model, in one process: a warm-up, then ``--repeats`` timed rounds of (a) bare forward
passes over every probe batch the classifiers use, batched as the survey batches them, and (b) the
survey's pattern-scoring path (the runner's ``compute_all`` + ``write_unit`` into a scratch SQLite
database). Validation
ablations are timed on their own and reported as extra forward passes per validation.

    .venv/bin/python bench/survey_overhead.py [MODEL ...] [--repeats 3]

Prints a table; ratio = scoring path / bare forward (target <= 1.5).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from classifiers import parse_selection
from db.common.provenance import provenance
from db.engine import open_database
from db.runs import start_run
from db.store import RunIds
from survey.catalog import load_catalog
from survey.loading.loaders import LoadedModel, load, resolve
from survey.run.runner import record_model, write_unit
from survey.units.base import PlannedUnit, RunConfig, Shared, compute_all, plan
from survey.units.registry import unit_kinds

CAPTURE_BATCH = 8  # the batch size capture() uses
PATTERN_CLASSIFIERS = (
    "previous_token,duplicate_token,induction,attention_sink"  # the IOI suite has its own bench
)


def bare_forward(loaded: LoadedModel, batches: list[torch.Tensor]) -> float:
    """Seconds for plain forward passes over the same token batches."""
    started = time.perf_counter()
    with torch.inference_mode():
        for tokens in batches:
            for start in range(0, tokens.shape[0], CAPTURE_BATCH):
                loaded.model(input_ids=tokens[start : start + CAPTURE_BATCH], use_cache=False)
    return time.perf_counter() - started


def planned_units(loaded: LoadedModel, shared: Shared) -> list[PlannedUnit]:
    """The pattern classes' units for this model."""
    return plan(
        loaded, unit_kinds(parse_selection(PATTERN_CLASSIFIERS), RunConfig()), shared, lambda *_: None
    )


def survey_path(loaded: LoadedModel, engine, ids: RunIds) -> tuple[float, float, int, int]:  # type: ignore[no-untyped-def]
    """Seconds for the scoring path (validation excluded), validation seconds, validation passes, count."""
    shared = Shared()
    shared.pending = planned_units(loaded, shared)
    started = time.perf_counter()
    validation_seconds, passes, validations = 0.0, 0, 0
    for done in compute_all(loaded, shared.pending, shared, lambda _line: None):
        write_unit(engine, ids, done, replace=True)
        validation = done.result.validation
        if validation is not None:
            validation_seconds += validation.seconds
            passes += validation.forward_passes
            validations += 1
    return time.perf_counter() - started - validation_seconds, validation_seconds, passes, validations


def measure(name: str, repeats: int) -> dict[str, float]:
    loaded = load(resolve(name, load_catalog()))
    units = planned_units(loaded, Shared())
    batches = list({u.dataset.hash: u.dataset.tokens for u in units}.values())  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as folder:
        engine = open_database(f"sqlite:///{folder}/bench.db")
        model_id = record_model(engine, loaded)
        ids = RunIds(model_id, start_run(engine, model_id, {}, "cpu", "float32", provenance()))
        bare_forward(loaded, batches)  # warm-up
        survey_path(loaded, engine, ids)
        bare, path, val, passes = [], [], [], 0
        for _ in range(repeats):
            bare.append(bare_forward(loaded, batches))
            seconds, validation, passes, _count = survey_path(loaded, engine, ids)
            path.append(seconds)
            val.append(validation)
        engine.dispose()
    one_pass = statistics.median(bare) / len(batches)
    return {
        "tokens": sum(b.numel() for b in batches),
        "bare": statistics.median(bare),
        "path": statistics.median(path),
        "validation": statistics.median(val),
        "passes": passes,
        "validation_passes_equiv": statistics.median(val) / one_pass,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=["smollm2-135m-instruct"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(
        "| model | probe tokens | bare forward s | scoring path s | ratio | validation s | "
        "validation forward passes | validation / one probe pass |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in args.models:
        m = measure(name, args.repeats)
        ratio = m["path"] / m["bare"]
        print(
            f"| {name} | {m['tokens']:.0f} | {m['bare']:.2f} | {m['path']:.2f} | {ratio:.2f} | "
            f"{m['validation']:.1f} | {m['passes']:.0f} | {m['validation_passes_equiv']:.1f} |"
        )


if __name__ == "__main__":
    main()
