"""The logit lens (nostalgebraist 2020): read each layer's residual stream through the final norm
and the unembedding, as if the model stopped there, and compare with what it finally predicts.

Per layer, over every token read: the KL divergence KL(final || layer) in nats, the share of
tokens whose top-1 token equals the final top-1, and the entropy of the layer's distribution in
nats. The last layer's residual is what the model itself unembeds, so there the agreement is 1
and the KL is 0. Pure: it reads logits and never touches a model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class LensLayer:
    """One layer's means over the tokens read."""

    layer: int
    kl_to_final: float
    top1_agreement: float
    entropy: float


class LensAccumulator:
    """Running sums of the three statistics per layer, fed chunk by chunk."""

    def __init__(self, n_layers: int) -> None:
        self.kl = torch.zeros(n_layers, dtype=torch.float64)
        self.agree = torch.zeros(n_layers, dtype=torch.float64)
        self.entropy = torch.zeros(n_layers, dtype=torch.float64)
        self.tokens = torch.zeros(n_layers, dtype=torch.long)
        self._final: tuple[Tensor, Tensor, Tensor, Tensor] | None = None

    def _final_view(self, final_logits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The final distribution ``p``, its ``sum p log p`` and its top-1, kept while every layer
        is fed the same tensor."""
        if self._final is None or self._final[0] is not final_logits:
            logp = torch.log_softmax(final_logits.float(), dim=-1)
            p = logp.exp()
            self._final = (final_logits, p, _dot(p, logp), final_logits.argmax(-1))
        return self._final[1:]

    def update(self, layer: int, layer_logits: Tensor, final_logits: Tensor) -> None:
        """Add ``[token, vocab]`` logits of one layer and the model's own logits for the same tokens.

        With ``z`` the layer's logits and ``lse`` their log-sum-exp, ``log q = z - lse``, so
        ``KL(p || q) = sum p log p - p·z + lse`` and ``H(q) = lse - q·z``: one pass of exp over the
        vocabulary per layer and no log-probabilities kept."""
        z = layer_logits.float()
        lse = torch.logsumexp(z, dim=-1)
        final_p, final_plogp, final_top = self._final_view(final_logits)
        kl = final_plogp - _dot(final_p, z) + lse
        entropy = lse - _dot((z - lse[:, None]).exp_(), z)
        self.kl[layer] += float(kl.clamp_min(0).sum())
        self.entropy[layer] += float(entropy.sum())
        self.agree[layer] += float((layer_logits.argmax(-1) == final_top).sum())
        self.tokens[layer] += layer_logits.shape[0]

    def result(self) -> list[LensLayer]:
        """Per-layer means; layers never fed are left out."""
        return [
            LensLayer(
                layer, float(self.kl[layer] / n), float(self.agree[layer] / n), float(self.entropy[layer] / n)
            )
            for layer, n in enumerate(self.tokens.tolist())
            if n
        ]


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise dot products of ``[token, vocab]`` tensors, without a product tensor."""
    return torch.bmm(a[:, None, :], b[:, :, None])[:, 0, 0]
