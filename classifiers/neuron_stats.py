"""Streaming per-neuron statistics with state that can be saved and resumed.

Everything updates from one batch of activations ``acts [tokens, neuron]`` at a time, so
memory depends on the number of neurons, k and the vocabulary, never on the corpus size. Each
tracker has ``state_dict`` / ``load_state_dict``; restoring a saved state and feeding the
remaining batches gives bit-for-bit the result of an uninterrupted pass.

A gated MLP's neuron, act(gate)·up, fires with either sign, so the top examples are kept for
both tails (``TAILS``) and for the first position of each window, where massive activations
live (Sun et al. 2024).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

HISTOGRAM_BINS = 32
HISTOGRAM_MARGIN = 2.0  # the range is +-(margin x the first batch's largest |activation|)


TAILS = ("positive", "negative", "first")  # the example lists a neuron keeps


def _column_counts(mask: Tensor) -> Tensor:
    """How many rows of ``mask [row, column]`` are True in each column (int64), summed as fp32
    ones and zeros, exact below 2**24 rows and several times faster than a boolean sum."""
    assert mask.shape[0] < 2**24
    return mask.float().sum(0).long()


class Moments:
    """Count, shifted power sums (fp64) for mean/std/skew/kurtosis, max, min, and how many
    activations are above and below 0."""

    def __init__(self, n: int) -> None:
        self.count = 0
        self.shift = torch.zeros(n, dtype=torch.float64)
        self.sums = torch.zeros(4, n, dtype=torch.float64)  # sum of (x - shift)^p, p = 1..4
        self.max = torch.full((n,), float("-inf"), dtype=torch.float64)
        self.min = torch.full((n,), float("inf"), dtype=torch.float64)
        self.active = torch.zeros(n, dtype=torch.int64)  # activation > 0
        self.negative = torch.zeros(n, dtype=torch.int64)  # activation < 0

    def update(self, acts: Tensor, extremes: tuple[Tensor, Tensor] | None = None) -> None:
        """Add ``acts [tokens, neuron]``; the first batch's mean becomes the shift. Powers are
        summed in fp32 within a batch and accumulated across batches in fp64. ``extremes``
        (min, max per neuron of ``acts``) spare a pass when the caller has them."""
        x = acts.float()
        if self.count == 0:
            self.shift = x.double().mean(0)
        d = x - self.shift.float()
        d2 = d * d
        self.sums += torch.stack([d.sum(0), d2.sum(0), (d2 * d).sum(0), (d2 * d2).sum(0)]).double()
        low, high = torch.aminmax(x, dim=0) if extremes is None else extremes
        self.max = torch.maximum(self.max, high.double())
        self.min = torch.minimum(self.min, low.double())
        self.active += _column_counts(x > 0)
        self.negative += _column_counts(x < 0)
        self.count += x.shape[0]

    def result(self) -> dict[str, Tensor]:
        """mean, std (population), skew, kurtosis (Pearson: 3 for a normal), max, min,
        frac_active (> 0) and frac_negative (< 0)."""
        n = max(self.count, 1)
        m1, m2, m3, m4 = (self.sums[i] / n for i in range(4))
        var = (m2 - m1 * m1).clamp_min(0)
        c3 = m3 - 3 * m1 * m2 + 2 * m1**3
        c4 = m4 - 4 * m1 * m3 + 6 * m1 * m1 * m2 - 3 * m1**4
        safe = var > 1e-24
        return {
            "mean": self.shift + m1, "std": var.sqrt(),
            "skew": torch.where(safe, c3 / var.clamp_min(1e-24) ** 1.5, 0.0),
            "kurtosis": torch.where(safe, c4 / var.clamp_min(1e-24) ** 2, 0.0),
            "max": self.max, "min": self.min, "frac_active": self.active.double() / n,
            "frac_negative": self.negative.double() / n,
        }  # fmt: skip

    def state_dict(self) -> dict[str, object]:
        return {
            "count": self.count, "shift": self.shift, "sums": self.sums, "max": self.max, "min": self.min,
            "active": self.active, "negative": self.negative,
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.count = int(state["count"])  # type: ignore[call-overload]
        self.shift, self.sums = state["shift"], state["sums"]  # type: ignore[assignment]
        self.max, self.min = state["max"], state["min"]  # type: ignore[assignment]
        self.active, self.negative = state["active"], state["negative"]  # type: ignore[assignment]


class Histogram:
    """Per-neuron histogram over a fixed range set by the first batch; values outside the range
    fall in the end bins."""

    def __init__(self, n: int, bins: int = HISTOGRAM_BINS) -> None:
        self.bins = bins
        self.low = torch.zeros(n)
        self.high = torch.zeros(n)
        self.counts = torch.zeros(n, bins, dtype=torch.int64)
        self.ready = False

    def update(self, acts: Tensor) -> None:
        """Add ``acts [tokens, neuron]``."""
        x = acts.float()
        if not self.ready:
            reach = HISTOGRAM_MARGIN * x.abs().max(0).values.clamp_min(1e-6)
            self.low, self.high, self.ready = -reach, reach, True
        n = x.shape[1]
        scale = self.bins / (self.high - self.low)
        index = ((x - self.low) * scale).floor_().clamp_(0, self.bins - 1).long()  # [tokens, neuron]
        index += torch.arange(n) * self.bins
        self.counts += torch.bincount(index.flatten(), minlength=n * self.bins).view(n, self.bins)

    def state_dict(self) -> dict[str, object]:
        return {"low": self.low, "high": self.high, "counts": self.counts, "ready": self.ready}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.low, self.high, self.counts = state["low"], state["high"], state["counts"]  # type: ignore[assignment]
        self.ready = bool(state["ready"])


@dataclass(frozen=True)
class ContextShape:
    """How many tokens of context each example keeps before and after its token."""

    before: int = 10
    after: int = 4

    @property
    def width(self) -> int:
        return self.before + 1 + self.after


class TopK:
    """One tail's k most extreme activations of each neuron, with where they happened and the
    neuron's activations on the surrounding tokens (NaN outside the window).

    ``tail`` picks what is ranked: ``positive`` the largest activations and ``negative`` the most
    negative, both away from a window's first position; ``first`` the largest |activation| at the
    first position of a window. ``values`` hold the ranked score (the activation, its negation,
    or its absolute value); ``activations()`` gives back the signed activations.
    """

    def __init__(self, n: int, k: int, context: ContextShape, tail: str = "positive") -> None:
        if tail not in TAILS:
            raise ValueError(f"unknown tail {tail!r}; valid: {', '.join(TAILS)}")
        self.k, self.context, self.tail = k, context, tail
        self.values = torch.full((n, k), float("-inf"))
        self.positions = torch.full((n, k), -1, dtype=torch.int64)  # global token ids
        self.contexts = torch.full((n, k, context.width), float("nan"))

    def activations(self) -> Tensor:
        """``[neuron, k]`` signed activations of the kept examples (-inf/inf/nan in empty slots)."""
        return -self.values if self.tail == "negative" else self.contexts[:, :, self.context.before]

    def _batch_best(self, acts: Tensor, extremes: tuple[Tensor, Tensor] | None) -> Tensor:
        """``[neuron]``: an upper bound on each neuron's best score in ``acts [window, token,
        neuron]``; ``extremes`` (min, max over every position) spare a pass when given."""
        if self.tail == "first":
            return acts[:, 0].abs().amax(0)
        low, high = torch.aminmax(acts.reshape(-1, acts.shape[-1]), dim=0) if extremes is None else extremes
        return low.neg() if self.tail == "negative" else high

    def update(
        self, acts: Tensor, first_position: int, extremes: tuple[Tensor, Tensor] | None = None
    ) -> None:
        """Add ``acts [window, token, neuron]`` whose token (w, t) has global id
        ``first_position + w * tokens + t``."""
        windows, tokens, n = acts.shape
        acts = acts.float()
        # only neurons whose batch best beats their current k-th value can change
        changed = torch.nonzero(self._batch_best(acts, extremes) > self.values[:, -1]).flatten()
        if changed.numel() == 0:
            return
        if changed.numel() < n // 2:
            acts = acts[:, :, changed]
        else:  # most change: rank every neuron (the unchanged ones gain nothing above their floor)
            changed = torch.arange(n)
        offset = 0 if self.tail == "first" else 1
        view = acts[:, :1].abs() if self.tail == "first" else acts[:, 1:]  # strided: no copy
        floor = self.values[changed, -1]
        values, picked = self._candidates(view, floor, negate=self.tail == "negative")
        rows = picked // view.shape[1] * tokens + picked % view.shape[1] + offset  # rows of ``flat``
        merged = torch.cat([self.values[changed], values], dim=1)  # [neuron, 2k]
        best = merged.topk(self.k, dim=1)
        is_new = best.indices >= self.k  # [neuron, k]
        new_rows = rows.gather(1, (best.indices - self.k).clamp_min(0))  # flat row of each new slot
        old = best.indices.clamp_max(self.k - 1)
        positions = torch.where(is_new, new_rows + first_position, self.positions[changed].gather(1, old))
        flat = acts.reshape(windows * tokens, -1)
        contexts = self.contexts[changed].gather(1, old[:, :, None].expand(-1, -1, self.context.width))
        neuron, slot = torch.nonzero(is_new, as_tuple=True)  # only new examples need their context read
        contexts[neuron, slot] = self._contexts_at(flat, new_rows[neuron, slot], neuron, tokens)
        self.values[changed] = best.values
        self.positions[changed] = positions
        self.contexts[changed] = contexts

    def _candidates(self, view: Tensor, floor: Tensor, negate: bool) -> tuple[Tensor, Tensor]:
        """Each neuron's best (at most k) scores above ``floor`` in ``view [window, token,
        neuron]`` (the score is the value, or its negation with ``negate``): values ``[neuron,
        k]`` (-inf padded) and rows of ``view`` flattened to ``[window * token]``. Dense top-k
        while most entries qualify; once the floors are high, only the few entries above them
        are sorted."""
        above = view < -floor if negate else view > floor
        n = view.shape[-1]
        if int(torch.count_nonzero(above)) > n * self.k // 2:
            scores = view.reshape(-1, n)
            scores = -scores if negate else scores
            take = min(self.k, scores.shape[0])
            values, rows = scores.topk(take, dim=0)
            pad = self.k - take
            values = torch.nn.functional.pad(values.T, (0, pad), value=float("-inf"))
            return values, torch.nn.functional.pad(rows.T, (0, pad))
        window, token, neuron = torch.nonzero(above, as_tuple=True)
        value = view[window, token, neuron]
        value = -value if negate else value
        row = window * view.shape[1] + token
        order = torch.argsort(-value, stable=True)
        order = order[torch.argsort(neuron[order], stable=True)]  # by neuron, then best first
        row, neuron, value = row[order], neuron[order], value[order]
        starts = torch.searchsorted(neuron, torch.arange(n))
        rank = torch.arange(neuron.numel()) - starts[neuron]
        keep = rank < self.k
        values = torch.full((n, self.k), float("-inf"))
        rows = torch.zeros((n, self.k), dtype=torch.int64)
        values[neuron[keep], rank[keep]] = value[keep]
        rows[neuron[keep], rank[keep]] = row[keep]
        return values, rows

    def _contexts_at(self, flat: Tensor, rows: Tensor, neurons: Tensor, tokens: int) -> Tensor:
        """Column ``neurons[i]``'s activations around flat row ``rows[i]``, within its window:
        ``[example, width]``, NaN outside the window."""
        c = self.context
        offsets = torch.arange(-c.before, c.after + 1)
        within = rows[:, None] % tokens + offsets  # token index inside the window
        inside = (within >= 0) & (within < tokens)
        source = rows[:, None] + offsets
        values = flat[source.clamp(0, flat.shape[0] - 1), neurons[:, None].expand_as(source)]
        return torch.where(inside, values, float("nan"))

    def state_dict(self) -> dict[str, object]:
        return {"values": self.values, "positions": self.positions, "contexts": self.contexts}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.values, self.positions = state["values"], state["positions"]  # type: ignore[assignment]
        self.contexts = state["contexts"]  # type: ignore[assignment]


def frequency_matched(counts: Tensor, candidates: Tensor, size: int, seed: int) -> Tensor:
    """For each candidate token, ``size`` other tokens of about its corpus frequency: tokens are
    binned by floor(log2(count)), each bin gets one seeded random sample of ``size + 1`` tokens,
    and a candidate is matched with its bin's sample less itself. ``[neuron, size]``, -1 padded
    (and all -1 where the candidate is -1 or never occurs)."""
    seen = torch.nonzero(counts > 0).flatten()
    bins = torch.log2(counts[seen].double()).floor().long()
    generator = torch.Generator().manual_seed(seed)
    samples: dict[int, Tensor] = {}
    for b in torch.unique(bins).tolist():
        members = seen[bins == b]
        samples[b] = members[torch.randperm(members.numel(), generator=generator)[: size + 1]]
    matched = torch.full((candidates.shape[0], size), -1, dtype=torch.int64)
    for token in torch.unique(candidates).tolist():
        if token < 0 or counts[token] <= 0:
            continue
        sample = samples[int(torch.log2(counts[token].double()).floor())]
        others = sample[sample != token][:size]
        matched[candidates == token, : others.numel()] = others
    return matched


class TokenSelectivity:
    """Each neuron's summed activation and count on its candidate token and on frequency-matched
    tokens: ``tokens [neuron, 1 + matched]``, column 0 the candidate, then its matched tokens
    (-1 for none). State is ``[neuron, 1 + matched]``, whatever the corpus size."""

    def __init__(self, tokens: Tensor) -> None:
        self.tokens = tokens
        self.valid = tokens >= 0
        self.vocab = torch.unique(tokens[self.valid])  # sorted
        last = max(self.vocab.numel() - 1, 0)
        self.slots = torch.searchsorted(self.vocab, tokens.clamp_min(0)).clamp_max(last)  # like tokens
        self.neuron = torch.arange(tokens.shape[0])[:, None].expand_as(tokens)
        self.sums = torch.zeros(tokens.shape, dtype=torch.float64)
        self.counts = torch.zeros(tokens.shape, dtype=torch.int64)

    def update(self, acts: Tensor, token_ids: Tensor) -> None:
        """Add ``acts [token, neuron]`` read on ``token_ids [token]``."""
        if self.vocab.numel() == 0:
            return
        slot = torch.searchsorted(self.vocab, token_ids).clamp_max(self.vocab.numel() - 1)
        hit = self.vocab[slot] == token_ids
        slot = slot[hit]
        per_token = torch.zeros(self.vocab.numel(), acts.shape[1])
        per_token.index_add_(0, slot, acts[hit].float())
        seen = torch.bincount(slot, minlength=self.vocab.numel())
        self.sums += torch.where(self.valid, per_token[self.slots, self.neuron], 0).double()
        self.counts += torch.where(self.valid, seen[self.slots], 0)

    def means(self) -> Tensor:
        """``[neuron, 1 + matched]`` mean activation on each token (NaN where it never occurred)."""
        return torch.where(self.counts > 0, self.sums / self.counts.clamp_min(1), float("nan"))

    def state_dict(self) -> dict[str, object]:
        return {"tokens": self.tokens, "sums": self.sums, "counts": self.counts}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TokenSelectivity:
        tracker = cls(state["tokens"])
        tracker.sums, tracker.counts = state["sums"], state["counts"]
        return tracker
