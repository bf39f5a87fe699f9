"""``survey run``: resolve every MODEL, load each, score its heads and store the results.

Order matters for bad input: every argument is resolved before the database is opened, and a
model is written only after it loaded, so an unknown name, a corrupt file or a bad URL leaves
the database byte-for-byte untouched.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

import torch
from sqlalchemy import Engine, select

from classifiers import HeadClassifier, parse_selection
from db.engine import session_factory
from db.neuron_store import write_neuron_unit
from db.schema import Model, Run
from db.store import (
    UnitKey,
    key_of,
    store_vocabulary,
    stored_keys,
    unit_summaries,
    write_lens_unit,
    write_unit,
)  # fmt: skip
from survey.catalog import Catalog
from survey.engine.validation import AblationConfig
from survey.errors import SurveyError
from survey.loading.loaders import LoadedModel, ModelSource, load, resolve
from survey.provenance import code_version
from survey.run.report import summary_lines
from survey.units.heads import UnitResult, plan_units, score_units
from survey.units.logit_lens import NAME as LENS_NAME
from survey.units.logit_lens import LensConfig, plan_lens, run_lens
from survey.units.neurons import VERSION as NEURON_VERSION
from survey.units.neurons import NeuronConfig, NeuronPlan, checkpoint_path, compute_summary, plan_neurons


@dataclass(frozen=True)
class RunConfig:
    """How models are run: device and dtype (fp32 on CPU by default)."""

    device: str = "cpu"
    dtype: str = "float32"
    ablation: AblationConfig = field(default_factory=AblationConfig)
    neurons: NeuronConfig | None = None  # None: no neuron pass

    def torch_dtype(self) -> torch.dtype:
        """The torch dtype named by ``dtype``."""
        value = getattr(torch, self.dtype, None)
        if not isinstance(value, torch.dtype):
            raise SurveyError(f"unknown dtype {self.dtype!r}; use float32, bfloat16 or float16")
        return value


def _now() -> datetime:
    return datetime.now(UTC)


def record_model(engine: Engine, loaded: LoadedModel) -> int:
    """Get or insert the models row for this exact resolved model; return its id."""
    source, dims = loaded.source, loaded.adapter.dims
    entry = source.entry
    with session_factory(engine).begin() as session:
        existing = session.scalar(
            select(Model).where(
                Model.name == source.name,
                Model.source == source.kind,
                Model.resolved_sha == loaded.resolved_sha,
            )
        )
        if existing is not None:
            return existing.id
        row = Model(
            name=source.name, source=source.kind, location=source.location, revision=source.revision,
            resolved_sha=loaded.resolved_sha, family=entry.family if entry else None,
            architecture=loaded.model.config.model_type, n_layers=dims.n_layers, n_heads=dims.n_heads,
            n_kv_heads=dims.n_kv_heads, d_model=dims.d_model, d_head=dims.d_head, d_mlp=dims.d_mlp,
            d_vocab=dims.d_vocab, n_params=loaded.n_params,
            parallel_attn_mlp=loaded.adapter.parallel_attn_mlp, quantization=loaded.quantization,
            bos_token=loaded.bos.token, license=entry.license if entry else None, created_at=_now(),
        )  # fmt: skip
        session.add(row)
        session.flush()
        return row.id


def vocabulary_texts(loaded: LoadedModel) -> list[str]:
    """Display text of every token id the model can output, each id decoded alone."""
    return list(loaded.tokenizer.batch_decode([[i] for i in range(loaded.adapter.dims.d_vocab)]))


def _start_run(
    engine: Engine, model_id: int, config: RunConfig, classifiers: list[str], skipped: dict[str, str]
) -> int:
    """A ``runs`` row in state running; its config names the units to run and the classifiers
    skipped (with why), which the wiki shows for missing classifiers."""
    with session_factory(engine).begin() as session:
        run = Run(
            model_id=model_id, code_version=code_version(),
            config={**asdict(config), "classifiers": classifiers, "skipped": skipped}, device=config.device,
            dtype=config.dtype,
            started_at=_now(), status="running",
        )  # fmt: skip
        session.add(run)
        session.flush()
        return run.id


def _finish_run(engine: Engine, run_id: int, error: str | None) -> None:
    with session_factory(engine).begin() as session:
        run = session.get_one(Run, run_id)
        run.status, run.error, run.ended_at = ("failed" if error else "done"), error, _now()


class ModelOutcome(NamedTuple):
    """How surveying one model ended: its row, the error (None: done), the run written (None:
    nothing was pending) and how many units that run stored."""

    model_id: int
    error: str | None
    run_id: int | None
    units_written: int


def survey_model(
    engine: Engine,
    loaded: LoadedModel,
    classifiers: list[type[HeadClassifier]],
    config: RunConfig,
    force: bool,
    echo: Callable[[str], None],
) -> ModelOutcome:
    """Score and store every pending unit of one model.

    Units already stored are skipped (all of them with ``force``: none), and when nothing is
    pending no run row is written, so a rerun adds and changes nothing.
    """
    skipped: dict[str, str] = {}

    def skip(name: str, reason: str) -> None:
        skipped[name] = reason
        echo(f"  skipping {name}: {reason}")

    planned = plan_units(loaded, classifiers, on_skip=skip)  # may refuse the model
    neuron_plan = plan_neurons(loaded, config.neurons) if config.neurons else None
    lens_plan = plan_lens(loaded, LensConfig.following(config.neurons)) if config.neurons else None
    model_id = record_model(engine, loaded)
    done = set() if force else stored_keys(engine, model_id)
    pending = [unit for unit in planned if key_of(unit) not in done]
    neuron_key = neuron_plan.key if neuron_plan else None
    neurons_pending = neuron_key is not None and neuron_key not in done
    lens_pending = lens_plan is not None and lens_plan.key not in done
    if not pending and not neurons_pending and not lens_pending:
        stored = len(planned) + bool(neuron_plan) + bool(lens_plan)
        echo(f"  up to date: {stored} units already stored (use --force to redo)")
        return ModelOutcome(model_id, None, None, 0)
    names = [unit.classifier.name for unit in pending] + (["neurons"] if neurons_pending else [])
    names += [LENS_NAME] if lens_pending else []
    run_id = _start_run(engine, model_id, config, names, skipped)
    error, written = None, 0
    try:
        store_vocabulary(engine, model_id, lambda: vocabulary_texts(loaded))
        for result in score_units(loaded, pending, config.ablation, progress=lambda line: echo(f"  {line}")):
            write_unit(engine, model_id, run_id, result, replace=force)
            written += 1
            echo("  " + _describe(result))
        if lens_plan is not None and lens_pending:
            layers = run_lens(loaded, lens_plan, echo)
            write_lens_unit(
                engine, model_id, run_id, lens_plan.key, lens_plan.config.to_dict(), lens_plan.dataset(),
                layers, replace=force,
            )  # fmt: skip
            written += 1
        if neuron_plan is not None and neuron_key is not None and neurons_pending:
            _survey_neurons(engine, loaded, neuron_plan, neuron_key, model_id, run_id, force, echo)
            written += 1
    except KeyboardInterrupt:  # stored units stay; a rerun resumes with the rest
        _finish_run(engine, run_id, "interrupted")
        raise
    except Exception as exc:  # recorded on the run, reported, and the next model goes on
        error = f"{type(exc).__name__}: {exc}"
    _finish_run(engine, run_id, error)
    echo(f"  run {run_id} {'failed: ' + error if error else 'done'}")
    return ModelOutcome(model_id, error, run_id, written)


def _survey_neurons(
    engine: Engine, loaded: LoadedModel, plan: NeuronPlan, key: UnitKey, model_id: int, run_id: int,
    force: bool, echo: Callable[[str], None],
) -> None:  # fmt: skip
    """Run (or resume) the neuron pass, store it in one transaction, then drop its checkpoint."""
    started = time.perf_counter()
    summary = compute_summary(loaded, plan, echo)
    write_neuron_unit(
        engine, model_id, run_id, key, plan.config.result_fields(), plan.dataset(), plan.corpus,
        plan.corpus_hash, summary, replace=force,
    )  # fmt: skip
    checkpoint_path(loaded, plan).unlink(missing_ok=True)
    counts = Counter(row["family"] for row in summary.neurons if row["family"])
    echo(
        f"  neurons v{NEURON_VERSION}: {len(summary.neurons)} neurons, {len(summary.examples)} examples, "
        f"families {dict(sorted(counts.items()))} [{time.perf_counter() - started:.1f} s]"
    )


def _describe(result: UnitResult) -> str:
    c, scores = result.unit.classifier, result.scores
    labelled = int(scores.labels(c.threshold).sum())
    line = (
        f"{c.name} v{c.version}: {labelled}/{scores.scores.numel()} heads labelled [{result.seconds:.1f} s]"
    )
    v = result.validation
    if v is not None and v.ratio is not None:
        line += (
            f"; validation: {v.metric} {v.effect_top:+.3f} for the top {v.k} vs {v.effect_random_mean:+.3f} "
            f"for random heads, ratio {v.ratio:.1f} ({'supported' if v.supported else 'NOT supported'}, "
            f"{v.forward_passes} passes, {v.seconds:.1f} s)"
        )
    return line


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
    """Resolve, load and survey every model, then print the top heads; return the failure count."""
    chosen = classifiers if classifiers is not None else parse_selection(None)
    sources: list[ModelSource] = (
        [resolve(a, catalog) for a in arguments]
        if arguments
        else [resolve(e.name, catalog) for e in catalog.defaults()]
    )
    dtype = config.torch_dtype()
    engine = open_engine()
    failures, model_ids = 0, []
    try:
        for source in sources:
            echo(f"loading {source.name} ({source.kind}) …")
            try:
                loaded = load(source, dtype=dtype, device=config.device)
                d = loaded.adapter.dims
                echo(
                    f"{source.name}: {loaded.model.config.model_type}, {d.n_layers} layers x {d.n_heads} "
                    f"heads ({d.n_kv_heads} kv), {loaded.n_params / 1e6:.0f}M params, "
                    f"sha {loaded.resolved_sha[:12]}"
                )
                model_id, error, _, _ = survey_model(engine, loaded, chosen, config, force, echo)
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
