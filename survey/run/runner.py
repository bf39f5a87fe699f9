"""``survey run`` and ``survey nightly``: resolve a model, load it, and compute and store every
pending unit in one loop over the unit registry.

Every argument is resolved before the database is opened, and a model is written only after it
loaded and its units were planned, so an unknown name, a corrupt file or a bad URL leaves the
database untouched; models are then loaded and surveyed one at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import torch
from sqlalchemy import Engine

from classifiers import HeadClassifier, parse_selection
from db.common.errors import SurveyError
from db.common.progress import weighted_line
from db.common.provenance import provenance
from db.common.settings import thread_count
from db.runs import finish_run, get_or_add_model, start_run
from db.store import RunIds, store_vocabulary, stored_keys, unit_summaries
from survey.catalog import Catalog
from survey.loading.loaders import LoadedModel, ModelSource, load, resolve
from survey.run.report import summary_lines
from survey.units.base import RunConfig, Shared, UnitResult, compute_all, plan
from survey.units.registry import unit_kinds


def record_model(engine: Engine, loaded: LoadedModel) -> int:
    """Get or insert the models row for this exact resolved model; return its id."""
    source, dims = loaded.source, loaded.adapter.dims
    entry = source.entry
    return get_or_add_model(engine, dict(
        name=source.name, source=source.kind, location=source.location, revision=source.revision,
        resolved_sha=loaded.resolved_sha, family=entry.family if entry else None,
        architecture=loaded.model.config.model_type, n_layers=dims.n_layers, n_heads=dims.n_heads,
        n_kv_heads=dims.n_kv_heads, d_model=dims.d_model, d_head=dims.d_head, d_mlp=dims.d_mlp,
        d_vocab=dims.d_vocab, n_params=loaded.n_params, parallel_attn_mlp=loaded.adapter.parallel_attn_mlp,
        quantization=loaded.quantization, bos_token=loaded.bos.token,
        license=entry.license if entry else None,
    ))  # fmt: skip


def vocabulary_texts(loaded: LoadedModel) -> list[str]:
    """Display text of every token id the model can output, each id decoded alone."""
    return list(loaded.tokenizer.batch_decode([[i] for i in range(loaded.adapter.dims.d_vocab)]))


class ModelOutcome(NamedTuple):
    """How surveying one model ended: its row, the error (None: done), the run written (None:
    nothing was pending) and how many units that run stored."""

    model_id: int
    error: str | None
    run_id: int | None
    units_written: int


def write_unit(engine: Engine, ids: RunIds, done: UnitResult, replace: bool) -> None:
    """Store one computed unit through its kind, in one transaction."""
    done.planned.unit.write(engine, ids, done.planned, done.result, replace)


def survey_model(
    engine: Engine,
    loaded: LoadedModel,
    classifiers: list[type[HeadClassifier]],
    config: RunConfig,
    force: bool,
    echo: Callable[[str], None],
) -> ModelOutcome:
    """Compute and store every pending unit of one model.

    Units already stored under the same key are skipped (with ``force``: none is), and when
    nothing is pending no run row is written, so a rerun adds and changes nothing.
    """
    skipped: dict[str, str] = {}

    def skip(name: str, reason: str) -> None:
        skipped[name] = reason
        echo(f"  skipping {name}: {reason}")

    shared = Shared()
    planned = plan(loaded, unit_kinds(classifiers, config), shared, on_skip=skip)  # may refuse the model
    model_id = record_model(engine, loaded)
    done = set() if force else stored_keys(engine, model_id)
    shared.pending = [unit for unit in planned if unit.key not in done]
    if not shared.pending:
        echo(f"  up to date: {len(planned)} units already stored (use --force to redo)")
        return ModelOutcome(model_id, None, None, 0)
    names = [unit.unit.name for unit in shared.pending]
    run_config = {**config.to_dict(), "classifiers": names, "skipped": skipped}
    run_id = start_run(engine, model_id, run_config, config.device, config.dtype, provenance())
    ids, error, written = RunIds(model_id, run_id), None, 0
    costs = [unit.unit.cost for unit in shared.pending]
    started = time.perf_counter()
    try:
        store_vocabulary(engine, model_id, lambda: vocabulary_texts(loaded))
        for result in compute_all(loaded, shared.pending, shared, progress=lambda line: echo(f"  {line}")):
            write_unit(engine, ids, result, replace=force)
            written += 1
            work = f"{result.passes:,} passes, {result.tokens:,} tokens"
            echo(f"  {result.planned.unit.describe(result)} ({work})")
            elapsed = time.perf_counter() - started
            echo(
                weighted_line(
                    loaded.source.name, written, len(costs), sum(costs[:written]), sum(costs), elapsed
                )
            )
    except KeyboardInterrupt:  # stored units stay; a rerun resumes with the rest
        finish_run(engine, run_id, "interrupted")
        raise
    except Exception as exc:  # recorded on the run, reported, and the next model goes on
        error = f"{type(exc).__name__}: {exc}"
    finish_run(engine, run_id, error)
    echo(f"  run {run_id} {'failed: ' + error if error else 'done'}")
    return ModelOutcome(model_id, error, run_id, written)


def load_and_survey(
    engine: Engine, source: ModelSource, classifiers: list[type[HeadClassifier]], config: RunConfig,
    force: bool, echo: Callable[[str], None],
) -> ModelOutcome:  # fmt: skip
    """Load one resolved model and survey it (``survey run`` and ``survey nightly`` alike)."""
    torch.set_num_threads(thread_count())
    echo(f"loading {source.name} ({source.kind}) on {torch.get_num_threads()} threads …")
    loaded = load(source, dtype=config.torch_dtype(), device=config.device)
    d = loaded.adapter.dims
    echo(
        f"{source.name}: {loaded.model.config.model_type}, {d.n_layers} layers x {d.n_heads} "
        f"heads ({d.n_kv_heads} kv), {loaded.n_params / 1e6:.0f}M params, sha {loaded.resolved_sha[:12]}"
    )
    return survey_model(engine, loaded, classifiers, config, force, echo)


def survey_run(
    arguments: list[str],
    catalog: Catalog,
    open_engine: Callable[[], Engine],
    config: RunConfig,
    echo: Callable[[str], None],
    echo_error: Callable[[str], None],
    classifiers: list[type[HeadClassifier]] | None = None,
    force: bool = False,
) -> int:
    """Resolve every model, then load and survey each in turn, then print the top heads; return
    the failure count."""
    chosen = classifiers if classifiers is not None else parse_selection(None)
    sources: list[ModelSource] = (
        [resolve(a, catalog) for a in arguments]
        if arguments
        else [resolve(e.name, catalog) for e in catalog.defaults()]
    )
    config.torch_dtype()
    thread_count()  # a bad thread setting fails here, before the database is opened
    engine = open_engine()
    failures, model_ids = 0, []
    try:
        for source in sources:
            try:
                model_id, error, _, _ = load_and_survey(engine, source, chosen, config, force, echo)
            except SurveyError as exc:
                echo_error(f"Error: {exc}")
                failures += 1
                continue
            model_ids.append(model_id)
            failures += error is not None
        for line in summary_lines(unit_summaries(engine, model_ids)):
            echo(line)
    finally:
        engine.dispose()  # close SQLite connections so WAL is checkpointed into the file
    return failures
