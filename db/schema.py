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
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    """Declarative base for every table."""

    type_annotation_map = {
        dict[str, Any]: JSON,
        list[list[int]]: JSON,
        list[float]: JSON,
        list[int]: JSON,
        list[list[Any]]: JSON,
    }


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
    kind: Mapped[str] = mapped_column(String(30))  # head_classifier | neuron_summary
    name: Mapped[str] = mapped_column(String(100))  # e.g. induction, neurons
    version: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)  # threshold and probe parameters
    threshold: Mapped[float | None] = mapped_column(Float)  # head classifiers only
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


class Token(Base):
    """A model's vocabulary as display text (each id decoded alone), so token ids in neuron rows
    can be read without the tokenizer."""

    __tablename__ = "tokens"

    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), primary_key=True)
    token_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)


class Corpus(Base):
    """A named text corpus, identified by the hash of its documents."""

    __tablename__ = "corpora"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text)


class Document(Base):
    """One corpus document's text, stored once however many models and neurons refer to it."""

    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("corpus_id", "doc_index", name="uq_documents_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    corpus_id: Mapped[int] = mapped_column(ForeignKey("corpora.id"), index=True)
    doc_index: Mapped[int] = mapped_column(Integer)  # position in the corpus
    title: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)


class TokenizedDocument(Base):
    """How one unit's model tokenized a document: token ids and character offsets into its text,
    up to the last token a window used. Examples point into these."""

    __tablename__ = "tokenized_documents"
    __table_args__ = (UniqueConstraint("unit_id", "document_id", name="uq_tokenized_documents"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), index=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    token_ids: Mapped[list[int]] = mapped_column(JSON)
    offsets: Mapped[list[list[int]]] = mapped_column(JSON)  # [[start, end], ...] characters


class Neuron(Base):
    """One MLP neuron's summary: corpus statistics, weight-based fields and family."""

    __tablename__ = "neurons"
    __table_args__ = (UniqueConstraint("unit_id", "layer", "neuron", name="uq_neurons_neuron"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), index=True)
    layer: Mapped[int] = mapped_column(Integer)
    neuron: Mapped[int] = mapped_column(Integer)
    mean: Mapped[float] = mapped_column(Float)
    std: Mapped[float] = mapped_column(Float)
    skew: Mapped[float] = mapped_column(Float)
    kurtosis: Mapped[float] = mapped_column(Float)  # Pearson (3 for a normal)
    max: Mapped[float] = mapped_column(Float)
    frac_active: Mapped[float] = mapped_column(Float)  # share of corpus tokens with activation > 0
    hist_low: Mapped[float] = mapped_column(Float)
    hist_high: Mapped[float] = mapped_column(Float)
    histogram: Mapped[list[int]] = mapped_column(JSON)  # equal-width bins over [hist_low, hist_high]
    w_in_norm: Mapped[float] = mapped_column(Float)
    w_out_norm: Mapped[float] = mapped_column(Float)
    vocab_mean: Mapped[float] = mapped_column(Float)  # moments of cos(W_out, W_U) over the vocabulary
    vocab_var: Mapped[float] = mapped_column(Float)
    vocab_skew: Mapped[float] = mapped_column(Float)
    vocab_kurtosis: Mapped[float] = mapped_column(Float)
    top_tokens: Mapped[list[list[Any]]] = mapped_column(JSON)  # [[token_id, logit], ...] the 10 promoted most
    bottom_tokens: Mapped[list[list[Any]]] = mapped_column(JSON)  # the 10 suppressed most (texts: tokens)
    top_token_share: Mapped[float] = mapped_column(Float)  # share of top examples on the commonest token
    family: Mapped[str | None] = mapped_column(String(20), index=True)


class NeuronExample(Base):
    """One neuron's max-activating examples, best first: each a token of a stored document with
    its activation, plus the neuron's activations on the context tokens around it."""

    __tablename__ = "neuron_examples"
    __table_args__ = (UniqueConstraint("unit_id", "layer", "neuron", name="uq_neuron_examples_neuron"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), index=True)
    layer: Mapped[int] = mapped_column(Integer)
    neuron: Mapped[int] = mapped_column(Integer)
    # [[document_id, token_index, token_id, activation], ...]; token_index counts in the unit's
    # tokenization of the document (tokenized_documents)
    examples: Mapped[list[list[Any]]] = mapped_column(JSON)
    # float16 little-endian [example, context_before + 1 + context_after] (widths in the unit's
    # config); the first value is at token_index - context_before; NaN outside the window
    context_acts: Mapped[bytes] = mapped_column(LargeBinary)
