"""The v1 pattern classifiers: previous-token, duplicate-token, induction and attention-sink.

Each score is the mean, over the scored queries, of the attention mass a head puts on its
target keys. It is raw mass: attention that goes to BOS counts as a miss, not renormalised
away, so a head that parks 99% on BOS and 1% on its target scores 0.01, not 1. BOS is never a
target or a scored query except for the sink, whose target is the first token.
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor

from classifiers.base import ClassifierConfig, HeadScores, PatternClassifier
from classifiers.patterns import (
    duplicate_targets,
    example_pattern,
    first_token_targets,
    induction_targets,
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
    tokens), averaged over the queries that have at least one target."""

    @staticmethod
    @abstractmethod
    def targets_of(tokens: Tensor, first_content: int) -> Tensor:
        """``[batch, query, key]`` bool: the keys each query should attend to."""

    def score(self, patterns: Tensor, probe: ProbeSet) -> HeadScores:
        _check(patterns, probe)
        targets = self.targets_of(probe.tokens, probe.first_content)
        scored = pattern_scores(patterns, targets, targets.any(-1), probe.first_content)
        for evidence_row, pattern_row in zip(scored.evidence, example_pattern(patterns, probe), strict=True):
            for evidence, pattern in zip(evidence_row, pattern_row, strict=True):
                evidence.update(pattern)
        return scored


@register
class PreviousToken(TargetMassClassifier):
    """Previous-token heads: mean over positions i of A[i, i-1] on natural text.

    Threshold 0.4: the head puts more attention on the previous token than anywhere else
    combined except BOS, on average.
    """

    name = "previous_token"
    version = 1
    summary = "attends from each token to the token before it"
    formula = "mean over queries i (i-1 not BOS) of A[i, i-1], on natural text"
    default_config = ClassifierConfig(threshold=0.4, probe=NATURAL)
    targets_of = staticmethod(previous_targets)


@register
class DuplicateToken(TargetMassClassifier):
    """Duplicate-token heads: attention mass on earlier occurrences of the current token, on
    [BOS] + r + r (r: 50 random tokens, batch 10), over the queries that have one.

    Threshold 0.3.
    """

    name = "duplicate_token"
    version = 1
    summary = "attends from a token to its earlier occurrences"
    formula = "mean over second-repeat queries i of sum_j A[i, j] for earlier j with t_j = t_i, on [BOS]+r+r"
    default_config = ClassifierConfig(threshold=0.3, probe=REPEATED)
    targets_of = staticmethod(duplicate_targets)


@register
class Induction(TargetMassClassifier):
    """Induction heads: attention mass on the token after each earlier occurrence of the
    current token. On [BOS] + r + r this is Neel Nanda's score, the mean of A[i, i-(L-1)] over
    the second repeat (here exactly its L queries), as in the induction mosaic.

    Threshold 0.4. Validation mean-ablates the labelled heads (see ``survey.engine.validation``).
    """

    name = "induction"
    version = 1
    unit = "induction"
    validated = True
    summary = "attends to the token after an earlier occurrence of the current token"
    formula = "mean over second-repeat queries i of A[i, i-(L-1)], on [BOS]+r+r with L=50"
    default_config = ClassifierConfig(threshold=0.4, probe=REPEATED)
    targets_of = staticmethod(induction_targets)


@register
class AttentionSink(PatternClassifier):
    """Attention-sink heads (Gu et al.): alpha_1 = mean over queries t of A[t, first token],
    on natural text. Query 0 is left out, since it can only attend to itself.

    Threshold 0.3, as in the design.
    """

    name = "attention_sink"
    version = 1
    summary = "parks attention on the first token"
    formula = "alpha_1 = mean over queries t >= 1 of A[t, 0], on natural text"
    default_config = ClassifierConfig(threshold=0.3, probe=NATURAL)

    def score(self, patterns: Tensor, probe: ProbeSet) -> HeadScores:
        _check(patterns, probe)
        targets = first_token_targets(probe.tokens)
        queries = torch.ones_like(probe.tokens, dtype=torch.bool)
        queries[:, 0] = False
        return pattern_scores(patterns, targets, queries, first_content=0)
