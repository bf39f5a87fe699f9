"""The IOI suite's passes over the prompt groups: each group's clean run with every component kept at
END (and its ABC means, null and absent-name DLA), the names' OV copy read-outs, the DLA, LD and
attention with sets of heads mean-ablated side by side, and path patching into the name movers'
queries. The IOI unit (:mod:`survey.units.ioi`) orders them, scores and validates."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from classifiers.ioi import ABSENT_SEED
from classifiers.ioi_prompts import IOIGroup, IOIPrompts
from db.common.progress import Meter
from survey.adapters import ArchitectureAdapter
from survey.engine.ablation import Head, condition_chunks, condition_masks, head_means, rows_replaced
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

OV_EXAMPLES = 3  # IO names whose top OV output tokens are kept as evidence
CAPTURED_TOKENS = 512  # tokens a pass keeps every head's output for (memory: tokens x heads x d_model)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class GroupRun:
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


def clean_groups(adapter: ArchitectureAdapter, prompts: IOIPrompts) -> list[GroupRun]:
    norm = FinalNormView.of(adapter)
    groups = []
    for g, absent in zip(prompts.groups, absent_names(prompts), strict=True):
        components = end_components(adapter, g.clean, g.positions)

        def dla(toward: Tensor, over: Tensor, of: EndComponents = components) -> Tensor:
            return direct_logit_attribution(adapter, of, toward, over)["heads"]

        abc = end_components(adapter, g.corrupted, g.positions)
        abc_io, abc_s = g.corrupted[:, g.positions["io"]], g.corrupted[:, g.positions["s1"]]
        groups.append(GroupRun(
            g, components, dla(g.io_ids, g.s_ids), norm.sigma(components.resid),
            logit_diff(components.logits, g.io_ids, g.s_ids), head_means(adapter, g.corrupted),
            dla(abc_io, abc_s, abc), torch.stack([dla(absent, g.s_ids), dla(absent, g.io_ids)], -1),
        ))  # fmt: skip
    return groups


def name_copy(adapter: ArchitectureAdapter, prompts: IOIPrompts) -> tuple[CandidateRanks, list[int], Tensor]:
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


def ablated_dla(
    adapter: ArchitectureAdapter, groups: list[GroupRun], conditions: list[list[Head]], progress: Progress
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """Per condition, with its heads mean-ablated: DLA ``[prompt, layer, head]`` (clean-run
    scale), LD ``[prompt]`` and the mean attention END→IO/S1/S2 ``[layer, head, 3]``. Conditions
    run side by side, a few to a pass (every head's output at every position is kept)."""
    d = adapter.dims
    masks = condition_masks(conditions, d.n_layers, d.n_heads)
    parts: list[list[tuple[Tensor, Tensor, Tensor]]] = [[] for _ in conditions]
    for g in metered(groups, progress, "heads re-measured with the name movers and random heads ablated"):
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


def lds_with(
    adapter: ArchitectureAdapter, groups: list[GroupRun], conditions: list[list[Head]], progress: Progress
) -> list[float]:
    """Per condition, the mean LD over every prompt with its heads mean-ablated."""
    d = adapter.dims
    masks = condition_masks(conditions, d.n_layers, d.n_heads)
    lds = [
        condition_logit_diffs(adapter, g.group.clean, g.group.io_ids, g.group.s_ids, masks, g.means)
        for g in metered(groups, progress, f"LD with {len(conditions)} sets of heads ablated")
    ]
    return torch.cat(lds, 1).mean(1).tolist()


def s_inhibition(
    adapter: ArchitectureAdapter, groups: list[GroupRun], receivers: list[Head], progress: Progress
) -> Tensor:
    """``[prompt, layer, head]``: the drop of LD on each prompt when the head's END output from the
    ABC prompt reaches the receivers' queries (zero for heads in or after the last receiver's layer)."""
    d = adapter.dims
    last = max(layer for layer, _ in receivers)
    senders = [(layer, h) for layer in range(last) for h in range(d.n_heads)]
    drops = []
    for g in metered(groups, progress, "path patching into the name movers' queries"):
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


def metered(groups: list[GroupRun], progress: Progress, label: str) -> Iterator[GroupRun]:
    """The groups in turn, with a progress bar for the stage."""
    meter = Meter(progress, f"IOI: {label}", len(groups), "prompt groups")
    for g in groups:
        yield g
        meter.advance()
