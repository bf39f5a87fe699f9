"""What a neuron does to the logits, from weights alone, and the family labels.

**The effective output direction** of neuron n is ``s_n · g_post ⊙ W_out[n]``: ``s_n`` the sign
of its dominant tail (+1 when its typical positive top activation, the median of its top
examples, is at least its typical negative one), ``g_post`` the gain of the post-MLP norm where
the family has one (Gemma 2/3, OLMo 2; the norm's scale is positive, so the gain alone sets the
direction). It is read against
``W_U*``: the unembedding with the final norm folded in (``diag(gain) W_U``, rows centred over
``d_model`` when the final norm is a LayerNorm, which removes the mean) and then centred over
the vocabulary, as Gurnee et al. 2024 read W_U.

Family labels (first match wins):

- ``dead``: nonzero on fewer than 1e-5 of corpus tokens, or its largest |activation| is below 1e-6;
- ``first_position``: its largest |activation| at the first position of a window is at least 3×
  its typical top activation elsewhere (massive activations, Sun et al. 2024);
- ``token``: selective for one token, measured on the second half of the corpus: the candidate
  (the commonest token of its dominant tail's top examples on the first half, in at least a
  quarter of them) occurs at least 4 times, its mean activation there, times ``s_n``, is at
  least half the neuron's typical top activation, and beats every one of at least 4
  frequency-matched tokens;
- ``prediction`` / ``suppression``: the kurtosis of cos(direction, W_U*) over the vocabulary is
  above every one of 1,000 random directions of the model's residual space, and its skew is
  above (prediction) or below (suppression) every random direction's skew;
- ``partition``: the variance of cos(direction, W_U*) over the vocabulary is above every random
  direction's: the neuron splits the vocabulary more than chance does (most neurons' variance is
  below the random directions', their W_out lying where W_U reads little);
- otherwise no family (None).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

TOP_TOKENS = 10
CHUNK = 256
DEAD_ACTIVE_FRACTION = 1e-5
DEAD_MAX = 1e-6
FIRST_POSITION_RATIO = 3.0
TOKEN_CANDIDATE_SHARE = 0.25
TOKEN_MIN_COUNT = 4
TOKEN_MIN_MATCHED = 4
TOKEN_MEAN_SHARE = 0.5
NULL_DIRECTIONS = 1000


def unembedding_read(w_u: Tensor, gain: Tensor | None, centres: bool) -> Tensor:
    """``W_U* [d_model, vocab]``: the final norm's gain folded in, its mean removal folded in
    when ``centres`` (LayerNorm), then centred over the vocabulary."""
    read = w_u.float() if gain is None else w_u.float() * gain.float()[:, None]
    if centres:
        read = read - read.mean(0, keepdim=True)
    return read - read.mean(1, keepdim=True)


def effective_directions(w_out: Tensor, sign: Tensor, post_gain: Tensor | None) -> Tensor:
    """``[d_mlp, d_model]``: each neuron's output row times its dominant sign, through the
    post-MLP norm's gain where there is one."""
    directions = w_out.float() * sign.float()[:, None]
    return directions if post_gain is None else directions * post_gain.float()[None, :]


def vocab_projection(directions: Tensor, w_u_read: Tensor) -> dict[str, Tensor]:
    """Per direction: top/bottom token ids and values of direction·W_U* and the moments of
    cos(direction, W_U*) over the vocabulary."""
    inverse_u = 1.0 / w_u_read.norm(dim=0).clamp_min(1e-12)  # [vocab]
    norms = directions.norm(dim=1)
    parts: dict[str, list[Tensor]] = {k: [] for k in ("top_ids", "top", "bottom_ids", "bottom", "moments")}
    scratch = torch.empty(min(CHUNK, directions.shape[0]), w_u_read.shape[1])
    for start in range(0, directions.shape[0], CHUNK):
        logits = directions[start : start + CHUNK] @ w_u_read  # [chunk, vocab]
        top = logits.topk(TOP_TOKENS, dim=1)
        bottom = logits.topk(TOP_TOKENS, dim=1, largest=False)
        parts["top_ids"].append(top.indices)
        parts["top"].append(top.values)
        parts["bottom_ids"].append(bottom.indices)
        parts["bottom"].append(bottom.values)
        inverse_out = 1.0 / norms[start : start + CHUNK].clamp_min(1e-12)
        cos = logits.mul_(inverse_u).mul_(inverse_out[:, None])  # in place: logits are not needed again
        parts["moments"].append(_moments_consumed(cos, scratch[: len(cos)]))
    return {k: torch.cat(v) for k, v in parts.items()}


def _moments_consumed(x: Tensor, scratch: Tensor) -> Tensor:
    """``[rows, 4]``: mean, variance, skew and Pearson kurtosis of each row (fp32, centred first).
    ``x`` is overwritten and ``scratch`` (its shape) used, so no row-sized tensor is allocated."""
    mean = x.mean(1, keepdim=True)
    d = x.sub_(mean)
    d2 = torch.square(d, out=scratch)
    var = d2.mean(1)
    skew = d.mul_(d2).mean(1)  # d is d³ from here
    kurt = d2.square_().mean(1)
    safe = var.clamp_min(1e-30)
    return torch.stack([mean[:, 0], var, skew / safe**1.5, kurt / safe**2], dim=1)


@dataclass(frozen=True)
class VocabNull:
    """The vocabulary moments of random residual directions: the floors a family must pass."""

    kurtosis: float  # the largest kurtosis of any random direction
    skew_high: float  # the largest skew
    skew_low: float  # the smallest skew
    variance: float  # the largest variance
    draws: int


def vocab_null(w_u_read: Tensor, d_model: int, draws: int = NULL_DIRECTIONS, seed: int = 0) -> VocabNull:
    """Moments of cos(r, W_U*) for ``draws`` isotropic Gaussian directions r (seeded)."""
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(draws, d_model, generator=generator)
    moments = vocab_projection(directions, w_u_read)["moments"]
    return VocabNull(
        float(moments[:, 3].max()), float(moments[:, 2].max()), float(moments[:, 2].min()),
        float(moments[:, 1].max()), draws,
    )  # fmt: skip


@dataclass(frozen=True)
class NeuronEvidence:
    """What the family rule reads, one entry per neuron of the model."""

    nonzero_fraction: Tensor  # share of tokens with activation != 0
    largest_abs: Tensor  # largest |activation| anywhere
    first_abs: Tensor  # largest |activation| at a window's first position
    typical_top: Tensor  # median |activation| of the dominant tail's top examples
    token_mean: Tensor  # sign x mean activation on the candidate token (NaN: none)
    token_count: Tensor  # occurrences of the candidate token in the measured half
    matched_means: Tensor  # [neuron, matched] sign x mean activation on matched tokens (NaN: unseen)
    vocab_moments: Tensor  # [neuron, 4]


def token_selective(e: NeuronEvidence) -> Tensor:
    """The ``token`` rule (module docstring), per neuron."""
    matched = e.matched_means
    seen = ~matched.isnan()
    best_matched = torch.where(seen, matched, float("-inf")).amax(1)
    return (
        (e.token_count >= TOKEN_MIN_COUNT)
        & (seen.sum(1) >= TOKEN_MIN_MATCHED)
        & (e.token_mean >= TOKEN_MEAN_SHARE * e.typical_top)
        & (e.token_mean > best_matched)
    )


def families(e: NeuronEvidence, null: VocabNull) -> list[str | None]:
    """The family label of each neuron (see the module docstring)."""
    var, skew, kurt = e.vocab_moments[:, 1], e.vocab_moments[:, 2], e.vocab_moments[:, 3]
    dead = (e.nonzero_fraction < DEAD_ACTIVE_FRACTION) | (e.largest_abs < DEAD_MAX)
    first = e.first_abs >= FIRST_POSITION_RATIO * e.typical_top
    token = token_selective(e)
    peaked = kurt > null.kurtosis
    rules = [
        ("dead", dead), ("first_position", first), ("token", token),
        ("prediction", peaked & (skew > null.skew_high)), ("suppression", peaked & (skew < null.skew_low)),
        ("partition", var > null.variance),
    ]  # fmt: skip
    labels: list[str | None] = [None] * var.shape[0]
    for name, holds in reversed(rules):  # earlier rules overwrite later ones: first match wins
        for i in torch.nonzero(holds).flatten().tolist():
            labels[i] = name
    return labels


def top_token_share(token_ids: Tensor) -> tuple[Tensor, Tensor]:
    """``token_ids [neuron, k]`` of the top examples → the commonest token per neuron and its
    share of the filled slots (ids < 0 mark empty slots and are ignored; -1 when none)."""
    valid = token_ids >= 0
    same = (token_ids[:, :, None] == token_ids[:, None, :]) & valid[:, :, None] & valid[:, None, :]
    counts = same.sum(-1)  # [neuron, k]: how often each slot's token appears
    most, slot = counts.max(-1)
    token = torch.where(most > 0, token_ids.gather(1, slot[:, None])[:, 0], -1)
    return token, most.float() / valid.sum(-1).clamp_min(1).float()
