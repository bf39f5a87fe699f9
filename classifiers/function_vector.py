"""Function-vector heads (Todd et al. 2023): heads whose mean output at the last token carries
an in-context task, so patching it into a prompt that no longer shows the task brings the
answer back.

The survey measures, per task, each head's causal indirect effect (CIE): the rise in the
probability of the right answer on shuffled-label prompts when the head's output at the last
token is replaced by its mean over clean 10-shot prompts of the task. Scoring is pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from classifiers.base import HeadScores, MeasuredClassifier
from classifiers.icl_prompts import ICLSpec
from classifiers.jsonable import JsonFields
from classifiers.registry import register


@dataclass(frozen=True)
class FunctionVectorConfig(JsonFields):
    """Threshold on the mean CIE, the prompts, and how many top heads make the function vector."""

    threshold: float
    dataset: ICLSpec = ICLSpec()
    top_k: int = 10

    def dataset_line(self) -> str:
        """One line naming the dataset, for listings."""
        d = self.dataset
        return (
            f"in-context tasks ({d.shots}-shot, {d.clean_prompts} clean and {d.shuffled_prompts} shuffled "
            "prompts each)"
        )


@dataclass(frozen=True)
class FunctionVectorMeasures:
    """``cie [prompt, layer, head]``: the rise in P(answer) on each shuffled prompt, the tasks'
    prompts in order, the same number per task; ``null``: the rise when the patched mean comes
    from the task's shuffled prompts instead. Per task, the clean few-shot accuracy and the mean
    P(answer) on the shuffled prompts."""

    tasks: list[str]
    cie: Tensor
    null: Tensor
    clean_accuracy: list[float]
    shuffled_probability: list[float]

    def per_task(self) -> Tensor:
        """``[task, layer, head]``: the mean CIE over each task's prompts."""
        return self.cie.view(len(self.tasks), -1, *self.cie.shape[1:]).mean(1)


@register
class FunctionVectorHead(MeasuredClassifier):
    """Function-vector head (Todd et al.): its mean output at the last token carries the task.

    Threshold 0.01: patching the head's mean output alone raises the answer's probability on
    shuffled-label prompts by at least one percentage point, averaged over the tasks.
    """

    name = "function_vector"
    version = 3  # 3: q < 0.01 against the shuffled-prompt mean, 8 shuffled prompts; 20-draw validation
    unit = "function_vector"
    validated = True
    summary = "its mean output at the last token carries an in-context task (Todd et al.)"
    formula = (
        "mean over tasks and shuffled-label prompts of P(answer | head's last-token output := its mean "
        "over clean 10-shot prompts) − P(answer | shuffled)"
    )
    null = "the same patch with the head's mean over the task's shuffled-label prompts (task not shown)"
    default_config: ClassVar[FunctionVectorConfig] = FunctionVectorConfig(threshold=0.01)
    config: FunctionVectorConfig

    def score(self, measures: FunctionVectorMeasures) -> HeadScores:
        per_task = measures.per_task()
        scores = per_task.mean(0)
        n_layers, n_heads = scores.shape
        evidence = [
            [
                {
                    "per_task_cie": {
                        t: round(float(per_task[i, layer, head]), 6) for i, t in enumerate(measures.tasks)
                    }
                }
                for head in range(n_heads)
            ]
            for layer in range(n_layers)
        ]
        return HeadScores(scores, evidence, samples=measures.cie, null=measures.null)
