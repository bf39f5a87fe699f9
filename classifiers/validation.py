"""What a validation is run with and what it found: plain data, shared by the engine that runs
validations and the database that stores them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from classifiers.jsonable import JsonFields

Head = tuple[int, int]

LOSS_FLOOR = 1e-3  # nats or logits: a denominator below this is treated as this (shares in details)


@dataclass(frozen=True)
class AblationConfig(JsonFields):
    """How the validation is run: at most ``max_k`` top labelled heads, ``draws`` random sets of
    the same size (never including a head labelled in the class), and the smallest top effect,
    in the metric's own units (nats, logits or accuracy), that can count as supported."""

    max_k: int = 10
    draws: int = 20
    seed: int = 0
    min_effect: float = 0.05


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
    rank: int | None  # 1 + the draws whose effect is >= effect_top: 1 beats every draw
    z_score: float | None
    min_effect: float
    supported: bool
    forward_passes: int
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """The validation in one line: the effects, the rank and z, and the verdict."""
        if not self.k:
            return f"validation: {self.details.get('note', 'nothing ablated')}"
        z = "n/a" if self.z_score is None else f"{self.z_score:.1f}"
        draws = len(self.effect_random)
        return (
            f"validation: {self.metric} {self.effect_top:+.3f} for the top {self.k} vs "
            f"{self.effect_random_mean:+.3f} for random heads, rank {self.rank}/{draws + 1}, "
            f"z {z} ({'supported' if self.supported else 'NOT supported'}, {self.forward_passes} passes, "
            f"{self.seconds:.1f} s)"
        )

    @property
    def effect_random_mean(self) -> float | None:
        """Mean rise over the random draws (None when nothing was ablated)."""
        return sum(self.effect_random) / len(self.effect_random) if self.effect_random else None
