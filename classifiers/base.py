"""What every head classifier is: a named, versioned class with a frozen config and a pure score.

Three kinds exist. A :class:`PatternClassifier` reads attention patterns ``[layer, batch, head,
query, key]`` on a probe; an IOI classifier (``classifiers.ioi``) reads measurements made on IOI
prompts; a :class:`MeasuredClassifier` reads measurements the survey makes for it alone
(successor, function-vector and backup induction heads). Each returns one score per head plus
per-head evidence, and never changes its inputs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor

from classifiers.jsonable import JsonFields
from classifiers.probes import ProbeSet, ProbeSpec
from classifiers.statistics import (
    ALPHA,
    BELOW_THRESHOLD,
    GATED,
    LABELLED,
    SETTINGS,
    WITHIN_NULL,
    HeadStatistics,
    benjamini_hochberg,
    head_statistics,
    welch_p_values,
)

Evidence = dict[str, Any]


@dataclass(frozen=True)
class ClassifierConfig(JsonFields):
    """Settings that change a classifier's result: its label threshold and its probe."""

    threshold: float
    probe: ProbeSpec

    def dataset_line(self) -> str:
        """One line naming the probe, for listings."""
        p = self.probe
        return f"probe {p.kind} (length {p.length}, batch {p.batch}, seed {p.seed})"

    def with_probe(self, **changes: Any) -> ClassifierConfig:
        """A copy with some probe parameters changed (e.g. a smaller batch for tests)."""
        return replace(self, probe=replace(self.probe, **changes))


class Config(Protocol):
    """What every classifier config offers: a label threshold and its JSON form."""

    @property
    def threshold(self) -> float: ...

    def to_dict(self) -> dict[str, Any]: ...

    def dataset_line(self) -> str: ...


@dataclass(frozen=True)
class HeadScores:
    """``scores [layer, head]`` and, per layer then head, a JSON-able evidence dict.

    ``gate`` (bool ``[layer, head]``), when set, holds the conditions a label needs beside the
    score. ``samples`` and ``null`` (``[item, layer, head]``) are the per-item values the score
    averages and the same values on the class's null; from them come the interval, p and q
    (``classifiers.statistics``), and a label then also needs q < alpha.
    """

    scores: Tensor
    evidence: list[list[Evidence]]
    gate: Tensor | None = None
    samples: Tensor | None = None
    null: Tensor | None = None

    @cached_property
    def statistics(self) -> HeadStatistics | None:
        """The interval, null and significance of every head (None: the class gave no samples)."""
        if self.samples is None or self.null is None:
            return None
        return head_statistics(self.scores, self.samples, self.null)

    def labels(self, threshold: float) -> Tensor:
        """``[layer, head]`` bool: above the threshold, beyond the null, and the gate holds."""
        return self._rule(
            self.scores, threshold, None if self.statistics is None else self.statistics.beyond_null
        )

    def _rule(self, scores: Tensor, threshold: float, beyond_null: Tensor | None) -> Tensor:
        """The label rule on ``scores``: above the threshold, the gate, and beyond the null (when tested)."""
        labelled = scores > threshold
        if self.gate is not None:
            labelled &= self.gate
        if beyond_null is not None:
            labelled &= beyond_null
        return labelled

    def reasons(self, threshold: float) -> list[list[str]]:
        """Per head, why it is or is not labelled: the first condition it fails, else labelled."""
        everywhere = torch.ones_like(self.scores, dtype=torch.bool)
        gate = self.gate if self.gate is not None else everywhere
        beyond = self.statistics.beyond_null if self.statistics is not None else everywhere
        n_layers, n_heads = self.scores.shape

        def reason(layer: int, head: int) -> str:
            if not gate[layer, head]:
                return GATED
            if not self.scores[layer, head] > threshold:
                return BELOW_THRESHOLD
            return LABELLED if beyond[layer, head] else WITHIN_NULL

        return [[reason(layer, head) for head in range(n_heads)] for layer in range(n_layers)]

    def null_label_rate(self, threshold: float) -> float | None:
        """The share of heads the full rule labels when run on the null alone: one half of the
        null's items (even ones) as the samples, the other half as their null."""
        if self.null is None or self.null.shape[0] < 4:
            return None
        half, other = self.null[0::2], self.null[1::2]
        beyond_null = benjamini_hochberg(welch_p_values(half, other)) < ALPHA
        return float(self._rule(half.float().mean(0), threshold, beyond_null).double().mean())

    def null_false_positive_rate(self, threshold: float) -> float | None:
        """The share of heads whose null score passes the threshold: an upper bound on the share
        the class would label if every head's input were its null."""
        if self.statistics is None:
            return None
        return float((self.statistics.null_score > threshold).double().mean())


class HeadClassifier(ABC):  # noqa: B024  (abstract by kind: subclasses add their score method)
    """Base class of every kind: the class attributes and the config.

    ``version`` is bumped whenever the definition changes; stored rows keep theirs.
    """

    name: ClassVar[str]
    version: ClassVar[int]
    summary: ClassVar[str]
    formula: ClassVar[str]
    default_config: ClassVar[Config]
    unit: ClassVar[str]  # the survey unit that measures it: "pattern", "ioi", or a measurement's name
    depends_on: ClassVar[tuple[str, ...]] = ()  # classes whose labels decide what this one measures
    gates: ClassVar[dict[str, float]] = {}  # constants beside the threshold that decide a label
    validated: ClassVar[bool] = False  # whether the ablation settings change its result
    ablated_evidence: ClassVar[str | None] = None  # backups: the evidence field naming the heads ablated
    null: ClassVar[str]  # what the class's null is: the same measure where the mechanism cannot act

    @classmethod
    def own_definition(cls) -> dict[str, Any]:
        """Everything in the class itself that decides its result: config, threshold, gates, null
        and statistics (``classifiers.registry.classifier_definition`` adds the classes it depends on)."""
        return {
            "config": cls.default_config.to_dict(), "threshold": cls.default_config.threshold,
            "gates": dict(cls.gates), "validated": cls.validated, "null": cls.null, "statistics": SETTINGS,
        }  # fmt: skip

    def __init__(self, config: Config | None = None) -> None:
        self.config = config if config is not None else self.default_config

    @property
    def threshold(self) -> float:
        """A head is labelled with this class when its score is above this."""
        return self.config.threshold


class PatternClassifier(HeadClassifier):
    """A classifier scored from attention patterns on a probe."""

    config: ClassifierConfig
    default_config: ClassVar[ClassifierConfig]
    unit = "pattern"
    null_probe: ClassVar[bool] = False  # whether its null reads patterns captured on the probe's null

    def __init__(self, config: ClassifierConfig | None = None) -> None:
        super().__init__(config)

    @abstractmethod
    def score(self, patterns: Tensor, probe: ProbeSet, null_patterns: Tensor | None = None) -> HeadScores:
        """Score every head from ``patterns [layer, batch, head, query, key]`` on ``probe``
        (and, for a class with ``null_probe``, the patterns on the probe's null)."""


class MeasuredClassifier(HeadClassifier):
    """A classifier scored from measurements the survey makes on the model for it (its weights,
    or interventions on its dataset). ``config.dataset`` is the spec of the dataset it reads."""

    @abstractmethod
    def score(self, measures: Any) -> HeadScores:
        """Score every head from the measurements made for this class."""


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
