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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from classifiers.base import HeadScores
from classifiers.ioi import (
    ABSENT_SEED,
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
from db.common.progress import Meter
from survey.adapters import ArchitectureAdapter
from survey.engine.ablation import Head, condition_chunks, condition_masks, head_means, rows_replaced
from survey.engine.capture import CaptureSpec, capture
from survey.engine.ov import CandidateRanks, ov_candidate_ranks, ov_top_tokens, resid_after_block0
from survey.engine.patching import path_patched_logit_diff
from survey.engine.readouts import (
    EndComponents,
    FinalNormView,
    condition_logit_diffs,
    direct_logit_attribution,
    end_components,
    logit_diff,
)
from survey.engine.validation import Check, labelled_heads, random_head_sets, top_labelled
from survey.loading.loaders import LoadedModel
from survey.units.base import PlannedUnit, Progress, Shared, Skip
from survey.units.heads import HEAD_UNITS, HeadResult, HeadUnit

LD_DROP = "logit_diff_drop"


OV_EXAMPLES = 3  # IO names whose top OV output tokens are kept as evidence
CAPTURED_TOKENS = 512  # tokens a pass keeps every head's output for (memory: tokens x heads x d_model)


@dataclass(frozen=True)
class _Group:
    """One prompt group's clean run: its components, DLA, final-norm scale, LD and ABC means;
    the null DLA (on the ABC prompts, toward the name at IO over the name at S1); and the DLA
    toward a name absent from the prompt over S and over IO."""

    group: IOIGroup
    components: EndComponents
    dla: Tensor  # [prompt, layer, head]
    sigma: Tensor  # [prompt]
    ld: Tensor  # [prompt]
    means: Tensor  # [layer, pos, head, d_head], over the ABC prompts
    null_dla: Tensor  # [prompt, layer, head]
    absent_dla: Tensor  # [prompt, layer, head, 2]


@dataclass(frozen=True)
class IOIOutcome:
    """Per classifier name: its scores and validation; plus the measures, the forward passes run
    over every clean prompt (path patching aside) and the time taken."""

    measures: IOIMeasures
    scores: dict[str, tuple[HeadScores, AblationResult | None]]
    forward_passes: int
    seconds: float


def absent_names(prompts: IOIPrompts, seed: int = ABSENT_SEED) -> list[Tensor]:
    """Per group, ``[prompt]``: a seeded random candidate name that is neither IO nor S."""
    generator = torch.Generator().manual_seed(seed)
    names = torch.tensor(prompts.name_ids)
    drawn = []
    for g in prompts.groups:
        rows = []
        for io, s in zip(g.io_ids.tolist(), g.s_ids.tolist(), strict=True):
            others = names[(names != io) & (names != s)]
            rows.append(int(others[torch.randint(len(others), (1,), generator=generator)]))
        drawn.append(torch.tensor(rows))
    return drawn


def _clean_groups(adapter: ArchitectureAdapter, prompts: IOIPrompts) -> list[_Group]:
    norm = FinalNormView.of(adapter)
    groups = []
    for g, absent in zip(prompts.groups, absent_names(prompts), strict=True):
        components = end_components(adapter, g.clean, g.positions)

        def dla(toward: Tensor, over: Tensor, of: EndComponents = components) -> Tensor:
            return direct_logit_attribution(adapter, of, toward, over)["heads"]

        abc = end_components(adapter, g.corrupted, g.positions)
        abc_io, abc_s = g.corrupted[:, g.positions["io"]], g.corrupted[:, g.positions["s1"]]
        groups.append(_Group(
            g, components, dla(g.io_ids, g.s_ids), norm.sigma(components.resid),
            logit_diff(components.logits, g.io_ids, g.s_ids), head_means(adapter, g.corrupted),
            dla(abc_io, abc_s, abc), torch.stack([dla(absent, g.s_ids), dla(absent, g.io_ids)], -1),
        ))  # fmt: skip
    return groups


def _name_copy(adapter: ArchitectureAdapter, prompts: IOIPrompts) -> tuple[CandidateRanks, list[int], Tensor]:
    """Where each name occurrence (IO, S1, S2 of every clean prompt) ranks its own name among the
    candidate names in every head's OV read-out of its residual after block 0; and the first
    ``OV_EXAMPLES`` IO names with their top OV output tokens ``[layer, head, name, top]``."""
    names = torch.tensor(prompts.name_ids)
    rows, own = [], []
    for g in prompts.groups:
        resid = resid_after_block0(adapter, g.clean)
        p = g.positions
        rows.append(resid[:, [p["io"], p["s1"], p["s2"]]].flatten(0, 1))
        ids = torch.stack([g.io_ids, g.s_ids, g.s_ids], 1).flatten()
        own.append((ids[:, None] == names[None]).float().argmax(1))
    x = torch.cat(rows)
    ranks = ov_candidate_ranks(adapter, x, names.expand(len(x), -1), torch.cat(own))
    examples = prompts.groups[0].io_ids[:OV_EXAMPLES].tolist()
    return ranks, examples, ov_top_tokens(adapter, x[: 3 * len(examples) : 3])


def _ablated_dla(
    adapter: ArchitectureAdapter, groups: list[_Group], conditions: list[list[Head]], progress: Progress
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """Per condition, with its heads mean-ablated: DLA ``[prompt, layer, head]`` (clean-run
    scale), LD ``[prompt]`` and the mean attention END→IO/S1/S2 ``[layer, head, 3]``. Conditions
    run side by side, a few to a pass (every head's output at every position is kept)."""
    d = adapter.dims
    masks = condition_masks(conditions, d.n_layers, d.n_heads)
    parts: list[list[tuple[Tensor, Tensor, Tensor]]] = [[] for _ in conditions]
    for g in _metered(groups, progress, "heads re-measured with the name movers and random heads ablated"):
        q, n = g.group, len(g.group.clean)
        for chunk in condition_chunks(len(conditions), n, q.clean.shape[1], budget=CAPTURED_TOKENS):
            rows = masks[chunk.start : chunk.stop].repeat_interleave(n, 0)
            with rows_replaced(adapter, rows, g.means):
                components = end_components(adapter, q.clean.repeat(len(chunk), 1), q.positions)
            io, s = q.io_ids.repeat(len(chunk)), q.s_ids.repeat(len(chunk))
            dla = direct_logit_attribution(adapter, components, io, s, sigma=g.sigma.repeat(len(chunk)))[
                "heads"
            ]
            ld = logit_diff(components.logits, io, s)
            for k, condition in enumerate(chunk):
                at = slice(k * n, (k + 1) * n)
                parts[condition].append((dla[at], ld[at], components.attention[at]))
    return [
        (
            torch.cat([p[0] for p in part]),
            torch.cat([p[1] for p in part]),
            torch.cat([p[2] for p in part]).mean(0),
        )
        for part in parts
    ]


def _lds_with(
    adapter: ArchitectureAdapter, groups: list[_Group], conditions: list[list[Head]], progress: Progress
) -> list[float]:
    """Per condition, the mean LD over every prompt with its heads mean-ablated."""
    d = adapter.dims
    masks = condition_masks(conditions, d.n_layers, d.n_heads)
    lds = [
        condition_logit_diffs(adapter, g.group.clean, g.group.io_ids, g.group.s_ids, masks, g.means)
        for g in _metered(groups, progress, f"LD with {len(conditions)} sets of heads ablated")
    ]
    return torch.cat(lds, 1).mean(1).tolist()


def _s_inhibition(
    adapter: ArchitectureAdapter, groups: list[_Group], receivers: list[Head], progress: Progress
) -> Tensor:
    """``[prompt, layer, head]``: the drop of LD on each prompt when the head's END output from the
    ABC prompt reaches the receivers' queries (zero for heads in or after the last receiver's layer)."""
    d = adapter.dims
    last = max(layer for layer, _ in receivers)
    senders = [(layer, h) for layer in range(last) for h in range(d.n_heads)]
    drops = []
    for g in _metered(groups, progress, "path patching into the name movers' queries"):
        q = g.group
        patched = path_patched_logit_diff(
            adapter, q.clean, q.corrupted, q.positions, receivers, senders, q.io_ids, q.s_ids
        )
        drops.append(g.ld[None] - patched)  # [sender, prompt]
    per_prompt = torch.cat(drops, 1)
    drop = torch.zeros(per_prompt.shape[1], d.n_layers, d.n_heads)
    for index, (layer, head) in enumerate(senders):
        drop[:, layer, head] = per_prompt[index]
    return drop


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
    groups = _clean_groups(adapter, prompts)
    passes = 3  # clean components, ABC components and means, the names' residuals after block 0
    lds = torch.cat([g.ld for g in groups])
    ranks, examples, top_ids = _name_copy(adapter, prompts)
    dla_prompts = torch.cat([g.dla for g in groups])

    def joined(part: Callable[[_Group], Tensor]) -> Tensor:
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
        (dla_ablated, ld_ablated, attention_ablated), *nulls = _ablated_dla(
            adapter, groups, [movers, *null_sets], progress
        )
        ld_movers_ablated = float(ld_ablated.mean())
        null = [dla - dla_prompts for dla, _, _ in nulls]
        passes += 1 + len(null_sets)
        drop = None
        if SInhibition.name in by_name:
            drop = _s_inhibition(adapter, groups, movers, progress)
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


def _metered(groups: list[_Group], progress: Progress, label: str) -> Iterator[_Group]:
    """The groups in turn, with a progress bar for the stage."""
    meter = Meter(progress, f"IOI: {label}", len(groups), "prompt groups")
    for g in groups:
        yield g
        meter.advance()


def _heads(heads: list[Head]) -> str:
    return ", ".join(f"{layer}.{head}" for layer, head in heads) or "none"


def _validate_name_movers(
    adapter: ArchitectureAdapter, groups: list[_Group], m: IOIMeasures, labelled: list[Head],
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
    lds = _lds_with(adapter, groups, [[head] for head in movers] + draws, progress)
    per_head = {head: m.ld - ld for head, ld in zip(movers, lds[: len(movers)], strict=True)}
    effects = [m.ld - ld_ablated] + [m.ld - ld for ld in lds[len(movers) :]]
    passes = len(per_head) + len(draws)
    return check.result(movers, effects, draws, per_head, passes + 1, started, details), passes


def _held_lds(
    adapter: ArchitectureAdapter,
    groups: list[_Group],
    ablated: list[Head],
    holds: list[list[Head]],
    progress: Progress,
) -> list[float]:
    """Mean LD with ``ablated`` mean-ablated and each set in ``holds`` held at its clean-run z
    (so it cannot respond to the ablation), one value per set."""
    d = adapter.dims
    masks = condition_masks(holds, d.n_layers, d.n_heads)
    lds = []
    for g in _metered(groups, progress, f"LD with {len(holds)} sets of heads held"):
        q = g.group
        z = capture(adapter, q.clean, CaptureSpec.of("z"), batch_size=len(q.clean)).stacked("z")
        lds.append(condition_logit_diffs(adapter, q.clean, q.io_ids, q.s_ids, masks, z, ablated, g.means))
    return torch.cat(lds, 1).mean(1).tolist()


def _validate_backups(
    adapter: ArchitectureAdapter, groups: list[_Group], m: IOIMeasures, backups: list[Head],
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
