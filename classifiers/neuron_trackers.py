"""Streaming trackers of one layer's neurons over the corpus pass: moments, histogram, the three
example tails and the token-selectivity sums, saved and resumed with ``state_dict``."""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor

from classifiers.neuron_stats import (
    TAILS,
    ContextShape,
    Histogram,
    Moments,
    TokenSelectivity,
    TopK,
    frequency_matched,
)
from classifiers.neuron_weights import TOKEN_CANDIDATE_SHARE, top_token_share


class TrackerSettings(Protocol):
    """What the trackers read of the neuron pass's settings (``db.common.neuron_config.NeuronConfig``)."""

    @property
    def top_k(self) -> int: ...

    @property
    def context_before(self) -> int: ...

    @property
    def context_after(self) -> int: ...

    @property
    def token_matched(self) -> int: ...

    @property
    def seed(self) -> int: ...


class LayerTrackers:
    """Moments, histogram, the three example tails and, on the second half of the corpus, the
    token-selectivity sums of one layer's neurons."""

    def __init__(self, d_mlp: int, config: TrackerSettings) -> None:
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

    def start_selectivity(self, tokens: Tensor, counts: Tensor, config: TrackerSettings) -> None:
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
