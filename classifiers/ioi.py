"""The IOI family (Wang et al. 2022): name movers, negative and backup name movers, S-inhibition.

These classifiers read :class:`IOIMeasures`, made by ``survey.units.ioi`` on the IOI prompts of
``classifiers.ioi_prompts``; scoring is pure. Every score is relative to the model's clean logit
difference LD = logit(IO) - logit(S) at END, so one threshold fits models whose logits have
different scales. A model whose mean LD is under ``LD_FLOOR`` does not do the task: nothing is
labelled, and the evidence says so.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar

import torch
from torch import Tensor

from classifiers.base import Evidence, HeadClassifier, HeadScores
from classifiers.jsonable import JsonFields
from classifiers.registry import register

LD_FLOOR = 0.1  # logits: below this mean clean LD the model does not do IOI
ABSENT_SEED = 0  # seeds the absent names of the copy-suppression null
NULL_DRAWS = 5  # random head sets, as many as the name movers, whose ablation makes the backups' null
Head = tuple[int, int]


@dataclass(frozen=True)
class IOISpec:
    """The IOI prompts: clean/ABC pairs per template and order, and the seed."""

    per_group: int = 4
    seed: int = 0


@dataclass(frozen=True)
class IOIConfig(JsonFields):
    """Threshold on the score (a share of the clean LD), the prompts, the smallest OV copy score
    (a backup's copy, a copy-suppression head's negative copy) and the smallest attention to the
    attended name a copy-suppression head needs."""

    threshold: float
    prompts: IOISpec = IOISpec()
    min_copy: float = 0.5
    min_attention: float = 0.3

    def dataset_line(self) -> str:
        """One line naming the dataset, for listings."""
        p = self.prompts
        return f"IOI prompts ({p.per_group} per template and order, seed {p.seed})"


@dataclass(frozen=True)
class IOIMeasures:
    """What the IOI classifiers read, ``[prompt, layer, head]`` per clean prompt unless noted. DLA
    is in logits; attention ends in ``3`` for END→IO, S1, S2. The copy scores are OV read-outs of
    the names' residuals after block 0 in the prompts: the share whose own name ranks first (last,
    for the negative copy score) among the candidate names."""

    ld: float  # mean clean LD
    ld_positive: float  # share of prompts with LD > 0
    dla_prompts: Tensor  # DLA(IO - S) on each clean prompt
    null_dla_prompts: Tensor  # DLA(name at IO - name at S1) on each ABC prompt
    absent_dla_prompts: Tensor  # [prompt, layer, head, 2]: DLA(absent name - S), DLA(absent name - IO)
    attention_prompts: Tensor  # [prompt, layer, head, 3]
    copy: Tensor  # [layer, head]
    negative_copy: Tensor  # [layer, head]
    name_movers: list[Head]  # the heads ablated for backups and patched into for S-inhibition
    dla_ablated_prompts: Tensor | None = None  # DLA with the name movers mean-ablated (clean-run scale)
    attention_ablated: Tensor | None = None  # [layer, head, 3]: mean attention, name movers ablated
    null_compensation_prompts: Tensor | None = None  # [draw * prompt, …]: DLA rise, random heads ablated
    ld_drop_prompts: Tensor | None = None  # drop of LD when the head is path-patched into the movers' queries
    ov_inputs: list[int] = field(default_factory=list)  # name token ids of the OV examples
    ov_top_ids: Tensor | None = None  # [layer, head, name, top]: their top OV output tokens

    @cached_property
    def dla(self) -> Tensor:
        """``[layer, head]``: the mean clean DLA."""
        return self.dla_prompts.mean(0)

    @cached_property
    def attention(self) -> Tensor:
        """``[layer, head, 3]``: the mean clean attention END→IO, S1, S2."""
        return self.attention_prompts.mean(0)

    @cached_property
    def dla_ablated(self) -> Tensor | None:
        """``[layer, head]``: the mean DLA with the name movers ablated (None: none was)."""
        return None if self.dla_ablated_prompts is None else self.dla_ablated_prompts.mean(0)

    @property
    def ld_scale(self) -> float:
        """What turns logits into a share of the clean LD (floored at ``LD_FLOOR``)."""
        return 1 / max(self.ld, LD_FLOOR)

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
        """Score every head; nothing is labelled when the model does not do IOI. A head that
        fails the class's gate says which part in its ``gate_failed`` evidence."""
        scored = self.measure(measures)
        gate = scored.gate if measures.does_ioi else torch.zeros_like(scored.gate)
        n_layers, n_heads = scored.scores.shape

        def evidence(layer: int, head: int) -> Evidence:
            failed = [] if measures.does_ioi else [f"mean clean LD {measures.ld:.3f} < {LD_FLOOR}"]
            failed += [text for holds, text in scored.gate_parts(layer, head) if not holds]
            gate_failed = {"gate_failed": "; ".join(failed)} if failed else {}
            return {**measures.head_evidence(layer, head), **scored.extra(layer, head), **gate_failed}

        rows = [[evidence(layer, head) for head in range(n_heads)] for layer in range(n_layers)]
        return HeadScores(scored.scores, rows, gate, scored.samples, scored.null)

    @abstractmethod
    def measure(self, m: IOIMeasures) -> Measured:
        """The class's scores, gate, own evidence, per-prompt values and null."""


GatePart = tuple[bool, str]  # whether one condition of a gate holds, and the condition in words


@dataclass(frozen=True)
class Measured:
    """One IOI class's reading of the measures: ``scores`` and ``gate`` ``[layer, head]``,
    ``extra(layer, head)`` (its own evidence), ``gate_parts(layer, head)`` (each condition of the
    gate with its numbers), and its ``samples`` and ``null`` (``[item, layer, head]``, None when
    there is nothing to measure)."""

    scores: Tensor
    gate: Tensor
    extra: Callable[[int, int], Evidence]
    gate_parts: Callable[[int, int], list[GatePart]]
    samples: Tensor | None = None
    null: Tensor | None = None


def _unmeasured(m: IOIMeasures, note: str) -> Measured:
    zeros = torch.zeros_like(m.dla)
    return Measured(zeros, zeros.bool(), lambda _l, _h: {"note": note}, lambda _l, _h: [(False, note)])


def _nothing(_layer: int, _head: int) -> Evidence:
    return {}


def _attends_io(attention: Tensor) -> Tensor:
    """``attention [..., 3]`` → whether END→IO exceeds END→S1 + END→S2."""
    return attention[..., 0] > attention[..., 1] + attention[..., 2]


def _attends_io_part(attention: Tensor, when: str = "") -> GatePart:
    """The "attends IO" condition on one head's ``attention [3]``, in words."""
    io, s = float(attention[0]), float(attention[1] + attention[2])
    relation = ">" if io > s else "≤"
    return io > s, f"attention END→IO{when} {io:.3f} {relation} END→S1+S2 {s:.3f}"


def _at_least(value: float, floor: float, what: str) -> GatePart:
    return value >= floor, f"{what} {value:.3f} {'≥' if value >= floor else '<'} {floor:g}"


class _AttendsIO(IOIClassifier):
    """Name movers and negative name movers: signed DLA / LD, gated by attention END→IO above
    END→S1 + END→S2 (Wang et al. find them by their effect on the logits and their attention;
    the OV copy scores are evidence)."""

    sign: ClassVar[float]

    def measure(self, m: IOIMeasures) -> Measured:
        scale = self.sign * m.ld_scale
        return Measured(
            m.dla * scale, _attends_io(m.attention), _nothing,
            lambda layer, head: [_attends_io_part(m.attention[layer, head])],
            m.dla_prompts * scale, m.null_dla_prompts * scale,
        )  # fmt: skip


COPY_SCORE = (
    "the OV copy score (the share of name occurrences whose residual after block 0, read through "
    "the head's OV and the unembedding, ranks its own name first among the candidate names) is evidence"
)


@register
class NameMover(_AttendsIO):
    """Name mover (Wang et al.): attends IO from END and copies it, raising logit(IO) - logit(S).

    Threshold 0.05: the head's direct effect alone is at least 5% of the clean logit difference.
    """

    name = "name_mover"
    version = 3  # 3: gated by attention only; the copy score, ranked among the names, is evidence
    null = (
        "DLA(name at IO - name at S1) / LD on the ABC prompts (three other names: no IO to find), per prompt"
    )
    validated = True
    summary = "copies the attended indirect object into the logits at END"
    formula = f"DLA(IO-S at END) / LD; labelled when attention END→IO exceeds END→S1 + END→S2; {COPY_SCORE}"
    default_config = IOIConfig(threshold=0.05)
    sign = 1.0


@register
class NegativeNameMover(_AttendsIO):
    """Negative name mover (Wang et al.): attends IO from END and writes against it.

    Threshold 0.05: the head's direct effect lowers the logit difference by at least 5% of it.
    """

    name = "negative_name_mover"
    version = 3  # 3: gated by attention only; the negative copy score is evidence
    null = "-DLA(name at IO - name at S1) / LD on the ABC prompts, per prompt"
    summary = "attends the indirect object at END and writes against it"
    formula = (
        "-DLA(IO-S at END) / LD; labelled when attention END→IO exceeds END→S1 + END→S2; the negative "
        "OV copy score (own name ranked last among the candidate names) is evidence"
    )
    default_config = IOIConfig(threshold=0.05)
    sign = -1.0


@register
class CopySuppression(IOIClassifier):
    """Copy suppression (McDougall et al. 2023): attends a name the model is predicting (IO or S)
    and its OV circuit suppresses that name.

    Threshold 0.05: on each prompt the attended name is the one (IO, or S at S1 and S2) the head
    attends more from END; the head's direct effect against it, relative to the other name, is
    at least 5% of the clean logit difference.
    """

    name = "copy_suppression"
    version = 1
    gates = {**IOIClassifier.gates, "absent_seed": ABSENT_SEED}
    null = (
        "the same direct effect against a random candidate name absent from the prompt instead of the "
        "attended one (a head that writes against every name scores as high), per prompt"
    )
    summary = "attends the name the model predicts (IO or S) and writes against it"
    formula = (
        "-DLA(attended - other name at END) / LD, the attended name being IO or S, whichever the head "
        "attends more on the prompt; labelled when the mean attention to it is at least 0.3 and the "
        "negative OV copy score (own name ranked last among the candidate names) is at least 0.5"
    )
    default_config = IOIConfig(threshold=0.05)

    def measure(self, m: IOIMeasures) -> Measured:
        attention = m.attention_prompts
        attends_io = _attends_io(attention)  # [prompt, layer, head]
        attended = torch.where(attends_io, attention[..., 0], attention[..., 1] + attention[..., 2]).mean(0)
        scale = m.ld_scale
        samples = torch.where(attends_io, -m.dla_prompts, m.dla_prompts) * scale
        absent = m.absent_dla_prompts
        null = -torch.where(attends_io, absent[..., 0], absent[..., 1]) * scale
        share_io = attends_io.float().mean(0)
        c = self.config

        def extra(layer: int, head: int) -> Evidence:
            return {
                "attention_attended": round(float(attended[layer, head]), 6),
                "share_attending_io": round(float(share_io[layer, head]), 6),
            }

        def parts(layer: int, head: int) -> list[GatePart]:
            return [
                _at_least(float(attended[layer, head]), c.min_attention, "attention to the attended name"),
                _at_least(float(m.negative_copy[layer, head]), c.min_copy, "negative copy score"),
            ]

        gate = (attended >= c.min_attention) & (m.negative_copy >= c.min_copy)
        return Measured(samples.mean(0), gate, extra, parts, samples, null)


def _not_name_movers(m: IOIMeasures, shape: torch.Size) -> Tensor:
    gate = torch.ones(shape, dtype=torch.bool)
    for layer, head in m.name_movers:
        gate[layer, head] = False
    return gate


def _not_a_name_mover(m: IOIMeasures, layer: int, head: int) -> GatePart:
    return (layer, head) not in m.name_movers, "not one of the ablated name movers"


@register
class BackupNameMover(IOIClassifier):
    """Backup name mover (Wang et al.): when the name movers are ablated, it behaves like one:
    it attends IO, copies it, and its positive DLA rises.

    Threshold 0.05: the rise is at least 5% of the clean logit difference.
    """

    name = "backup_name_mover"
    version = 3  # 3: after the ablation it must attend IO, copy it and have a positive DLA
    gates = {**IOIClassifier.gates, "null_draws": NULL_DRAWS}
    null = (
        "the same DLA rise when as many random heads (not name movers) are mean-ablated (5 draws), per prompt"
    )
    validated = True
    depends_on = ("name_mover",)
    ablated_evidence = "name_movers"
    summary = "behaves like a name mover when the name movers are mean-ablated"
    formula = (
        "(DLA with the name movers mean-ablated - clean DLA) / LD, both through the clean run's "
        "final-norm scale; labelled when, with the name movers ablated, attention END→IO exceeds "
        "END→S1 + END→S2 and the DLA is positive, and the OV copy score is at least 0.5; a head that "
        "only suppresses less is not a backup; name movers themselves are not labelled"
    )
    default_config = IOIConfig(threshold=0.05)

    def measure(self, m: IOIMeasures) -> Measured:
        ablated, attention, null = m.dla_ablated, m.attention_ablated, m.null_compensation_prompts
        if m.dla_ablated_prompts is None or ablated is None or attention is None or null is None:
            return _unmeasured(m, "no name mover to ablate")
        compensation = ablated - m.dla

        def extra(layer: int, head: int) -> Evidence:
            io, s1, s2 = (round(float(a), 6) for a in attention[layer, head])
            return {
                "compensation": round(float(compensation[layer, head]), 6),
                "dla_name_movers_ablated": round(float(ablated[layer, head]), 6),
                "attention_end_io_ablated": io, "attention_end_s1_ablated": s1,
                "attention_end_s2_ablated": s2, "name_movers": [list(h) for h in m.name_movers],
            }  # fmt: skip

        def parts(layer: int, head: int) -> list[GatePart]:
            dla = float(ablated[layer, head])
            return [
                _not_a_name_mover(m, layer, head),
                _attends_io_part(attention[layer, head], " (name movers ablated)"),
                (dla > 0, f"DLA with the name movers ablated {dla:.3f} {'>' if dla > 0 else '≤'} 0"),
                _at_least(float(m.copy[layer, head]), self.config.min_copy, "copy score"),
            ]

        gate = (
            _not_name_movers(m, m.dla.shape) & _attends_io(attention) & (ablated > 0)
            & (m.copy >= self.config.min_copy)
        )  # fmt: skip
        scale = m.ld_scale
        return Measured(
            compensation * scale, gate, extra, parts, (m.dla_ablated_prompts - m.dla_prompts) * scale,
            null * scale,
        )  # fmt: skip


@register
class SInhibition(IOIClassifier):
    """S-inhibition head (Wang et al.): its END output keeps the name movers off S, so patching
    it from ABC prompts into the name movers' queries lowers the logit difference.

    Threshold 0.05: that path patch removes at least 5% of the clean logit difference.
    """

    name = "s_inhibition"
    version = 3  # 3: scored by the LD drop through the name movers' queries, on every prompt
    null = "no effect: the per-prompt drop is tested against zero (a one-sample test)"
    validated = True
    depends_on = ("name_mover",)
    summary = "keeps the name movers off S: its END output from ABC prompts, into their queries, lowers LD"
    formula = (
        "path patching: the head's END output from ABC prompts, into the name movers' queries only "
        "(receivers before or in the sender's layer are untouched), the rest of the model run on; "
        "score = drop in LD / clean LD"
    )
    default_config = IOIConfig(threshold=0.05)

    def measure(self, m: IOIMeasures) -> Measured:
        if m.ld_drop_prompts is None:
            return _unmeasured(m, "no name mover to patch into")
        samples = m.ld_drop_prompts * m.ld_scale
        drop = m.ld_drop_prompts.mean(0)
        last = max(layer for layer, _ in m.name_movers)

        def extra(layer: int, head: int) -> Evidence:
            return {
                "ld_drop": round(float(drop[layer, head]), 6),
                "name_movers": [list(h) for h in m.name_movers],
            }

        def parts(layer: int, head: int) -> list[GatePart]:
            return [
                _not_a_name_mover(m, layer, head),
                (layer < last, "in a layer before some name mover"),
            ]

        gate = _not_name_movers(m, drop.shape)
        gate[last:] = False
        return Measured(samples.mean(0), gate, extra, parts, samples, torch.zeros_like(samples))
