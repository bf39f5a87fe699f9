"""The successor measurement: W_U·W_OV on each ordinal token's effective embedding MLP0(W_E),
ranked among the ordinal tokens of every kept sequence (``classifiers.successor`` scores it)."""

from __future__ import annotations

import torch

from classifiers.ordinal import OrdinalSpec, OrdinalTasks, generate_ordinal
from classifiers.successor import SuccessorHead, SuccessorMeasures
from survey.adapters import ArchitectureAdapter
from survey.engine.ov import ov_outputs
from survey.loading.loaders import LoadedModel
from survey.units.base import Progress, Skip
from survey.units.heads import HEAD_UNITS, MeasuredUnit


def successor_measures(adapter: ArchitectureAdapter, tasks: OrdinalTasks) -> SuccessorMeasures:
    """For every head and pair, which ordinal token its OV output on the member's effective
    embedding ranks first (-1 when the top is tied)."""
    members = tasks.members
    index = {token_id: c for c, token_id in enumerate(members)}
    pairs = [(t.name, index[t.token_ids[i]], index[t.token_ids[j]]) for t in tasks.tasks for i, j in t.pairs]
    inputs = torch.tensor([i for _, i, _ in pairs])
    ids = torch.tensor(list(members))
    w_u = adapter.unembedding()[0].detach().float()  # [d_model, vocab]
    directions = w_u[:, ids.to(w_u.device)]  # [d_model, candidate]
    winners = []
    for out in ov_outputs(adapter, adapter.effective_embedding(ids[inputs])):  # [pair, head, d_model]
        top = (out @ directions).topk(2, dim=-1)  # over the candidates
        tied = top.values[..., 0] == top.values[..., 1]
        winners.append(torch.where(tied, -1, top.indices[..., 0]).T.cpu())  # [head, pair]
    return SuccessorMeasures(
        candidates=list(members.values()),
        tasks=[name for name, _, _ in pairs],
        inputs=inputs,
        successors=torch.tensor([j for _, _, j in pairs]),
        predicted=torch.stack(winners),
    )


@HEAD_UNITS.register("successor")
class SuccessorUnit(MeasuredUnit[OrdinalTasks, SuccessorMeasures]):
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
        return successor_measures(loaded.adapter, dataset), None
