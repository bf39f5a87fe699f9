"""Label statistics: a per-model null, intervals and multiple-testing control, all pure.

A classifier that measures a head on several items (probe sequences, prompts, pairs) gives its
per-item values ``samples [item, layer, head]`` and, on the class's null (control offsets, an
unrepeated probe, ABC prompts, random ablations…), ``null [item, layer, head]``. From them:

- a 95% percentile-bootstrap interval of the mean over items (no extra forward pass);
- a one-sided Welch t-test per head, ``mean(samples) > mean(null)``, then Benjamini–Hochberg
  over the model's heads: a label needs ``q < ALPHA`` beside the class threshold;
- the null percentile: the share of the model's heads whose null score is at or below the head's
  score, so a reader sees where the score sits in what this model does by chance.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from scipy import stats as scipy_stats
from torch import Tensor

ALPHA = 0.01  # Benjamini–Hochberg false discovery rate a label needs
CONFIDENCE = 0.95
RESAMPLES = 1000
BOOTSTRAP_SEED = 0
SE_FLOOR = 1e-9  # standard error floor, so identical constant samples give a finite t
SETTINGS = {
    "alpha": ALPHA,
    "confidence": CONFIDENCE,
    "resamples": RESAMPLES,
    "bootstrap_seed": BOOTSTRAP_SEED,
}

# Why a head is or is not labelled, in the order the conditions are checked.
GATED, BELOW_THRESHOLD, WITHIN_NULL, LABELLED = "gated", "below_threshold", "within_null", "labelled"


@dataclass(frozen=True)
class HeadStatistics:
    """Per head ``[layer, head]``: the interval, the null score and percentile, p and q."""

    ci_low: Tensor
    ci_high: Tensor
    null_score: Tensor
    null_percentile: Tensor
    p_value: Tensor
    q_value: Tensor

    @property
    def beyond_null(self) -> Tensor:
        """``[layer, head]`` bool: q < ALPHA."""
        return self.q_value < ALPHA


def bootstrap_interval(
    samples: Tensor, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[Tensor, Tensor]:
    """The percentile-bootstrap ``CONFIDENCE`` interval of the mean over items, per head."""
    n = samples.shape[0]
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(n, (resamples, n), generator=generator)
    flat = samples.double().reshape(n, -1)
    means = flat[picks].mean(1)  # [resample, head]
    tail = (1 - CONFIDENCE) / 2
    bounds = torch.quantile(means, torch.tensor([tail, 1 - tail], dtype=torch.float64), dim=0)
    return bounds[0].view(samples.shape[1:]).float(), bounds[1].view(samples.shape[1:]).float()


def welch_p_values(samples: Tensor, null: Tensor) -> Tensor:
    """One-sided Welch t-test per head of ``mean(samples) > mean(null)`` over their items."""
    x, y = samples.double(), null.double()
    nx, ny = x.shape[0], y.shape[0]
    vx = x.var(0, correction=1) / nx if nx > 1 else torch.zeros(x.shape[1:], dtype=torch.float64)
    vy = y.var(0, correction=1) / ny if ny > 1 else torch.zeros(y.shape[1:], dtype=torch.float64)
    se = (vx + vy).clamp_min(SE_FLOOR**2).sqrt()
    t = (x.mean(0) - y.mean(0)) / se
    denominator = vx.square() / max(nx - 1, 1) + vy.square() / max(ny - 1, 1)
    df = torch.where(denominator > 0, (vx + vy).square() / denominator.clamp_min(1e-300), nx + ny - 2.0)
    p = scipy_stats.t.sf(t.numpy(), df.clamp_min(1.0).numpy())
    return torch.from_numpy(p).float()


def benjamini_hochberg(p_values: Tensor) -> Tensor:
    """q-values: the Benjamini–Hochberg adjusted p-values over every entry."""
    flat = p_values.double().flatten()
    n = flat.numel()
    order = torch.argsort(flat)
    ranked = flat[order] * n / torch.arange(1, n + 1, dtype=torch.float64)
    ranked = torch.flip(torch.cummin(torch.flip(ranked, [0]), 0).values, [0]).clamp_max(1.0)
    q = torch.empty_like(flat)
    q[order] = ranked
    return q.view_as(p_values).float()


def null_percentiles(scores: Tensor, null_scores: Tensor) -> Tensor:
    """``[layer, head]``: the share of the model's null scores at or below each head's score, x100."""
    pooled = null_scores.flatten()
    at_or_below = (pooled[None, :] <= scores.flatten()[:, None]).sum(1)
    return (100.0 * at_or_below.double() / pooled.numel()).float().view_as(scores)


def head_statistics(scores: Tensor, samples: Tensor, null: Tensor) -> HeadStatistics:
    """Every statistic of one class in one model, from its per-item values and its null."""
    if samples.shape[1:] != scores.shape or null.shape[1:] != scores.shape:
        raise ValueError(
            f"samples {tuple(samples.shape)} and null {tuple(null.shape)} must be [item, *scores]"
        )
    low, high = bootstrap_interval(samples)
    null_score = null.float().mean(0)
    p = welch_p_values(samples, null)
    return HeadStatistics(
        low, high, null_score, null_percentiles(scores, null_score), p, benjamini_hochberg(p)
    )


def jaccard(a: set[tuple[int, int]], b: set[tuple[int, int]]) -> float:
    """|a ∩ b| / |a ∪ b|; two empty sets agree fully (1.0)."""
    union = a | b
    return len(a & b) / len(union) if union else 1.0


def mean_pairwise_jaccard(label_sets: list[set[tuple[int, int]]]) -> float:
    """The mean Jaccard over every pair of label sets (e.g. one per probe seed)."""
    pairs = [(i, j) for i in range(len(label_sets)) for j in range(i + 1, len(label_sets))]
    return sum(jaccard(label_sets[i], label_sets[j]) for i, j in pairs) / len(pairs)
