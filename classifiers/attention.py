"""The pattern classifiers: previous-token, duplicate-token, induction, anti-induction and
attention-sink.

Each score is the mean, over the scored queries, of the attention mass a head puts on its
target keys. It is raw mass: attention that goes to BOS counts as a miss, not renormalised
away, so a head that parks 99% on BOS and 1% on its target scores 0.01, not 1. BOS is never a
target or a scored query except for the sink, whose target is the first token.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from classifiers.base import ClassifierConfig, HeadScores, PatternClassifier
from classifiers.patterns import (
    duplicate_targets,
    example_pattern,
    first_token_targets,
    induction_targets,
    mass_per_sequence,
    pattern_scores,
    previous_targets,
)
from classifiers.probes import ProbeSet, ProbeSpec
from classifiers.registry import register

REPEATED = ProbeSpec("repeated_random", length=50, batch=10, seed=0)
NATURAL = ProbeSpec("natural_text", length=64, batch=16, seed=0)


def _check(patterns: Tensor, probe: ProbeSet) -> None:
    if patterns.ndim != 5 or patterns.shape[-1] != probe.tokens.shape[1]:
        raise ValueError(
            f"patterns must be [layer, batch, head, query, key] over the probe's {probe.tokens.shape[1]} "
            f"positions, got {tuple(patterns.shape)}"
        )


class TargetMassClassifier(PatternClassifier):
    """A classifier whose score is the attention mass on target keys (``targets_of`` the probe
    tokens), averaged over the queries that have at least one target. Its items are the probe's
    sequences; :meth:`null_samples` gives the same mass where the targets carry no signal."""

    @staticmethod
    @abstractmethod
    def targets_of(tokens: Tensor, first_content: int) -> Tensor:
        """``[batch, query, key]`` bool: the keys each query should attend to."""

    @abstractmethod
    def null_samples(self, patterns: Tensor, probe: ProbeSet, null_patterns: Tensor | None) -> Tensor:
        """``[batch, layer, head]``: the per-sequence score on the class's null."""

    def score(self, patterns: Tensor, probe: ProbeSet, null_patterns: Tensor | None = None) -> HeadScores:
        _check(patterns, probe)
        targets = self.targets_of(probe.tokens, probe.first_content)
        queries = targets.any(-1)
        scored = pattern_scores(patterns, targets, queries, probe.first_content)
        for evidence_row, pattern_row in zip(scored.evidence, example_pattern(patterns, probe), strict=True):
            for evidence, pattern in zip(evidence_row, pattern_row, strict=True):
                evidence.update(pattern)
        samples = mass_per_sequence(patterns, targets, queries)
        return HeadScores(
            scored.scores,
            scored.evidence,
            samples=samples,
            null=self.null_samples(patterns, probe, null_patterns),
        )


CONTROL_OFFSETS = (2, 3)


@register
class PreviousToken(TargetMassClassifier):
    """Previous-token heads: mean over positions i of A[i, i-1] on natural text.

    Threshold 0.4: the head puts more attention on the previous token than anywhere else
    combined except BOS, on average. Null: the larger of A[i, i-2] and A[i, i-3] on the same
    sequences, so a head that attends every recent token alike is not a previous-token head.
    """

    name = "previous_token"
    version = 2  # 2: the label also needs q < 0.01 against the control offsets
    summary = "attends from each token to the token before it"
    formula = "mean over queries i (i-1 not BOS) of A[i, i-1], on natural text"
    null = "the larger of the same mass on keys i-2 and i-3 (control offsets), per sequence"
    default_config = ClassifierConfig(threshold=0.4, probe=NATURAL)
    targets_of = staticmethod(previous_targets)

    def null_samples(self, patterns: Tensor, probe: ProbeSet, null_patterns: Tensor | None) -> Tensor:
        first = probe.first_content + max(CONTROL_OFFSETS)  # the same queries for every offset
        controls = []
        for offset in CONTROL_OFFSETS:
            targets = previous_targets(probe.tokens, probe.first_content, offset)
            queries = torch.zeros_like(probe.tokens, dtype=torch.bool)
            queries[:, first:] = True
            controls.append(mass_per_sequence(patterns, targets, queries))
        return torch.stack(controls).amax(0)


class RepeatMassClassifier(TargetMassClassifier):
    """A repeat class: its null is the same target positions read on [BOS] + r + r', where r'
    shares no token with r, so attending there is position, not content."""

    null_probe = True

    def null_samples(self, patterns: Tensor, probe: ProbeSet, null_patterns: Tensor | None) -> Tensor:
        if null_patterns is None or null_patterns.shape != patterns.shape:
            raise ValueError(f"{self.name} needs the patterns of its null probe, shaped like the probe's")
        targets = self.targets_of(probe.tokens, probe.first_content)
        return mass_per_sequence(null_patterns, targets, targets.any(-1))


@register
class DuplicateToken(RepeatMassClassifier):
    """Duplicate-token heads: attention mass on earlier occurrences of the current token, on
    [BOS] + r + r (r: 50 random tokens, batch 10), over the queries that have one.

    Threshold 0.3.
    """

    name = "duplicate_token"
    version = 2  # 2: the label also needs q < 0.01 against [BOS] + r + r'
    summary = "attends from a token to its earlier occurrences"
    formula = "mean over second-repeat queries i of sum_j A[i, j] for earlier j with t_j = t_i, on [BOS]+r+r"
    null = "the same positions (i - L) on [BOS] + r + r', r' sharing no token with r, per sequence"
    default_config = ClassifierConfig(threshold=0.3, probe=REPEATED)
    targets_of = staticmethod(duplicate_targets)


SUPPRESSES = 0.5  # negative copy score from which a head suppresses the token it attends


@dataclass(frozen=True)
class AttendedCopy:
    """What each head's OV circuit does to the token an induction head attends (the token after
    the earlier occurrence, i.e. the right next token): ``copy [layer, head]`` is the share of
    those tokens it ranks first among the sequence's r tokens, ``negative [layer, head]`` the
    share it ranks last (``survey.engine.ov.ov_candidate_ranks``)."""

    copy: Tensor
    negative: Tensor


class AttendedTokenClassifier(RepeatMassClassifier):
    """The induction attention score, whose label also needs a gate on what the head's OV
    circuit does to the token it attends (``copy`` from :class:`AttendedCopy`)."""

    unit = "attended_copy"
    null = "the same positions (i - L + 1) on [BOS] + r + r', r' sharing no token with r, per sequence"
    default_config = ClassifierConfig(threshold=0.4, probe=REPEATED)
    targets_of = staticmethod(induction_targets)

    @abstractmethod
    def copy_gate(self, copy: AttendedCopy) -> Tensor:
        """``[layer, head]`` bool: the OV condition the label needs."""

    def score(
        self, patterns: Tensor, probe: ProbeSet, null_patterns: Tensor | None = None,
        copy: AttendedCopy | None = None,
    ) -> HeadScores:  # fmt: skip
        scored = super().score(patterns, probe, null_patterns)
        if (
            copy is None
            or copy.copy.shape != scored.scores.shape
            or copy.negative.shape != scored.scores.shape
        ):
            raise ValueError(f"{self.name} needs the OV copy scores of the attended token, one per head")
        for layer, row in enumerate(scored.evidence):
            for head, evidence in enumerate(row):
                evidence["copy_score"] = round(float(copy.copy[layer, head]), 6)
                evidence["negative_copy_score"] = round(float(copy.negative[layer, head]), 6)
        return replace(scored, gate=self.copy_gate(copy))


@register
class Induction(AttendedTokenClassifier):
    """Induction heads: attention mass on the token after each earlier occurrence of the
    current token, from a head that does not suppress that token. On [BOS] + r + r the mass is
    Neel Nanda's score, the mean of A[i, i-(L-1)] over the second repeat (here exactly its L
    queries), as in the induction mosaic.

    Threshold 0.4. Gate: the head's OV circuit must not suppress the attended token (negative
    copy score below 0.5, read among the sequence's r tokens), so an anti-induction head that
    attends the same token and writes against it is not labelled induction. The gate asks for
    no suppression rather than for copying: strong induction heads of SmolLM2 (17.3-17.5) and
    Gemma 3 (5.1, 5.2) rank the attended token first for under 35% of tokens, but last for
    under 5%. Validation mean-ablates the labelled heads (see ``survey.engine.validation``).
    """

    name = "induction"
    version = 3  # 3: the label needs a negative OV copy score of the attended token below 0.5
    unit = "induction"
    validated = True
    gates = {"max_negative_copy": SUPPRESSES}
    summary = (
        "attends to the token after an earlier occurrence of the current token, and does not suppress it"
    )
    formula = (
        "mean over second-repeat queries i of A[i, i-(L-1)], on [BOS]+r+r with L=50; the label needs the "
        "negative OV copy score of the attended token (it ranks last among r in W_U·OV of its residual "
        "after block 0) below 0.5"
    )

    def copy_gate(self, copy: AttendedCopy) -> Tensor:
        return copy.negative < SUPPRESSES


@register
class AttentionSink(PatternClassifier):
    """Attention-sink heads (Gu et al.): alpha_1 = mean over queries t of A[t, first token],
    on natural text. Query 0 is left out, since it can only attend to itself.

    Threshold 0.3, as in the design. Null: the attention on the second token (key 1) from
    queries t >= 2, so a head that spreads attention evenly over the first tokens is no sink.
    """

    name = "attention_sink"
    version = 2  # 2: the label also needs q < 0.01 against the attention on key 1
    summary = "parks attention on the first token"
    formula = "alpha_1 = mean over queries t >= 1 of A[t, 0], on natural text"
    null = "the same mass on key 1 from queries t >= 2, per sequence"
    default_config = ClassifierConfig(threshold=0.3, probe=NATURAL)

    def score(self, patterns: Tensor, probe: ProbeSet, null_patterns: Tensor | None = None) -> HeadScores:
        _check(patterns, probe)
        targets = first_token_targets(probe.tokens)
        queries = torch.ones_like(probe.tokens, dtype=torch.bool)
        queries[:, 0] = False
        scored = pattern_scores(patterns, targets, queries, first_content=0)
        control = torch.zeros_like(targets)
        control[:, :, 1] = True
        control_queries = queries.clone()
        control_queries[:, 1] = False
        null = mass_per_sequence(patterns, control, control_queries)
        return HeadScores(
            scored.scores, scored.evidence, samples=mass_per_sequence(patterns, targets, queries), null=null
        )


@register
class AntiInduction(AttendedTokenClassifier):
    """Anti-induction heads: the induction attention (mass on the token after each earlier
    occurrence of the current token), from a head whose OV circuit suppresses that token, so it
    lowers the logit of the token the repeat predicts.

    Threshold 0.4, the induction threshold. Gate: negative OV copy score of the attended token
    at least 0.5 (it ranks last among the sequence's r tokens for at least half of them). Not
    validated: no ablation check is defined for it.
    """

    name = "anti_induction"
    version = 1
    gates = {"min_negative_copy": SUPPRESSES}
    summary = "attends to the token after an earlier occurrence of the current token and suppresses it"
    formula = (
        "mean over second-repeat queries i of A[i, i-(L-1)], on [BOS]+r+r with L=50; the label needs the "
        "negative OV copy score of the attended token (it ranks last among r in W_U·OV of its residual "
        "after block 0) of at least 0.5"
    )

    def copy_gate(self, copy: AttendedCopy) -> Tensor:
        return copy.negative >= SUPPRESSES
