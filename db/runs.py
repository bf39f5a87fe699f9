"""``models`` and ``runs`` rows: a model is recorded once per resolved sha, and each run is
written when it starts and when it ends, each in a transaction of its own."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from db.engine import session_factory
from db.schema import Model, Run


def now() -> datetime:
    """The current time in UTC, as every row records it."""
    return datetime.now(UTC)


def get_or_add_model(engine: Engine, fields: dict[str, Any]) -> int:
    """The id of the ``models`` row with these fields' name, source and resolved sha; the row
    is added (with every field) when there is none."""
    with session_factory(engine).begin() as session:
        existing = session.scalar(
            select(Model.id).where(
                Model.name == fields["name"],
                Model.source == fields["source"],
                Model.resolved_sha == fields["resolved_sha"],
            )
        )
        if existing is not None:
            return existing
        row = Model(**fields, created_at=now())
        session.add(row)
        session.flush()
        return row.id


def start_run(
    engine: Engine, model_id: int, config: dict[str, Any], device: str, dtype: str, provenance: dict[str, Any]
) -> int:
    """A ``runs`` row in state running, with the code's provenance; its id."""
    with session_factory(engine).begin() as session:
        run = Run(
            model_id=model_id, code_version=provenance["code_version"], code_dirty=provenance["code_dirty"],
            libraries=provenance["libraries"], config=config, device=device, dtype=dtype, started_at=now(),
            status="running",
        )  # fmt: skip
        session.add(run)
        session.flush()
        return run.id


def finish_run(engine: Engine, run_id: int, error: str | None) -> None:
    """Record how a run ended (``error`` None: done)."""
    with session_factory(engine).begin() as session:
        run = session.get_one(Run, run_id)
        run.status, run.error, run.ended_at = ("failed" if error else "done"), error, now()
