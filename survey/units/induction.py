"""Induction and the classes gated by the OV copy of the attended token (anti-induction).

The copy scores are read once per model on the class's own probe (a property of the weights) and
serve every seed and every class that reads them. Induction is validated by mean-ablating its top
heads: the metric is the loss on the second repeat of [BOS] + r + r (predicting tokens 2..L of the
repeat, the ones an induction head can predict), and an ablation's effect is the rise in it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import Tensor

from classifiers.attention import AttendedCopy, AttendedTokenClassifier
from classifiers.base import HeadScores
from classifiers.probes import ProbeSet
from classifiers.validation import AblationConfig, AblationResult
from db.common.progress import Meter
from survey.adapters import ArchitectureAdapter
from survey.engine.ablation import ablated_losses, head_means, next_token_loss
from survey.engine.ov import ov_candidate_ranks, resid_after_block0
from survey.engine.validation import Check, labelled_heads, random_head_sets, repeat_span, top_labelled
from survey.loading.loaders import LoadedModel
from survey.units.base import Progress, Shared
from survey.units.heads import HEAD_UNITS, PatternUnit, shared_patterns


def shared_attended_copy(loaded: LoadedModel, probe: ProbeSet, shared: Shared) -> AttendedCopy:
    """The OV copy scores of the tokens an induction head attends on ``probe``, read once per model
    and probe (:func:`attended_copy`)."""
    copy: AttendedCopy = shared.get(
        ("attended_copy", probe.hash), lambda: attended_copy(loaded.adapter, probe)
    )
    return copy


def attended_copy(adapter: ArchitectureAdapter, probe: ProbeSet) -> AttendedCopy:
    """Each head's OV copy and negative copy score of the tokens an induction head attends:
    the residual after block 0 at first-repeat positions 1..L-1 of ``probe`` (keys of the
    induction stripe), ranked among that sequence's r tokens (one forward pass)."""
    length, first = probe.spec.length, probe.first_content
    batch = probe.tokens.shape[0]
    resid = resid_after_block0(adapter, probe.tokens)[:, first + 1 : first + length]  # [batch, L-1, d_model]
    candidates = probe.tokens[:, first : first + length].repeat_interleave(length - 1, 0)  # [row, L]
    own = torch.arange(1, length).repeat(batch)  # [row]
    rows = resid.reshape(-1, resid.shape[-1])
    ranks = ov_candidate_ranks(adapter, rows, candidates.to(rows.device), own.to(rows.device))
    return AttendedCopy(ranks.copy().cpu(), ranks.negative_copy().cpu())


@HEAD_UNITS.register("attended_copy")
class AttendedCopyUnit(PatternUnit):
    """A class gated by what its heads' OV circuits do to the attended token: the copy scores
    are read once per model on the class's own probe (they are a property of the weights) and
    serve every seed and every class that reads them."""

    classifier: AttendedTokenClassifier

    def scored(self, loaded: LoadedModel, probe: ProbeSet, shared: Shared) -> HeadScores:
        copy = shared_attended_copy(loaded, self.shared_probe(loaded, self.dataset_spec(), shared), shared)
        patterns = shared_patterns(loaded, probe, shared)
        return self.classifier.score(patterns, probe, self.null_patterns(loaded, probe, shared), copy)


@HEAD_UNITS.register("induction")
class InductionUnit(AttendedCopyUnit):
    """Induction: validated by mean-ablating its top heads on the second repeat."""

    cost = 6

    def validate(
        self, loaded: LoadedModel, probe: ProbeSet, scores: HeadScores, progress: Progress
    ) -> AblationResult:
        labels = scores.labels(self.classifier.threshold)
        return validate_induction(
            loaded.adapter, probe, scores.scores, labels, self.run_config.ablation, progress
        )


def validate_induction(
    adapter: ArchitectureAdapter, probe: ProbeSet, scores: Tensor, labels: Tensor, config: AblationConfig,
    progress: Callable[[str], None] = lambda _line: None,
) -> AblationResult:  # fmt: skip
    """Mean-ablate the top labelled induction heads, each alone and together, then random sets."""
    started = time.perf_counter()
    start, stop = repeat_span(probe)
    tokens = probe.tokens
    top = top_labelled(scores, labels, config.max_k)
    labelled = labelled_heads(labels)
    if not top:
        baseline = next_token_loss(adapter, tokens, start, stop, tokens.shape[0])
        check = Check("mean_ablation_top_k_vs_random", "second_repeat_loss", baseline, config)
        return check.result([], [], [], {}, 1, started, {})
    means = head_means(adapter, tokens)
    draws = random_head_sets(
        adapter.dims.n_layers, adapter.dims.n_heads, labelled, len(top), config.draws, config.seed
    )
    conditions = [top, *([head] for head in top), *draws]
    meter = Meter(progress, "induction: validation", len(conditions), "ablations")
    baseline, losses = ablated_losses(adapter, tokens, start, stop, means, conditions, meter.advance)
    check = Check("mean_ablation_top_k_vs_random", "second_repeat_loss", baseline, config)
    effects = [loss - baseline for loss in losses]
    per_head = dict(zip(top, effects[1 : 1 + len(top)], strict=True))
    passes = 2 + len(conditions)
    return check.result(top, [effects[0], *effects[1 + len(top) :]], draws, per_head, passes, started, {})
