"""Head-classifier units: what every head class shares, and the pattern classes.

A head unit scores every head of one model with one classifier and stores the scores, labels,
ranks, evidence, the label statistics (``classifiers.statistics``) and, where the class has one,
its validation. Pattern classifiers that share a probe share one capture (through
:class:`Shared`): the probe is generated once per tokenizer, run once with every layer's pattern
captured, and each classifier scores the same tensors; so do the probe's null and the two other
seeds the labels' stability is measured on. Induction and anti-induction, which also read the OV
copy score of the attended token, are in :mod:`survey.units.induction`.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from sqlalchemy import Engine
from torch import Tensor

from classifiers import HeadClassifier, HeadScores, PatternClassifier
from classifiers.base import MeasuredClassifier
from classifiers.keys import HEAD_CLASSIFIER
from classifiers.probes import ProbeSet, ProbeSpec, generate
from classifiers.registry import Registry, classifier_definition
from classifiers.statistics import ALPHA, mean_pairwise_jaccard
from classifiers.validation import AblationResult
from db.common.errors import SurveyError
from db.store import RunIds, UnitRow, write_head_unit
from survey.engine.capture import CaptureSpec, capture
from survey.engine.validation import labelled_heads
from survey.loading.loaders import LoadedModel, context_length
from survey.units.base import D, PlannedUnit, Progress, RunConfig, Shared, Skip, UnitKind, UnitResult

PATTERN_SUM_TOLERANCE = 1e-3
STABILITY_SEEDS = 3  # probe seeds a pattern class is scored on: the probe's own and the next ones


HEAD_UNITS: Registry[type[HeadUnit[Any]]] = Registry("unit", SurveyError)
"""Head unit classes by the ``unit`` tag of the classifiers they measure (each registers itself)."""


@dataclass(frozen=True)
class HeadResult:
    """One classifier's scores for every head, its validation where the class has one, and
    unit-wide statistics beyond the null's (e.g. the labels on other probe seeds)."""

    scores: HeadScores
    validation: AblationResult | None
    statistics: dict[str, Any] = field(default_factory=dict)

    def unit_statistics(self, classifier: HeadClassifier) -> dict[str, Any]:
        """What ``units.statistics`` stores: the null, its false-positive rate, and the rest."""
        threshold = classifier.threshold
        return {
            "null": classifier.null, "alpha": ALPHA,
            "null_label_rate": self.scores.null_label_rate(threshold),
            "null_fp_rate": self.scores.null_false_positive_rate(threshold), **self.statistics,
        }  # fmt: skip


class HeadUnit(UnitKind[D, HeadResult]):
    """A unit that scores every head with one classifier (``classifier`` is its class) on the
    dataset ``D`` it reads for one model."""

    kind = HEAD_CLASSIFIER

    def __init__(self, config: RunConfig, classifier: type[HeadClassifier]) -> None:
        super().__init__(config)
        self.classifier = classifier()

    @property
    def name(self) -> str:
        return self.classifier.name

    @property
    def version(self) -> int:
        return self.classifier.version

    def definition(self) -> dict[str, Any]:
        """The classifier's definition and, for a class the ablation settings change, those
        settings."""
        definition: dict[str, Any] = {"classifier": classifier_definition(type(self.classifier))}
        if self.classifier.validated:
            definition["validation"] = self.run_config.ablation.to_dict()
        return definition

    def dataset(self, loaded: LoadedModel, shared: Shared) -> D | Skip:
        spec = self.dataset_spec()
        made: D | Skip = shared.get(("dataset", spec), lambda: self.make_dataset(loaded, spec))
        return made

    @abstractmethod
    def dataset_spec(self) -> Any:
        """The spec of the dataset the classifier reads (units with equal specs share it)."""

    @abstractmethod
    def make_dataset(self, loaded: LoadedModel, spec: Any) -> D | Skip:
        """Generate the dataset for this model's tokenizer."""

    def write(
        self,
        engine: Engine,
        ids: RunIds,
        planned: PlannedUnit[D, HeadResult],
        result: HeadResult,
        replace: bool,
    ) -> None:
        row = UnitRow(
            planned.key, self.full_definition(), self.classifier.config.to_dict(), planned.dataset.describe(),
            self.classifier.threshold, result.unit_statistics(self.classifier),
        )  # fmt: skip
        write_head_unit(engine, ids, row, result.scores, result.validation, replace)

    def describe(self, done: UnitResult[D, HeadResult]) -> str:
        c, result = self.classifier, done.result
        labelled = int(result.scores.labels(c.threshold).sum())
        n_heads = result.scores.scores.numel()
        line = f"{c.name} v{c.version}: {labelled}/{n_heads} heads labelled [{done.seconds:.1f} s]"
        on_null = result.scores.null_label_rate(c.threshold)
        over = result.scores.null_false_positive_rate(c.threshold)
        if on_null is not None and over is not None:
            line += f"; on its null {100 * on_null:.1f}% labelled, {100 * over:.1f}% over threshold"
        if "seed_jaccard" in result.statistics:
            line += f"; seed Jaccard {result.statistics['seed_jaccard']:.2f}"
        if result.validation is not None:
            line += f"; {result.validation.line()}"
        return line


def probe_for(loaded: LoadedModel, name: str, spec: ProbeSpec) -> ProbeSet:
    """A probe for this model's tokenizer; SurveyError when it cannot be built or does not fit
    the model's context."""
    try:
        probe = generate(spec, loaded.tokenizer, loaded.bos.token_id, loaded.adapter.dims.d_vocab)
    except ValueError as exc:
        raise SurveyError(f"{name}: cannot build its probe for {loaded.source.name!r}: {exc}") from None
    limit = context_length(loaded.model)
    if limit is not None and probe.tokens.shape[1] > limit:
        raise SurveyError(
            f"{name} needs {probe.tokens.shape[1]} positions but {loaded.source.name!r} supports {limit}"
        )
    return probe


def check_patterns(name: str, patterns: Tensor) -> None:
    """Every captured attention row must be a distribution; otherwise the view is broken."""
    worst = float((patterns.sum(-1) - 1).abs().max())
    if worst > PATTERN_SUM_TOLERANCE:
        raise SurveyError(f"attention patterns of {name!r} do not sum to 1 (off by {worst:.2g})")


class ProbeReader(HeadUnit[ProbeSet]):
    """A head unit whose dataset is a probe (``dataset_spec`` gives its spec)."""

    def make_dataset(self, loaded: LoadedModel, spec: ProbeSpec) -> ProbeSet:
        return probe_for(loaded, self.name, spec)


M = TypeVar("M")  # what a measured class's unit measures for its pure score


class MeasuredUnit(HeadUnit[D], Generic[D, M]):
    """A class the survey measures for it alone on its dataset ``D``: :meth:`measure` gives the
    measurements ``M``, then the pure score."""

    classifier: MeasuredClassifier

    def compute(
        self, loaded: LoadedModel, planned: PlannedUnit[D, HeadResult], shared: Shared, progress: Progress
    ) -> HeadResult:
        measures, validation = self.measure(loaded, planned.dataset, progress)
        return HeadResult(self.classifier.score(measures), validation)

    @abstractmethod
    def measure(self, loaded: LoadedModel, dataset: D, progress: Progress) -> tuple[M, AblationResult | None]:
        """The measurements the class scores, and its validation (None: it has none)."""


@HEAD_UNITS.register("pattern")
class PatternUnit(ProbeReader):
    """A pattern classifier: scored from the attention patterns captured on its probe (and, for
    a class whose null needs one, on the probe's null), then again on the next probe seeds for
    the stability of its labels."""

    classifier: PatternClassifier

    def dataset_spec(self) -> ProbeSpec:
        return self.classifier.config.probe

    def definition(self) -> dict[str, Any]:
        return {**super().definition(), "stability_seeds": STABILITY_SEEDS}

    def compute(
        self,
        loaded: LoadedModel,
        planned: PlannedUnit[ProbeSet, HeadResult],
        shared: Shared,
        progress: Progress,
    ) -> HeadResult:
        probe = planned.dataset
        scores = self.scored(loaded, probe, shared)
        threshold = self.classifier.threshold
        seeds = [probe.spec.seed + offset for offset in range(STABILITY_SEEDS)]
        label_sets = [set(labelled_heads(scores.labels(threshold)))]
        for seed in seeds[1:]:
            other = self.shared_probe(loaded, replace(probe.spec, seed=seed), shared)
            label_sets.append(set(labelled_heads(self.scored(loaded, other, shared).labels(threshold))))
        stability = {
            "seeds": seeds,
            "labels_by_seed": [sorted(list(h) for h in heads) for heads in label_sets],
            "seed_jaccard": round(mean_pairwise_jaccard(label_sets), 6),
        }
        return HeadResult(scores, self.validate(loaded, probe, scores, progress), stability)

    def scored(self, loaded: LoadedModel, probe: ProbeSet, shared: Shared) -> HeadScores:
        """The class's scores on ``probe``; captures are shared with every class on that probe."""
        patterns = shared_patterns(loaded, probe, shared)
        return self.classifier.score(patterns, probe, self.null_patterns(loaded, probe, shared))

    def null_patterns(self, loaded: LoadedModel, probe: ProbeSet, shared: Shared) -> Tensor | None:
        """The patterns on the probe's null, for a class whose null reads them (else None)."""
        null_spec = probe.spec.null()
        if not self.classifier.null_probe or null_spec is None:
            return None
        return shared_patterns(loaded, self.shared_probe(loaded, null_spec, shared), shared)

    def shared_probe(self, loaded: LoadedModel, spec: ProbeSpec, shared: Shared) -> ProbeSet:
        """The probe ``spec`` names, generated once per model."""
        probe: ProbeSet = shared.get(("dataset", spec), lambda: self.make_dataset(loaded, spec))
        return probe

    def validate(
        self, loaded: LoadedModel, probe: ProbeSet, scores: HeadScores, progress: Progress
    ) -> AblationResult | None:
        """The class's validation (None: it has none)."""
        return None


def shared_patterns(loaded: LoadedModel, probe: ProbeSet, shared: Shared) -> Tensor:
    """The probe's captured patterns, captured once per model and probe."""
    patterns: Tensor = shared.get(("patterns", probe.hash), lambda: captured_patterns(loaded, probe))
    return patterns


def captured_patterns(loaded: LoadedModel, probe: ProbeSet) -> Tensor:
    """``[layer, batch, head, query, key]`` patterns on the probe, checked to be distributions."""
    patterns = capture(loaded.adapter, probe.tokens, CaptureSpec.of("pattern")).stacked("pattern")
    check_patterns(loaded.source.name, patterns)
    return patterns
