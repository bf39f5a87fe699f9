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
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor

from classifiers.jsonable import JsonFields
from classifiers.probes import ProbeSet, ProbeSpec

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
    """``scores [layer, head]`` and, per layer then head, a JSON-able evidence dict. ``gate``
    (bool ``[layer, head]``), when set, holds the conditions a label needs beside the score."""

    scores: Tensor
    evidence: list[list[Evidence]]
    gate: Tensor | None = None

    def labels(self, threshold: float) -> Tensor:
        """``[layer, head]`` bool: the score is above the threshold (and the gate holds)."""
        above = self.scores > threshold
        return above if self.gate is None else above & self.gate


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

    @classmethod
    def definition(cls) -> dict[str, Any]:
        """Everything in the class that decides its result: config, threshold, gates and, for a
        class measured after another's labels, that class's definition (the unit key hashes it
        with the run's validation settings and dtype)."""
        from classifiers.registry import classifier_class

        return {
            "config": cls.default_config.to_dict(), "threshold": cls.default_config.threshold,
            "gates": dict(cls.gates), "validated": cls.validated,
            "depends_on": {name: classifier_class(name).definition() for name in cls.depends_on},
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

    def __init__(self, config: ClassifierConfig | None = None) -> None:
        super().__init__(config)

    @abstractmethod
    def score(self, patterns: Tensor, probe: ProbeSet) -> HeadScores:
        """Score every head from ``patterns [layer, batch, head, query, key]`` on ``probe``."""


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
