"""Function-vector measurements (Todd et al. 2023) for ``classifiers.function_vector``.

1. Means: every head's output at the last token, averaged over each task's clean few-shot
   prompts, as z (the output projection's input) and as its residual contribution.
2. CIE: on each shuffled-label prompt the positions before the last run once into a KV cache;
   then one last-token pass per head (batched) replaces that head's z at the last token with its
   task mean. The CIE is the rise in P(answer) over the unpatched pass. The null patches, in the
   same batch, the head's mean over the task's shuffled prompts, where the task is not shown.
3. Validation: the function vector of a task is the sum of the top-k heads' mean residual
   contributions; added to the residual at the last token of zero-shot prompts (after the one of
   layers L/4, L/3, L/2, 2L/3 where it helps most), it should raise top-1 accuracy, and more
   than the sum of as many random heads does (each at its own best layer).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from classifiers.function_vector import FunctionVectorConfig, FunctionVectorHead, FunctionVectorMeasures
from classifiers.icl_prompts import ICLPrompt, ICLPrompts, ICLSpec, generate_icl
from classifiers.validation import AblationConfig, AblationResult
from survey.adapters import ArchitectureAdapter
from survey.engine.ablation import Head
from survey.engine.capture import CaptureSpec, capture, first_input
from survey.engine.validation import Check, labelled_heads, random_head_sets, top_labelled
from survey.loading.loaders import LoadedModel
from survey.units.base import Progress, Skip
from survey.units.heads import MeasuredUnit

ROWS_PER_PASS = 128  # patched copies of one prompt per last-token pass


def _device(adapter: ArchitectureAdapter) -> torch.device:
    return next(adapter.model.parameters()).device


def task_means(adapter: ArchitectureAdapter, prompts: list[ICLPrompt]) -> tuple[Tensor, Tensor, float]:
    """Mean last-token z ``[layer, head, d_head]`` and residual contribution ``[layer, head, d_model]``
    over the prompts, and the few-shot top-1 accuracy."""
    d = adapter.dims
    z_sum = torch.zeros(d.n_layers, d.n_heads, d.d_head)
    out_sum = torch.zeros(d.n_layers, d.n_heads, d.d_model)
    correct = 0
    for prompt in prompts:
        got = capture(adapter, torch.tensor([prompt.ids]), CaptureSpec.of("z"), keep_logits=True)
        assert got.logits is not None
        correct += int(got.logits[0, -1].argmax()) == prompt.target
        z = got.stacked("z")[:, 0, -1].float()  # [layer, head, d_head]
        z_sum += z
        out_sum += head_contributions(adapter, z)
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


Patch = tuple[int, int, Tensor]  # (layer, head, the z its last token gets)


def _replace_last(rows: list[Patch], layer: int, d_head: int) -> Any:
    """A pre-hook on the output projection: batch row r, when ``rows[r]`` is in ``layer``,
    gets that head's z at the last token replaced by the row's values."""
    here = [(r, head, values) for r, (at, head, values) in enumerate(rows) if at == layer]

    def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        z = first_input(args, kwargs).clone()
        for r, h, values in here:
            z[r, -1, h * d_head : (h + 1) * d_head] = values.to(z)
        return ((z, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": z})

    return hook


def patched_probabilities(
    adapter: ArchitectureAdapter, prompt: ICLPrompt, z_means: list[Tensor]
) -> tuple[float, Tensor]:
    """P(answer) on the prompt unpatched, and ``[variant, layer, head]`` with each head's
    last-token z replaced by its value in each of ``z_means`` (``[layer, head, d_head]`` each);
    the prefix runs once into a KV cache and the variants share the batched passes."""
    model, device = adapter.model, _device(adapter)
    d = adapter.dims
    ids = torch.tensor([prompt.ids], device=device)
    rows: list[Patch] = [
        (layer, head, values[layer, head])
        for values in z_means
        for layer in range(d.n_layers)
        for head in range(d.n_heads)
    ]
    with torch.inference_mode():
        prefix = model(input_ids=ids[:, :-1], use_cache=True, logits_to_keep=1).cache
        base = model(input_ids=ids[:, -1:], cache=copy.deepcopy(prefix), use_cache=True).logits[0, -1]
        baseline = float(base.float().softmax(-1)[prompt.target])
        probabilities = []
        for first in range(0, len(rows), ROWS_PER_PASS):
            chunk = rows[first : first + ROWS_PER_PASS]
            cache = copy.deepcopy(prefix)
            cache.batch_repeat_interleave(len(chunk))
            handles = [
                adapter.attn_out_proj(layer).register_forward_pre_hook(
                    _replace_last(chunk, layer, d.d_head), with_kwargs=True
                )
                for layer in sorted({layer for layer, _, _ in chunk})
            ]
            try:
                out = model(input_ids=ids[:, -1:].expand(len(chunk), 1), cache=cache, use_cache=True)
            finally:
                for handle in handles:
                    handle.remove()
            probabilities.append(out.logits[:, -1].float().softmax(-1)[:, prompt.target].cpu())
    return baseline, torch.cat(probabilities).view(len(z_means), d.n_layers, d.n_heads)


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
        hidden = output[0] if isinstance(output, tuple) else output
        hidden = hidden.clone()
        hidden[torch.arange(hidden.shape[0]), last] += vector.to(hidden)
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handle = adapter.blocks()[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def zero_shot_accuracy(
    adapter: ArchitectureAdapter, prompts: list[ICLPrompt], layer: int, vector: Tensor | None
) -> float:
    """Top-1 accuracy on zero-shot prompts (right-padded in one batch: causal attention never
    reads the padding), with ``vector`` added after ``layer`` at the last token."""
    width = max(len(p.ids) for p in prompts)
    ids = torch.tensor([p.ids + [p.ids[-1]] * (width - len(p.ids)) for p in prompts], device=_device(adapter))
    last = torch.tensor([len(p.ids) - 1 for p in prompts])
    kept = torch.unique(last)  # the unembedding runs at these positions only
    with torch.inference_mode(), added_at_last(adapter, layer, vector, last):
        logits = adapter.model(input_ids=ids, use_cache=False, logits_to_keep=kept.to(ids.device)).logits
    at = torch.searchsorted(kept, last)
    predicted = logits[torch.arange(len(prompts)), at.to(logits.device)].argmax(-1).cpu()
    return float((predicted == torch.tensor([p.target for p in prompts])).double().mean())


def measure_function_vectors(
    adapter: ArchitectureAdapter, prompts: ICLPrompts, config: FunctionVectorConfig, ablation: AblationConfig,
    progress: Callable[[str], None],
) -> tuple[FunctionVectorMeasures, AblationResult]:  # fmt: skip
    """The CIE of every head on every task (and on its null), then the zero-shot validation."""
    started = time.perf_counter()
    cie, null, clean_accuracy, shuffled, contributions = [], [], [], [], []
    passes = 0
    for i, task in enumerate(prompts.tasks):
        z_means, out_means, accuracy = task_means(adapter, task.clean)
        z_null, _, _ = task_means(adapter, task.shuffled)
        bases = []
        for prompt in task.shuffled:
            base, patched = patched_probabilities(adapter, prompt, [z_means, z_null])
            cie.append(patched[0] - base)
            null.append(patched[1] - base)
            bases.append(base)
        passes += len(task.clean) + len(task.shuffled) * (
            3 + -(-2 * adapter.dims.n_layers * adapter.dims.n_heads // ROWS_PER_PASS)
        )
        clean_accuracy.append(accuracy)
        shuffled.append(sum(bases) / len(bases))
        contributions.append(out_means)
        best = float(torch.stack(cie[-len(task.shuffled) :]).mean(0).max())
        progress(
            f"function vectors: {task.name} ({i + 1}/{len(prompts.tasks)}): clean accuracy {accuracy:.2f}, "
            f"P(answer) shuffled {shuffled[-1]:.3f}, best CIE {best:.3f}"
        )
    measures = FunctionVectorMeasures(
        [t.name for t in prompts.tasks], torch.stack(cie), torch.stack(null), clean_accuracy, shuffled
    )
    validation = _validate(adapter, prompts, measures, contributions, config, ablation, started, passes)
    return measures, validation


def candidate_layers(n_layers: int) -> list[int]:
    """Where a function vector is tried: after layers L/4, L/3, L/2 and 2L/3."""
    return sorted({n_layers // 4, n_layers // 3, n_layers // 2, 2 * n_layers // 3})


def _validate(
    adapter: ArchitectureAdapter, prompts: ICLPrompts, measures: FunctionVectorMeasures,
    contributions: list[Tensor], config: FunctionVectorConfig, ablation: AblationConfig, started: float,
    passes: int,
) -> AblationResult:  # fmt: skip
    """Zero-shot accuracy before and after adding the top heads' vector, at the candidate layer
    where it helps most; each random draw gets its own best layer too, so the comparison is fair."""
    scored = FunctionVectorHead(config).score(measures)
    top = top_labelled(scored.scores, scored.labels(config.threshold), config.top_k)
    d = adapter.dims
    pool_excludes = labelled_heads(scored.labels(config.threshold))
    draws = random_head_sets(d.n_layers, d.n_heads, pool_excludes, len(top), ablation.draws, ablation.seed)
    layers = candidate_layers(d.n_layers)
    tasks = prompts.tasks
    before = [zero_shot_accuracy(adapter, task.zero_shot, 0, None) for task in tasks]
    n = len(tasks)
    baseline = sum(before) / n
    check = Check("function_vector_zero_shot", "zero_shot_accuracy", baseline, ablation)
    if not top:
        return check.result([], [], [], {}, passes + n, started, {})

    def best(heads: list[Head]) -> tuple[int, list[float]]:
        """The candidate layer with the highest mean accuracy, and the per-task accuracy there."""
        tried = {
            layer: [
                zero_shot_accuracy(
                    adapter, task.zero_shot, layer, torch.stack([contributions[i][h] for h in heads]).sum(0)
                )
                for i, task in enumerate(tasks)
            ]
            for layer in layers
        }
        layer = max(layers, key=lambda at: sum(tried[at]))
        return layer, tried[layer]

    top_layer, after = best(top)
    random_best = [best(heads) for heads in draws]
    passes += n * (1 + len(layers) * (1 + len(draws)))
    per_task = {
        task.name: {
            "before": before[i], "after": after[i], "random_after": [acc[i] for _, acc in random_best],
            "prompts": len(task.zero_shot), "clean_accuracy": measures.clean_accuracy[i],
            "shuffled_probability": round(measures.shuffled_probability[i], 6),
        }
        for i, task in enumerate(tasks)
    }  # fmt: skip
    effects = [sum(after) / n - baseline] + [sum(acc) / n - baseline for _, acc in random_best]
    details = {
        "layer_added": top_layer,
        "layers_tried": layers,
        "random_layers": [at for at, _ in random_best],
        "per_task": per_task,
    }
    return check.result(top, effects, draws, {}, passes, started, details)


class FunctionVectorUnit(MeasuredUnit):
    """Function-vector heads: causal indirect effects on this tokenizer's in-context tasks."""

    classifier: FunctionVectorHead

    def dataset_spec(self) -> ICLSpec:
        return self.classifier.config.dataset

    def make_dataset(self, loaded: LoadedModel, spec: ICLSpec) -> ICLPrompts | Skip:
        try:
            return generate_icl(loaded.tokenizer, loaded.bos.token_id, spec)
        except ValueError as exc:  # too few tasks with single-token answers
            return Skip(str(exc))

    def measure(
        self, loaded: LoadedModel, dataset: ICLPrompts, progress: Progress
    ) -> tuple[FunctionVectorMeasures, AblationResult]:
        return measure_function_vectors(
            loaded.adapter, dataset, self.classifier.config, self.run_config.ablation, progress
        )
