"""Validation by mean-ablation: does ablating a class's labelled heads hurt its task metric more
than ablating as many random heads?

The mechanics every class's validation shares (each class's own validation sits in its unit): the
labelled heads and the top-k, random head sets, and the check of the top-k effect against every
random draw: its rank among them (1: it beats them all) and its z-score against their spread. It
is supported when it beats every draw and reaches the configured minimum effect.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor

from classifiers.probes import ProbeSet
from classifiers.validation import AblationConfig, AblationResult
from survey.engine.ablation import Head


@dataclass(frozen=True)
class Check:
    """One validation's method, metric and baseline, and the config it compares by: its result
    ranks the top heads' effect among the random draws'."""

    method: str
    metric: str
    baseline: float
    config: AblationConfig

    def result(
        self, top: list[Head], effects: list[float], draws: list[list[Head]], per_head: dict[Head, float],
        passes: int, started: float, details: dict[str, object],
    ) -> AblationResult:  # fmt: skip
        """``effects``: the top heads' effect, then one per random draw."""
        if not top:
            return AblationResult(
                self.method, self.metric, 0, [], self.baseline, 0.0, [], [], {}, None, None,
                self.config.min_effect, False, passes, time.perf_counter() - started,
                {**details, "note": "no head is labelled"},
            )  # fmt: skip
        effect_top, random_effects = effects[0], effects[1:]
        rank, z = rank_and_z(effect_top, random_effects)
        supported = rank == 1 and effect_top >= self.config.min_effect
        return AblationResult(
            self.method, self.metric, len(top), top, self.baseline, effect_top, draws, random_effects,
            per_head, rank, z, self.config.min_effect, supported, passes, time.perf_counter() - started,
            details,
        )  # fmt: skip


def rank_and_z(effect: float, draws: list[float]) -> tuple[int, float | None]:
    """The effect's rank among the draws (1 + how many are at least as large) and its z-score
    against them (None when the draws do not vary)."""
    rank = 1 + sum(1 for d in draws if d >= effect)
    if len(draws) < 2:
        return rank, None
    spread = float(torch.tensor(draws, dtype=torch.float64).std(correction=1))
    return rank, (effect - sum(draws) / len(draws)) / spread if spread > 0 else None


def top_labelled(scores: Tensor, labels: Tensor, max_k: int) -> list[Head]:
    """The labelled heads with the highest scores, at most ``max_k``, best first."""
    n_heads = scores.shape[1]
    order = torch.argsort(-scores.flatten(), stable=True).tolist()
    labelled = [(i // n_heads, i % n_heads) for i in order if bool(labels.flatten()[i])]
    return labelled[:max_k]


def labelled_heads(labels: Tensor) -> list[Head]:
    """Every labelled head, in layer then head order (a random pool excludes them all)."""
    return [(int(layer), int(head)) for layer, head in torch.nonzero(labels).tolist()]


def random_head_sets(
    n_layers: int, n_heads: int, exclude: list[Head], k: int, draws: int, seed: int
) -> list[list[Head]]:
    """``draws`` seeded sets of ``k`` distinct heads, none of them in ``exclude``."""
    pool = [(layer, h) for layer in range(n_layers) for h in range(n_heads) if (layer, h) not in set(exclude)]
    generator = torch.Generator().manual_seed(seed)
    return [
        sorted(pool[i] for i in torch.randperm(len(pool), generator=generator)[:k].tolist())
        for _ in range(draws)
    ]


def repeat_span(probe: ProbeSet) -> tuple[int, int]:
    """Positions predicting tokens 2..L of the second repeat of [BOS] + r + r: ``[start, stop)``."""
    length = probe.spec.length
    return probe.first_content + length, probe.first_content + 2 * length - 1
