"""Function-vector measurements (Todd et al. 2023) for ``classifiers.function_vector``.

1. Means: every head's output at the last token, averaged over each task's clean few-shot
   prompts, as z (the output projection's input) and as its residual contribution; and the
   clean accuracy. A task below the config's minimum is excluded here, before any patching.
2. CIE: on each shuffled-label prompt the positions before the last run once into a KV cache;
   then the last token runs as many side-by-side copies in one sequence, each seeing the prefix
   and itself only, and copy r has one head's z replaced by its task mean. The CIE is the rise in
   P(answer) over the unpatched copy. The null patches, in the same pass, the head's mean over
   the task's shuffled prompts, where the task is not shown.
3. Validation: the function vector of a task is the sum of the top-k heads' mean residual
   contributions; added to the residual after layer L/3 (fixed, as Todd et al.) at the last
   token of zero-shot prompts, it should raise top-1 accuracy, and more than the sum of as many
   random heads does at the same layer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from classifiers.function_vector import (
    FunctionVectorConfig,
    FunctionVectorHead,
    FunctionVectorMeasures,
    excluded_tasks,
)
from classifiers.icl_prompts import ICLPrompt, ICLPrompts, ICLSpec, ICLTask, generate_icl
from classifiers.validation import AblationConfig, AblationResult
from db.common.progress import Meter
from survey.adapters import ArchitectureAdapter
from survey.engine.ablation import Head
from survey.engine.capture import CaptureSpec, capture, first_input, first_output
from survey.engine.replay import BlockOutputs, prefix_copy, recorded, replayed_below, replayed_rows, unchanged
from survey.engine.validation import Check, labelled_heads, random_head_sets, top_labelled
from survey.loading.loaders import LoadedModel
from survey.units.base import PlannedUnit, Progress, Shared, Skip
from survey.units.heads import HeadResult, MeasuredUnit

ROWS_PER_PASS = 544  # patched copies of the last token side by side in one pass, at most
MEANS_BATCH = 8  # clean prompts a pass when taking the task means


def _device(adapter: ArchitectureAdapter) -> torch.device:
    return next(adapter.model.parameters()).device


def right_padded(prompts: list[ICLPrompt], device: torch.device) -> tuple[Tensor, Tensor]:
    """The prompts as one batch ``[prompt, pos]``, right-padded with each one's last token (causal
    attention never reads the padding), and each one's last position ``[prompt]``."""
    width = max(len(p.ids) for p in prompts)
    ids = torch.tensor([p.ids + [p.ids[-1]] * (width - len(p.ids)) for p in prompts], device=device)
    return ids, torch.tensor([len(p.ids) - 1 for p in prompts])


def task_means(
    adapter: ArchitectureAdapter, prompts: list[ICLPrompt], advance: Callable[[int], None] = lambda _n: None
) -> tuple[Tensor, Tensor, float]:
    """Mean last-token z ``[layer, head, d_head]`` and residual contribution ``[layer, head, d_model]``
    over the prompts, and the few-shot top-1 accuracy; ``advance`` hears of each batch's prompts."""
    d = adapter.dims
    z_sum = torch.zeros(d.n_layers, d.n_heads, d.d_head)
    out_sum = torch.zeros(d.n_layers, d.n_heads, d.d_model)
    correct = 0
    for first in range(0, len(prompts), MEANS_BATCH):
        batch = prompts[first : first + MEANS_BATCH]
        ids, last = right_padded(batch, torch.device("cpu"))
        kept = torch.unique(last)  # the unembedding runs at these positions only
        got = capture(
            adapter, ids, CaptureSpec.of("z"), keep_logits=True, logits_at=kept, batch_size=len(ids)
        )
        assert got.logits is not None
        rows = torch.arange(len(batch))
        predicted = got.logits[rows, torch.searchsorted(kept, last)].argmax(-1)
        correct += int((predicted == torch.tensor([p.target for p in batch])).sum())
        z = got.stacked("z")[:, rows, last].float()  # [layer, prompt, head, d_head]
        for row in rows.tolist():
            z_sum += z[:, row]
            out_sum += head_contributions(adapter, z[:, row])
        advance(len(batch))
    n = len(prompts)
    return z_sum / n, out_sum / n, correct / n


def head_contributions(adapter: ArchitectureAdapter, z: Tensor) -> Tensor:
    """``[layer, head, d_model]``: each head's residual contribution from its z ``[layer, head, d_head]``
    at one position, through a post-attention norm linearised at this position's scale."""
    rows = []
    with torch.inference_mode():
        for layer in range(adapter.dims.n_layers):
            w_o, b_o = (w.float().cpu() for w in adapter.output_weights(layer))  # z is on the CPU
            out = torch.einsum("hd,hdm->hm", z[layer], w_o)
            factor = adapter.post_norm_factor(layer, out.sum(0) + b_o)
            rows.append(out if factor is None else out * factor.cpu())
    return torch.stack(rows)


Patch = tuple[int, int, Tensor]  # (layer, head, the z its copy of the last token gets)


def _replace_copies(rows: list[Patch], layer: int, d_head: int) -> Any:
    """A pre-hook on the output projection: the last ``len(rows)`` positions are copies of the
    last token, and copy r, when ``rows[r]`` is in ``layer``, gets that head's z replaced. Copies
    are indexed from the end, so a block that runs only its last copies (``replayed_rows``, which
    always runs the copies patched in it) still finds them."""
    here = [(r, head, values) for r, (at, head, values) in enumerate(rows) if at == layer]
    copies = torch.tensor([r for r, _, _ in here])
    columns = torch.tensor([head for _, head, _ in here])[:, None] * d_head + torch.arange(d_head)
    values = torch.stack([v for _, _, v in here])  # [copy, d_head]

    def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        z = first_input(args, kwargs).clone()
        at = (z.shape[1] - len(rows) + copies).to(z.device)
        z[0, at[:, None], columns.to(z.device)] = values.to(z)
        return ((z, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": z})

    return hook


def copies_mask(prefix: int, copies: int, dtype: torch.dtype) -> Tensor:
    """``[1, 1, copy, prefix + copy]`` additive mask: each copy of the last token attends to the
    prefix and to itself, never to another copy."""
    mask = torch.full((copies, prefix + copies), torch.finfo(dtype).min, dtype=dtype)
    mask[:, :prefix] = 0
    mask[:, prefix:].fill_diagonal_(0)
    return mask[None, None]


def pass_groups(layers: list[int], rows: list[int]) -> list[list[int]]:
    """``rows`` (patched at ``layers``, ascending) in the fewest passes of whole layers, filled
    from the lowest layer: a pass costs a fixed read of the weights for each block from its lowest
    layer on, so the last pass, the shortest, starts as high as it can. A layer of more than
    ``ROWS_PER_PASS`` copies is split in equal passes."""
    by_layer: dict[int, list[int]] = {}
    for layer, row in zip(layers, rows, strict=True):
        by_layer.setdefault(layer, []).append(row)
    groups: list[list[int]] = []
    current: list[int] = []
    for members in by_layer.values():
        if len(current) + len(members) > ROWS_PER_PASS and current:
            groups.append(current)
            current = []
        if len(members) > ROWS_PER_PASS:
            parts = -(-len(members) // ROWS_PER_PASS)
            size = -(-len(members) // parts)
            groups += [members[i : i + size] for i in range(0, len(members), size)]
        else:
            current = current + members
    return groups + [current] if current else groups


def copy_passes(adapter: ArchitectureAdapter, variants: int) -> list[list[int]]:
    """The patched copies (variant-major, then layer, then head) in their passes, by layer."""
    d = adapter.dims
    per_variant = d.n_layers * d.n_heads
    order = sorted(range(variants * per_variant), key=lambda r: (r % per_variant) // d.n_heads)  # stable
    layers = [(r % per_variant) // d.n_heads for r in order]
    return pass_groups(layers, order)


def patched_probabilities(
    adapter: ArchitectureAdapter, prompt: ICLPrompt, z_means: list[Tensor]
) -> tuple[float, Tensor]:
    """P(answer) on the prompt unpatched, and ``[variant, layer, head]`` with each head's
    last-token z replaced by its value in each of ``z_means`` (``[layer, head, d_head]`` each).

    The prefix runs once into a KV cache and the unpatched last token once after it, its blocks'
    outputs recorded. The patches then run as copies of the last token side by side at the last
    position, in passes of whole layers' copies (:func:`pass_groups`). A block runs only the
    copies patched at or below it: the others are still the unpatched token there, and take its
    recorded output."""
    model, device = adapter.model, _device(adapter)
    window = getattr(model.config, "sliding_window", None)
    if window is not None and len(prompt.ids) > window:
        raise ValueError(f"a {len(prompt.ids)}-token prompt is longer than the {window}-token sliding window")
    d = adapter.dims
    ids = torch.tensor([prompt.ids], device=device)
    prefix_length = ids.shape[1] - 1
    dtype = next(model.parameters()).dtype
    rows: list[Patch] = [
        (layer, head, values[layer, head])
        for values in z_means
        for layer in range(d.n_layers)
        for head in range(d.n_heads)
    ]
    probabilities = torch.zeros(len(rows))
    unpatched: BlockOutputs = {}
    with torch.inference_mode():
        prefix = model(input_ids=ids[:, :-1], use_cache=True, logits_to_keep=1).cache
        with recorded(adapter, unpatched):
            out = model(input_ids=ids[:, -1:], cache=prefix_copy(prefix), use_cache=True)
        baseline = float(out.logits[0, -1].float().softmax(-1)[prompt.target])
        for ascending in copy_passes(adapter, len(z_means)):
            chosen = ascending[::-1]  # highest layer first: the copies a block runs are the last
            chunk = [rows[r] for r in chosen]
            copies = len(chunk)
            active = [sum(at <= layer for at, _, _ in chunk) for layer in range(d.n_layers)]
            handles = [
                adapter.attn_out_proj(layer).register_forward_pre_hook(
                    _replace_copies(chunk, layer, d.d_head), with_kwargs=True
                )
                for layer in sorted({layer for layer, _, _ in chunk})
            ]
            try:
                with replayed_rows(adapter, unpatched, active):
                    out = model(
                        input_ids=ids[:, -1:].expand(1, copies),
                        attention_mask=copies_mask(prefix_length, copies, dtype).to(device),
                        position_ids=torch.full((1, copies), prefix_length, device=device),
                        cache=prefix_copy(prefix),
                        use_cache=True,
                    )
            finally:
                for handle in handles:
                    handle.remove()
            probabilities[chosen] = out.logits[0].float().softmax(-1)[:, prompt.target].cpu()
    return baseline, probabilities.view(len(z_means), d.n_layers, d.n_heads)


@contextmanager
def added_at_last(
    adapter: ArchitectureAdapter, layer: int, vector: Tensor | None, last: Tensor
) -> Iterator[None]:
    """Within the block, ``vector`` is added to the residual after ``layer`` at each row's
    ``last`` position."""
    if vector is None:
        yield
        return

    def hook(_m: nn.Module, _args: Any, output: Any) -> Any:
        hidden = first_output(output).clone()
        hidden[torch.arange(hidden.shape[0]), last] += vector.to(hidden)
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handle = adapter.blocks()[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def zero_shot_accuracy(
    adapter: ArchitectureAdapter, prompts: list[ICLPrompt], layer: int, vector: Tensor | None,
    plain: BlockOutputs | None = None,
) -> float:  # fmt: skip
    """Top-1 accuracy on zero-shot prompts (right-padded in one batch: causal attention never
    reads the padding), with ``vector`` added after ``layer`` at the last token. With ``plain``
    (the blocks' outputs on these prompts with nothing added), blocks up to ``layer`` are replayed."""
    ids, last = right_padded(prompts, _device(adapter))
    kept = torch.unique(last)  # the unembedding runs at these positions only
    replay = nullcontext() if plain is None else replayed_below(adapter, plain, layer + 1, unchanged)
    with torch.inference_mode(), replay, added_at_last(adapter, layer, vector, last):
        logits = adapter.model(input_ids=ids, use_cache=False, logits_to_keep=kept.to(ids.device)).logits
    at = torch.searchsorted(kept, last)
    predicted = logits[torch.arange(len(prompts)), at.to(logits.device)].argmax(-1).cpu()
    return float((predicted == torch.tensor([p.target for p in prompts])).double().mean())


def measure_function_vectors(
    adapter: ArchitectureAdapter, prompts: ICLPrompts, config: FunctionVectorConfig, ablation: AblationConfig,
    progress: Callable[[str], None],
) -> tuple[FunctionVectorMeasures, AblationResult]:  # fmt: skip
    """Every task's clean accuracy; then, on each task the model does, the CIE of every head (and
    its null); then the zero-shot validation on those tasks."""
    started = time.perf_counter()
    clean = Meter(
        progress, "function vectors: task means", sum(len(t.clean) for t in prompts.tasks), "prompts"
    )
    means = {task.name: task_means(adapter, task.clean, clean.advance) for task in prompts.tasks}
    accuracy = {name: acc for name, (_, _, acc) in means.items()}
    excluded = excluded_tasks(accuracy, config.min_clean_accuracy)
    counted = [task for task in prompts.tasks if task.name not in excluded]
    for name, reason in excluded.items():
        progress(f"function vectors: {name} excluded: {reason}")
    d = adapter.dims
    cie, null, shuffled = [], [], []
    passes = sum(-(-len(task.clean) // MEANS_BATCH) for task in prompts.tasks)
    patching = Meter(progress, "function vectors: patching", sum(len(t.shuffled) for t in counted), "prompts")
    for i, task in enumerate(counted):
        z_null, _, _ = task_means(adapter, task.shuffled)
        bases = []
        for prompt in task.shuffled:
            base, patched = patched_probabilities(adapter, prompt, [means[task.name][0], z_null])
            cie.append(patched[0] - base)
            null.append(patched[1] - base)
            bases.append(base)
            patching.advance()
        passes += -(-len(task.shuffled) // MEANS_BATCH)
        passes += len(task.shuffled) * (1 + len(copy_passes(adapter, 2)))
        shuffled.append(sum(bases) / len(bases))
        best = float(torch.stack(cie[-len(task.shuffled) :]).mean(0).max())
        progress(
            f"function vectors: {task.name} ({i + 1}/{len(counted)}): "
            f"clean accuracy {accuracy[task.name]:.2f}, "
            f"P(answer) shuffled {shuffled[-1]:.3f}, best CIE {best:.3f}"
        )
    empty = torch.zeros(0, d.n_layers, d.n_heads)
    measures = FunctionVectorMeasures(
        [t.name for t in counted], torch.stack(cie) if cie else empty, torch.stack(null) if null else empty,
        accuracy, shuffled, excluded,
    )  # fmt: skip
    contributions = [means[task.name][1] for task in counted]
    validation = _validate(
        adapter, counted, measures, contributions, config, ablation, started, passes, progress
    )
    return measures, validation


def vector_layer(n_layers: int) -> int:
    """After which layer the function vector is added: L/3, as Todd et al."""
    return n_layers // 3


def _validate(
    adapter: ArchitectureAdapter, tasks: list[ICLTask], measures: FunctionVectorMeasures,
    contributions: list[Tensor], config: FunctionVectorConfig, ablation: AblationConfig, started: float,
    passes: int, progress: Progress,
) -> AblationResult:  # fmt: skip
    """Mean zero-shot accuracy over the counted tasks before and after adding the top heads'
    vector after layer L/3, against as many random heads' vectors at the same layer."""
    scored = FunctionVectorHead(config).score(measures)
    labels = scored.labels(config.threshold)
    top = top_labelled(scored.scores, labels, config.top_k)
    d = adapter.dims
    layer = vector_layer(d.n_layers)
    plain: list[BlockOutputs] = [{} for _ in tasks]
    before = []
    for task, run in zip(tasks, plain, strict=True):
        with recorded(adapter, run):
            before.append(zero_shot_accuracy(adapter, task.zero_shot, layer, None))
    baseline = sum(before) / len(tasks) if tasks else 0.0
    check = Check("function_vector_zero_shot", "zero_shot_accuracy", baseline, ablation)
    details: dict[str, object] = {"layer_added": layer, "excluded": measures.excluded}
    if not top:
        return check.result([], [], [], {}, passes + len(tasks), started, details)
    draws = random_head_sets(
        d.n_layers, d.n_heads, labelled_heads(labels), len(top), ablation.draws, ablation.seed
    )

    meter = Meter(progress, "function vectors: validation", len(tasks) * (1 + len(draws)), "passes")

    def accuracies(heads: list[Head]) -> list[float]:
        """Per counted task, the zero-shot accuracy with these heads' summed mean contribution added."""
        found = []
        for task, c, run in zip(tasks, contributions, plain, strict=True):
            vector = torch.stack([c[h] for h in heads]).sum(0)
            found.append(zero_shot_accuracy(adapter, task.zero_shot, layer, vector, run))
            meter.advance()
        return found

    after = accuracies(top)
    random_after = [accuracies(heads) for heads in draws]
    passes += len(tasks) * (2 + len(draws))
    details["per_task"] = {
        task.name: {
            "before": before[i], "after": after[i], "random_after": [acc[i] for acc in random_after],
            "prompts": len(task.zero_shot), "clean_accuracy": measures.clean_accuracy[task.name],
            "shuffled_probability": round(measures.shuffled_probability[i], 6),
        }
        for i, task in enumerate(tasks)
    }  # fmt: skip
    n = len(tasks)
    effects = [sum(after) / n - baseline] + [sum(acc) / n - baseline for acc in random_after]
    return check.result(top, effects, draws, {}, passes, started, details)


class FunctionVectorUnit(MeasuredUnit):
    """Function-vector heads: causal indirect effects on this tokenizer's in-context tasks."""

    cost = 30

    classifier: FunctionVectorHead

    def dataset_spec(self) -> ICLSpec:
        return self.classifier.config.dataset

    def make_dataset(self, loaded: LoadedModel, spec: ICLSpec) -> ICLPrompts | Skip:
        try:
            return generate_icl(loaded.tokenizer, loaded.bos.token_id, spec)
        except ValueError as exc:  # too few tasks with single-token answers
            return Skip(str(exc))

    def compute(
        self, loaded: LoadedModel, planned: PlannedUnit, shared: Shared, progress: Progress
    ) -> HeadResult:
        """The scores, the validation, and every task's clean accuracy and exclusion (unit statistics)."""
        assert isinstance(planned.dataset, ICLPrompts)
        measures, validation = self.measure(loaded, planned.dataset, progress)
        tasks = {
            name: {"clean_accuracy": accuracy, "excluded": measures.excluded.get(name)}
            for name, accuracy in measures.clean_accuracy.items()
        }
        return HeadResult(self.classifier.score(measures), validation, {"tasks": tasks})

    def measure(
        self, loaded: LoadedModel, dataset: ICLPrompts, progress: Progress
    ) -> tuple[FunctionVectorMeasures, AblationResult]:
        return measure_function_vectors(
            loaded.adapter, dataset, self.classifier.config, self.run_config.ablation, progress
        )
