"""The neuron pass: one streaming, resumable pass over a corpus that summarises every MLP neuron.

The corpus is cut, per model, into fixed windows of ``window`` tokens (documents shorter than a
window are skipped, and at most ``max_windows_per_doc`` are taken from one document), each with
the model's BOS in front; BOS positions are left out of every statistic. Windows are taken in
corpus order until ``token_budget`` tokens. State is checkpointed every ``checkpoint_every``
batches (atomically), so a killed pass resumes where the last checkpoint left it and ends with
the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sqlalchemy import Engine
from torch import Tensor

from classifiers.keys import NEURON_SUMMARY
from classifiers.neuron_stats import (
    HISTOGRAM_BINS,
    HISTOGRAM_MARGIN,
    ContextShape,
    Histogram,
    Moments,
    NeuronConfig,
    TopK,
)
from classifiers.neuron_weights import (
    DEAD_ACTIVE_FRACTION,
    DEAD_MAX,
    PARTITION_VARIANCE_FACTOR,
    TOKEN_SHARE,
    TOP_TOKENS,
    VOCAB_KURTOSIS,
)
from db.neuron_store import write_neuron_unit
from db.store import RunIds, UnitRow
from survey.corpus.sources import Corpus, Document, resolve_corpus
from survey.engine.capture import CaptureSpec, capture
from survey.errors import SurveyError
from survey.loading.loaders import LoadedModel, context_length
from survey.settings import cache_root
from survey.units.base import PlannedUnit, Progress, RunConfig, Shared, UnitKind, UnitResult

VERSION = 1


@dataclass(frozen=True)
class TokenizedDocument:
    """A document's token ids and character offsets, up to the last token a window used."""

    document: Document
    token_ids: list[int]
    offsets: list[tuple[int, int]]


@dataclass(frozen=True)
class Windows:
    """``tokens [window, pos]`` without BOS, and where each window starts in its document."""

    tokens: Tensor
    doc_index: Tensor  # [window]
    start: Tensor  # [window]: token index in the document of the window's first token
    documents: list[TokenizedDocument]


def cut_windows(corpus: Corpus, tokenizer: Any, config: NeuronConfig) -> Windows:
    """Tokenize documents in order and cut full windows until the token budget is met."""
    wanted = max(config.token_budget // config.window, 1)
    rows: list[list[int]] = []
    doc_index: list[int] = []
    starts: list[int] = []
    used: list[TokenizedDocument] = []
    for document in corpus.documents():
        encoded = tokenizer(document.text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(encoded["input_ids"])
        n = min(len(ids) // config.window, config.max_windows_per_doc, wanted - len(rows))
        if n <= 0:
            continue
        for w in range(n):
            rows.append(ids[w * config.window : (w + 1) * config.window])
            doc_index.append(document.index)
            starts.append(w * config.window)
        end = n * config.window
        offsets = [tuple(pair) for pair in encoded["offset_mapping"][:end]]
        used.append(TokenizedDocument(document, ids[:end], offsets))  # type: ignore[arg-type]
        if len(rows) >= wanted:
            break
    if not rows:
        raise SurveyError(f"corpus {corpus.name!r} has no document of at least {config.window} tokens")
    return Windows(torch.tensor(rows), torch.tensor(doc_index), torch.tensor(starts), used)


def dataset_hash(corpus_hash: str, bos_id: int | None, config: NeuronConfig) -> str:
    """The unit's dataset hash: the corpus content, the BOS policy and the pass settings."""
    payload = {"corpus": corpus_hash, "bos": bos_id, **config.result_fields()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class LayerTrackers:
    """Moments, histogram and top-k of one layer's neurons."""

    def __init__(self, d_mlp: int, config: NeuronConfig) -> None:
        shape = ContextShape(config.context_before, config.context_after)
        self.moments, self.histogram = Moments(d_mlp), Histogram(d_mlp)
        self.top = TopK(d_mlp, config.top_k, shape)

    def update(self, acts: Tensor, first_position: int) -> None:
        """``acts [window, pos, neuron]`` of consecutive windows."""
        flat = acts.reshape(-1, acts.shape[-1])
        self.moments.update(flat)
        self.histogram.update(flat)
        self.top.update(acts, first_position)

    def state_dict(self) -> dict[str, object]:
        return {
            "moments": self.moments.state_dict(), "histogram": self.histogram.state_dict(),
            "top": self.top.state_dict(),
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.moments.load_state_dict(state["moments"])
        self.histogram.load_state_dict(state["histogram"])
        self.top.load_state_dict(state["top"])


def _save_atomically(state: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with partial.open("wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def run_pass(
    loaded: LoadedModel, windows: Windows, config: NeuronConfig, checkpoint: Path, key: str,
    echo: Callable[[str], None],
) -> list[LayerTrackers]:  # fmt: skip
    """Feed every window through the model once, updating each layer's trackers; resume from
    ``checkpoint`` when it holds a state for the same ``key``."""
    d = loaded.adapter.dims
    trackers = [LayerTrackers(d.d_mlp, config) for _ in range(d.n_layers)]
    n_windows, length = windows.tokens.shape
    batches = list(range(0, n_windows, config.batch_size))
    done = 0
    if checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        if state.get("key") == key:
            done = int(state["batches_done"])
            for tracker, layer_state in zip(trackers, state["layers"], strict=True):
                tracker.load_state_dict(layer_state)
            echo(f"neurons: resuming after batch {done}/{len(batches)} from {checkpoint}")
    spec = CaptureSpec.of("neuron")
    started, report_every = time.perf_counter(), max(len(batches) // 10, 1)
    for number in range(done, len(batches)):
        first = batches[number]
        ids = loaded.bos.prepend(windows.tokens[first : first + config.batch_size])
        skip = ids.shape[1] - length  # 1 when BOS was prepended
        got = capture(loaded.adapter, ids, spec, batch_size=config.batch_size)
        for layer, tracker in enumerate(trackers):
            tracker.update(got[("neuron", layer)][:, skip:], first * length)
        if (number + 1) % config.checkpoint_every == 0 and number + 1 < len(batches):
            states = [t.state_dict() for t in trackers]
            _save_atomically({"key": key, "batches_done": number + 1, "layers": states}, checkpoint)
        if (number + 1) % report_every == 0 or number + 1 == len(batches):
            tokens = (min(first + config.batch_size, n_windows) - batches[done]) * length
            rate = tokens / max(time.perf_counter() - started, 1e-9)
            echo(f"neurons: batch {number + 1}/{len(batches)}, {rate:,.0f} tokens/s")
    return trackers


@dataclass(frozen=True)
class NeuronSummary:
    """Rows ready to store: one per neuron for ``neurons`` and for ``examples``."""

    neurons: list[dict[str, Any]]
    examples: list[dict[str, Any]]
    documents: list[TokenizedDocument]


def _pairs(ids: list[int], values: list[float]) -> list[list[Any]]:
    """``[[token_id, value], ...]``."""
    return [[i, round(v, 4)] for i, v in zip(ids, values, strict=True)]


STAT_FIELDS = ("mean", "std", "skew", "kurtosis", "max", "frac_active")
FAMILY_GATES = {  # the constants that decide histograms, read-outs and family labels
    "histogram_bins": HISTOGRAM_BINS, "histogram_margin": HISTOGRAM_MARGIN, "top_tokens": TOP_TOKENS,
    "dead_active_fraction": DEAD_ACTIVE_FRACTION, "dead_max": DEAD_MAX, "token_share": TOKEN_SHARE,
    "vocab_kurtosis": VOCAB_KURTOSIS, "partition_variance_factor": PARTITION_VARIANCE_FACTOR,
}  # fmt: skip


def summarise(loaded: LoadedModel, windows: Windows, trackers: list[LayerTrackers]) -> NeuronSummary:
    """Turn the trackers into neuron and example rows, adding the weight-based fields and families."""
    from classifiers.neuron_weights import families, top_token_share, vocab_projection

    adapter = loaded.adapter
    length = windows.tokens.shape[1]
    w_u = adapter.unembedding()[0].detach()
    gain = adapter.final_norm_gain()
    neurons: list[dict[str, Any]] = []
    examples: list[dict[str, Any]] = []
    activity: list[Tensor] = []  # per layer [neuron, 3]: frac_active, max activation, top-token share
    all_moments: list[Tensor] = []
    for layer, tracker in enumerate(trackers):
        stats = tracker.moments.result()
        top = tracker.top
        filled = top.values > float("-inf")
        window = top.positions.clamp_min(0) // length
        within = top.positions.clamp_min(0) % length
        token_ids = torch.where(filled, windows.tokens[window, within], -1)
        weights_of = adapter.neuron_weights(layer)
        weights = vocab_projection(weights_of.W_out.detach(), w_u, gain)
        shares = top_token_share(token_ids)
        activity.append(torch.stack([stats["frac_active"].float(), stats["max"].float(), shares], dim=1))
        columns = {name: stats[name].tolist() for name in STAT_FIELDS}
        columns |= {
            "hist_low": tracker.histogram.low.tolist(), "hist_high": tracker.histogram.high.tolist(),
            "histogram": tracker.histogram.counts.tolist(), "top_token_share": shares.tolist(),
            "w_in_norm": weights_of.W_in.detach().float().norm(dim=1).tolist(),
            "w_out_norm": weights["w_out_norm"].tolist(),
        }  # fmt: skip
        all_moments.append(weights["moments"])
        moments = weights["moments"].tolist()
        top_ids, top_values = weights["top_ids"].tolist(), weights["top"].tolist()
        bottom_ids, bottom_values = weights["bottom_ids"].tolist(), weights["bottom"].tolist()
        for n in range(len(moments)):
            row = {name: values[n] for name, values in columns.items()}
            row.update(
                layer=layer, neuron=n, vocab_mean=moments[n][0], vocab_var=moments[n][1],
                vocab_skew=moments[n][2], vocab_kurtosis=moments[n][3],
                top_tokens=_pairs(top_ids[n], top_values[n]),
                bottom_tokens=_pairs(bottom_ids[n], bottom_values[n]),
            )  # fmt: skip
            neurons.append(row)
        examples += _example_rows(layer, top, filled, window, within, token_ids, windows)
    table, vocab_moments = torch.cat(activity), torch.cat(all_moments)
    for row, label in zip(
        neurons, families(table[:, 0], table[:, 1], table[:, 2], vocab_moments), strict=True
    ):
        row["family"] = label
    return NeuronSummary(neurons, examples, windows.documents)


def _example_rows(
    layer: int, top: TopK, filled: Tensor, window: Tensor, within: Tensor, token_ids: Tensor, windows: Windows
) -> list[dict[str, Any]]:
    """One row per neuron of one layer: its filled top-k slots, best first, and their contexts
    (``examples`` name documents by corpus index; the store maps them to documents rows)."""
    token_index = (windows.start[window] + within).tolist()
    doc_index = windows.doc_index[window].tolist()
    values, ids, full = top.values.tolist(), token_ids.tolist(), filled.tolist()
    contexts = top.contexts.to(torch.float16).numpy()
    rows = []
    for n, slots in enumerate(full):
        kept = [rank for rank, is_filled in enumerate(slots) if is_filled]
        rows.append({
            "layer": layer, "neuron": n,
            "examples": [
                [doc_index[n][r], token_index[n][r], ids[n][r], round(values[n][r], 5)] for r in kept
            ],
            "context_acts": contexts[n, kept].tobytes(),
        })  # fmt: skip
    return rows


@dataclass(frozen=True)
class NeuronPlan:
    """A neuron unit, resolved before anything is written: its corpus, settings, windows and
    where its resumable state is kept."""

    corpus: Corpus
    corpus_hash: str
    config: NeuronConfig
    dataset_hash: str
    windows: Windows
    checkpoint: Path

    @property
    def hash(self) -> str:
        """The dataset hash: corpus content, BOS policy and pass settings."""
        return self.dataset_hash

    def describe(self) -> dict[str, Any]:
        """What is stored beside the dataset hash."""
        return {"corpus": self.corpus.name, "corpus_hash": self.corpus_hash, **self.config.result_fields()}


def plan_neurons(loaded: LoadedModel, config: NeuronConfig) -> NeuronPlan:
    """Resolve and hash the corpus and cut its windows (SurveyError when it cannot be read or has
    no document as long as a window), before anything is written."""
    limit = context_length(loaded.model)
    needed = config.window + (loaded.bos.token_id is not None)
    if limit is not None and needed > limit:
        raise SurveyError(
            f"neuron windows need {needed} positions but {loaded.source.name!r} supports {limit}"
        )
    corpus = resolve_corpus(config.corpus)
    corpus_hash = corpus.hash()
    windows = cut_windows(corpus, loaded.tokenizer, config)
    digest = dataset_hash(corpus_hash, loaded.bos.token_id, config)
    return NeuronPlan(
        corpus, corpus_hash, config, digest, windows, checkpoint_path(loaded.resolved_sha, digest)
    )


def checkpoint_path(resolved_sha: str, dataset_hash: str) -> Path:
    """Where the pass over this model and dataset keeps its resumable state."""
    return cache_root() / "neuron-passes" / f"{resolved_sha[:16]}-{dataset_hash[:16]}.pt"


def compute_summary(loaded: LoadedModel, plan: NeuronPlan, echo: Callable[[str], None]) -> NeuronSummary:
    """Run (or resume) the pass and summarise; the checkpoint is left for the caller to remove
    once the summary is stored."""
    windows = plan.windows
    echo(
        f"neurons: {windows.tokens.shape[0]} windows x {windows.tokens.shape[1]} tokens from "
        f"{len(windows.documents)} documents of {plan.corpus.name}"
    )
    key = f"{loaded.resolved_sha}:{plan.dataset_hash}"
    trackers = run_pass(loaded, windows, plan.config, plan.checkpoint, key, echo)
    return summarise(loaded, windows, trackers)


class NeuronUnit(UnitKind):
    """The neuron pass: every MLP neuron summarised over the corpus, resumable."""

    kind = NEURON_SUMMARY
    name = "neurons"
    version = VERSION

    def __init__(self, config: RunConfig, neurons: NeuronConfig) -> None:
        super().__init__(config)
        self.config = neurons

    @classmethod
    def for_run(cls, config: RunConfig) -> NeuronUnit | None:
        """The pass when the run asks for it."""
        return None if config.neurons is None else cls(config, config.neurons)

    def definition(self) -> dict[str, Any]:
        return {"config": self.config.result_fields(), "gates": FAMILY_GATES}

    def dataset(self, loaded: LoadedModel, shared: Shared) -> NeuronPlan:
        return plan_neurons(loaded, self.config)

    def compute(
        self, loaded: LoadedModel, planned: PlannedUnit, shared: Shared, progress: Progress
    ) -> NeuronSummary:
        assert isinstance(planned.dataset, NeuronPlan)
        return compute_summary(loaded, planned.dataset, progress)

    def write(
        self, engine: Engine, ids: RunIds, planned: PlannedUnit, result: NeuronSummary, replace: bool
    ) -> None:
        """Store the pass in one transaction, then drop its checkpoint."""
        plan = planned.dataset
        assert isinstance(plan, NeuronPlan)
        row = UnitRow(planned.key, self.full_definition(), self.config.result_fields(), plan.describe())
        write_neuron_unit(engine, ids, row, plan.corpus, plan.corpus_hash, result, replace)
        plan.checkpoint.unlink(missing_ok=True)

    def describe(self, done: UnitResult) -> str:
        summary: NeuronSummary = done.result
        counts = Counter(row["family"] for row in summary.neurons if row["family"])
        return (
            f"neurons v{VERSION}: {len(summary.neurons)} neurons, {len(summary.examples)} examples, "
            f"families {dict(sorted(counts.items()))} [{done.seconds:.1f} s]"
        )
