"""Write and read survey units: one transaction per unit, so an interrupted run leaves only
complete units behind and a rerun picks up the rest."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.orm import Session
from torch import Tensor

from classifiers.base import HeadScores, rank_and_percentile
from classifiers.keys import HEAD_CLASSIFIER, DefinitionKey, UnitKey
from classifiers.logit_lens import LensLayer
from classifiers.validation import AblationResult
from db.engine import session_factory
from db.schema import (
    HeadScore,
    LogitLens,
    Model,
    Neuron,
    NeuronExample,
    Token,
    TokenizedDocument,
    Unit,
    Validation,
)  # fmt: skip

INSERT_CHUNK = 20_000
KEY_COLUMNS = (Unit.kind, Unit.name, Unit.version, Unit.dataset_hash, Unit.definition_hash)


@dataclass(frozen=True)
class UnitRow:
    """The ``units`` row of a unit about to be written: its key, its full definition (what the
    definition hash covers), its config, the dataset it read and, for head classes, the threshold."""

    key: UnitKey
    definition: dict[str, Any]
    config: dict[str, Any]
    dataset: dict[str, Any]
    threshold: float | None = None
    statistics: dict[str, Any] | None = None


@dataclass(frozen=True)
class RunIds:
    """Where a unit's rows belong: its model and the run computing it."""

    model_id: int
    run_id: int


def stored_keys(engine: Engine, model_id: int) -> set[UnitKey]:
    """Keys of every unit already stored for this model."""
    with session_factory(engine)() as session:
        rows = session.execute(select(*KEY_COLUMNS).where(Unit.model_id == model_id))
        return {UnitKey(*row) for row in rows}


def stored_definitions(engine: Engine) -> dict[tuple[str, str | None], set[DefinitionKey]]:
    """Per model (name, revision as asked): the definition keys of its stored units, read
    without loading any model (the nightly plan)."""
    query = select(Model.name, Model.revision, Unit.kind, Unit.name, Unit.version, Unit.definition_hash).join(
        Model, Model.id == Unit.model_id
    )
    stored: dict[tuple[str, str | None], set[DefinitionKey]] = {}
    with session_factory(engine)() as session:
        for model, revision, kind, name, version, digest in session.execute(query):
            stored.setdefault((model, revision), set()).add(DefinitionKey(kind, name, version, digest))
    return stored


def delete_unit(session: Session, model_id: int, key: UnitKey) -> None:
    """Delete the unit stored under ``key`` with every row that belongs to it (``--force``)."""
    values = (key.kind, key.name, key.version, key.dataset_hash, key.definition_hash)
    old = session.scalars(
        select(Unit.id).where(
            Unit.model_id == model_id,
            *(column == value for column, value in zip(KEY_COLUMNS, values, strict=True)),
        )
    ).all()
    for table in (HeadScore, Validation, Neuron, NeuronExample, TokenizedDocument, LogitLens):
        session.execute(delete(table).where(table.unit_id.in_(old)))
    session.execute(delete(Unit).where(Unit.id.in_(old)))


def new_unit(session: Session, ids: RunIds, unit: UnitRow, replace: bool) -> Unit:
    """Add (and flush, so it has an id) the ``units`` row of a unit about to be written; with
    ``replace`` (``--force``), first delete the unit stored under the same key."""
    if replace:
        delete_unit(session, ids.model_id, unit.key)
    key = unit.key
    row = Unit(
        model_id=ids.model_id, run_id=ids.run_id, kind=key.kind, name=key.name, version=key.version,
        config=unit.config, threshold=unit.threshold, dataset_hash=key.dataset_hash, dataset=unit.dataset,
        definition_hash=key.definition_hash, definition=unit.definition, statistics=unit.statistics,
        created_at=datetime.now(UTC),
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row


def write_lens_unit(
    engine: Engine, ids: RunIds, unit: UnitRow, layers: list[LensLayer], replace: bool
) -> int:
    """Store a logit-lens unit with one row per layer, in one transaction; return the unit id."""
    with session_factory(engine).begin() as session:
        row = new_unit(session, ids, unit, replace)
        session.add_all(LogitLens(unit_id=row.id, **asdict(layer)) for layer in layers)
        return row.id


def write_head_unit(
    engine: Engine, ids: RunIds, unit: UnitRow, scores: HeadScores, validation: AblationResult | None,
    replace: bool,
) -> int:  # fmt: skip
    """Store a scored head-classifier unit with every head and its validation, in one
    transaction; return the new unit id."""
    if unit.threshold is None:
        raise ValueError(f"head unit {unit.key.name!r} needs a threshold")
    labels = scores.labels(unit.threshold)
    reasons = scores.reasons(unit.threshold)
    rank, percentile = rank_and_percentile(scores.scores)
    stats = _statistics_columns(scores)
    with session_factory(engine).begin() as session:
        row = new_unit(session, ids, unit, replace)
        per_head = validation.per_head_effect if validation else {}
        n_layers, n_heads = scores.scores.shape
        session.add_all(
            HeadScore(
                unit_id=row.id,
                layer=layer,
                head=head,
                score=float(scores.scores[layer, head]),
                label=bool(labels[layer, head]),
                reason=reasons[layer][head],
                rank=int(rank[layer, head]),
                percentile=float(percentile[layer, head]),
                **{name: float(values[layer, head]) for name, values in stats.items()},
                evidence=_with_ablation(scores.evidence[layer][head], per_head.get((layer, head))),
            )  # fmt: skip
            for layer in range(n_layers)
            for head in range(n_heads)
        )
        if validation is not None:
            session.add(_validation_row(row.id, validation))
        return row.id


def _statistics_columns(scores: HeadScores) -> dict[str, Tensor]:
    """The ``head_scores`` statistics columns and their ``[layer, head]`` values (none when the
    class gave no per-item samples)."""
    s = scores.statistics
    if s is None:
        return {}
    return {
        "ci_low": s.ci_low, "ci_high": s.ci_high, "null_score": s.null_score,
        "null_percentile": s.null_percentile, "p_value": s.p_value, "q_value": s.q_value,
    }  # fmt: skip


def _validation_row(unit_id: int, v: AblationResult) -> Validation:
    return Validation(
        unit_id=unit_id, method=v.method, metric=v.metric, k=v.k, heads=[list(h) for h in v.heads],
        baseline=v.baseline, effect_top=v.effect_top, effect_random=v.effect_random,
        effect_random_mean=v.effect_random_mean, rank=v.rank, z_score=v.z_score, min_effect=v.min_effect,
        supported=v.supported,
        details={
            **v.details,
            "random_heads": [[list(h) for h in draw] for draw in v.random_heads],
            "per_head_effect": [[*h, e] for h, e in v.per_head_effect.items()],
            "forward_passes": v.forward_passes,
            "seconds": round(v.seconds, 3),
        },
    )  # fmt: skip


def _with_ablation(evidence: dict[str, object], effect: float | None) -> dict[str, object]:
    """Evidence plus, for heads ablated alone during validation, the metric rise it caused."""
    return evidence if effect is None else {**evidence, "ablation_metric_rise": round(effect, 6)}


@dataclass(frozen=True)
class UnitSummary:
    """A stored unit at a glance: its top heads and its validation, for the end-of-run table."""

    model: str
    name: str
    version: int
    threshold: float | None
    n_labelled: int
    n_heads: int
    top: list[tuple[int, int, float]]  # (layer, head, score), best first
    validation: Validation | None


def unit_summaries(engine: Engine, model_ids: list[int], top_n: int = 5) -> list[UnitSummary]:
    """The latest stored head-classifier unit per (model, classifier), in model then name order."""

    result = []
    with session_factory(engine)() as session:
        units = session.scalars(
            select(Unit)
            .join(Model)
            .where(Unit.model_id.in_(model_ids), Unit.kind == HEAD_CLASSIFIER)
            .order_by(Model.name, Unit.name, Unit.version.desc(), Unit.created_at.desc())
        ).all()
        seen: set[tuple[int, str]] = set()
        for unit in units:
            if (unit.model_id, unit.name) in seen:
                continue
            seen.add((unit.model_id, unit.name))
            heads = session.execute(
                select(HeadScore.layer, HeadScore.head, HeadScore.score, HeadScore.label)
                .where(HeadScore.unit_id == unit.id)
                .order_by(HeadScore.rank)
            ).all()
            model_name = session.scalar(select(Model.name).where(Model.id == unit.model_id)) or "?"
            result.append(UnitSummary(
                model_name, unit.name, unit.version, unit.threshold, sum(1 for h in heads if h.label),
                len(heads), [(h.layer, h.head, h.score) for h in heads[:top_n]],
                unit.validations[0] if unit.validations else None,
            ))  # fmt: skip
    return result


def insert_rows(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """Bulk-insert ``rows`` in chunks (bounded statement size on every backend)."""
    for start in range(0, len(rows), INSERT_CHUNK):
        session.execute(insert(table), rows[start : start + INSERT_CHUNK])


def store_vocabulary(engine: Engine, model_id: int, decode: Callable[[], list[str]]) -> None:
    """Store the model's token texts (``decode()``: one per id) unless it has them already, so
    token ids in evidence and neuron rows can be read without the tokenizer."""
    with session_factory(engine).begin() as session:
        if session.scalar(select(Token.token_id).where(Token.model_id == model_id).limit(1)) is not None:
            return
        insert_rows(
            session, Token, [{"model_id": model_id, "token_id": i, "text": t} for i, t in enumerate(decode())]
        )
