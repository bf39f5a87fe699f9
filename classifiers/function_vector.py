"""Function-vector heads (Todd et al. 2023): heads whose mean output at the last token carries
an in-context task, so patching it into a prompt that no longer shows the task brings the
answer back.

The survey measures, per task, each head's causal indirect effect (CIE): the rise in the
probability of the right answer on 25 shuffled-label prompts when the head's output at the last
token is replaced by its mean over clean 10-shot prompts of the task. As in Todd et al., a task
counts only where the model does it: its clean 10-shot accuracy must reach ``min_clean_accuracy``
(0.5), else it is excluded from the score, the null and the validation, with the reason kept.
Scoring is pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from classifiers.base import HeadScores, MeasuredClassifier
from classifiers.icl_prompts import ICLSpec
from classifiers.jsonable import JsonFields
from classifiers.registry import register


@dataclass(frozen=True)
class FunctionVectorConfig(JsonFields):
    """Threshold on the mean CIE, the prompts, how many top heads make the function vector, and
    the clean accuracy a task needs to count."""

    threshold: float
    dataset: ICLSpec = ICLSpec()
    top_k: int = 10
    min_clean_accuracy: float = 0.5

    def dataset_line(self) -> str:
        """One line naming the dataset, for listings."""
        d = self.dataset
        return (
            f"in-context tasks ({d.shots}-shot, {d.clean_prompts} clean and {d.shuffled_prompts} shuffled "
            f"prompts each; a task counts where its clean accuracy is at least {self.min_clean_accuracy:g})"
        )


def excluded_tasks(clean_accuracy: dict[str, float], minimum: float) -> dict[str, str]:
    """The tasks the model does not do from clean shots, each with why it is excluded."""
    return {
        task: f"clean accuracy {accuracy:.2f} < {minimum:g}"
        for task, accuracy in clean_accuracy.items()
        if accuracy < minimum
    }


@dataclass(frozen=True)
class FunctionVectorMeasures:
    """``cie [prompt, layer, head]``: the rise in P(answer) on each shuffled prompt of the counted
    ``tasks``, in order, the same number per task; ``null``: the rise when the patched mean comes
    from the task's shuffled prompts instead. ``clean_accuracy``: every task's clean few-shot
    accuracy, counted or not; ``excluded``: the tasks left out, with why; per counted task, the
    mean P(answer) on the shuffled prompts."""

    tasks: list[str]
    cie: Tensor
    null: Tensor
    clean_accuracy: dict[str, float]
    shuffled_probability: list[float]
    excluded: dict[str, str]

    def per_task(self) -> Tensor:
        """``[task, layer, head]``: the mean CIE over each counted task's prompts."""
        return self.cie.view(len(self.tasks), -1, *self.cie.shape[1:]).mean(1)


@register
class FunctionVectorHead(MeasuredClassifier):
    """Function-vector head (Todd et al.): its mean output at the last token carries the task.

    Threshold 0.01: patching the head's mean output alone raises the answer's probability on
    shuffled-label prompts by at least one percentage point, averaged over the counted tasks.
    """

    name = "function_vector"
    version = 4  # 4: 25 shuffled prompts; tasks below 0.5 clean accuracy excluded; the vector at L/3
    unit = "function_vector"
    validated = True
    summary = "its mean output at the last token carries an in-context task (Todd et al.)"
    formula = (
        "mean over the tasks with clean 10-shot accuracy ≥ 0.5, and over 25 shuffled-label prompts each, of "
        "P(answer | head's last-token output := its mean over clean 10-shot prompts) − P(answer | shuffled)"
    )
    null = "the same patch with the head's mean over the task's shuffled-label prompts (task not shown)"
    default_config: ClassVar[FunctionVectorConfig] = FunctionVectorConfig(threshold=0.01)
    config: FunctionVectorConfig

    def score(self, measures: FunctionVectorMeasures) -> HeadScores:
        n_layers, n_heads = measures.cie.shape[1:]
        if not measures.tasks:  # every task excluded: nothing to score, no label
            scores = torch.zeros(n_layers, n_heads)
            evidence = [[self._evidence(measures, {}) for _ in range(n_heads)] for _ in range(n_layers)]
            return HeadScores(scores, evidence, gate=torch.zeros(n_layers, n_heads, dtype=torch.bool))
        per_task = measures.per_task()
        evidence = [
            [
                self._evidence(
                    measures, {t: float(per_task[i, layer, head]) for i, t in enumerate(measures.tasks)}
                )
                for head in range(n_heads)
            ]
            for layer in range(n_layers)
        ]
        return HeadScores(per_task.mean(0), evidence, samples=measures.cie, null=measures.null)

    @staticmethod
    def _evidence(measures: FunctionVectorMeasures, per_task_cie: dict[str, float]) -> dict[str, Any]:
        """One head's CIE per counted task, and the tasks excluded with why."""
        return {
            "per_task_cie": {task: round(cie, 6) for task, cie in per_task_cie.items()},
            "excluded_tasks": dict(measures.excluded),
        }
