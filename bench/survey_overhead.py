"""Head-survey overhead: capture + scoring + storing, over bare forward passes on the same batches.

For each model, in one process: a warm-up, then ``--repeats`` timed rounds of (a) bare forward
passes over every probe batch the classifiers use, batched as the survey batches them, and (b) the
survey's pattern-scoring path (``score_units`` + ``write_unit`` into a scratch SQLite database). Validation
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
from db.engine import open_database
from db.store import write_unit
from survey.catalog import load_catalog
from survey.loading.loaders import LoadedModel, load, resolve
from survey.run.runner import record_model
from survey.units.heads import plan_units, score_units

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


def survey_path(loaded: LoadedModel, engine, model_id: int) -> tuple[float, float, int, int]:  # type: ignore[no-untyped-def]
    """Seconds for the scoring path (validation excluded), validation seconds, validation passes, count."""
    units = plan_units(loaded, parse_selection(PATTERN_CLASSIFIERS))
    started = time.perf_counter()
    validation_seconds, passes, validations = 0.0, 0, 0
    for result in score_units(loaded, units):
        write_unit(engine, model_id, 1, result, replace=True)
        if result.validation is not None:
            validation_seconds += result.validation.seconds
            passes += result.validation.forward_passes
            validations += 1
    return time.perf_counter() - started - validation_seconds, validation_seconds, passes, validations


def measure(name: str, repeats: int) -> dict[str, float]:
    loaded = load(resolve(name, load_catalog()))
    units = plan_units(loaded, parse_selection(PATTERN_CLASSIFIERS))
    batches = list({id(u.probe): u.probe.tokens for u in units}.values())
    with tempfile.TemporaryDirectory() as folder:
        engine = open_database(f"sqlite:///{folder}/bench.db")
        model_id = record_model(engine, loaded)
        with engine.begin() as connection:  # a run row for the units' foreign key
            connection.exec_driver_sql(
                "INSERT INTO runs (id, model_id, code_version, config, device, dtype, started_at, status) "
                f"VALUES (1, {model_id}, 'bench', '{{}}', 'cpu', 'float32', CURRENT_TIMESTAMP, 'running')"
            )
        bare_forward(loaded, batches)  # warm-up
        survey_path(loaded, engine, model_id)
        bare, path, val, passes = [], [], [], 0
        for _ in range(repeats):
            bare.append(bare_forward(loaded, batches))
            seconds, validation, passes, _count = survey_path(loaded, engine, model_id)
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
