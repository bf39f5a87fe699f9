"""What every head classifier is: a named, versioned class with a frozen config and a pure score.

Scoring reads attention patterns ``[layer, batch, head, query, key]`` and the probe tokens, and
returns one score per head plus per-head evidence. It never changes its inputs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar

import torch
from torch import Tensor

from classifiers.probes import ProbeSet, ProbeSpec

Evidence = dict[str, Any]


@dataclass(frozen=True)
class ClassifierConfig:
    """Settings that change a classifier's result: its label threshold and its probe."""

    threshold: float
    probe: ProbeSpec

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, nested probe included; stored beside every score."""
        return asdict(self)

    def with_probe(self, **changes: Any) -> ClassifierConfig:
        """A copy with some probe parameters changed (e.g. a smaller batch for tests)."""
        return replace(self, probe=replace(self.probe, **changes))


@dataclass(frozen=True)
class HeadScores:
    """``scores [layer, head]`` and, per layer then head, a JSON-able evidence dict."""

    scores: Tensor
    evidence: list[list[Evidence]]

    def labels(self, threshold: float) -> Tensor:
        """``[layer, head]`` bool: the score is above the threshold."""
        return self.scores > threshold


class HeadClassifier(ABC):
    """Base class. Subclasses set the class attributes and implement :meth:`score`.

    ``version`` is bumped whenever the definition changes; stored rows keep theirs.
    """

    name: ClassVar[str]
    version: ClassVar[int]
    summary: ClassVar[str]
    formula: ClassVar[str]
    default_config: ClassVar[ClassifierConfig]

    def __init__(self, config: ClassifierConfig | None = None) -> None:
        self.config = config if config is not None else self.default_config

    @property
    def threshold(self) -> float:
        """A head is labelled with this class when its score is above this."""
        return self.config.threshold

    @abstractmethod
    def score(self, patterns: Tensor, probe: ProbeSet) -> HeadScores:
        """Score every head from ``patterns [layer, batch, head, query, key]`` on ``probe``."""


def rank_and_percentile(scores: Tensor) -> tuple[Tensor, Tensor]:
    """Rank (1 = highest, ties by layer then head) and percentile (share of the model's heads
    scoring at or below, times 100) for ``scores [layer, head]``."""
    flat = scores.flatten()
    order = torch.argsort(-flat, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(1, flat.numel() + 1)
    at_or_below = (flat[None, :] <= flat[:, None]).sum(1)
    percentile = 100.0 * at_or_below.double() / flat.numel()
    return rank.view_as(scores), percentile.view_as(scores)
