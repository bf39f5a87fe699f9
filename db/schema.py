"""The database schema: every table, as SQLAlchemy 2 typed declarative classes.

Changes go through Alembic migrations in ``db/migrations/versions``; a test checks that the
migrations produce exactly this schema.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    """Declarative base for every table."""

    type_annotation_map = {dict[str, Any]: JSON}


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
