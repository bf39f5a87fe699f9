"""The backup-induction measurement for ``classifiers.backup``.

On the induction probe: score the induction heads, mean-ablate the labelled ones, and measure
every head clean and ablated: its direct effect on the right next token over the second repeat
(DLA through the clean run's final-norm scale, exact for the linear part) and its induction
score. The null: the same rise when as many random non-induction heads are ablated, so generic
self-repair after any ablation is not taken for a backup. Validation: with the induction heads
ablated, holding the backups at their clean-run outputs (so they cannot respond) raises the loss
by what they recovered; ranked among holding as many random heads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from classifiers.attention import AttendedCopy, Induction
from classifiers.backup import NULL_DRAWS, BackupConfig, BackupInduction, BackupMeasures
from classifiers.probes import ProbeSet, ProbeSpec
from classifiers.validation import AblationConfig, AblationResult
from db.common.progress import Meter
from survey.adapters import ArchitectureAdapter
from survey.engine.ablation import (
    Head,
    first_layer,
    head_means,
    heads_replaced,
    mean_ablated,
    next_token_loss,
)
from survey.engine.capture import Capture, CaptureSpec, capture
from survey.engine.readouts import FinalNormView
from survey.engine.replay import BlockOutputs, recorded, replayed_below, unchanged
from survey.engine.validation import Check, labelled_heads, random_head_sets, repeat_span, top_labelled
from survey.loading.loaders import LoadedModel
from survey.units.base import PlannedUnit, Progress, Shared
from survey.units.heads import HEAD_UNITS, HeadResult, ProbeReader, shared_patterns
from survey.units.induction import attended_copy, shared_attended_copy


def direct_effects(
    adapter: ArchitectureAdapter, got: Capture, tokens: Tensor, span: tuple[int, int], sigma: Tensor
) -> Tensor:
    """``[sequence, layer, head]``: each head's mean contribution to the right next token's logit
    over ``span`` of each sequence, through the final norm with its scale ``sigma [batch, pos]`` frozen."""
    start, stop = span
    norm = FinalNormView.of(adapter)
    gain = norm.gain.cpu()  # captures are on the CPU; weights may be on an accelerator
    w_u = adapter.unembedding()[0].detach().float().cpu()
    targets = tokens[:, start + 1 : stop + 1]
    direction = norm.centre(w_u[:, targets].permute(1, 2, 0)) * gain / sigma[..., None]  # [b, p, d_model]
    rows = []
    with torch.inference_mode():
        for layer in range(adapter.dims.n_layers):
            z = got[("z", layer)][:, start:stop].float()  # [b, p, head, d_head]
            w_o, b_o = (w.float().cpu() for w in adapter.output_weights(layer))
            out = torch.einsum("bphd,hdm->bphm", z, w_o)
            factor = adapter.post_norm_factor(layer, out.sum(2) + b_o)
            if factor is not None:
                out = out * factor.cpu()[:, :, None, :]
            rows.append(torch.einsum("bphm,bpm->bh", out, direction) / z.shape[1])
    return torch.stack(rows, 1)


@dataclass(frozen=True)
class InductionReads:
    """What the induction unit reads on the probe, reused: the patterns on the probe and on its
    null, and the attended token's OV copy scores."""

    patterns: Tensor
    null_patterns: Tensor
    copy: AttendedCopy

    @classmethod
    def of(cls, adapter: ArchitectureAdapter, probe: ProbeSet, null_probe: ProbeSet) -> InductionReads:
        """Read afresh."""
        patterns, null = (capture(adapter, p.tokens, CaptureSpec.of("pattern")) for p in (probe, null_probe))
        return cls(patterns.stacked("pattern"), null.stacked("pattern"), attended_copy(adapter, probe))


def measure_backups(
    adapter: ArchitectureAdapter, probe: ProbeSet, null_probe: ProbeSet, config: BackupConfig,
    ablation: AblationConfig, progress: Callable[[str], None], reads: InductionReads | None = None,
) -> tuple[BackupMeasures, AblationResult]:  # fmt: skip
    """Ablate the labelled induction heads (``null_probe`` is the induction null's probe) and
    measure every head again, then with random heads ablated for the null; then validate.
    ``reads``: the induction unit's reads of the same probes (else read here)."""
    started = time.perf_counter()
    tokens, span = probe.tokens, repeat_span(probe)
    induction = Induction()
    reads = reads or InductionReads.of(adapter, probe, null_probe)
    clean = capture(adapter, tokens, CaptureSpec.of("z", "resid_post"))
    resid = clean[("resid_post", adapter.dims.n_layers - 1)][:, span[0] : span[1]].float()
    sigma = FinalNormView.of(adapter).sigma(resid)
    null_patterns = reads.null_patterns
    clean_induction = induction.score(reads.patterns, probe, null_patterns, reads.copy)
    induction_labels = clean_induction.labels(induction.threshold)
    limit = induction_labels.numel() if config.max_k is None else config.max_k
    ablated = top_labelled(clean_induction.scores, induction_labels, limit)
    progress(f"backup induction: mean-ablating {len(ablated)} induction heads")
    means = head_means(adapter, tokens)

    def dla_with(heads: list[Head], spec: CaptureSpec) -> tuple[Tensor, Capture]:
        with mean_ablated(adapter, heads, means):
            after = capture(adapter, tokens, spec)
        return direct_effects(adapter, after, tokens, span, sigma), after

    dla = direct_effects(adapter, clean, tokens, span, sigma)
    dla_ablated, after = dla_with(ablated, CaptureSpec.of("pattern", "z"))
    d = adapter.dims
    draws = random_head_sets(
        d.n_layers, d.n_heads, labelled_heads(induction_labels), len(ablated), NULL_DRAWS, ablation.seed + 1
    ) if ablated else []  # fmt: skip
    meter = Meter(progress, "backup induction: null", len(draws), "ablations")
    null = []
    for heads in draws:
        null.append(dla_with(heads, CaptureSpec.of("z"))[0] - dla)
        meter.advance()
    measures = BackupMeasures(
        ablated, dla, dla_ablated, clean_induction.scores,
        induction.score(after.stacked("pattern"), probe, null_patterns, reads.copy).scores,
        torch.cat(null) if null else torch.zeros_like(dla),
    )  # fmt: skip
    scored = BackupInduction(config).score(measures)
    labels = scored.labels(config.threshold)
    backups = top_labelled(scored.scores, labels, ablation.max_k)
    return measures, _validate(
        adapter,
        probe,
        clean.stacked("z"),
        means,
        measures,
        backups,
        labelled_heads(labels),
        ablation,
        started,
        progress,
    )


def _validate(
    adapter: ArchitectureAdapter, probe: ProbeSet, clean_z: Tensor, means: Tensor, m: BackupMeasures,
    backups: list[Head], labelled: list[Head], config: AblationConfig, started: float, progress: Progress,
) -> AblationResult:  # fmt: skip
    """The loss the backups hold down: with the induction heads ablated, holding the backups (or
    as many random heads) at their clean-run z raises the second-repeat loss by that much."""
    start, stop = repeat_span(probe)
    tokens = probe.tokens
    batch = tokens.shape[0]  # held z is per prompt, so every pass takes the whole probe
    baseline = next_token_loss(adapter, tokens, start, stop, batch)
    ablated_run: BlockOutputs = {}  # the holds below change nothing under their lowest layer
    with mean_ablated(adapter, m.ablated, means), recorded(adapter, ablated_run):
        ablated_loss = next_token_loss(adapter, tokens, start, stop, batch)
    compensation = m.dla_ablated - m.dla
    details: dict[str, object] = {
        "induction_heads_ablated": [list(h) for h in m.ablated], "loss_clean": baseline,
        "loss_induction_ablated": ablated_loss, "induction_direct_loss": m.lost,
        "backup_compensation": float(sum(compensation[h] for h in backups)),
    }  # fmt: skip
    check = Check("hold_backups_at_clean_with_induction_ablated", "loss_held_down", ablated_loss, config)
    if not backups:
        return check.result([], [], [], {}, 2, started, details)
    d = adapter.dims
    draws = random_head_sets(
        d.n_layers, d.n_heads, m.ablated + labelled, len(backups), config.draws, config.seed
    )
    held = []
    meter = Meter(progress, "backup induction: validation", 1 + len(draws), "holds")
    for hold in [backups, *draws]:
        replay = replayed_below(adapter, ablated_run, first_layer(hold, d.n_layers), unchanged)
        with mean_ablated(adapter, m.ablated, means), heads_replaced(adapter, hold, clean_z), replay:
            held.append(next_token_loss(adapter, tokens, start, stop, batch))
        meter.advance()
    details["loss_backups_held"] = held[0]
    effects = [loss - ablated_loss for loss in held]
    return check.result(backups, effects, draws, {}, 3 + len(draws), started, details)


@HEAD_UNITS.register("backup_induction")
class BackupInductionUnit(ProbeReader):
    """Backup induction heads: every head re-measured with the labelled induction heads ablated."""

    cost = 7

    classifier: BackupInduction

    def dataset_spec(self) -> ProbeSpec:
        return self.classifier.config.dataset

    def compute(
        self,
        loaded: LoadedModel,
        planned: PlannedUnit[ProbeSet, HeadResult],
        shared: Shared,
        progress: Progress,
    ) -> HeadResult:
        """Measured on the induction probe, reusing what the induction unit read on it."""
        probe = planned.dataset
        null_spec = probe.spec.null()
        assert null_spec is not None, "backup induction reads a repeated probe"
        null_probe: ProbeSet = shared.get(
            ("dataset", null_spec), lambda: self.make_dataset(loaded, null_spec)
        )
        reads = InductionReads(
            shared_patterns(loaded, probe, shared), shared_patterns(loaded, null_probe, shared),
            shared_attended_copy(loaded, probe, shared),
        )  # fmt: skip
        measures, validation = measure_backups(
            loaded.adapter,
            probe,
            null_probe,
            self.classifier.config,
            self.run_config.ablation,
            progress,
            reads,
        )
        return HeadResult(self.classifier.score(measures), validation)
