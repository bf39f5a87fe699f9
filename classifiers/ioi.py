"""The IOI family (Wang et al. 2022): name movers, negative and backup name movers, S-inhibition.

These classifiers read :class:`IOIMeasures`, made by ``survey.units.ioi`` on the IOI prompts of
``classifiers.ioi_prompts``; scoring is pure. Every score is relative to the model's clean logit
difference LD = logit(IO) - logit(S) at END, so one threshold fits models whose logits have
different scales. A model whose mean LD is under ``LD_FLOOR`` does not do the task: nothing is
labelled, and the evidence says so.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import torch
from torch import Tensor

from classifiers.base import Evidence, HeadClassifier, HeadScores
from classifiers.jsonable import JsonFields
from classifiers.registry import register

LD_FLOOR = 0.1  # logits: below this mean clean LD the model does not do IOI
NULL_DRAWS = 5  # random head sets, as many as the name movers, whose ablation makes the backups' null
Head = tuple[int, int]


@dataclass(frozen=True)
class IOISpec:
    """The IOI prompts: clean/ABC pairs per template and order, the seed, and how many of
    each group's pairs the path patching reads (it costs one END pass per sender head)."""

    per_group: int = 4
    seed: int = 0
    patch_per_group: int = 2


@dataclass(frozen=True)
class IOIConfig(JsonFields):
    """Threshold on the score (a share of the clean LD), the prompts, and the smallest OV copy
    score a (negative) name mover needs."""

    threshold: float
    prompts: IOISpec = IOISpec()
    min_copy: float = 0.5

    def dataset_line(self) -> str:
        """One line naming the dataset, for listings."""
        p = self.prompts
        return f"IOI prompts ({p.per_group} per template and order, seed {p.seed})"


@dataclass(frozen=True)
class IOIMeasures:
    """What the IOI classifiers read, ``[prompt, layer, head]`` per prompt or ``[layer, head]``
    means over the clean prompts. DLA is in logits; attention is ``[layer, head, 3]`` for END→IO,
    S1, S2."""

    ld: float  # mean clean LD
    ld_positive: float  # share of prompts with LD > 0
    dla_prompts: Tensor  # the DLA on each clean prompt
    null_dla_prompts: Tensor  # DLA(name at IO - name at S1) on each ABC prompt
    attention: Tensor
    copy: Tensor
    negative_copy: Tensor
    name_movers: list[Head]  # the heads ablated for backups and patched into for S-inhibition
    dla_ablated_prompts: Tensor | None = None  # DLA with the name movers mean-ablated (clean-run scale)
    null_compensation_prompts: Tensor | None = None  # [draw * prompt, …]: DLA rise, random heads ablated
    drop_prompts: Tensor | None = None  # drop of name-mover attention END→IO under path patching
    receiver_attention_io: float | None = None  # the name movers' clean attention END→IO
    ov_inputs: list[int] = field(default_factory=list)  # name token ids of the OV examples
    ov_top_ids: Tensor | None = None  # [layer, head, name, top]: their top OV output tokens

    @cached_property
    def dla(self) -> Tensor:
        """``[layer, head]``: the mean clean DLA."""
        return self.dla_prompts.mean(0)

    @cached_property
    def dla_ablated(self) -> Tensor | None:
        """``[layer, head]``: the mean DLA with the name movers ablated (None: none was)."""
        return None if self.dla_ablated_prompts is None else self.dla_ablated_prompts.mean(0)

    @cached_property
    def receiver_attention_drop(self) -> Tensor | None:
        """``[layer, head]``: the mean drop of the name movers' attention END→IO (None: not patched)."""
        return None if self.drop_prompts is None else self.drop_prompts.mean(0)

    @property
    def does_ioi(self) -> bool:
        """Whether the mean clean LD reaches ``LD_FLOOR``."""
        return self.ld >= LD_FLOOR

    def head_evidence(self, layer: int, head: int) -> Evidence:
        """The measures every IOI class shows for one head."""
        io, s1, s2 = (round(float(a), 6) for a in self.attention[layer, head])
        return {
            "dla": round(float(self.dla[layer, head]), 6), "ld": round(self.ld, 6),
            "attention_end_io": io, "attention_end_s1": s1, "attention_end_s2": s2,
            "copy_score": round(float(self.copy[layer, head]), 6),
            "negative_copy_score": round(float(self.negative_copy[layer, head]), 6),
            **self._ov_examples(layer, head),
        }  # fmt: skip

    def _ov_examples(self, layer: int, head: int) -> Evidence:
        if self.ov_top_ids is None:
            return {}
        rows = self.ov_top_ids[layer, head].tolist()
        return {
            "ov_top_tokens": [{"input": i, "top": top} for i, top in zip(self.ov_inputs, rows, strict=False)]
        }


class IOIClassifier(HeadClassifier):
    """A classifier scored from IOI measurements."""

    unit = "ioi"
    gates = {"ld_floor": LD_FLOOR}

    config: IOIConfig
    default_config: ClassVar[IOIConfig]

    def __init__(self, config: IOIConfig | None = None) -> None:
        super().__init__(config)

    def score(self, measures: IOIMeasures) -> HeadScores:
        """Score every head; nothing is labelled when the model does not do IOI."""
        scored = self.measure(measures)
        gate = scored.gate if measures.does_ioi else torch.zeros_like(scored.gate)
        n_layers, n_heads = scored.scores.shape
        evidence = [
            [{**measures.head_evidence(layer, head), **scored.extra(layer, head)} for head in range(n_heads)]
            for layer in range(n_layers)
        ]
        return HeadScores(scored.scores, evidence, gate, scored.samples, scored.null)

    @abstractmethod
    def measure(self, m: IOIMeasures) -> Measured:
        """The class's scores, gate, own evidence, per-prompt values and null."""


@dataclass(frozen=True)
class Measured:
    """One IOI class's reading of the measures: ``scores`` and ``gate`` ``[layer, head]``,
    ``extra(layer, head)`` (its own evidence), and its ``samples`` and ``null``
    (``[item, layer, head]``, None when there is nothing to measure)."""

    scores: Tensor
    gate: Tensor
    extra: Any
    samples: Tensor | None = None
    null: Tensor | None = None


def _unmeasured(m: IOIMeasures, note: str) -> Measured:
    zeros = torch.zeros_like(m.dla)
    return Measured(zeros, zeros.bool(), lambda _l, _h: {"note": note})


def _nothing(_layer: int, _head: int) -> Evidence:
    return {}


class _AttendsIO(IOIClassifier):
    """Name movers and negative name movers: signed DLA / LD, gated by attention END→IO above
    END→S1 + END→S2 and by the copy score of the matching sign."""

    sign: ClassVar[float]

    def copy_of(self, m: IOIMeasures) -> Tensor:
        """The copy score the gate reads."""
        return m.copy if self.sign > 0 else m.negative_copy

    def measure(self, m: IOIMeasures) -> Measured:
        attends_io = m.attention[..., 0] > m.attention[..., 1] + m.attention[..., 2]
        gate = attends_io & (self.copy_of(m) >= self.config.min_copy)
        scale = self.sign / max(m.ld, LD_FLOOR)
        return Measured(m.dla * scale, gate, _nothing, m.dla_prompts * scale, m.null_dla_prompts * scale)


@register
class NameMover(_AttendsIO):
    """Name mover (Wang et al.): attends IO from END and copies it, raising logit(IO) - logit(S).

    Threshold 0.05: the head's direct effect alone is at least 5% of the clean logit difference.
    """

    name = "name_mover"
    version = 2  # 2: q < 0.01 against the ABC prompts; validation by rank among 20 draws
    null = (
        "DLA(name at IO - name at S1) / LD on the ABC prompts (three other names: no IO to find), per prompt"
    )
    validated = True
    summary = "copies the attended indirect object into the logits at END"
    formula = (
        "DLA(IO-S at END) / LD; labelled when attention END→IO exceeds END→S1 + END→S2 and the "
        "OV copy score (own token in the top 5 of W_U·W_OV·name) is at least 0.5"
    )
    default_config = IOIConfig(threshold=0.05)
    sign = 1.0


@register
class NegativeNameMover(_AttendsIO):
    """Negative name mover: attends IO from END and suppresses it (copy suppression).

    Threshold 0.05: the head's direct effect lowers the logit difference by at least 5% of it.
    """

    name = "negative_name_mover"
    version = 2  # 2: the label also needs q < 0.01 against the ABC prompts
    null = "-DLA(name at IO - name at S1) / LD on the ABC prompts, per prompt"
    summary = "attends the indirect object at END and writes against it (copy suppression)"
    formula = (
        "-DLA(IO-S at END) / LD; labelled when attention END→IO exceeds END→S1 + END→S2 and the "
        "negative OV copy score (own token in the bottom 5) is at least 0.5"
    )
    default_config = IOIConfig(threshold=0.05)
    sign = -1.0


def _not_name_movers(m: IOIMeasures, shape: torch.Size) -> Tensor:
    gate = torch.ones(shape, dtype=torch.bool)
    for layer, head in m.name_movers:
        gate[layer, head] = False
    return gate


@register
class BackupNameMover(IOIClassifier):
    """Backup name mover: takes over, raising its DLA, when the name movers are ablated.

    Threshold 0.05: the rise is at least 5% of the clean logit difference.
    """

    name = "backup_name_mover"
    version = 2  # 2: q < 0.01 against random-head ablations; validation by rank among 20 draws
    gates = {**IOIClassifier.gates, "null_draws": NULL_DRAWS}
    null = (
        "the same DLA rise when as many random heads (not name movers) are mean-ablated (5 draws), per prompt"
    )
    validated = True
    depends_on = ("name_mover",)
    ablated_evidence = "name_movers"
    summary = "its DLA rises when the name movers are mean-ablated"
    formula = (
        "(DLA with the name movers mean-ablated on ABC prompts - clean DLA) / LD, both through the "
        "clean run's final-norm scale; name movers themselves are not labelled"
    )
    default_config = IOIConfig(threshold=0.05)

    def measure(self, m: IOIMeasures) -> Measured:
        if m.dla_ablated_prompts is None or m.dla_ablated is None or m.null_compensation_prompts is None:
            return _unmeasured(m, "no name mover to ablate")
        compensation = m.dla_ablated - m.dla
        ablated = m.dla_ablated

        def extra(layer: int, head: int) -> Evidence:
            return {
                "compensation": round(float(compensation[layer, head]), 6),
                "dla_name_movers_ablated": round(float(ablated[layer, head]), 6),
                "name_movers": [list(h) for h in m.name_movers],
            }

        scale = 1 / max(m.ld, LD_FLOOR)
        return Measured(
            compensation * scale, _not_name_movers(m, m.dla.shape), extra,
            (m.dla_ablated_prompts - m.dla_prompts) * scale,
            m.null_compensation_prompts * scale,
        )  # fmt: skip


@register
class SInhibition(IOIClassifier):
    """S-inhibition head: its END output turns the name movers' attention away from S.

    Threshold 0.05: patching it from ABC prompts removes at least 5% of their attention to IO.
    """

    name = "s_inhibition"
    version = 2  # 2: the label also needs q < 0.01 against no effect
    null = "no effect: the per-prompt drop is tested against zero (a one-sample test)"
    validated = True
    depends_on = ("name_mover",)
    summary = "keeps the name movers off S: its END output from ABC prompts lowers their attention to IO"
    formula = (
        "path patching: the head's END output from ABC prompts, into the name movers' queries only; "
        "score = drop in their attention END→IO / their clean attention END→IO"
    )
    default_config = IOIConfig(threshold=0.05)

    def measure(self, m: IOIMeasures) -> Measured:
        if m.drop_prompts is None or m.receiver_attention_drop is None or not m.receiver_attention_io:
            return _unmeasured(m, "no name mover to patch into")
        drop = m.receiver_attention_drop
        clean = m.receiver_attention_io

        def extra(layer: int, head: int) -> Evidence:
            return {
                "receiver_attention_drop": round(float(drop[layer, head]), 6),
                "receiver_attention_io": round(clean, 6),
                "name_movers": [list(h) for h in m.name_movers],
            }

        samples = m.drop_prompts / clean
        return Measured(
            drop / clean, _not_name_movers(m, drop.shape), extra, samples, torch.zeros_like(samples)
        )
