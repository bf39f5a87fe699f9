"""What a validation is run with and what it found: plain data, shared by the engine that runs
validations and the database that stores them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from classifiers.jsonable import JsonFields

Head = tuple[int, int]

RATIO_FLOOR = 1e-3  # nats: random effects at or below this count as this, so the ratio stays finite


@dataclass(frozen=True)
class AblationConfig(JsonFields):
    """How the validation is run: at most ``max_k`` top labelled heads, ``draws`` random sets of
    the same size (never including a top head), and the ratio a label needs to count as supported."""

    max_k: int = 10
    draws: int = 5
    seed: int = 0
    min_ratio: float = 5.0


@dataclass(frozen=True)
class AblationResult:
    """What one validation found; every effect is a rise in the metric (nats)."""

    method: str
    metric: str
    k: int
    heads: list[Head]
    baseline: float
    effect_top: float
    random_heads: list[list[Head]]
    effect_random: list[float]
    per_head_effect: dict[Head, float]
    ratio: float | None
    supported: bool
    forward_passes: int
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def effect_random_mean(self) -> float | None:
        """Mean rise over the random draws (None when nothing was ablated)."""
        return sum(self.effect_random) / len(self.effect_random) if self.effect_random else None
