"""Successor heads (Gould et al. 2023): heads whose OV circuit maps an ordinal token to the next
one ("Monday" → "Tuesday", "3" → "4", "C" → "D").

The survey applies W_U·W_OV to each member's residual after the first block and keeps, for each
pair (member, next member), whether the next member is the top logit among the sequence's
members. Scoring is pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from classifiers.base import Evidence, HeadScores, MeasuredClassifier
from classifiers.jsonable import JsonFields
from classifiers.ordinal import OrdinalSpec
from classifiers.registry import register


@dataclass(frozen=True)
class SuccessorConfig(JsonFields):
    """Threshold on the share of pairs whose successor wins, and the sequences' spec."""

    threshold: float
    dataset: OrdinalSpec = OrdinalSpec()

    def dataset_line(self) -> str:
        """One line naming the dataset, for listings."""
        return f"ordinal sequences (at least {self.dataset.min_tokens} single-token members)"


@dataclass(frozen=True)
class SuccessorMeasures:
    """Per kept sequence: ``hits [layer, head, pair]`` (bool: the successor is the top logit
    among the sequence's members) and ``predicted [layer, head, pair]`` (the index of the member
    that won)."""

    tasks: list[str]
    words: list[list[str]]
    pairs: list[list[tuple[int, int]]]
    hits: list[Tensor]
    predicted: list[Tensor]


EXAMPLES = 3  # pairs per sequence shown as evidence
NULL_SEED = 0


def deranged_targets(n_members: int, pairs: list[tuple[int, int]], seed: int = NULL_SEED) -> Tensor:
    """Per pair (i, i+1), a seeded random member that is neither i nor its successor: the target
    of the deranged null (a head that writes some member, not the next one, hits it as often)."""
    generator = torch.Generator().manual_seed(seed)
    targets = []
    for i, j in pairs:
        others = [m for m in range(n_members) if m not in (i, j)]
        targets.append(others[int(torch.randint(len(others), (1,), generator=generator))])
    return torch.tensor(targets)


@register
class SuccessorHead(MeasuredClassifier):
    """Successor head: its OV circuit outputs the next member of an ordinal sequence.

    Threshold 0.5: the successor wins for at least half of all pairs; a head that writes a random
    member wins for about one in the sequence's length.
    """

    name = "successor"
    version = 2  # 2: the label also needs q < 0.01 against deranged successors
    unit = "successor"
    null = "the same share for a seeded random member that is neither the input nor its successor"
    summary = "its OV circuit maps a number, day, month or letter to the next one"
    formula = (
        "share of pairs (t_i, t_i+1) over numbers, number words, days, months and letters whose "
        "successor t_i+1 is the top logit among the sequence's tokens in W_U·W_OV·x(t_i), with x the "
        "residual after the first block"
    )
    default_config: ClassVar[SuccessorConfig] = SuccessorConfig(threshold=0.5)
    config: SuccessorConfig

    def score(self, measures: SuccessorMeasures) -> HeadScores:
        hits = torch.cat([h.float() for h in measures.hits], dim=-1)  # [layer, head, all pairs]
        null = torch.cat(
            [
                (predicted == deranged_targets(len(words), pairs)).float()
                for predicted, words, pairs in zip(
                    measures.predicted, measures.words, measures.pairs, strict=True
                )
            ],
            dim=-1,
        )
        scores = hits.mean(-1)
        per_task = torch.stack([h.float().mean(-1) for h in measures.hits], dim=-1)  # [layer, head, task]
        n_layers, n_heads = scores.shape
        evidence = [
            [self._evidence(measures, per_task, layer, head) for head in range(n_heads)]
            for layer in range(n_layers)
        ]
        return HeadScores(scores, evidence, samples=hits.permute(2, 0, 1), null=null.permute(2, 0, 1))

    @staticmethod
    def _evidence(m: SuccessorMeasures, per_task: Tensor, layer: int, head: int) -> Evidence:
        examples = [
            {
                "task": task,
                "input": words[i],
                "top": words[int(predicted[layer, head, p])],
                "successor": words[j],
            }
            for task, words, pairs, predicted in zip(m.tasks, m.words, m.pairs, m.predicted, strict=True)
            for p, (i, j) in enumerate(pairs[:EXAMPLES])
        ]
        return {
            "per_task": {task: round(float(per_task[layer, head, t]), 6) for t, task in enumerate(m.tasks)},
            "pairs": sum(len(p) for p in m.pairs),
            "successor_examples": examples,
        }
