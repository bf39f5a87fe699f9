"""Score every head of one loaded model with the chosen classifiers.

Pattern classifiers that share a probe share one capture: the probe is generated once per
tokenizer, run once with every layer's pattern captured, and each classifier scores the same
tensors. Classes with a validator (induction) are then validated by mean-ablation. IOI
classifiers that share their prompts share one run of the IOI suite (``survey.units.ioi``).
Measured classifiers (successor, function-vector, backup induction) each get their own
measurement (``MEASURES``), which may also return a validation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from classifiers import HeadClassifier, HeadScores, PatternClassifier
from classifiers.backup import BackupInduction
from classifiers.base import MeasuredClassifier
from classifiers.function_vector import FunctionVectorHead
from classifiers.icl_prompts import ICLPrompts, ICLSpec, generate_icl
from classifiers.ioi import IOIClassifier, IOISpec
from classifiers.ioi_prompts import IOIPrompts, generate_ioi
from classifiers.ordinal import OrdinalSpec, OrdinalTasks, generate_ordinal
from classifiers.probes import ProbeSet, ProbeSpec, generate
from survey.engine.capture import CaptureSpec, capture
from survey.engine.validation import AblationConfig, AblationResult, validate_induction
from survey.errors import SurveyError
from survey.loading.loaders import LoadedModel
from survey.units.backup import measure_backups
from survey.units.function_vectors import measure_function_vectors
from survey.units.ioi import run_ioi
from survey.units.successor import successor_measures

Validator = Callable[..., AblationResult]
VALIDATORS: dict[str, Validator] = {"induction": validate_induction}
PATTERN_SUM_TOLERANCE = 1e-3
DatasetSpec = ProbeSpec | IOISpec | OrdinalSpec | ICLSpec
Dataset = ProbeSet | IOIPrompts | OrdinalTasks | ICLPrompts
Progress = Callable[[str], None]


@dataclass(frozen=True)
class PlannedUnit:
    """A classifier bound to the dataset it reads (a probe, or IOI prompts), generated for this
    model's tokenizer."""

    classifier: HeadClassifier
    probe: Dataset


@dataclass(frozen=True)
class UnitResult:
    """A scored unit, its validation where the class has one, and how long it took."""

    unit: PlannedUnit
    scores: HeadScores
    validation: AblationResult | None
    seconds: float


def context_length(model: Any) -> int | None:
    """The longest sequence the model's position embeddings allow, when its config says."""
    config = model.config
    value = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    return int(value) if value else None


def plan_units(
    loaded: LoadedModel,
    classifiers: list[type[HeadClassifier]],
    on_skip: Callable[[str, str], None] | None = None,
) -> list[PlannedUnit]:
    """Instantiate each classifier and generate its dataset (once per distinct spec). IOI
    classifiers are skipped, with ``on_skip(name, reason)``, when the tokenizer has too few
    single-token names for IOI prompts."""
    datasets: dict[DatasetSpec, Dataset | str] = {}
    planned = []
    for cls in classifiers:
        classifier = cls()
        spec = _dataset_spec(classifier)
        if spec not in datasets:
            datasets[spec] = _generate(loaded, classifier.name, spec)
        dataset = datasets[spec]
        if isinstance(dataset, str):
            if on_skip is not None:
                on_skip(classifier.name, dataset)
            continue
        planned.append(PlannedUnit(classifier, dataset))
    return planned


def _dataset_spec(classifier: HeadClassifier) -> DatasetSpec:
    if isinstance(classifier, PatternClassifier):
        return classifier.config.probe
    if isinstance(classifier, IOIClassifier):
        return classifier.config.prompts
    if isinstance(classifier, MeasuredClassifier):
        spec: DatasetSpec = getattr(classifier.config, "dataset")  # noqa: B009  (every measured config has one)
        return spec
    raise TypeError(f"classifier {classifier.name!r} is not a pattern, IOI or measured classifier")


def _generate(loaded: LoadedModel, name: str, spec: DatasetSpec) -> Dataset | str:
    """The dataset for this model's tokenizer: SurveyError when a probe does not fit the model;
    the reason, as a string, when the tokenizer cannot make the class's prompts or sequences."""
    bos = loaded.bos.token_id
    try:
        if isinstance(spec, IOISpec):
            return generate_ioi(loaded.tokenizer, bos, spec.per_group, spec.seed)
        if isinstance(spec, OrdinalSpec):
            return generate_ordinal(loaded.tokenizer, spec)
        if isinstance(spec, ICLSpec):
            return generate_icl(loaded.tokenizer, bos, spec)
    except ValueError as exc:
        return str(exc)
    try:
        probe = generate(spec, loaded.tokenizer, bos, loaded.adapter.dims.d_vocab)
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


def score_units(
    loaded: LoadedModel, units: list[PlannedUnit], ablation: AblationConfig | None = None,
    progress: Progress = lambda _line: None,
) -> Iterator[UnitResult]:  # fmt: skip
    """Yield each unit's result as soon as it is ready, running each dataset once; long stages
    report to ``progress``."""
    by_dataset: dict[int, list[PlannedUnit]] = {}
    for unit in units:
        by_dataset.setdefault(id(unit.probe), []).append(unit)
    ablation = ablation or AblationConfig()
    for group in by_dataset.values():
        dataset = group[0].probe
        measured = [unit for unit in group if isinstance(unit.classifier, MeasuredClassifier)]
        rest = [unit for unit in group if unit not in measured]
        if isinstance(dataset, IOIPrompts) and rest:
            yield from _score_ioi(loaded, rest, dataset, ablation, progress)
        elif isinstance(dataset, ProbeSet) and rest:
            yield from _score_patterns(loaded, rest, dataset, ablation)
        for unit in measured:
            yield _score_measured(loaded, unit, ablation, progress)


def _score_patterns(
    loaded: LoadedModel, group: list[PlannedUnit], probe: ProbeSet, ablation: AblationConfig
) -> Iterator[UnitResult]:
    started = time.perf_counter()
    patterns = capture(loaded.adapter, probe.tokens, CaptureSpec.of("pattern")).stacked("pattern")
    check_patterns(loaded.source.name, patterns)
    capture_seconds = (time.perf_counter() - started) / len(group)
    for unit in group:
        began = time.perf_counter()
        classifier = unit.classifier
        assert isinstance(classifier, PatternClassifier)
        scores = classifier.score(patterns, probe)
        validator = VALIDATORS.get(classifier.name)
        validation = None
        if validator is not None:
            labels = scores.labels(classifier.threshold)
            validation = validator(loaded.adapter, probe, scores.scores, labels, ablation)
        yield UnitResult(unit, scores, validation, capture_seconds + time.perf_counter() - began)


def _score_ioi(
    loaded: LoadedModel, group: list[PlannedUnit], prompts: IOIPrompts, ablation: AblationConfig,
    progress: Progress,
) -> Iterator[UnitResult]:  # fmt: skip
    classifiers = [unit.classifier for unit in group if isinstance(unit.classifier, IOIClassifier)]
    assert len(classifiers) == len(group)
    outcome = run_ioi(loaded.adapter, prompts, classifiers, loaded.bos.token_id, ablation, progress)
    for unit in group:
        scores, validation = outcome.scores[unit.classifier.name]
        yield UnitResult(unit, scores, validation, outcome.seconds / len(group))


def _score_measured(
    loaded: LoadedModel, unit: PlannedUnit, ablation: AblationConfig, progress: Progress
) -> UnitResult:
    started = time.perf_counter()
    classifier = unit.classifier
    assert isinstance(classifier, MeasuredClassifier)
    measures, validation = MEASURES[classifier.name](loaded, unit.probe, ablation, progress)
    return UnitResult(unit, classifier.score(measures), validation, time.perf_counter() - started)


def _successor(
    loaded: LoadedModel, dataset: Dataset, _ablation: AblationConfig, _progress: Progress
) -> tuple[Any, AblationResult | None]:
    assert isinstance(dataset, OrdinalTasks)
    return successor_measures(loaded.adapter, dataset, loaded.bos.token_id), None


def _function_vector(
    loaded: LoadedModel, dataset: Dataset, ablation: AblationConfig, progress: Progress
) -> tuple[Any, AblationResult | None]:
    assert isinstance(dataset, ICLPrompts)
    return measure_function_vectors(
        loaded.adapter, dataset, FunctionVectorHead.default_config, ablation, progress
    )


Measure = Callable[[LoadedModel, Dataset, AblationConfig, Progress], tuple[Any, AblationResult | None]]


def _backup_induction(
    loaded: LoadedModel, dataset: Dataset, ablation: AblationConfig, progress: Progress
) -> tuple[Any, AblationResult | None]:
    assert isinstance(dataset, ProbeSet)
    return measure_backups(loaded.adapter, dataset, BackupInduction.default_config, ablation, progress)


MEASURES: dict[str, Measure] = {
    "successor": _successor,
    "function_vector": _function_vector,
    "backup_induction": _backup_induction,
}
