"""The neuron pass: one streaming, resumable pass over a corpus that summarises every MLP neuron.

The corpus is cut, per model, into fixed windows of ``window`` tokens (``survey.corpus.windows``),
each with the model's BOS in front; BOS positions are left out of every statistic. The pass
(``survey.engine.neuron_pass``) feeds each layer's trackers (``classifiers.neuron_trackers``) and
is checkpointed every ``checkpoint_every`` batches, so a killed pass resumes; the summary
(``survey.engine.neuron_summary``) turns the trackers into rows.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from classifiers.keys import NEURON_SUMMARY
from db.common.errors import SurveyError
from db.common.neuron_config import NeuronConfig
from db.common.settings import cache_root
from db.neuron_store import write_neuron_unit
from db.store import RunIds, UnitRow
from survey.corpus.sources import Corpus, resolve_corpus
from survey.corpus.windows import Windows, cut_windows
from survey.engine.neuron_pass import run_pass
from survey.engine.neuron_summary import FAMILY_GATES, NeuronSummary, summarise
from survey.loading.loaders import LoadedModel, context_length
from survey.units.base import MODEL_UNITS, ModelUnitKind, PlannedUnit, Progress, RunConfig, Shared, UnitResult

VERSION = 2


def dataset_hash(corpus_hash: str, bos_id: int | None, config: NeuronConfig) -> str:
    """The unit's dataset hash: the corpus content, the BOS policy and the pass settings."""
    payload = {"corpus": corpus_hash, "bos": bos_id, **config.result_fields()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class NeuronPlan:
    """A neuron unit, resolved before anything is written: its corpus, settings, windows and
    where its resumable state is kept."""

    corpus: Corpus
    corpus_hash: str
    config: NeuronConfig
    dataset_hash: str
    windows: Windows
    checkpoint: Path

    @property
    def hash(self) -> str:
        """The dataset hash: corpus content, BOS policy and pass settings."""
        return self.dataset_hash

    def describe(self) -> dict[str, Any]:
        """What is stored beside the dataset hash."""
        return {"corpus": self.corpus.name, "corpus_hash": self.corpus_hash, **self.config.result_fields()}


def plan_neurons(loaded: LoadedModel, config: NeuronConfig) -> NeuronPlan:
    """Resolve and hash the corpus and cut its windows (SurveyError when it cannot be read or has
    no document as long as a window), before anything is written."""
    limit = context_length(loaded.model)
    needed = config.window + (loaded.bos.token_id is not None)
    if limit is not None and needed > limit:
        raise SurveyError(
            f"neuron windows need {needed} positions but {loaded.source.name!r} supports {limit}"
        )
    corpus = resolve_corpus(config.corpus)
    corpus_hash = corpus.hash()
    windows = cut_windows(corpus, loaded.tokenizer, config)
    digest = dataset_hash(corpus_hash, loaded.bos.token_id, config)
    return NeuronPlan(
        corpus, corpus_hash, config, digest, windows, checkpoint_path(loaded.resolved_sha, digest)
    )


def checkpoint_path(resolved_sha: str, dataset_hash: str) -> Path:
    """Where the pass over this model and dataset keeps its resumable state."""
    return cache_root() / "neuron-passes" / f"{resolved_sha[:16]}-{dataset_hash[:16]}.pt"


def compute_summary(loaded: LoadedModel, plan: NeuronPlan, echo: Callable[[str], None]) -> NeuronSummary:
    """Run (or resume) the pass and summarise; the checkpoint is left for the caller to remove
    once the summary is stored."""
    windows = plan.windows
    echo(
        f"neurons: {windows.tokens.shape[0]} windows x {windows.tokens.shape[1]} tokens from "
        f"{len(windows.documents)} documents of {plan.corpus.name}"
    )
    key = f"{loaded.resolved_sha}:{plan.dataset_hash}"
    trackers = run_pass(loaded, windows, plan.config, plan.checkpoint, key, echo)
    return summarise(loaded, windows, trackers, plan.config, echo)


@MODEL_UNITS.register("neurons")
class NeuronUnit(ModelUnitKind[NeuronPlan, NeuronSummary]):
    """The neuron pass: every MLP neuron summarised over the corpus, resumable."""

    kind = NEURON_SUMMARY
    name = "neurons"
    cost = 18
    version = VERSION

    def __init__(self, config: RunConfig, neurons: NeuronConfig) -> None:
        super().__init__(config)
        self.config = neurons

    @classmethod
    def for_run(cls, config: RunConfig) -> NeuronUnit | None:
        """The pass when the run asks for it."""
        return None if config.neurons is None else cls(config, config.neurons)

    def definition(self) -> dict[str, Any]:
        return {"config": self.config.result_fields(), "gates": FAMILY_GATES}

    def dataset(self, loaded: LoadedModel, shared: Shared) -> NeuronPlan:
        return plan_neurons(loaded, self.config)

    def compute(
        self,
        loaded: LoadedModel,
        planned: PlannedUnit[NeuronPlan, NeuronSummary],
        shared: Shared,
        progress: Progress,
    ) -> NeuronSummary:
        return compute_summary(loaded, planned.dataset, progress)

    def write(
        self,
        engine: Engine,
        ids: RunIds,
        planned: PlannedUnit[NeuronPlan, NeuronSummary],
        result: NeuronSummary,
        replace: bool,
    ) -> None:
        """Store the pass in one transaction, then drop its checkpoint."""
        plan = planned.dataset
        row = UnitRow(
            planned.key, self.full_definition(), self.config.result_fields(), plan.describe(),
            statistics=result.statistics,
        )  # fmt: skip
        write_neuron_unit(engine, ids, row, plan.corpus, plan.corpus_hash, result, replace)
        plan.checkpoint.unlink(missing_ok=True)

    def describe(self, done: UnitResult[NeuronPlan, NeuronSummary]) -> str:
        summary = done.result
        counts = Counter(row["family"] for row in summary.neurons if row["family"])
        return (
            f"neurons v{VERSION}: {len(summary.neurons)} neurons, {len(summary.examples)} examples, "
            f"families {dict(sorted(counts.items()))} [{done.seconds:.1f} s]"
        )
