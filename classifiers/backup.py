"""Backup induction heads: heads that take over when the induction heads are gone.

The backup-head phenomenon (Wang et al. 2022 found backup name movers in GPT-2 small) asked for
every class with a task metric. For induction the metric is the loss on the second repeat of
[BOS] + r + r. The survey mean-ablates the labelled induction heads and measures every head
again: its direct effect on the right next token (DLA, through the clean run's final-norm
scale) and its induction score. A head whose direct effect rises makes up for the lost heads.
Scoring is pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import torch
from torch import Tensor

from classifiers.attention import REPEATED
from classifiers.base import Evidence, HeadScores, MeasuredClassifier
from classifiers.jsonable import JsonFields
from classifiers.probes import ProbeSpec
from classifiers.registry import register

Head = tuple[int, int]
LOSS_FLOOR = 1e-3  # logits: a lost direct effect below this is treated as this
NULL_DRAWS = 5  # random head sets, as many as the ablated heads, whose ablation makes the null


@dataclass(frozen=True)
class BackupConfig(JsonFields):
    """Threshold on the compensation share, the probe, and at most how many labelled heads are
    ablated (None: every labelled induction head, the default)."""

    threshold: float
    dataset: ProbeSpec = REPEATED
    max_k: int | None = None

    def dataset_line(self) -> str:
        """One line naming the probe, for listings."""
        d = self.dataset
        return f"probe {d.kind} (length {d.length}, batch {d.batch}, seed {d.seed}), induction heads ablated"


@dataclass(frozen=True)
class BackupMeasures:
    """Over second-repeat positions, clean and with ``ablated`` (the labelled induction heads)
    mean-ablated: each head's direct effect on the right next token's logit per probe sequence
    (``[sequence, layer, head]``) and its induction score (``[layer, head]``).
    ``null_compensation [draw * sequence, layer, head]`` is the DLA rise when as many random
    heads (none of them induction heads) are ablated instead."""

    ablated: list[Head]
    dla_sequences: Tensor
    dla_ablated_sequences: Tensor
    induction: Tensor
    induction_ablated: Tensor
    null_compensation: Tensor

    @cached_property
    def dla(self) -> Tensor:
        """``[layer, head]``: the clean direct effect, over every sequence."""
        return self.dla_sequences.mean(0)

    @cached_property
    def dla_ablated(self) -> Tensor:
        """``[layer, head]``: the direct effect with the induction heads ablated."""
        return self.dla_ablated_sequences.mean(0)

    @cached_property
    def compensation(self) -> Tensor:
        """``[sequence, layer, head]``: each head's DLA rise per probe sequence."""
        return self.dla_ablated_sequences - self.dla_sequences

    @cached_property
    def lost(self) -> float:
        """The ablated heads' summed clean direct effect."""
        dla = self.dla
        return float(sum(dla[head] for head in self.ablated))


@register
class BackupInduction(MeasuredClassifier):
    """Backup induction head: its direct effect on the right next token rises when the induction
    heads are mean-ablated.

    Threshold 0.05: it makes up at least 5% of the direct effect the ablated heads had.
    """

    name = "backup_induction"
    version = 4  # 4: the ablated induction heads are induction v3 labels (no suppressing head)
    unit = "backup_induction"
    validated = True
    depends_on = ("induction",)
    gates = {"loss_floor": LOSS_FLOOR, "null_draws": NULL_DRAWS}
    null = (
        "the same DLA rise when as many random non-induction heads are mean-ablated (5 draws), per sequence"
    )
    ablated_evidence = "induction_heads_ablated"
    summary = "its direct effect on the repeat rises when the induction heads are mean-ablated"
    formula = (
        "(DLA to the right next token with the labelled induction heads mean-ablated - clean DLA) / "
        "the ablated heads' clean DLA, over the second repeat; the ablated heads themselves are not labelled"
    )
    default_config: ClassVar[BackupConfig] = BackupConfig(threshold=0.05)
    config: BackupConfig

    def score(self, measures: BackupMeasures) -> HeadScores:
        compensation = measures.dla_ablated - measures.dla
        lost = max(measures.lost, LOSS_FLOOR)
        scores = compensation / lost
        gate = torch.ones_like(scores, dtype=torch.bool)
        for head in measures.ablated:
            gate[head] = False
        if not measures.ablated:
            gate[:] = False
        n_layers, n_heads = scores.shape
        evidence = [
            [self._evidence(measures, compensation, layer, head) for head in range(n_heads)]
            for layer in range(n_layers)
        ]
        samples, null = measures.compensation / lost, measures.null_compensation / lost
        return HeadScores(scores, evidence, gate, samples, null)

    @staticmethod
    def _evidence(m: BackupMeasures, compensation: Tensor, layer: int, head: int) -> Evidence:
        return {
            "compensation": round(float(compensation[layer, head]), 6),
            "dla": round(float(m.dla[layer, head]), 6),
            "dla_induction_ablated": round(float(m.dla_ablated[layer, head]), 6),
            "induction_score": round(float(m.induction[layer, head]), 6),
            "induction_score_ablated": round(float(m.induction_ablated[layer, head]), 6),
            "induction_direct_loss": round(m.lost, 6),
            "induction_heads_ablated": [list(h) for h in m.ablated],
        }
