"""``nightly_jobs`` rows: each attempt at a model is written when it starts and when it ends, in
transactions of its own, so a kill -9 leaves at worst one row in state ``running``."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime

from sqlalchemy import Engine, select

from db.engine import session_factory
from db.schema import NightlyJob


def host_label() -> str:
    """This process, as jobs record it: ``hostname:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def start_job(engine: Engine, model: str, attempt: int, shard: str | None) -> int:
    """Record an attempt as running; its id."""
    with session_factory(engine).begin() as session:
        job = NightlyJob(
            model=model, attempt=attempt, status="running", units_written=0, shard=shard, host=host_label(),
            started_at=datetime.now(UTC),
        )  # fmt: skip
        session.add(job)
        session.flush()
        return job.id


def finish_job(
    engine: Engine, job_id: int, error: str | None, model_id: int | None, run_id: int | None, units: int
) -> None:
    """Record how an attempt ended."""
    with session_factory(engine).begin() as session:
        job = session.get_one(NightlyJob, job_id)
        job.status = "failed" if error else "done"
        job.error, job.model_id, job.run_id, job.units_written = error, model_id, run_id, units
        job.ended_at = datetime.now(UTC)


def latest_jobs(engine: Engine) -> dict[str, NightlyJob]:
    """The newest attempt at each model."""
    with session_factory(engine)() as session:
        rows = session.scalars(select(NightlyJob).order_by(NightlyJob.id)).all()
        session.expunge_all()
    return {job.model: job for job in rows}
