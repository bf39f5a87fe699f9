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
    name: Mapped[str] = mapped_column(
        String(200), index=True, doc="catalog name, hub id, folder or file name"
    )
    source: Mapped[str] = mapped_column(String(20), doc="registry | gguf | local | hub")
    location: Mapped[str] = mapped_column(Text, doc="hub id, path, or package list")
    revision: Mapped[str | None] = mapped_column(String(200), doc="as requested")
    resolved_sha: Mapped[str] = mapped_column(String(64), doc="commit sha, GGUF sha256, or folder hash")
    family: Mapped[str | None] = mapped_column(String(100), doc="model family from the catalog")
    architecture: Mapped[str] = mapped_column(String(50), doc="Hugging Face model_type")
    n_layers: Mapped[int] = mapped_column(Integer, doc="transformer blocks")
    n_heads: Mapped[int] = mapped_column(Integer, doc="query heads per layer")
    n_kv_heads: Mapped[int] = mapped_column(
        Integer, doc="key/value heads per layer (fewer than n_heads with grouped-query attention)"
    )
    d_model: Mapped[int] = mapped_column(Integer, doc="residual stream width")
    d_head: Mapped[int] = mapped_column(Integer, doc="per-head width")
    d_mlp: Mapped[int] = mapped_column(Integer, doc="MLP neurons per layer")
    d_vocab: Mapped[int] = mapped_column(
        Integer, doc="unembedding rows (vocabulary size as the model outputs it)"
    )
    n_params: Mapped[int] = mapped_column(BigInteger, doc="distinct parameters, tied embeddings counted once")
    parallel_attn_mlp: Mapped[bool] = mapped_column(
        doc="attention and MLP read the same residual (GPT-J, Phi, parallel GPT-NeoX)"
    )
    quantization: Mapped[str | None] = mapped_column(Text, doc="None: the weights are as published")
    bos_token: Mapped[str | None] = mapped_column(
        String(100), doc="the token prepended to every probe and window"
    )
    license: Mapped[str | None] = mapped_column(String(100), doc="license from the catalog")
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), doc="when the row was written (UTC)"
    )

    runs: Mapped[list[Run]] = relationship(back_populates="model")


class Run(Base):
    """One invocation of the survey over one model: what ran, where, and how it ended."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True, doc="the model surveyed")
    code_version: Mapped[str] = mapped_column(String(100), doc="package version and git commit")
    config: Mapped[dict[str, Any]] = mapped_column(
        JSON, doc="run settings: device, dtype, ablation, neurons, classifiers run"
    )
    device: Mapped[str] = mapped_column(String(50), doc="torch device")
    dtype: Mapped[str] = mapped_column(String(20), doc="model dtype")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), doc="start (UTC)")
    ended_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), doc="end (UTC); null while running"
    )
    status: Mapped[str] = mapped_column(String(20), doc="running | done | failed")
    error: Mapped[str | None] = mapped_column(Text, doc="why a failed run failed")
    code_dirty: Mapped[bool | None] = mapped_column(
        Boolean, doc="the code's checkout had uncommitted changes (null: not run from a checkout)"
    )
    libraries: Mapped[dict[str, Any] | None] = mapped_column(
        JSON, doc="versions of torch, transformers and gguf the run used"
    )

    model: Mapped[Model] = relationship(back_populates="runs")


class Unit(Base):
    """One unit of survey work done on one model: a classifier (name, version, config) over one
    probe dataset. The key (model, kind, name, version, dataset hash, definition hash) makes reruns
    idempotent."""

    __tablename__ = "units"
    __table_args__ = (
        UniqueConstraint(
            "model_id", "kind", "name", "version", "dataset_hash", "definition_hash", name="uq_units_key"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True, doc="the model")
    run_id: Mapped[int] = mapped_column(
        ForeignKey("runs.id"), index=True, doc="the run that computed the unit"
    )
    kind: Mapped[str] = mapped_column(String(30), doc="head_classifier | neuron_summary | layer_summary")
    name: Mapped[str] = mapped_column(String(100), doc="e.g. induction, neurons")
    version: Mapped[int] = mapped_column(
        Integer, doc="the classifier or summary version (bumped when its definition changes)"
    )
    config: Mapped[dict[str, Any]] = mapped_column(JSON, doc="threshold and probe parameters")
    threshold: Mapped[float | None] = mapped_column(Float, doc="head classifiers only")
    dataset_hash: Mapped[str] = mapped_column(String(64), doc="sha256 of the probe spec and token ids")
    dataset: Mapped[dict[str, Any]] = mapped_column(JSON, doc="probe spec, shape, BOS convention")
    definition_hash: Mapped[str] = mapped_column(
        String(64), doc="sha256 of the full definition: config, gates, validation settings, dtype"
    )
    definition: Mapped[dict[str, Any] | None] = mapped_column(JSON, doc="the definition the hash covers")
    statistics: Mapped[dict[str, Any] | None] = mapped_column(
        JSON,
        doc="head classes: the null (what it is), alpha, null_label_rate (share of heads the full rule "
        "labels on the null alone: half its items against the other half), null_fp_rate (share whose "
        "null score passes the threshold, an upper bound), and for pattern classes the labels per probe "
        "seed and their mean pairwise Jaccard (seed_jaccard)",
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), doc="when stored (UTC)")

    head_scores: Mapped[list[HeadScore]] = relationship(back_populates="unit", cascade="all, delete-orphan")
    validations: Mapped[list[Validation]] = relationship(back_populates="unit", cascade="all, delete-orphan")


class HeadScore(Base):
    """One head's score from one classifier unit, with its label, standing in the model and evidence."""

    __tablename__ = "head_scores"
    __table_args__ = (UniqueConstraint("unit_id", "layer", "head", name="uq_head_scores_head"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(
        ForeignKey("units.id", ondelete="CASCADE"), index=True, doc="the classifier unit"
    )
    layer: Mapped[int] = mapped_column(Integer, doc="layer, from 0")
    head: Mapped[int] = mapped_column(Integer, doc="head within the layer, from 0")
    score: Mapped[float] = mapped_column(Float, doc="the classifier's score")
    label: Mapped[bool] = mapped_column(
        Boolean, doc="score > the unit's threshold, q_value < alpha, and the class's gate holds (see reason)"
    )
    reason: Mapped[str | None] = mapped_column(
        String(20), doc="why it is or is not labelled: labelled | below_threshold | within_null | gated"
    )
    rank: Mapped[int] = mapped_column(Integer, doc="1 = highest score in the model")
    percentile: Mapped[float] = mapped_column(Float, doc="share of the model's heads scoring <= this, x100")
    ci_low: Mapped[float | None] = mapped_column(
        Float, doc="95% bootstrap interval of the score over probe sequences or prompts: low end"
    )
    ci_high: Mapped[float | None] = mapped_column(Float, doc="95% bootstrap interval: high end")
    null_score: Mapped[float | None] = mapped_column(Float, doc="the head's score on its class's null")
    null_percentile: Mapped[float | None] = mapped_column(
        Float, doc="share of this model's heads whose null score is <= this head's score, x100"
    )
    p_value: Mapped[float | None] = mapped_column(
        Float, doc="one-sided Welch t-test: per-item score above the head's per-item null"
    )
    q_value: Mapped[float | None] = mapped_column(
        Float, doc="p_value after Benjamini-Hochberg over the model's heads; a label needs q < alpha"
    )
    evidence: Mapped[dict[str, Any]] = mapped_column(
        JSON, doc="JSON: target_mass, bos_mass, self_mass, n_queries, example rows, ablation_metric_rise"
    )

    unit: Mapped[Unit] = relationship(back_populates="head_scores")


class Validation(Base):
    """A causal check of a unit's labels: ablate its top-k labelled heads and k random heads
    (several draws), and compare the rise in the class's task metric."""

    __tablename__ = "validations"
    __table_args__ = (UniqueConstraint("unit_id", "method", name="uq_validations_method"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(
        ForeignKey("units.id", ondelete="CASCADE"), index=True, doc="the classifier unit validated"
    )
    method: Mapped[str] = mapped_column(String(50), doc="mean_ablation_top_k_vs_random")
    metric: Mapped[str] = mapped_column(String(50), doc="second_repeat_loss")
    k: Mapped[int] = mapped_column(Integer, doc="heads ablated together")
    heads: Mapped[list[list[int]]] = mapped_column(JSON, doc="[[layer, head], ...], best first")
    baseline: Mapped[float] = mapped_column(Float, doc="the metric with nothing ablated")
    effect_top: Mapped[float] = mapped_column(Float, doc="metric rise when the top-k are ablated")
    effect_random: Mapped[list[float]] = mapped_column(JSON, doc="metric rise per random draw")
    effect_random_mean: Mapped[float | None] = mapped_column(
        Float, doc="mean metric rise over the random draws"
    )
    ratio: Mapped[float | None] = mapped_column(
        Float, doc="units stored before migration 0008 only: effect_top / mean random effect"
    )
    rank: Mapped[int | None] = mapped_column(
        Integer, doc="1 + the random draws whose effect is >= effect_top (1: it beats every draw)"
    )
    z_score: Mapped[float | None] = mapped_column(
        Float, doc="(effect_top - mean random effect) / standard deviation of the random effects"
    )
    min_effect: Mapped[float | None] = mapped_column(
        Float, doc="the smallest effect_top that can be supported"
    )
    supported: Mapped[bool] = mapped_column(
        Boolean, doc="effect_top beats every random draw and is at least min_effect (before 0008: ratio)"
    )
    details: Mapped[dict[str, Any]] = mapped_column(JSON, doc="random head sets, per-head effects, cost")

    unit: Mapped[Unit] = relationship(back_populates="validations")


class Token(Base):
    """A model's vocabulary as display text (each id decoded alone), so token ids in neuron rows
    can be read without the tokenizer."""

    __tablename__ = "tokens"

    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), primary_key=True, doc="the model")
    token_id: Mapped[int] = mapped_column(Integer, primary_key=True, doc="vocabulary id")
    text: Mapped[str] = mapped_column(Text, doc="the id decoded alone (untrusted display text)")


class Corpus(Base):
    """A named text corpus, identified by the hash of its documents."""

    __tablename__ = "corpora"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), doc="corpus spec name, e.g. wiki-news or file:notes.txt")
    hash: Mapped[str] = mapped_column(
        String(64), unique=True, doc="sha256 over the corpus name and every document, in order"
    )
    description: Mapped[str] = mapped_column(Text, doc="what the corpus is")


class Document(Base):
    """One corpus document's text, stored once however many models and neurons refer to it."""

    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("corpus_id", "doc_index", name="uq_documents_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    corpus_id: Mapped[int] = mapped_column(ForeignKey("corpora.id"), index=True, doc="the corpus")
    doc_index: Mapped[int] = mapped_column(Integer, doc="position in the corpus")
    title: Mapped[str] = mapped_column(Text, doc="title or source name")
    text: Mapped[str] = mapped_column(Text, doc="the document text, stored once")


class TokenizedDocument(Base):
    """How one unit's model tokenized a document: token ids and character offsets into its text,
    up to the last token a window used. Examples point into these."""

    __tablename__ = "tokenized_documents"
    __table_args__ = (UniqueConstraint("unit_id", "document_id", name="uq_tokenized_documents"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(
        ForeignKey("units.id", ondelete="CASCADE"),
        index=True,
        doc="the neuron unit (its model's tokenization)",
    )
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"), doc="the document")
    token_ids: Mapped[list[int]] = mapped_column(JSON, doc="JSON token ids")
    offsets: Mapped[list[list[int]]] = mapped_column(JSON, doc="[[start, end], ...] characters")


class Neuron(Base):
    """One MLP neuron's summary: corpus statistics, weight-based fields and family."""

    __tablename__ = "neurons"
    __table_args__ = (UniqueConstraint("unit_id", "layer", "neuron", name="uq_neurons_neuron"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(
        ForeignKey("units.id", ondelete="CASCADE"), index=True, doc="the neuron unit"
    )
    layer: Mapped[int] = mapped_column(Integer, doc="layer, from 0")
    neuron: Mapped[int] = mapped_column(Integer, doc="neuron within the layer's MLP, from 0")
    mean: Mapped[float] = mapped_column(Float, doc="mean activation over corpus tokens")
    std: Mapped[float] = mapped_column(Float, doc="standard deviation (population)")
    skew: Mapped[float] = mapped_column(Float, doc="skewness of the activations")
    kurtosis: Mapped[float] = mapped_column(Float, doc="Pearson kurtosis of the activations (3 for a normal)")
    max: Mapped[float] = mapped_column(Float, doc="largest activation")
    min: Mapped[float | None] = mapped_column(Float, doc="smallest (most negative) activation")
    frac_active: Mapped[float] = mapped_column(Float, doc="share of corpus tokens with activation > 0")
    frac_negative: Mapped[float | None] = mapped_column(
        Float, doc="share of corpus tokens with activation < 0"
    )
    hist_low: Mapped[float] = mapped_column(Float, doc="histogram lower edge")
    hist_high: Mapped[float] = mapped_column(Float, doc="histogram upper edge")
    histogram: Mapped[list[int]] = mapped_column(JSON, doc="equal-width bins over [hist_low, hist_high]")
    sign: Mapped[int | None] = mapped_column(
        Integer, doc="the dominant tail: +1 when the positive top examples' mean |activation| is at least "
        "the negative ones', else -1"
    )  # fmt: skip
    typical_top: Mapped[float | None] = mapped_column(
        Float, doc="typical top activation: median |activation| of the dominant tail's top examples "
        "(first positions of windows left out); the layer pages rank by it"
    )  # fmt: skip
    first_max_abs: Mapped[float | None] = mapped_column(
        Float, doc="largest |activation| at the first position of a corpus window (massive activations)"
    )
    w_in_norm: Mapped[float] = mapped_column(Float, doc="norm of the neuron's input weights")
    w_out_norm: Mapped[float] = mapped_column(Float, doc="norm of the neuron's output weights (W_out row)")
    direction_norm: Mapped[float | None] = mapped_column(
        Float, doc="norm of the effective output direction: sign x W_out row, through any post-MLP norm gain"
    )
    vocab_mean: Mapped[float] = mapped_column(
        Float, doc="mean of cos(effective direction, W_U*) over the vocabulary (W_U* = final norm folded "
        "in, centred over the vocabulary)"
    )  # fmt: skip
    vocab_var: Mapped[float] = mapped_column(Float, doc="variance of cos(effective direction, W_U*)")
    vocab_skew: Mapped[float] = mapped_column(Float, doc="skew of cos(effective direction, W_U*)")
    vocab_kurtosis: Mapped[float] = mapped_column(
        Float, doc="Pearson kurtosis of cos(effective direction, W_U*) over the vocabulary"
    )
    top_tokens: Mapped[list[list[Any]]] = mapped_column(
        JSON, doc="[[token_id, logit], ...] the 10 the effective direction promotes most"
    )
    bottom_tokens: Mapped[list[list[Any]]] = mapped_column(
        JSON, doc="[[token_id, logit], ...] the 10 it suppresses most (texts in tokens)"
    )
    top_token_share: Mapped[float] = mapped_column(
        Float, doc="share of the dominant tail's top examples on their commonest token"
    )
    token_id: Mapped[int | None] = mapped_column(
        Integer, doc="candidate token (commonest in a quarter or more of the dominant tail's top examples "
        "on the corpus's first half); null when none"
    )  # fmt: skip
    token_mean: Mapped[float | None] = mapped_column(
        Float, doc="sign x mean activation on the candidate token over the corpus's second half"
    )
    token_count: Mapped[int | None] = mapped_column(
        Integer, doc="occurrences of the candidate in the second half"
    )
    matched_mean: Mapped[float | None] = mapped_column(
        Float, doc="sign x mean activation on the candidate's frequency-matched tokens (second half)"
    )
    check_overlap: Mapped[int | None] = mapped_column(
        Integer, doc="for the neurons sampled by the intervention check: how many of the 10 promoted "
        "tokens are among the 10 whose logits rise most when the neuron is driven; null otherwise"
    )  # fmt: skip
    family: Mapped[str | None] = mapped_column(
        String(20),
        index=True,
        doc="dead, first_position, token, prediction, suppression, partition, or null (docs/methods.md)",
    )


class NeuronExample(Base):
    """One tail of a neuron's top examples, most extreme first: each a token of a stored document
    with its activation, plus the neuron's activations on the context tokens around it."""

    __tablename__ = "neuron_examples"
    __table_args__ = (UniqueConstraint("unit_id", "layer", "neuron", "tail", name="uq_neuron_examples_tail"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(
        ForeignKey("units.id", ondelete="CASCADE"), index=True, doc="the neuron unit"
    )
    layer: Mapped[int] = mapped_column(Integer, doc="layer, from 0")
    neuron: Mapped[int] = mapped_column(Integer, doc="neuron within the layer's MLP, from 0")
    tail: Mapped[str] = mapped_column(
        String(10),
        server_default="positive",
        doc="positive (largest activations) | negative (most negative) | first (largest |activation| at "
        "a window's first position; kept for first_position neurons); the first two leave first "
        "positions out",
    )
    examples: Mapped[list[list[Any]]] = mapped_column(
        JSON,
        doc="JSON [[document_id, token_index, token_id, activation], ...] best first; "
        "token_index counts in the unit's tokenized_documents",
    )
    context_acts: Mapped[bytes] = mapped_column(
        LargeBinary,
        doc="float16 little-endian [example, context_before + 1 + context_after]; the first value "
        "is at token_index - context_before; NaN outside the window",
    )


class LogitLens(Base):
    """One layer's logit-lens summary over a corpus: the residual stream after the layer, read
    through the final norm and the unembedding, compared with the model's own prediction."""

    __tablename__ = "logit_lens"
    __table_args__ = (UniqueConstraint("unit_id", "layer", name="uq_logit_lens_layer"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(
        ForeignKey("units.id", ondelete="CASCADE"), index=True, doc="the layer-summary unit"
    )
    layer: Mapped[int] = mapped_column(Integer, doc="layer, from 0: the residual after this block")
    kl_to_final: Mapped[float] = mapped_column(Float, doc="mean KL(final || lens) in nats over corpus tokens")
    top1_agreement: Mapped[float] = mapped_column(
        Float, doc="share of tokens whose lens top-1 is the model's top-1 (1 at the last layer)"
    )
    entropy: Mapped[float] = mapped_column(Float, doc="mean entropy of the lens distribution, nats")


class NightlyJob(Base):
    """One attempt of ``survey nightly`` at one model of its config: how it ended, and the run
    it wrote. A failure before the model loads (bad file, unsupported architecture, out of
    memory) has no run, so it is recorded here."""

    __tablename__ = "nightly_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(
        String(300), index=True, doc="the config's model: name, or hub id@revision"
    )
    attempt: Mapped[int] = mapped_column(Integer, doc="1 for the first try of this invocation, then 2, 3…")
    status: Mapped[str] = mapped_column(String(20), doc="running | done | failed (a kill leaves running)")
    error: Mapped[str | None] = mapped_column(Text, doc="why a failed attempt failed")
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"), doc="the model row, once loaded")
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), doc="the run it wrote, if any")
    units_written: Mapped[int] = mapped_column(Integer, doc="units stored by this attempt")
    shard: Mapped[str | None] = mapped_column(String(20), doc="i/n when sharded")
    host: Mapped[str] = mapped_column(String(200), doc="hostname and process id")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), doc="start (UTC)")
    ended_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), doc="end (UTC); null while running"
    )


class ViewState(Base):
    """The hash of the SQL views in the database; they are rebuilt when the classifier registry
    (and so the views' columns) changes."""

    __tablename__ = "view_state"

    views_hash: Mapped[str] = mapped_column(String(64), primary_key=True, doc="sha256 of every view's SQL")
