"""The IOI suite for one model: measure on the IOI prompts, score the IOI classifiers, validate.

1. Every group's clean prompts run once with every component kept at END: logit difference, each
   head's DLA and its attention END→IO/S1/S2. The ABC prompts give the heads' mean outputs.
2. The name movers (the top labelled, at most ``max_k``) are mean-ablated: the DLA of every
   other head, read through the clean run's final-norm scale, gives each head's compensation.
3. Path patching from every earlier head into the name movers' queries gives the S-inhibition
   effect, on the first ``patch_per_group`` prompts of each group.
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
from classifiers.ioi_prompts import IOIGroup, IOIPrompts, generate_ioi
from classifiers.validation import LOSS_FLOOR, AblationConfig, AblationResult
from survey.adapters import ArchitectureAdapter
from survey.engine.ablation import Head, head_means, heads_replaced, mean_ablated
from survey.engine.capture import CaptureSpec, capture
from survey.engine.ov import ov_copy_scores
from survey.engine.patching import path_patched_attention
from survey.engine.readouts import (
    EndComponents,
    FinalNormView,
    ablated_logit_diff,
    direct_logit_attribution,
    end_components,
    logit_diff,
)
from survey.engine.validation import Check, labelled_heads, random_head_sets, top_labelled
from survey.loading.loaders import LoadedModel
from survey.units.base import PlannedUnit, Progress, Shared, Skip
from survey.units.heads import HeadResult, HeadUnit

LD_DROP = "logit_diff_drop"


@dataclass(frozen=True)
class _Group:
    """One prompt group's clean run: its components, DLA, final-norm scale, LD and ABC means;
    and the null DLA: on the ABC prompts, toward the name at IO over the name at S1."""

    group: IOIGroup
    components: EndComponents
    dla: Tensor  # [prompt, layer, head]
    sigma: Tensor  # [prompt]
    ld: Tensor  # [prompt]
    means: Tensor  # [layer, pos, head, d_head], over the ABC prompts
    null_dla: Tensor  # [prompt, layer, head]


@dataclass(frozen=True)
class IOIOutcome:
    """Per classifier name: its scores and validation; plus the measures, the forward passes run
    over every clean prompt (path patching aside) and the time taken."""

    measures: IOIMeasures
    scores: dict[str, tuple[HeadScores, AblationResult | None]]
    forward_passes: int
    seconds: float


def _clean_groups(adapter: ArchitectureAdapter, prompts: IOIPrompts) -> list[_Group]:
    norm = FinalNormView.of(adapter)
    groups = []
    for g in prompts.groups:
        components = end_components(adapter, g.clean, g.positions)
        dla = direct_logit_attribution(adapter, components, g.io_ids, g.s_ids)["heads"]
        ld = logit_diff(components.logits, g.io_ids, g.s_ids)
        abc = end_components(adapter, g.corrupted, g.positions)
        abc_io, abc_s = g.corrupted[:, g.positions["io"]], g.corrupted[:, g.positions["s1"]]
        null_dla = direct_logit_attribution(adapter, abc, abc_io, abc_s)["heads"]
        groups.append(
            _Group(
                g,
                components,
                dla,
                norm.sigma(components.resid),
                ld,
                head_means(adapter, g.corrupted),
                null_dla,
            )
        )
    return groups


def _ablated_dla(
    adapter: ArchitectureAdapter, groups: list[_Group], heads: list[Head]
) -> tuple[Tensor, Tensor]:
    """DLA ``[prompt, layer, head]`` (clean-run scale) and LD ``[prompt]`` with ``heads`` mean-ablated."""
    dla, ld = [], []
    for g in groups:
        with mean_ablated(adapter, heads, g.means):
            components = end_components(adapter, g.group.clean, g.group.positions)
        io, s = g.group.io_ids, g.group.s_ids
        dla.append(direct_logit_attribution(adapter, components, io, s, sigma=g.sigma)["heads"])
        ld.append(logit_diff(components.logits, io, s))
    return torch.cat(dla), torch.cat(ld)


def _ld_with(adapter: ArchitectureAdapter, groups: list[_Group], heads: list[Head]) -> float:
    """Mean LD over every prompt with ``heads`` mean-ablated."""
    lds = [
        ablated_logit_diff(adapter, g.group.clean, g.group.io_ids, g.group.s_ids, heads, g.means)
        for g in groups
    ]
    return float(torch.cat(lds).mean())


def _s_inhibition(
    adapter: ArchitectureAdapter, groups: list[_Group], receivers: list[Head], per_group: int
) -> tuple[Tensor, float]:
    """``[prompt, layer, head]``: the drop of the receivers' mean attention END→IO on each patched
    prompt, and their clean attention."""
    d = adapter.dims
    last = max(layer for layer, _ in receivers)
    senders = [(layer, h) for layer in range(last) for h in range(d.n_heads)]
    drops, clean_io = [], []
    for g in groups:
        clean, corrupted = g.group.clean[:per_group], g.group.corrupted[:per_group]
        patched = path_patched_attention(adapter, clean, corrupted, g.group.positions, receivers, senders)
        clean_attention = torch.stack(
            [g.components.attention[:per_group, layer, head, 0] for layer, head in receivers], 1
        )
        drops.append(clean_attention[None] - patched)  # [sender, prompt, receiver]
        clean_io.append(clean_attention)
    per_prompt = torch.cat(drops, 1).mean(2)  # [sender, prompt]
    drop = torch.zeros(per_prompt.shape[1], d.n_layers, d.n_heads)
    for index, (layer, head) in enumerate(senders):
        drop[:, layer, head] = per_prompt[index]
    return drop, float(torch.cat(clean_io).mean())


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
    spec = classifiers[0].config.prompts if classifiers else IOISpec()
    groups = _clean_groups(adapter, prompts)
    passes = 2  # clean components, ABC means
    lds = torch.cat([g.ld for g in groups])
    attention = torch.cat([g.components.attention for g in groups]).mean(0)
    names = torch.tensor(prompts.name_ids)
    ov = ov_copy_scores(adapter, names, bos_id)
    dla_prompts = torch.cat([g.dla for g in groups])
    null_dla = torch.cat([g.null_dla for g in groups])
    base = IOIMeasures(
        float(lds.mean()), float((lds > 0).float().mean()), dla_prompts, null_dla, attention, ov.copy,
        ov.negative, [], ov_inputs=names[: ov.top_ids.shape[2]].tolist(), ov_top_ids=ov.top_ids,
    )  # fmt: skip
    nm_scores = name_mover.score(base)
    nm_labels = nm_scores.labels(name_mover.threshold)
    movers = top_labelled(nm_scores.scores, nm_labels, ablation.max_k)
    measures = replace(base, name_movers=movers)
    ld_movers_ablated = None
    progress(f"IOI: LD {base.ld:.2f}; name movers {_heads(movers)}")
    if movers:
        dla_ablated, ld_ablated = _ablated_dla(adapter, groups, movers)
        ld_movers_ablated = float(ld_ablated.mean())
        d = adapter.dims
        null_sets = random_head_sets(
            d.n_layers, d.n_heads, labelled_heads(nm_labels), len(movers), NULL_DRAWS, ablation.seed + 1
        )
        null = [_ablated_dla(adapter, groups, heads)[0] - dla_prompts for heads in null_sets]
        passes += 1 + len(null_sets)
        drop, receiver_io = (None, None)
        if SInhibition.name in by_name:
            progress("IOI: path patching into the name movers' queries")
            drop, receiver_io = _s_inhibition(adapter, groups, movers, spec.patch_per_group)
        measures = replace(
            measures, dla_ablated_prompts=dla_ablated, null_compensation_prompts=torch.cat(null),
            drop_prompts=drop, receiver_attention_io=receiver_io,
        )  # fmt: skip
    results: dict[str, tuple[HeadScores, AblationResult | None]] = {}
    for classifier in classifiers:
        scores = nm_scores if classifier.name == NameMover.name else classifier.score(measures)
        results[classifier.name] = (scores, None)
    progress("IOI: validating by mean-ablation")
    if NameMover.name in results:
        validation, count = _validate_name_movers(
            adapter, groups, measures, labelled_heads(nm_labels), ld_movers_ablated, ablation
        )
        results[NameMover.name] = (nm_scores, validation)
        passes += count
    if BackupNameMover.name in results and movers and ld_movers_ablated is not None:
        backup_scores = results[BackupNameMover.name][0]
        backup_labels = backup_scores.labels(by_name[BackupNameMover.name].threshold)
        backups = top_labelled(backup_scores.scores, backup_labels, ablation.max_k)
        validation, count = _validate_backups(
            adapter, groups, measures, backups, labelled_heads(backup_labels), ld_movers_ablated, ablation
        )
        results[BackupNameMover.name] = (backup_scores, validation)
        passes += count
    return IOIOutcome(measures, results, passes, time.perf_counter() - started)


def _heads(heads: list[Head]) -> str:
    return ", ".join(f"{layer}.{head}" for layer, head in heads) or "none"


def _validate_name_movers(
    adapter: ArchitectureAdapter, groups: list[_Group], m: IOIMeasures, labelled: list[Head],
    ld_ablated: float | None, config: AblationConfig,
) -> tuple[AblationResult, int]:  # fmt: skip
    """Ablating the name movers lowers LD more than ablating as many random heads."""
    started = time.perf_counter()
    check = Check("mean_ablation_top_k_vs_random", LD_DROP, m.ld, config)
    movers = m.name_movers
    details: dict[str, object] = {"ld_ablated": ld_ablated, "ld_positive": m.ld_positive}
    if not movers or ld_ablated is None:
        return check.result([], [], [], {}, 0, started, details), 0
    per_head = {head: m.ld - _ld_with(adapter, groups, [head]) for head in movers}
    d = adapter.dims
    draws = random_head_sets(d.n_layers, d.n_heads, labelled, len(movers), config.draws, config.seed)
    effects = [m.ld - ld_ablated] + [m.ld - _ld_with(adapter, groups, heads) for heads in draws]
    passes = len(per_head) + len(draws)
    return check.result(movers, effects, draws, per_head, passes + 1, started, details), passes


def _held_lds(
    adapter: ArchitectureAdapter, groups: list[_Group], ablated: list[Head], holds: list[list[Head]]
) -> list[float]:
    """Mean LD with ``ablated`` mean-ablated and each set in ``holds`` held at its clean-run z
    (so it cannot respond to the ablation), one value per set."""
    totals = [0.0] * len(holds)
    count = 0
    for g in groups:
        z = capture(adapter, g.group.clean, CaptureSpec.of("z"), batch_size=len(g.group.clean)).stacked("z")
        io, s = g.group.io_ids, g.group.s_ids
        for index, hold in enumerate(holds):
            with heads_replaced(adapter, hold, z):
                totals[index] += float(
                    ablated_logit_diff(adapter, g.group.clean, io, s, ablated, g.means).sum()
                )
        count += len(io)
    return [total / count for total in totals]


def _validate_backups(
    adapter: ArchitectureAdapter, groups: list[_Group], m: IOIMeasures, backups: list[Head],
    labelled: list[Head], ld_movers_ablated: float, config: AblationConfig,
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
    held = _held_lds(adapter, groups, movers, [backups, *draws])
    recovered = [ld_movers_ablated - ld for ld in held]
    drop_without = m.ld - held[0]
    details["recovered_share"] = recovered[0] / drop_without if drop_without > LOSS_FLOOR else None
    details["ld_backups_held"] = held[0]
    passes = 2 + len(draws)
    return check.result(backups, recovered, draws, {}, passes, started, details), passes


class IOIUnit(HeadUnit):
    """An IOI classifier. The IOI classes pending for a model share one run of the suite."""

    classifier: IOIClassifier

    def dataset_spec(self) -> IOISpec:
        return self.classifier.config.prompts

    def make_dataset(self, loaded: LoadedModel, spec: IOISpec) -> IOIPrompts | Skip:
        try:
            return generate_ioi(loaded.tokenizer, loaded.bos.token_id, spec.per_group, spec.seed)
        except ValueError as exc:  # too few single-token names for this tokenizer
            return Skip(str(exc))

    def compute(
        self, loaded: LoadedModel, planned: PlannedUnit, shared: Shared, progress: Progress
    ) -> HeadResult:
        prompts = planned.dataset
        assert isinstance(prompts, IOIPrompts)
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
