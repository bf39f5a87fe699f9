"""Successor heads (Gould et al. 2023): heads whose OV circuit maps an ordinal token to the next
one ("Monday" → "Tuesday", "3" → "4", "C" → "D").

The survey applies W_U·W_OV to each member's effective embedding MLP0(W_E) (block 0's MLP on the
token embedding, attention skipped) and keeps, for each pair (member, next member), which
ordinal token of any kept sequence has the top logit. Scoring is pure.
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
    """The ordinal tokens of every kept sequence (``candidates``, their words) and, per pair
    (member, next member): its sequence (``tasks``), the candidate index of the member
    (``inputs [pair]``) and of its successor (``successors [pair]``), and ``predicted
    [layer, head, pair]``, the candidate with the top logit (-1: a tie for the top)."""

    candidates: list[str]
    tasks: list[str]
    inputs: Tensor
    successors: Tensor
    predicted: Tensor


EXAMPLES = 3  # pairs per sequence shown as evidence
NULL_SEED = 0


def deranged_targets(n_candidates: int, inputs: Tensor, successors: Tensor, seed: int = NULL_SEED) -> Tensor:
    """``[pair]``: per pair, a seeded random candidate that is neither the input nor its successor,
    the target of the deranged null (a head that writes some ordinal token, not the next one, hits
    it as often)."""
    generator = torch.Generator().manual_seed(seed)
    targets = []
    for i, j in zip(inputs.tolist(), successors.tolist(), strict=True):
        others = [c for c in range(n_candidates) if c not in (i, j)]
        targets.append(others[int(torch.randint(len(others), (1,), generator=generator))])
    return torch.tensor(targets, dtype=torch.long)


@register
class SuccessorHead(MeasuredClassifier):
    """Successor head: its OV circuit outputs the next member of an ordinal sequence.

    Threshold 0.5: the successor wins for at least half of all pairs; a head that writes a random
    ordinal token wins for about one pair in the number of candidates (74 in the embedded models).
    """

    name = "successor"
    # 2: the label also needs q < 0.01 against deranged successors. 3: Gould et al.'s definition:
    # read from the effective embedding MLP0(W_E) (no attention, no BOS), top-1 among the ordinal
    # tokens of every sequence (was: the residual after block 0 behind BOS, the sequence's own)
    version = 3
    gates = {"null_seed": NULL_SEED}
    unit = "successor"
    null = "the same share for a seeded random ordinal token that is neither the input nor its successor"
    summary = "its OV circuit maps a number, day, month or letter to the next one"
    formula = (
        "share of pairs (t_i, t_i+1) over numbers, number words, days, months and letters whose "
        "successor t_i+1 is the top logit of W_U·W_OV·MLP0(W_E[t_i]) among the ordinal tokens of all "
        "sequences, MLP0(W_E) the effective embedding: the token embedding plus block 0's MLP on it, "
        "attention skipped"
    )
    default_config: ClassVar[SuccessorConfig] = SuccessorConfig(threshold=0.5)
    config: SuccessorConfig

    def score(self, measures: SuccessorMeasures) -> HeadScores:
        m = measures
        hits = (m.predicted == m.successors).float()  # [layer, head, pair]
        null = (m.predicted == deranged_targets(len(m.candidates), m.inputs, m.successors)).float()
        names = list(dict.fromkeys(m.tasks))
        of_task = {name: [p for p, t in enumerate(m.tasks) if t == name] for name in names}
        per_task = torch.stack([hits[..., of_task[n]].mean(-1) for n in names], -1)  # [layer, head, task]
        shown = [p for name in names for p in of_task[name][:EXAMPLES]]
        n_layers, n_heads = hits.shape[:2]
        evidence = [
            [
                self._evidence(m, names, per_task[layer, head], m.predicted[layer, head], shown)
                for head in range(n_heads)
            ]
            for layer in range(n_layers)
        ]
        return HeadScores(hits.mean(-1), evidence, samples=hits.permute(2, 0, 1), null=null.permute(2, 0, 1))

    @staticmethod
    def _evidence(
        m: SuccessorMeasures, names: list[str], per_task: Tensor, predicted: Tensor, shown: list[int]
    ) -> Evidence:
        """One head's evidence: its share per sequence and, for a few pairs each, the ordinal token
        it ranks first ("" for a tie) beside the successor."""
        examples = [
            {
                "task": m.tasks[p],
                "input": m.candidates[int(m.inputs[p])],
                "top": "" if int(predicted[p]) < 0 else m.candidates[int(predicted[p])],
                "successor": m.candidates[int(m.successors[p])],
            }
            for p in shown
        ]
        return {
            "per_task": {name: round(float(per_task[t]), 6) for t, name in enumerate(names)},
            "pairs": len(m.tasks),
            "successor_examples": examples,
        }
