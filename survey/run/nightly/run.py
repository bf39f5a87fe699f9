"""``survey nightly``: plan the config's models (this shard's), skip the finished ones, run the
rest on the chosen executor, and report a summary table; ``survey status``: the same plan read
back with each model's latest attempt."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from db.engine import database_url, open_database, parse_database_url
from db.jobs import latest_jobs
from survey.catalog import load_catalog
from survey.run.nightly.config import NightlyConfig
from survey.run.nightly.execute import EventLog, TaskOutcome, run_local, run_ray
from survey.run.nightly.plan import ModelPlan, in_shard, plan_models
from survey.run.report import text_table


def pinned(config: NightlyConfig) -> NightlyConfig:
    """The config with paths made absolute (the database file, local model folders and files),
    so every worker, in whatever folder it starts, reads and writes the same ones."""
    url = parse_database_url(database_url(config.database))
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        url = url.set(database=str(Path(url.database).expanduser().resolve()))
    models = tuple(
        replace(spec, name=str(Path(spec.name).expanduser().resolve()))
        if Path(spec.name).expanduser().exists()
        else spec
        for spec in config.models
    )
    return replace(config, database=url.render_as_string(hide_password=False), models=models)


def plan(config: NightlyConfig, shard: tuple[int, int] | None) -> list[ModelPlan]:
    """This shard's models, each resolved and marked stored or pending unit by unit."""
    engine = open_database(config.database)
    try:
        return plan_models(engine, config, [s for s in config.models if in_shard(s, shard)], load_catalog())
    finally:
        engine.dispose()


def nightly(
    config: NightlyConfig, shard: tuple[int, int] | None, executor: str, address: str | None,
    log_path: Path | None, echo: Callable[[str], None],
) -> list[TaskOutcome]:  # fmt: skip
    """Run the plan; every model's outcome (finished ones as ``skipped``)."""
    config = pinned(config)
    shard_label = f"{shard[0]}/{shard[1]}" if shard else None
    plans = plan(config, shard)
    todo = [p for p in plans if p.pending or p.error]
    n_pending = sum(len(p.pending) for p in todo)
    echo(f"nightly: {len(plans)} models{' in shard ' + shard_label if shard_label else ''}, "
         f"{len(plans) - len(todo)} up to date, {len(todo)} to run ({n_pending} units pending), "
         f"executor {executor}, pid {os.getpid()}")  # fmt: skip
    log = EventLog(log_path)
    log("nightly_start", config=str(config.path), shard=shard_label, executor=executor, models=len(plans),
        to_run=len(todo), units_pending=n_pending)  # fmt: skip
    specs = [p.spec for p in todo]
    if not specs:
        outcomes = []
    elif executor == "ray":
        outcomes = run_ray(specs, config, shard_label, echo, log, address)
    else:
        outcomes = run_local(specs, config, shard_label, echo, log)
    outcomes += [TaskOutcome(p.spec.key, "skipped", 0, 0, 0.0) for p in plans if p not in todo]
    log(
        "nightly_end",
        done=sum(o.status == "done" for o in outcomes),
        failed=sum(o.status == "failed" for o in outcomes),
    )
    return outcomes


def summary_table(outcomes: list[TaskOutcome]) -> list[str]:
    """The end-of-run table: one row per model."""
    rows = [
        (o.model, o.status, str(o.attempts), str(o.units_written), f"{o.seconds:.1f}", (o.error or "")[:100])
        for o in sorted(outcomes, key=lambda o: (o.status != "failed", o.model))
    ]
    return text_table(("model", "status", "attempts", "units written", "seconds", "error"), rows)


def status_lines(config: NightlyConfig, per_unit: bool) -> list[str]:
    """What is done, pending and failed: a row per model, then (``per_unit``) a row per unit."""
    config = pinned(config)
    plans = plan(config, None)
    engine = open_database(config.database)
    try:
        jobs = latest_jobs(engine)
    finally:
        engine.dispose()
    rows, unit_rows = [], []
    for p in plans:
        job = jobs.get(p.spec.key)
        done = len(p.units) - len(p.pending)
        if not p.pending:
            state = "done"
        elif job is not None and job.status == "running":
            state = f"running ({job.host}, attempt {job.attempt})"
        elif job is not None and job.status == "failed" or p.error:
            state = "failed"
        else:
            state = "pending"
        error = (p.error or (job.error if job is not None and job.status == "failed" else "")) or ""
        rows.append(
            (p.spec.key, state, f"{done}/{len(p.units)}", ", ".join(u.name for u in p.pending), error[:80])
        )
        unit_rows += [(p.spec.key, f"{u.name} v{u.version}", "done" if stored else
                       ("failed" if state == "failed" else "pending")) for u, stored in p.units]  # fmt: skip
    lines = text_table(("model", "state", "units done", "pending", "last error"), rows)
    totals = {s: sum(r[1].split()[0] == s for r in rows) for s in ("done", "pending", "failed", "running")}
    lines.append(", ".join(f"{n} {s}" for s, n in totals.items()) + f" of {len(rows)} models")
    if per_unit:
        lines += ["", *text_table(("model", "unit", "state"), unit_rows)]
    return lines
