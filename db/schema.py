"""The database schema: every table, as SQLAlchemy 2 typed declarative classes.

Changes go through Alembic migrations in ``db/migrations/versions``; a test checks that the
migrations produce exactly this schema.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    """Declarative base for every table."""

    type_annotation_map = {dict[str, Any]: JSON, list[list[int]]: JSON, list[float]: JSON}


class Model(Base):
    """One surveyed model at one resolved revision."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("name", "source", "resolved_sha", name="uq_models_identity"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    source: Mapped[str] = mapped_column(String(20))  # registry | gguf | local | hub
    location: Mapped[str] = mapped_column(Text)  # hub id, path, or package list
    revision: Mapped[str | None] = mapped_column(String(200))  # as requested
    resolved_sha: Mapped[str] = mapped_column(String(64))  # commit sha, GGUF sha256, or folder hash
    family: Mapped[str | None] = mapped_column(String(100))
    architecture: Mapped[str] = mapped_column(String(50))  # Hugging Face model_type
    n_layers: Mapped[int] = mapped_column(Integer)
    n_heads: Mapped[int] = mapped_column(Integer)
    n_kv_heads: Mapped[int] = mapped_column(Integer)
    d_model: Mapped[int] = mapped_column(Integer)
    d_head: Mapped[int] = mapped_column(Integer)
    d_mlp: Mapped[int] = mapped_column(Integer)
    d_vocab: Mapped[int] = mapped_column(Integer)
    n_params: Mapped[int] = mapped_column(BigInteger)
    parallel_attn_mlp: Mapped[bool] = mapped_column()
    quantization: Mapped[str | None] = mapped_column(Text)  # None: the weights are as published
    bos_token: Mapped[str | None] = mapped_column(String(100))
    license: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    runs: Mapped[list[Run]] = relationship(back_populates="model")


class Run(Base):
    """One invocation of the survey over one model: what ran, where, and how it ended."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    code_version: Mapped[str] = mapped_column(String(100))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    device: Mapped[str] = mapped_column(String(50))
    dtype: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20))  # running | done | failed
    error: Mapped[str | None] = mapped_column(Text)

    model: Mapped[Model] = relationship(back_populates="runs")


class Unit(Base):
    """One unit of survey work done on one model: a classifier (name, version, config) over one
    probe dataset. The key (model, kind, name, version, dataset hash) makes reruns idempotent."""

    __tablename__ = "units"
    __table_args__ = (
        UniqueConstraint("model_id", "kind", "name", "version", "dataset_hash", name="uq_units_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))  # head_classifier
    name: Mapped[str] = mapped_column(String(100))  # e.g. induction
    version: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)  # threshold and probe parameters
    threshold: Mapped[float] = mapped_column(Float)
    dataset_hash: Mapped[str] = mapped_column(String(64))  # sha256 of the probe spec and token ids
    dataset: Mapped[dict[str, Any]] = mapped_column(JSON)  # probe spec, shape, BOS convention
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    head_scores: Mapped[list[HeadScore]] = relationship(back_populates="unit", cascade="all, delete-orphan")
    validations: Mapped[list[Validation]] = relationship(back_populates="unit", cascade="all, delete-orphan")


class HeadScore(Base):
    """One head's score from one classifier unit, with its label, standing in the model and evidence."""

    __tablename__ = "head_scores"
    __table_args__ = (UniqueConstraint("unit_id", "layer", "head", name="uq_head_scores_head"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), index=True)
    layer: Mapped[int] = mapped_column(Integer)
    head: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    label: Mapped[bool] = mapped_column(Boolean)  # score > the unit's threshold
    rank: Mapped[int] = mapped_column(Integer)  # 1 = highest score in the model
    percentile: Mapped[float] = mapped_column(Float)  # share of the model's heads scoring <= this, x100
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)

    unit: Mapped[Unit] = relationship(back_populates="head_scores")


class Validation(Base):
    """A causal check of a unit's labels: ablate its top-k labelled heads and k random heads
    (several draws), and compare the rise in the class's task metric."""

    __tablename__ = "validations"
    __table_args__ = (UniqueConstraint("unit_id", "method", name="uq_validations_method"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(50))  # mean_ablation_top_k_vs_random
    metric: Mapped[str] = mapped_column(String(50))  # second_repeat_loss
    k: Mapped[int] = mapped_column(Integer)
    heads: Mapped[list[list[int]]] = mapped_column(JSON)  # [[layer, head], ...], best first
    baseline: Mapped[float] = mapped_column(Float)  # the metric with nothing ablated
    effect_top: Mapped[float] = mapped_column(Float)  # metric rise when the top-k are ablated
    effect_random: Mapped[list[float]] = mapped_column(JSON)  # metric rise per random draw
    effect_random_mean: Mapped[float | None] = mapped_column(Float)
    ratio: Mapped[float | None] = mapped_column(Float)  # effect_top / mean random effect
    supported: Mapped[bool] = mapped_column(Boolean)  # ratio >= the configured minimum
    details: Mapped[dict[str, Any]] = mapped_column(JSON)  # random head sets, per-head effects, cost

    unit: Mapped[Unit] = relationship(back_populates="validations")
