"""Pure pattern arithmetic shared by the classifiers: target masks from tokens, the mean
attention mass on targets, and small per-head evidence.

Shapes: ``patterns [layer, batch, head, query, key]``, ``tokens [batch, pos]``,
``targets [batch, query, key]`` bool, ``queries [batch, query]`` bool.
"""

from __future__ import annotations

import torch
from torch import Tensor

from classifiers.base import Evidence, HeadScores
from classifiers.probes import ProbeSet

EXAMPLE_QUERIES = 6
EXAMPLE_TOP_KEYS = 3
PATTERN_SPAN = 8  # tokens of each repeat (or 2x of plain text) in a head's example pattern


def _causal_before(n: int, first_content: int) -> Tensor:
    """``[query, key]`` bool: first_content <= key < query."""
    q = torch.arange(n)[:, None]
    k = torch.arange(n)[None, :]
    return (k < q) & (k >= first_content)


def previous_targets(tokens: Tensor, first_content: int, offset: int = 1) -> Tensor:
    """Key i-offset for every query i whose key at that offset is not BOS (offset 1: the
    previous token; 2 and 3 are its control offsets)."""
    batch, n = tokens.shape
    q = torch.arange(n)[:, None]
    k = torch.arange(n)[None, :]
    mask = (k == q - offset) & (k >= first_content)
    return mask.expand(batch, n, n)


def duplicate_targets(tokens: Tensor, first_content: int) -> Tensor:
    """Every earlier (non-BOS) position holding the query's token."""
    same = tokens[:, :, None] == tokens[:, None, :]
    return same & _causal_before(tokens.shape[1], first_content)


def induction_targets(tokens: Tensor, first_content: int) -> Tensor:
    """The position after each earlier (non-BOS) occurrence of the query's token."""
    batch, n = tokens.shape
    after_same = torch.zeros(batch, n, n, dtype=torch.bool)
    # key j is a target of query i when tokens[j-1] == tokens[i] and first_content <= j-1, j < i
    after_same[:, :, 1:] = tokens[:, :, None] == tokens[:, None, :-1]
    return after_same & _causal_before(n, first_content + 1)


def first_token_targets(tokens: Tensor) -> Tensor:
    """Key 0 (the first token, BOS when there is one) for every query."""
    batch, n = tokens.shape
    mask = torch.zeros(batch, n, n, dtype=torch.bool)
    mask[:, :, 0] = True
    return mask


def mass_on_targets(patterns: Tensor, targets: Tensor, queries: Tensor) -> Tensor:
    """``[layer, head]``: attention on target keys, summed per query, averaged over queries."""
    if not bool(queries.any()):
        raise ValueError("the probe has no query with a target position")
    per_query = torch.einsum("lbhqk,bqk->lbhq", patterns, targets.to(patterns.dtype))
    weights = queries.to(patterns.dtype)
    return torch.einsum("lbhq,bq->lh", per_query, weights) / weights.sum()


def mass_per_sequence(patterns: Tensor, targets: Tensor, queries: Tensor) -> Tensor:
    """``[batch, layer, head]``: :func:`mass_on_targets` for each sequence alone (the items the
    label statistics resample)."""
    per_query = torch.einsum("lbhqk,bqk->blhq", patterns, targets.to(patterns.dtype))
    weights = queries.to(patterns.dtype)
    counts = weights.sum(1)
    if not bool((counts > 0).all()):
        raise ValueError("a probe sequence has no query with a target position")
    return torch.einsum("blhq,bq->blh", per_query, weights) / counts[:, None, None]


def mean_on_key(patterns: Tensor, key: int, queries: Tensor) -> Tensor:
    """``[layer, head]``: the mean attention on one key position over the chosen queries."""
    weights = queries.to(patterns.dtype)
    return torch.einsum("lbhq,bq->lh", patterns[..., key], weights) / weights.sum()


def example_rows(patterns: Tensor, targets: Tensor, queries: Tensor) -> list[list[Evidence]]:
    """Per head, for a few scored queries of the first sequence: the top keys with their weights
    and the target keys, so a reader can see what the head attends to."""
    rows = torch.nonzero(queries[0]).flatten()
    if rows.numel() == 0:
        return [[{} for _ in range(patterns.shape[2])] for _ in range(patterns.shape[0])]
    picks = rows[torch.linspace(0, rows.numel() - 1, min(EXAMPLE_QUERIES, rows.numel())).long()]
    sub = patterns[:, 0][:, :, picks]  # [layer, head, n_picks, key]
    top = sub.topk(min(EXAMPLE_TOP_KEYS, sub.shape[-1]), dim=-1)
    wanted = [torch.nonzero(targets[0, q]).flatten().tolist() for q in picks.tolist()]
    result: list[list[Evidence]] = []
    for layer in range(patterns.shape[0]):
        result.append([
            {
                "example": [
                    {
                        "query": q, "targets": wanted[i],
                        "top_keys": top.indices[layer, head, i].tolist(),
                        "top_weights": [round(w, 4) for w in top.values[layer, head, i].tolist()],
                    }
                    for i, q in enumerate(picks.tolist())
                ]
            }
            for head in range(patterns.shape[2])
        ])  # fmt: skip
    return result


def example_positions(probe: ProbeSet) -> list[int]:
    """Positions of the first probe sequence shown in a head's example pattern: BOS, then the
    first ``PATTERN_SPAN`` tokens of each repeat of a repeated probe (so induction and
    previous-token stripes show), or the first ``2 * PATTERN_SPAN`` tokens of plain text."""
    n, first = probe.tokens.shape[1], probe.first_content
    if probe.spec.kind == "repeated_random":
        length = probe.spec.length
        span = range(first, first + min(PATTERN_SPAN, length))
        return [*range(first), *span, *(p + length for p in span)]
    return list(range(min(n, first + 2 * PATTERN_SPAN)))


def example_pattern(patterns: Tensor, probe: ProbeSet) -> list[list[Evidence]]:
    """Per head, ``{"pattern": …}``: the attention among :func:`example_positions` of the first
    sequence (row q holds keys 0..q of the window), with the token ids for labels."""
    positions = example_positions(probe)
    index = torch.tensor(positions)
    window = patterns[:, 0][:, :, index][:, :, :, index]  # [layer, head, query, key]
    token_ids = probe.tokens[0, index].tolist()
    return [
        [
            {
                "pattern": {
                    "probe": probe.spec.kind,
                    "positions": positions,
                    "token_ids": token_ids,
                    "weights": [
                        [round(w, 3) for w in window[layer, head, q, : q + 1].tolist()]
                        for q in range(len(positions))
                    ],
                }
            }
            for head in range(window.shape[1])
        ]
        for layer in range(window.shape[0])
    ]


def pattern_scores(patterns: Tensor, targets: Tensor, queries: Tensor, first_content: int) -> HeadScores:
    """Score = mean attention mass on targets; evidence adds the mean mass on BOS and on the
    query itself (where attention that missed the targets usually went) and example rows."""
    scores = mass_on_targets(patterns, targets, queries)
    n = patterns.shape[-1]
    self_mass = mass_on_targets(patterns, torch.eye(n, dtype=torch.bool).expand_as(targets), queries)
    bos_mass = mean_on_key(patterns, 0, queries) if first_content == 1 else None
    examples = example_rows(patterns, targets, queries)
    for layer, row in enumerate(examples):
        for head, evidence in enumerate(row):
            evidence["target_mass"] = round(float(scores[layer, head]), 6)
            evidence["self_mass"] = round(float(self_mass[layer, head]), 6)
            if bos_mass is not None:
                evidence["bos_mass"] = round(float(bos_mass[layer, head]), 6)
            evidence["n_queries"] = int(queries.sum())
    return HeadScores(scores, examples)
