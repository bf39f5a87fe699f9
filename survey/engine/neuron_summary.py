"""The neuron pass's trackers turned into rows: statistics, examples, the weight read-out through
the norms, family labels against their null, and the read-out checked by intervention on a sample
of neurons."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from classifiers.neuron_stats import HISTOGRAM_BINS, HISTOGRAM_MARGIN, TAILS, TopK
from classifiers.neuron_trackers import LayerTrackers, example_tokens
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
    unembedding_read,
    vocab_null,
    vocab_projection,
)
from db.common.neuron_config import NeuronConfig
from survey.corpus.windows import TokenizedDocument, Windows
from survey.engine.neuron_intervention import NeuronNudge, logit_rises
from survey.loading.loaders import LoadedModel

CHECK_MIN_OVERLAP = 8  # of the 10 promoted tokens, for a neuron's read-out to count as confirmed


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
