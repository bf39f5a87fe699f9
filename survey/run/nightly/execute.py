"""Running the nightly plan: each model is one task (load once, compute its pending units, retry
on failure), on this process or as Ray tasks. Every attempt is recorded in ``nightly_jobs``, each
unit is stored in its own transaction, so a kill at any moment loses at most the unit in flight
and a rerun completes the rest."""

from __future__ import annotations

import gc
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from classifiers import parse_selection
from db.common.errors import SurveyError
from db.common.settings import THREADS
from db.engine import open_database
from db.jobs import finish_job, start_job
from survey.catalog import load_catalog
from survey.loading.loaders import resolve
from survey.run.nightly.config import ModelSpec, NightlyConfig
from survey.run.nightly.plan import run_config
from survey.run.runner import load_and_survey


@dataclass(frozen=True)
class TaskOutcome:
    """How one model's task ended."""

    model: str
    status: str  # done | failed | skipped
    attempts: int
    units_written: int
    seconds: float
    error: str | None = None


class EventLog:
    """The structured log: one JSON object per line, appended (safe across processes on one host)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def __call__(self, event: str, **fields: Any) -> None:
        if self.path is None:
            return
        record = {"time": datetime.now(UTC).isoformat(timespec="seconds"), "event": event, **fields}
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(record, default=str) + "\n")


def run_model(
    spec: ModelSpec, config: NightlyConfig, shard: str | None, echo: Callable[[str], None], log: EventLog
) -> TaskOutcome:
    """Survey one model's pending units, retrying a failed attempt up to ``config.retries`` times.

    Any exception short of an interrupt (bad file, unsupported architecture, out of memory, a
    failing unit) fails the attempt, is recorded with its error, and never reaches the caller.
    """
    engine = open_database(config.database)
    config_of_run = run_config(config)
    classifiers = parse_selection(config.classifiers)
    started, written, error = time.perf_counter(), 0, None
    attempt = 0

    def progress(line: str) -> None:
        """A progress line, printed and logged (``progress`` events of the JSON log)."""
        echo(line)
        log("progress", model=spec.key, attempt=attempt, line=line.strip())

    try:
        for attempt in range(1, config.retries + 2):
            job_id = start_job(engine, spec.key, attempt, shard)
            log("attempt_start", model=spec.key, attempt=attempt)
            model_id = run_id = None
            units = 0
            try:
                source = resolve(spec.argument, load_catalog())
                model_id, error, run_id, units = load_and_survey(
                    engine, source, classifiers, config_of_run, False, progress
                )
            except KeyboardInterrupt:
                finish_job(engine, job_id, "interrupted", model_id, run_id, units)
                raise
            except Exception as exc:  # one model's failure never stops the others
                error = f"{type(exc).__name__}: {exc}"
            finally:
                _release_memory()  # the model's memory goes before a retry or the next model loads
            written += units
            finish_job(engine, job_id, error, model_id, run_id, units)
            log("attempt_end", model=spec.key, attempt=attempt, error=error, units_written=units)
            if error is None:
                break
            echo(f"  attempt {attempt} failed: {error}")
    finally:
        engine.dispose()
    status = "failed" if error else "done"
    return TaskOutcome(spec.key, status, attempt, written, time.perf_counter() - started, error)


def _release_memory() -> None:
    """Free the model's memory before the next attempt or model (CUDA caches included)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_local(
    specs: list[ModelSpec],
    config: NightlyConfig,
    shard: str | None,
    echo: Callable[[str], None],
    log: EventLog,
) -> list[TaskOutcome]:
    """Every model in turn, in this process."""
    outcomes = []
    for i, spec in enumerate(specs, 1):
        echo(f"[{i}/{len(specs)}] {spec.key}")
        outcome = _logged_model(spec, config, shard, echo, log)
        echo(_outcome_line(i, len(specs), outcome))
        outcomes.append(outcome)
    return outcomes


def _ray_task(spec: ModelSpec, config: NightlyConfig, shard: str | None, log_path: str | None) -> TaskOutcome:
    """The body of one Ray task: a whole model, its progress lines printed in the worker, on as
    many threads as the task has CPUs."""
    os.environ.setdefault(THREADS.name, str(max(1, int(config.ray["num_cpus"]))))
    log = EventLog(Path(log_path) if log_path else None)
    return _logged_model(spec, config, shard, lambda line: print(f"{spec.key}: {line}", flush=True), log)


def _logged_model(
    spec: ModelSpec, config: NightlyConfig, shard: str | None, echo: Callable[[str], None], log: EventLog
) -> TaskOutcome:
    """:func:`run_model` between its ``model_start`` and ``model_end`` log events (either executor)."""
    log("model_start", model=spec.key)
    outcome = run_model(spec, config, shard, echo, log)
    log("model_end", **asdict(outcome))
    return outcome


def _outcome_line(index: int, total: int, outcome: TaskOutcome) -> str:
    """The progress line for a finished model."""
    line = f"[{index}/{total}] {outcome.model}: {outcome.status} in {outcome.seconds:.1f} s"
    return line + (f" after {outcome.attempts} attempts: {outcome.error}" if outcome.error else "")


def run_ray(
    specs: list[ModelSpec], config: NightlyConfig, shard: str | None, echo: Callable[[str], None],
    log: EventLog, address: str | None,
) -> list[TaskOutcome]:  # fmt: skip
    """One Ray task per model (``num_cpus``/``num_gpus`` from the config's [ray] table) on a local
    Ray (``address`` None) or an existing cluster; outcomes reported as tasks finish."""
    import tempfile

    try:
        import ray
    except ImportError:
        raise SurveyError("--executor ray needs Ray: pip install -e '.[ray]'") from None

    os.environ.setdefault("RAY_TMPDIR", tempfile.gettempdir())
    try:
        ray.init(
            address=address, include_dashboard=False, logging_level=logging.ERROR, ignore_reinit_error=True
        )
    except Exception as exc:  # Ray's own errors: no cluster at the address, socket paths, ...
        raise SurveyError(f"cannot start or reach Ray{' at ' + address if address else ''}: {exc}") from None
    try:
        task = ray.remote(num_cpus=config.ray["num_cpus"], num_gpus=config.ray["num_gpus"], max_retries=0)(
            _ray_task
        )
        log_path = str(log.path) if log.path else None
        pending = {task.remote(spec, config, shard, log_path): spec for spec in specs}
        outcomes = []
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            spec = pending.pop(done[0])
            try:
                outcome = ray.get(done[0])
            except Exception as exc:  # the worker itself died (e.g. killed for memory)
                outcome = TaskOutcome(
                    spec.key, "failed", 1, 0, 0.0, f"Ray task failed: {type(exc).__name__}: {exc}"
                )
            outcomes.append(outcome)
            echo(_outcome_line(len(outcomes), len(specs), outcome))
        return outcomes
    finally:
        ray.shutdown()
