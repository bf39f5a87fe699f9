"""Head-classifier units: what every head class shares, and the pattern classes.

A head unit scores every head of one model with one classifier and stores the scores, labels,
ranks, evidence and, where the class has one, its validation. Pattern classifiers that share a
probe share one capture (through :class:`Shared`): the probe is generated once per tokenizer,
run once with every layer's pattern captured, and each classifier scores the same tensors.
Induction is then validated by mean-ablation.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from torch import Tensor

from classifiers import HeadClassifier, HeadScores, PatternClassifier
from classifiers.base import MeasuredClassifier
from classifiers.keys import HEAD_CLASSIFIER
from classifiers.probes import ProbeSet, ProbeSpec, generate
from classifiers.validation import RATIO_FLOOR, AblationResult
from db.store import RunIds, UnitRow, write_head_unit
from survey.engine.capture import CaptureSpec, capture
from survey.engine.validation import validate_induction
from survey.errors import SurveyError
from survey.loading.loaders import LoadedModel, context_length
from survey.units.base import Dataset, PlannedUnit, Progress, RunConfig, Shared, Skip, UnitKind, UnitResult

PATTERN_SUM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class HeadResult:
    """One classifier's scores for every head, and its validation where the class has one."""

    scores: HeadScores
    validation: AblationResult | None


class HeadUnit(UnitKind):
    """A unit that scores every head with one classifier (``classifier`` is its class)."""

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
        settings with the validation's own gates."""
        definition: dict[str, Any] = {"classifier": type(self.classifier).definition()}
        if self.classifier.validated:
            validation = {**self.run_config.ablation.to_dict(), "ratio_floor": RATIO_FLOOR}
            definition["validation"] = validation | self.validation_gates()
        return definition

    def validation_gates(self) -> dict[str, float]:
        """Constants of this class's validation beyond the shared ones."""
        return {}

    def dataset(self, loaded: LoadedModel, shared: Shared) -> Dataset | Skip:
        spec = self.dataset_spec()
        made: Dataset | Skip = shared.get(("dataset", spec), lambda: self.make_dataset(loaded, spec))
        return made

    @abstractmethod
    def dataset_spec(self) -> Any:
        """The spec of the dataset the classifier reads (units with equal specs share it)."""

    @abstractmethod
    def make_dataset(self, loaded: LoadedModel, spec: Any) -> Dataset | Skip:
        """Generate the dataset for this model's tokenizer."""

    def write(
        self, engine: Engine, ids: RunIds, planned: PlannedUnit, result: HeadResult, replace: bool
    ) -> None:
        row = UnitRow(
            planned.key, self.full_definition(), self.classifier.config.to_dict(), planned.dataset.describe(),
            self.classifier.threshold,
        )  # fmt: skip
        write_head_unit(engine, ids, row, result.scores, result.validation, replace)

    def describe(self, done: UnitResult) -> str:
        c, result = self.classifier, done.result
        labelled = int(result.scores.labels(c.threshold).sum())
        n_heads = result.scores.scores.numel()
        line = f"{c.name} v{c.version}: {labelled}/{n_heads} heads labelled [{done.seconds:.1f} s]"
        v = result.validation
        if v is not None and v.ratio is not None:
            line += (
                f"; validation: {v.metric} {v.effect_top:+.3f} for the top {v.k} "
                f"vs {v.effect_random_mean:+.3f} "
                f"for random heads, ratio {v.ratio:.1f} ({'supported' if v.supported else 'NOT supported'}, "
                f"{v.forward_passes} passes, {v.seconds:.1f} s)"
            )
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


class ProbeReader(HeadUnit):
    """A head unit whose dataset is a probe (``dataset_spec`` gives its spec)."""

    def make_dataset(self, loaded: LoadedModel, spec: ProbeSpec) -> ProbeSet:
        return probe_for(loaded, self.name, spec)


class MeasuredUnit(HeadUnit):
    """A class the survey measures for it alone: :meth:`measure`, then the pure score."""

    classifier: MeasuredClassifier

    def compute(
        self, loaded: LoadedModel, planned: PlannedUnit, shared: Shared, progress: Progress
    ) -> HeadResult:
        measures, validation = self.measure(loaded, planned.dataset, progress)
        return HeadResult(self.classifier.score(measures), validation)

    @abstractmethod
    def measure(
        self, loaded: LoadedModel, dataset: Any, progress: Progress
    ) -> tuple[Any, AblationResult | None]:
        """The measurements the class scores, and its validation (None: it has none)."""


class PatternUnit(ProbeReader):
    """A pattern classifier: scored from the attention patterns captured on its probe."""

    classifier: PatternClassifier

    def dataset_spec(self) -> ProbeSpec:
        return self.classifier.config.probe

    def compute(
        self, loaded: LoadedModel, planned: PlannedUnit, shared: Shared, progress: Progress
    ) -> HeadResult:
        probe = planned.dataset
        assert isinstance(probe, ProbeSet)
        patterns = shared.get(("patterns", probe.hash), lambda: captured_patterns(loaded, probe))
        scores = self.classifier.score(patterns, probe)
        return HeadResult(scores, self.validate(loaded, probe, scores))

    def validate(self, loaded: LoadedModel, probe: ProbeSet, scores: HeadScores) -> AblationResult | None:
        """The class's validation (None: it has none)."""
        return None


class InductionUnit(PatternUnit):
    """Induction: a pattern class validated by mean-ablating its top heads on the second repeat."""

    def validate(self, loaded: LoadedModel, probe: ProbeSet, scores: HeadScores) -> AblationResult:
        labels = scores.labels(self.classifier.threshold)
        return validate_induction(loaded.adapter, probe, scores.scores, labels, self.run_config.ablation)


def captured_patterns(loaded: LoadedModel, probe: ProbeSet) -> Tensor:
    """``[layer, batch, head, query, key]`` patterns on the probe, checked to be distributions."""
    patterns = capture(loaded.adapter, probe.tokens, CaptureSpec.of("pattern")).stacked("pattern")
    check_patterns(loaded.source.name, patterns)
    return patterns
