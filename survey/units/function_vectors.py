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
from collections.abc import Callable

import torch
from torch import Tensor

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
from survey.engine.capture import CaptureSpec, capture
from survey.engine.copy_patching import copy_passes, patched_probabilities
from survey.engine.last_token import (
    head_contributions,
    right_padded,
    zero_shot_accuracy,
)
from survey.engine.replay import BlockOutputs, recorded
from survey.engine.validation import Check, labelled_heads, random_head_sets, top_labelled
from survey.loading.loaders import LoadedModel
from survey.units.base import PlannedUnit, Progress, Shared, Skip
from survey.units.heads import HEAD_UNITS, HeadResult, MeasuredUnit

MEANS_BATCH = 8  # clean prompts a pass when taking the task means


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


@HEAD_UNITS.register("function_vector")
class FunctionVectorUnit(MeasuredUnit[ICLPrompts, FunctionVectorMeasures]):
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
        self,
        loaded: LoadedModel,
        planned: PlannedUnit[ICLPrompts, HeadResult],
        shared: Shared,
        progress: Progress,
    ) -> HeadResult:
        """The scores, the validation, and every task's clean accuracy and exclusion (unit statistics)."""
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
