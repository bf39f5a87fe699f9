"""What a neuron does to the logits, from weights alone, and the family labels.

``W_out [d_mlp, d_model]`` is read against the unembedding with the final norm's gain folded in
(``W_U' = diag(gain) W_U``), the usual linearisation of the final norm.

Family labels (first match wins), thresholds as in Gurnee et al. 2024 where they give one:

- ``dead``: active (> 0) on fewer than 1e-5 of corpus tokens, or its largest activation is below 1e-6;
- ``token``: at least half of the top examples sit on one and the same token;
- ``prediction``: cos(W_out, W_U) over the vocabulary has kurtosis > 10 and positive skew;
- ``suppression``: kurtosis > 10 and negative skew;
- ``partition``: vocabulary variance above 5x the model's median neuron;
- otherwise no family (None).
"""

from __future__ import annotations

import torch
from torch import Tensor

TOP_TOKENS = 10
CHUNK = 256
DEAD_ACTIVE_FRACTION = 1e-5
DEAD_MAX = 1e-6
TOKEN_SHARE = 0.5
VOCAB_KURTOSIS = 10.0
PARTITION_VARIANCE_FACTOR = 5.0


def vocab_projection(w_out: Tensor, w_u: Tensor, gain: Tensor | None) -> dict[str, Tensor]:
    """Per neuron: top/bottom token ids and values of W_out·W_U', the moments of
    cos(W_out, W_U') over the vocabulary, and ‖W_out‖."""
    w_u = w_u.float() if gain is None else w_u.float() * gain.float()[:, None]
    inverse_u = 1.0 / w_u.norm(dim=0).clamp_min(1e-12)  # [vocab]
    w_out = w_out.float()
    norms = w_out.norm(dim=1)
    parts: dict[str, list[Tensor]] = {k: [] for k in ("top_ids", "top", "bottom_ids", "bottom", "moments")}
    for start in range(0, w_out.shape[0], CHUNK):
        logits = w_out[start : start + CHUNK] @ w_u  # [chunk, vocab]
        top = logits.topk(TOP_TOKENS, dim=1)
        bottom = logits.topk(TOP_TOKENS, dim=1, largest=False)
        parts["top_ids"].append(top.indices)
        parts["top"].append(top.values)
        parts["bottom_ids"].append(bottom.indices)
        parts["bottom"].append(bottom.values)
        inverse_out = 1.0 / norms[start : start + CHUNK].clamp_min(1e-12)
        cos = logits.mul_(inverse_u).mul_(inverse_out[:, None])  # in place: logits are not needed again
        parts["moments"].append(_moments(cos))
    result = {k: torch.cat(v) for k, v in parts.items()}
    result["w_out_norm"] = norms
    return result


def _moments(x: Tensor) -> Tensor:
    """``[rows, 4]``: mean, variance, skew and Pearson kurtosis of each row (fp32, centred first)."""
    mean = x.mean(1, keepdim=True)
    d = x - mean
    d2 = d * d
    var = d2.mean(1)
    safe = var.clamp_min(1e-30)
    skew = (d2 * d).mean(1) / safe**1.5
    kurt = (d2 * d2).mean(1) / safe**2
    return torch.stack([mean[:, 0], var, skew, kurt], dim=1)


def families(
    frac_active: Tensor, max_activation: Tensor, top_token_share: Tensor, vocab_moments: Tensor
) -> list[str | None]:
    """The family label of each neuron (see the module docstring). ``vocab_moments [n, 4]`` for
    every neuron of the model, so the partition threshold is model-relative."""
    var, skew, kurt = vocab_moments[:, 1], vocab_moments[:, 2], vocab_moments[:, 3]
    partition_floor = PARTITION_VARIANCE_FACTOR * var.median()
    labels: list[str | None] = []
    for i in range(frac_active.shape[0]):
        if frac_active[i] < DEAD_ACTIVE_FRACTION or max_activation[i] < DEAD_MAX:
            labels.append("dead")
        elif top_token_share[i] >= TOKEN_SHARE:
            labels.append("token")
        elif kurt[i] > VOCAB_KURTOSIS and skew[i] > 0:
            labels.append("prediction")
        elif kurt[i] > VOCAB_KURTOSIS and skew[i] < 0:
            labels.append("suppression")
        elif var[i] > partition_floor:
            labels.append("partition")
        else:
            labels.append(None)
    return labels


def top_token_share(token_ids: Tensor) -> Tensor:
    """``token_ids [neuron, k]`` of the top examples → share of the most common token per neuron
    (ids < 0 mark empty slots and are ignored)."""
    valid = token_ids >= 0
    same = (token_ids[:, :, None] == token_ids[:, None, :]) & valid[:, :, None] & valid[:, None, :]
    most = same.sum(-1).max(-1).values.float()  # [neuron]
    return most / valid.sum(-1).clamp_min(1).float()
