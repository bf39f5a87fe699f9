"""The IOI suite for one model: measure on the IOI prompts, score the IOI classifiers, validate.

1. Every group's clean prompts run once with every component kept at END: logit difference, each
   head's DLA and its attention END→IO/S1/S2. The ABC prompts give the heads' mean outputs and
   the name movers' null. The names' residuals after block 0, read through every head's OV,
   give the copy scores (ranks among the candidate names).
2. The name movers (the top labelled, at most ``max_k``) are mean-ablated: the DLA and attention
   of every other head, DLA read through the clean run's final-norm scale, give the backups.
3. Path patching from every earlier head into the name movers' queries gives the S-inhibition
   effect on LD, on every prompt.
4. Validation: ablating the name movers lowers LD more than ablating as many random heads;
   ablating the backups on top of the name movers lowers it further than as many random heads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from classifiers.base import HeadScores
from classifiers.ioi import (
    NULL_DRAWS,
    BackupNameMover,
    IOIClassifier,
    IOIMeasures,
    IOISpec,
    NameMover,
    SInhibition,
)
from classifiers.ioi_prompts import IOIPrompts, generate_ioi
from classifiers.validation import LOSS_FLOOR, AblationConfig, AblationResult
from survey.adapters import ArchitectureAdapter
from survey.engine.ablation import Head, condition_masks
from survey.engine.capture import CaptureSpec, capture
from survey.engine.ioi_passes import (
    GroupRun,
    ablated_dla,
    clean_groups,
    lds_with,
    metered,
    name_copy,
    s_inhibition,
)
from survey.engine.readouts import (
    condition_logit_diffs,
)
from survey.engine.validation import Check, labelled_heads, random_head_sets, top_labelled
from survey.loading.loaders import LoadedModel
from survey.units.base import PlannedUnit, Progress, Shared, Skip
from survey.units.heads import HEAD_UNITS, HeadResult, HeadUnit

LD_DROP = "logit_diff_drop"


@dataclass(frozen=True)
class IOIOutcome:
    """Per classifier name: its scores and validation; plus the measures, the forward passes run
    over every clean prompt (path patching aside) and the time taken."""

    measures: IOIMeasures
    scores: dict[str, tuple[HeadScores, AblationResult | None]]
    forward_passes: int
    seconds: float


def run_ioi(
    adapter: ArchitectureAdapter, prompts: IOIPrompts, classifiers: list[IOIClassifier], bos_id: int | None,
    ablation: AblationConfig, progress: Callable[[str], None] = lambda _line: None,
) -> IOIOutcome:  # fmt: skip
    """Measure, score every classifier in ``classifiers`` and validate name movers and backups;
    ``progress`` gets a line as each stage starts."""
    started = time.perf_counter()
    progress(f"IOI: {prompts.n_prompts} prompts in {len(prompts.groups)} groups: clean run, DLA, copy scores")
    by_name = {c.name: c for c in classifiers}
    name_mover = by_name.get(NameMover.name, NameMover())
    groups = clean_groups(adapter, prompts)
    passes = 3  # clean components, ABC components and means, the names' residuals after block 0
    lds = torch.cat([g.ld for g in groups])
    ranks, examples, top_ids = name_copy(adapter, prompts)
    dla_prompts = torch.cat([g.dla for g in groups])

    def joined(part: Callable[[GroupRun], Tensor]) -> Tensor:
        return torch.cat([part(g) for g in groups])

    base = IOIMeasures(
        float(lds.mean()), float((lds > 0).float().mean()), dla_prompts, joined(lambda g: g.null_dla),
        joined(lambda g: g.absent_dla), joined(lambda g: g.components.attention), ranks.copy(),
        ranks.negative_copy(), [], ov_inputs=examples, ov_top_ids=top_ids,
    )  # fmt: skip
    nm_scores = name_mover.score(base)
    nm_labels = nm_scores.labels(name_mover.threshold)
    movers = top_labelled(nm_scores.scores, nm_labels, ablation.max_k)
    measures = replace(base, name_movers=movers)
    ld_movers_ablated = None
    progress(f"IOI: LD {base.ld:.2f}; name movers {_heads(movers)}")
    if movers:
        d = adapter.dims
        null_sets = random_head_sets(
            d.n_layers, d.n_heads, labelled_heads(nm_labels), len(movers), NULL_DRAWS, ablation.seed + 1
        )
        (dla_ablated, ld_ablated, attention_ablated), *nulls = ablated_dla(
            adapter, groups, [movers, *null_sets], progress
        )
        ld_movers_ablated = float(ld_ablated.mean())
        null = [dla - dla_prompts for dla, _, _ in nulls]
        passes += 1 + len(null_sets)
        drop = None
        if SInhibition.name in by_name:
            drop = s_inhibition(adapter, groups, movers, progress)
        measures = replace(
            measures, dla_ablated_prompts=dla_ablated, attention_ablated=attention_ablated,
            null_compensation_prompts=torch.cat(null), ld_drop_prompts=drop,
        )  # fmt: skip
    results: dict[str, tuple[HeadScores, AblationResult | None]] = {}
    for classifier in classifiers:
        scores = nm_scores if classifier.name == NameMover.name else classifier.score(measures)
        results[classifier.name] = (scores, None)
    progress("IOI: validating by mean-ablation")
    if NameMover.name in results:
        validation, count = _validate_name_movers(
            adapter, groups, measures, labelled_heads(nm_labels), ld_movers_ablated, ablation, progress
        )
        results[NameMover.name] = (nm_scores, validation)
        passes += count
    if BackupNameMover.name in results and movers and ld_movers_ablated is not None:
        backup_scores = results[BackupNameMover.name][0]
        backup_labels = backup_scores.labels(by_name[BackupNameMover.name].threshold)
        backups = top_labelled(backup_scores.scores, backup_labels, ablation.max_k)
        validation, count = _validate_backups(
            adapter,
            groups,
            measures,
            backups,
            labelled_heads(backup_labels),
            ld_movers_ablated,
            ablation,
            progress,
        )
        results[BackupNameMover.name] = (backup_scores, validation)
        passes += count
    return IOIOutcome(measures, results, passes, time.perf_counter() - started)


def _heads(heads: list[Head]) -> str:
    return ", ".join(f"{layer}.{head}" for layer, head in heads) or "none"


def _validate_name_movers(
    adapter: ArchitectureAdapter, groups: list[GroupRun], m: IOIMeasures, labelled: list[Head],
    ld_ablated: float | None, config: AblationConfig, progress: Progress,
) -> tuple[AblationResult, int]:  # fmt: skip
    """Ablating the name movers lowers LD more than ablating as many random heads."""
    started = time.perf_counter()
    check = Check("mean_ablation_top_k_vs_random", LD_DROP, m.ld, config)
    movers = m.name_movers
    details: dict[str, object] = {"ld_ablated": ld_ablated, "ld_positive": m.ld_positive}
    if not movers or ld_ablated is None:
        return check.result([], [], [], {}, 0, started, details), 0
    d = adapter.dims
    draws = random_head_sets(d.n_layers, d.n_heads, labelled, len(movers), config.draws, config.seed)
    lds = lds_with(adapter, groups, [[head] for head in movers] + draws, progress)
    per_head = {head: m.ld - ld for head, ld in zip(movers, lds[: len(movers)], strict=True)}
    effects = [m.ld - ld_ablated] + [m.ld - ld for ld in lds[len(movers) :]]
    passes = len(per_head) + len(draws)
    return check.result(movers, effects, draws, per_head, passes + 1, started, details), passes


def _held_lds(
    adapter: ArchitectureAdapter,
    groups: list[GroupRun],
    ablated: list[Head],
    holds: list[list[Head]],
    progress: Progress,
) -> list[float]:
    """Mean LD with ``ablated`` mean-ablated and each set in ``holds`` held at its clean-run z
    (so it cannot respond to the ablation), one value per set."""
    d = adapter.dims
    masks = condition_masks(holds, d.n_layers, d.n_heads)
    lds = []
    for g in metered(groups, progress, f"LD with {len(holds)} sets of heads held"):
        q = g.group
        z = capture(adapter, q.clean, CaptureSpec.of("z"), batch_size=len(q.clean)).stacked("z")
        lds.append(condition_logit_diffs(adapter, q.clean, q.io_ids, q.s_ids, masks, z, ablated, g.means))
    return torch.cat(lds, 1).mean(1).tolist()


def _validate_backups(
    adapter: ArchitectureAdapter, groups: list[GroupRun], m: IOIMeasures, backups: list[Head],
    labelled: list[Head], ld_movers_ablated: float, config: AblationConfig, progress: Progress,
) -> tuple[AblationResult, int]:  # fmt: skip
    """How much of the LD drop the backups recover: with the name movers mean-ablated, holding
    the backups at their clean-run outputs (so they cannot respond) lowers LD by the amount they
    recovered. Compared with holding as many random heads; the direct-effect view (their DLA
    rise over the name movers' lost DLA) goes in the details."""
    started = time.perf_counter()
    assert m.dla_ablated is not None
    movers = m.name_movers
    lost = sum(float(m.dla[h] - m.dla_ablated[h]) for h in movers)
    compensation = sum(float(m.dla_ablated[h] - m.dla[h]) for h in backups)
    details: dict[str, object] = {
        "name_movers": [list(h) for h in movers], "ld_clean": m.ld, "name_mover_direct_loss": lost,
        "backup_compensation": compensation,
        "compensation_share": compensation / lost if lost > LOSS_FLOOR else None,
    }  # fmt: skip
    check = Check("hold_backups_at_clean_with_name_movers_ablated", "ld_recovered", ld_movers_ablated, config)
    if not backups:
        return check.result([], [], [], {}, 0, started, details), 0
    d = adapter.dims
    draws = random_head_sets(
        d.n_layers, d.n_heads, movers + labelled, len(backups), config.draws, config.seed
    )
    held = _held_lds(adapter, groups, movers, [backups, *draws], progress)
    recovered = [ld_movers_ablated - ld for ld in held]
    drop_without = m.ld - held[0]
    details["recovered_share"] = recovered[0] / drop_without if drop_without > LOSS_FLOOR else None
    details["ld_backups_held"] = held[0]
    passes = 2 + len(draws)
    return check.result(backups, recovered, draws, {}, passes, started, details), passes


@HEAD_UNITS.register("ioi")
class IOIUnit(HeadUnit[IOIPrompts]):
    """An IOI classifier. The IOI classes pending for a model share one run of the suite."""

    cost = 6

    classifier: IOIClassifier

    def dataset_spec(self) -> IOISpec:
        return self.classifier.config.prompts

    def make_dataset(self, loaded: LoadedModel, spec: IOISpec) -> IOIPrompts | Skip:
        try:
            return generate_ioi(loaded.tokenizer, loaded.bos.token_id, spec.per_group, spec.seed)
        except ValueError as exc:  # too few single-token names for this tokenizer
            return Skip(str(exc))

    def compute(
        self,
        loaded: LoadedModel,
        planned: PlannedUnit[IOIPrompts, HeadResult],
        shared: Shared,
        progress: Progress,
    ) -> HeadResult:
        prompts = planned.dataset
        together = [
            p.unit.classifier for p in shared.pending if isinstance(p.unit, IOIUnit) and p.dataset is prompts
        ]
        outcome = shared.get(
            ("ioi", prompts.hash),
            lambda: run_ioi(
                loaded.adapter, prompts, together, loaded.bos.token_id, self.run_config.ablation, progress
            ),
        )
        return HeadResult(*outcome.scores[self.name])
