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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from sqlalchemy import Engine
from torch import Tensor

from classifiers.keys import NEURON_SUMMARY
from classifiers.neuron_stats import (
    HISTOGRAM_BINS,
    HISTOGRAM_MARGIN,
    TAILS,
    ContextShape,
    Histogram,
    Moments,
    NeuronConfig,
    TokenSelectivity,
    TopK,
    frequency_matched,
)
from classifiers.neuron_weights import (
    DEAD_ACTIVE_FRACTION,
    DEAD_MAX,
    FIRST_POSITION_RATIO,
    NULL_DIRECTIONS,
    TOKEN_CANDIDATE_SHARE,
    TOKEN_MEAN_SHARE,
    TOKEN_MIN_COUNT,
    TOKEN_MIN_MATCHED,
    TOP_TOKENS,
    NeuronEvidence,
    effective_directions,
    families,
    top_token_share,
    unembedding_read,
    vocab_null,
    vocab_projection,
)
from db.common.errors import SurveyError
from db.common.progress import Meter
from db.common.settings import cache_root
from db.neuron_store import write_neuron_unit
from db.store import RunIds, UnitRow
from survey.corpus.sources import Corpus, Document, resolve_corpus
from survey.engine.capture import CaptureSpec, capture
from survey.engine.neuron_intervention import NeuronNudge, logit_rises
from survey.loading.loaders import LoadedModel, context_length
from survey.units.base import PlannedUnit, Progress, RunConfig, Shared, UnitKind, UnitResult

VERSION = 2
CHECK_MIN_OVERLAP = 8  # of the 10 promoted tokens, for a neuron's read-out to count as confirmed


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
    """Moments, histogram, the three example tails and, on the second half of the corpus, the
    token-selectivity sums of one layer's neurons."""

    def __init__(self, d_mlp: int, config: NeuronConfig) -> None:
        shape = ContextShape(config.context_before, config.context_after)
        self.moments, self.histogram = Moments(d_mlp), Histogram(d_mlp)
        self.tails = {tail: TopK(d_mlp, config.top_k, shape, tail) for tail in TAILS}
        self.selectivity: TokenSelectivity | None = None

    def update(self, acts: Tensor, first_position: int, token_ids: Tensor) -> None:
        """``acts [window, pos, neuron]`` of consecutive windows read on ``token_ids [window, pos]``."""
        flat = acts.reshape(-1, acts.shape[-1]).float()
        extremes = torch.aminmax(flat, dim=0)
        self.moments.update(flat, extremes)
        self.histogram.update(flat)
        for top in self.tails.values():
            top.update(acts, first_position, extremes)
        if self.selectivity is not None:  # away from the first position, as the tails
            self.selectivity.update(acts[:, 1:].reshape(-1, acts.shape[-1]), token_ids[:, 1:].flatten())

    def dominant(self) -> tuple[Tensor, Tensor]:
        """Each neuron's dominant sign (+1 when its positive tail's typical top value is at least
        its negative tail's) and that typical value: the median over the tail's filled top
        examples, so that one massive activation does not make a neuron look strong."""
        typical = []
        for tail in ("positive", "negative"):
            values = self.tails[tail].values
            filled = torch.where(values > float("-inf"), values, float("nan"))
            typical.append(filled.nanmedian(1).values.nan_to_num(0.0))
        positive = typical[0] >= typical[1]
        return torch.where(positive, 1, -1), torch.where(positive, typical[0], typical[1]).clamp_min(0)

    def start_selectivity(self, tokens: Tensor, counts: Tensor, config: NeuronConfig) -> None:
        """Fix each neuron's candidate token from the examples so far and start measuring it."""
        sign, _ = self.dominant()
        candidate, share = self.top_tokens(tokens, sign)
        candidate = torch.where(share >= TOKEN_CANDIDATE_SHARE, candidate, -1)
        matched = frequency_matched(counts, candidate, config.token_matched, config.seed)
        self.selectivity = TokenSelectivity(torch.cat([candidate[:, None], matched], dim=1))

    def top_tokens(self, tokens: Tensor, sign: Tensor) -> tuple[Tensor, Tensor]:
        """The commonest token of each neuron's dominant-tail examples and its share of them."""
        ids = [example_tokens(self.tails[tail], tokens) for tail in ("positive", "negative")]
        return top_token_share(torch.where(sign[:, None] > 0, ids[0], ids[1]))

    def state_dict(self) -> dict[str, object]:
        return {
            "moments": self.moments.state_dict(), "histogram": self.histogram.state_dict(),
            "tails": {tail: top.state_dict() for tail, top in self.tails.items()},
            "selectivity": None if self.selectivity is None else self.selectivity.state_dict(),
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.moments.load_state_dict(state["moments"])
        self.histogram.load_state_dict(state["histogram"])
        for tail, top in self.tails.items():
            top.load_state_dict(state["tails"][tail])
        saved = state["selectivity"]
        self.selectivity = None if saved is None else TokenSelectivity.from_state(saved)


def example_tokens(top: TopK, tokens: Tensor) -> Tensor:
    """``[neuron, k]`` token ids of a tail's examples in ``tokens [window, pos]`` (-1: empty)."""
    length = tokens.shape[1]
    positions = top.positions.clamp_min(0)
    ids = tokens[positions // length, positions % length]
    return torch.where(top.values > float("-inf"), ids, -1)


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
    ``checkpoint`` when it holds a state for the same ``key``. Token candidates are fixed after
    the first half of the batches and measured on the second."""
    d = loaded.adapter.dims
    trackers = [LayerTrackers(d.d_mlp, config) for _ in range(d.n_layers)]
    n_windows, length = windows.tokens.shape
    batches = list(range(0, n_windows, config.batch_size))
    half = len(batches) // 2
    counts = torch.bincount(windows.tokens[:, 1:].flatten(), minlength=d.d_vocab)
    done = 0
    if checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        if state.get("key") == key:
            done = int(state["batches_done"])
            for tracker, layer_state in zip(trackers, state["layers"], strict=True):
                tracker.load_state_dict(layer_state)
            echo(f"neurons: resuming after batch {done}/{len(batches)} from {checkpoint}")
    spec = CaptureSpec.of("neuron")
    meter = Meter(echo, "neurons: pass", (n_windows - done * config.batch_size) * length, "tokens")
    for number in range(done, len(batches)):
        if number == half:
            for tracker in trackers:
                tracker.start_selectivity(windows.tokens, counts, config)
        first = batches[number]
        tokens = windows.tokens[first : first + config.batch_size]
        ids = loaded.bos.prepend(tokens)
        skip = ids.shape[1] - length  # 1 when BOS was prepended
        got = capture(loaded.adapter, ids, spec, batch_size=config.batch_size)
        for layer, tracker in enumerate(trackers):
            tracker.update(got[("neuron", layer)][:, skip:], first * length, tokens)
        if (number + 1) % config.checkpoint_every == 0 and number + 1 < len(batches):
            states = [t.state_dict() for t in trackers]
            _save_atomically({"key": key, "batches_done": number + 1, "layers": states}, checkpoint)
        meter.advance(tokens.numel())
    return trackers


@dataclass(frozen=True)
class NeuronSummary:
    """Rows ready to store: one per neuron for ``neurons``, one per neuron and tail for
    ``examples``, and the unit's statistics (the family null, the intervention check)."""

    neurons: list[dict[str, Any]]
    examples: list[dict[str, Any]]
    documents: list[TokenizedDocument]
    statistics: dict[str, Any]


def _pairs(ids: list[int], values: list[float]) -> list[list[Any]]:
    """``[[token_id, value], ...]``."""
    return [[i, round(v, 4)] for i, v in zip(ids, values, strict=True)]


STAT_FIELDS = ("mean", "std", "skew", "kurtosis", "max", "min", "frac_active", "frac_negative")
FAMILY_GATES = {  # the constants that decide histograms, read-outs and family labels
    "histogram_bins": HISTOGRAM_BINS, "histogram_margin": HISTOGRAM_MARGIN, "top_tokens": TOP_TOKENS,
    "dead_active_fraction": DEAD_ACTIVE_FRACTION, "dead_max": DEAD_MAX,
    "first_position_ratio": FIRST_POSITION_RATIO, "token_candidate_share": TOKEN_CANDIDATE_SHARE,
    "token_min_count": TOKEN_MIN_COUNT, "token_min_matched": TOKEN_MIN_MATCHED,
    "token_mean_share": TOKEN_MEAN_SHARE, "null_directions": NULL_DIRECTIONS,
    "check_min_overlap": CHECK_MIN_OVERLAP,
}  # fmt: skip


@dataclass
class LayerSummary:
    """One layer's rows and the per-neuron evidence the family rule reads."""

    neurons: list[dict[str, Any]]
    examples: list[dict[str, Any]]
    evidence: dict[str, Tensor]


def _summarise_layer(
    loaded: LoadedModel, windows: Windows, layer: int, tracker: LayerTrackers, w_u_read: Tensor
) -> LayerSummary:
    """Neuron and example rows of one layer, with the weight read-out of its effective directions."""
    adapter = loaded.adapter
    stats = tracker.moments.result()
    sign, typical = tracker.dominant()
    _, share = tracker.top_tokens(windows.tokens, sign)
    tails = tracker.tails
    first_abs = tails["first"].values[:, 0].clamp_min(0)  # -inf (empty) -> 0
    weights_of = adapter.neuron_weights(layer)
    directions = effective_directions(weights_of.W_out.detach(), sign, adapter.mlp_post_gain(layer))
    projection = vocab_projection(directions, w_u_read)
    selectivity = tracker.selectivity
    assert selectivity is not None, "the pass fixes token candidates half way"
    means = selectivity.means() * sign[:, None]
    columns = {name: stats[name].tolist() for name in STAT_FIELDS}
    columns |= {
        "hist_low": tracker.histogram.low.tolist(), "hist_high": tracker.histogram.high.tolist(),
        "histogram": tracker.histogram.counts.tolist(), "top_token_share": share.tolist(),
        "w_in_norm": weights_of.W_in.detach().float().norm(dim=1).tolist(),
        "w_out_norm": weights_of.W_out.detach().float().norm(dim=1).tolist(),
        "direction_norm": directions.norm(dim=1).tolist(),
        "sign": sign.tolist(), "typical_top": typical.tolist(), "first_max_abs": first_abs.tolist(),
        "token_id": [t if t >= 0 else None for t in selectivity.tokens[:, 0].tolist()],
        "token_mean": [None if m != m else m for m in means[:, 0].tolist()],
        "token_count": selectivity.counts[:, 0].tolist(),
        "matched_mean": [None if m != m else m for m in means[:, 1:].nanmean(1).tolist()],
    }  # fmt: skip
    moments = projection["moments"].tolist()
    top_ids, top_values = projection["top_ids"].tolist(), projection["top"].tolist()
    bottom_ids, bottom_values = projection["bottom_ids"].tolist(), projection["bottom"].tolist()
    rows = []
    for n in range(len(moments)):
        row = {name: values[n] for name, values in columns.items()}
        row.update(
            layer=layer, neuron=n, vocab_mean=moments[n][0], vocab_var=moments[n][1],
            vocab_skew=moments[n][2], vocab_kurtosis=moments[n][3],
            top_tokens=_pairs(top_ids[n], top_values[n]),
            bottom_tokens=_pairs(bottom_ids[n], bottom_values[n]),
            check_overlap=None,
        )  # fmt: skip
        rows.append(row)
    examples = [row for tail in TAILS for row in _example_rows(layer, tail, tails[tail], windows)]
    largest = torch.maximum(stats["max"].abs(), stats["min"].abs()).float()
    evidence = {
        "nonzero_fraction": (stats["frac_active"] + stats["frac_negative"]).float(),
        "largest_abs": largest, "first_abs": first_abs,
        "typical_top": typical,
        "token_mean": means[:, 0].float(), "token_count": selectivity.counts[:, 0],
        "matched_means": means[:, 1:].float(), "vocab_moments": projection["moments"],
    }  # fmt: skip
    return LayerSummary(rows, examples, evidence)


def summarise(
    loaded: LoadedModel, windows: Windows, trackers: list[LayerTrackers], config: NeuronConfig,
    echo: Callable[[str], None],
) -> NeuronSummary:  # fmt: skip
    """Turn the trackers into neuron and example rows with the weight-based fields and families,
    then check the promoted tokens of a sample of neurons by intervention."""
    adapter = loaded.adapter
    w_u_read = unembedding_read(
        adapter.unembedding()[0].detach(), adapter.final_norm_gain(), adapter.final_norm_centres()
    )
    layers = [_summarise_layer(loaded, windows, layer, t, w_u_read) for layer, t in enumerate(trackers)]
    neurons = [row for layer in layers for row in layer.neurons]
    evidence = NeuronEvidence(**{
        name: torch.cat([layer.evidence[name] for layer in layers]) for name in layers[0].evidence
    })  # fmt: skip
    null = vocab_null(w_u_read, adapter.dims.d_model, seed=config.seed)
    for row, label in zip(neurons, families(evidence, null), strict=True):
        row["family"] = label
    examples = [
        row for layer in layers for row in layer.examples
        if row["tail"] != "first" or neurons[row["layer"] * adapter.dims.d_mlp + row["neuron"]]["family"]
        == "first_position"
    ]  # fmt: skip
    check = check_promoted_tokens(loaded, windows, neurons, config, echo)
    statistics = {"family_null": asdict(null), "intervention": check}
    return NeuronSummary(neurons, examples, windows.documents, statistics)


def _example_rows(layer: int, tail: str, top: TopK, windows: Windows) -> list[dict[str, Any]]:
    """One row per neuron of one layer and tail: its filled top-k slots, best first, and their
    contexts (``examples`` name documents by corpus index; the store maps them to documents rows)."""
    length = windows.tokens.shape[1]
    filled = top.values > float("-inf")
    window = top.positions.clamp_min(0) // length
    within = top.positions.clamp_min(0) % length
    token_ids = example_tokens(top, windows.tokens)
    token_index = (windows.start[window] + within).tolist()
    doc_index = windows.doc_index[window].tolist()
    values, ids, full = top.activations().tolist(), token_ids.tolist(), filled.tolist()
    contexts = top.contexts.to(torch.float16).numpy()
    rows = []
    for n, slots in enumerate(full):
        kept = [rank for rank, is_filled in enumerate(slots) if is_filled]
        rows.append({
            "layer": layer, "neuron": n, "tail": tail,
            "examples": [
                [doc_index[n][r], token_index[n][r], ids[n][r], round(values[n][r], 5)] for r in kept
            ],
            "context_acts": contexts[n, kept].tobytes(),
        })  # fmt: skip
    return rows


def check_promoted_tokens(
    loaded: LoadedModel, windows: Windows, neurons: list[dict[str, Any]], config: NeuronConfig,
    echo: Callable[[str], None],
) -> dict[str, Any]:  # fmt: skip
    """For a seeded sample of live neurons: add the neuron's typical top activation (in its
    dominant sign) at the last position of ``check_windows`` corpus windows, and compare the 10
    tokens whose logits rise most with the stored promoted tokens. Each sampled row gets
    ``check_overlap``; the summary goes to the unit's statistics."""
    live = [i for i, row in enumerate(neurons) if row["family"] != "dead" and row["typical_top"] > 0]
    generator = torch.Generator().manual_seed(config.seed)
    chosen = sorted(live[i] for i in torch.randperm(len(live), generator=generator)[: config.check_neurons])
    length = min(config.check_length, windows.tokens.shape[1])
    ids = loaded.bos.prepend(windows.tokens[: config.check_windows, :length])
    nudges = [
        NeuronNudge(neurons[i]["layer"], neurons[i]["neuron"], neurons[i]["sign"] * neurons[i]["typical_top"])
        for i in chosen
    ]  # fmt: skip
    started = time.perf_counter()
    measured = (
        logit_rises(loaded.adapter, ids, nudges).topk(TOP_TOKENS, dim=1).indices.tolist() if nudges else []
    )
    overlaps: list[int] = []
    by_layer: dict[int, list[int]] = {}
    for i, top in zip(chosen, measured, strict=True):
        overlap = len({pair[0] for pair in neurons[i]["top_tokens"]} & set(top))
        neurons[i]["check_overlap"] = overlap
        overlaps.append(overlap)
        by_layer.setdefault(neurons[i]["layer"], []).append(overlap)
    agreement = _share_at_least(overlaps)
    echo(f"neurons: intervention check on {len(chosen)} neurons, {agreement or 0:.1%} share >= "
         f"{CHECK_MIN_OVERLAP}/10 promoted tokens [{time.perf_counter() - started:.1f} s]")  # fmt: skip
    return {
        "neurons": len(chosen), "windows": int(ids.shape[0]), "tokens": int(ids.shape[1]),
        "min_overlap": CHECK_MIN_OVERLAP, "agreement": agreement,
        "mean_overlap": sum(overlaps) / max(len(overlaps), 1),
        "by_layer": {
            str(layer): {"neurons": len(v), "confirmed": sum(o >= CHECK_MIN_OVERLAP for o in v)}
            for layer, v in sorted(by_layer.items())
        },
    }  # fmt: skip


def _share_at_least(overlaps: list[int]) -> float | None:
    """Share of overlaps of at least ``CHECK_MIN_OVERLAP`` (None for none)."""
    if not overlaps:
        return None
    return sum(o >= CHECK_MIN_OVERLAP for o in overlaps) / len(overlaps)


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
    return summarise(loaded, windows, trackers, plan.config, echo)


class NeuronUnit(UnitKind):
    """The neuron pass: every MLP neuron summarised over the corpus, resumable."""

    kind = NEURON_SUMMARY
    name = "neurons"
    cost = 18
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
        row = UnitRow(
            planned.key, self.full_definition(), self.config.result_fields(), plan.describe(),
            statistics=result.statistics,
        )  # fmt: skip
        write_neuron_unit(engine, ids, row, plan.corpus, plan.corpus_hash, result, replace)
        plan.checkpoint.unlink(missing_ok=True)

    def describe(self, done: UnitResult) -> str:
        summary: NeuronSummary = done.result
        counts = Counter(row["family"] for row in summary.neurons if row["family"])
        return (
            f"neurons v{VERSION}: {len(summary.neurons)} neurons, {len(summary.examples)} examples, "
            f"families {dict(sorted(counts.items()))} [{done.seconds:.1f} s]"
        )
