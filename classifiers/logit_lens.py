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
        self._scratch = torch.empty(0)

    def _final_view(self, final_logits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Log-probabilities, probabilities and top-1 of the final logits, kept while every layer
        is fed the same tensor."""
        if self._final is None or self._final[0] is not final_logits:
            logp = torch.log_softmax(final_logits.float(), dim=-1)
            self._final = (final_logits, logp, logp.exp(), final_logits.argmax(-1))
        return self._final[1:]

    def update(self, layer: int, layer_logits: Tensor, final_logits: Tensor) -> None:
        """Add ``[token, vocab]`` logits of one layer and the model's own logits for the same tokens."""
        layer_logp = torch.log_softmax(layer_logits.float(), dim=-1)
        final_logp, final_p, final_top = self._final_view(final_logits)
        # every product in one reused buffer: no vocabulary-sized allocation per layer
        scratch = self._scratch_like(layer_logp)
        kl = torch.sub(final_logp, layer_logp, out=scratch).mul_(final_p).sum(-1)
        entropy = -torch.exp(layer_logp, out=scratch).mul_(layer_logp).sum(-1)
        self.kl[layer] += float(kl.clamp_min(0).sum())
        self.entropy[layer] += float(entropy.sum())
        self.agree[layer] += float((layer_logits.argmax(-1) == final_top).sum())
        self.tokens[layer] += layer_logits.shape[0]

    def _scratch_like(self, like: Tensor) -> Tensor:
        """A reused buffer of ``like``'s shape (grown when a chunk is larger than any before)."""
        if self._scratch.numel() < like.numel() or self._scratch.device != like.device:
            self._scratch = torch.empty(like.numel(), device=like.device)
        return self._scratch[: like.numel()].view(like.shape)

    def result(self) -> list[LensLayer]:
        """Per-layer means; layers never fed are left out."""
        return [
            LensLayer(
                layer, float(self.kl[layer] / n), float(self.agree[layer] / n), float(self.entropy[layer] / n)
            )
            for layer, n in enumerate(self.tokens.tolist())
            if n
        ]
