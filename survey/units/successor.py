"""The successor measurement: W_U·W_OV on each ordinal token's residual after the first block,
restricted to the sequence's own tokens (``classifiers.successor`` scores it)."""

from __future__ import annotations

import torch

from classifiers.ordinal import OrdinalSpec, OrdinalTasks, generate_ordinal
from classifiers.successor import SuccessorHead, SuccessorMeasures
from survey.adapters import ArchitectureAdapter
from survey.engine.ov import ov_readouts
from survey.loading.loaders import LoadedModel
from survey.units.base import Progress, Skip
from survey.units.heads import MeasuredUnit


def successor_measures(
    adapter: ArchitectureAdapter, tasks: OrdinalTasks, bos_id: int | None
) -> SuccessorMeasures:
    """For every head and pair, which member of the sequence its OV output ranks first."""
    w_u, b_u = adapter.unembedding()
    w_u, b_u = w_u.detach().float(), b_u.detach().float()
    hits, predicted = [], []
    for task in tasks.tasks:
        ids = torch.tensor(task.token_ids)
        inputs = torch.tensor([i for i, _ in task.pairs])
        targets = torch.tensor([j for _, j in task.pairs])
        winners = []
        with torch.inference_mode():
            for read_out in ov_readouts(adapter, ids[inputs], bos_id):  # [pair, head, d_model]
                logits = read_out @ w_u[:, ids] + b_u[ids]  # [pair, head, member]
                winners.append(logits.argmax(-1).T.cpu())  # [head, pair]
        won = torch.stack(winners)  # [layer, head, pair]
        predicted.append(won)
        hits.append(won == targets)
    return SuccessorMeasures(
        [t.name for t in tasks.tasks],
        [t.words for t in tasks.tasks],
        [t.pairs for t in tasks.tasks],
        hits,
        predicted,
    )


class SuccessorUnit(MeasuredUnit):
    """Successor heads, read from the weights on this tokenizer's ordinal sequences."""

    classifier: SuccessorHead

    def dataset_spec(self) -> OrdinalSpec:
        return self.classifier.config.dataset

    def make_dataset(self, loaded: LoadedModel, spec: OrdinalSpec) -> OrdinalTasks | Skip:
        try:
            return generate_ordinal(loaded.tokenizer, spec)
        except ValueError as exc:  # too few single-token members for this tokenizer
            return Skip(str(exc))

    def measure(
        self, loaded: LoadedModel, dataset: OrdinalTasks, progress: Progress
    ) -> tuple[SuccessorMeasures, None]:
        return successor_measures(loaded.adapter, dataset, loaded.bos.token_id), None
