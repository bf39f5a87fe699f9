"""Score every head of one loaded model with the chosen classifiers.

Pattern classifiers that share a probe share one capture: the probe is generated once per
tokenizer, run once with every layer's pattern captured, and each classifier scores the same
tensors. Classes with a validator (induction) are then validated by mean-ablation. IOI
classifiers that share their prompts share one run of the IOI suite (``survey.ioi_suite``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from classifiers import HeadClassifier, HeadScores, PatternClassifier
from classifiers.ioi import IOIClassifier, IOISpec
from classifiers.ioi_prompts import IOIPrompts, generate_ioi
from classifiers.probes import ProbeSet, ProbeSpec, generate
from survey.capture import CaptureSpec, capture
from survey.errors import SurveyError
from survey.ioi_suite import run_ioi
from survey.loaders import LoadedModel
from survey.validation import AblationConfig, AblationResult, validate_induction

Validator = Callable[..., AblationResult]
VALIDATORS: dict[str, Validator] = {"induction": validate_induction}
PATTERN_SUM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class PlannedUnit:
    """A classifier bound to the dataset it reads (a probe, or IOI prompts), generated for this
    model's tokenizer."""

    classifier: HeadClassifier
    probe: ProbeSet | IOIPrompts


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
    datasets: dict[ProbeSpec | IOISpec, ProbeSet | IOIPrompts | str] = {}
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


def _dataset_spec(classifier: HeadClassifier) -> ProbeSpec | IOISpec:
    if isinstance(classifier, PatternClassifier):
        return classifier.config.probe
    if isinstance(classifier, IOIClassifier):
        return classifier.config.prompts
    raise TypeError(f"classifier {classifier.name!r} is neither a pattern nor an IOI classifier")


def _generate(loaded: LoadedModel, name: str, spec: ProbeSpec | IOISpec) -> ProbeSet | IOIPrompts | str:
    """The probe or the IOI prompts for this model's tokenizer: SurveyError when a probe does not
    fit the model; the reason, as a string, when the tokenizer cannot make IOI prompts."""
    bos = loaded.bos.token_id
    if isinstance(spec, IOISpec):
        try:
            return generate_ioi(loaded.tokenizer, bos, spec.per_group, spec.seed)
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
    progress: Callable[[str], None] = lambda _line: None,
) -> Iterator[UnitResult]:  # fmt: skip
    """Yield each unit's result as soon as it is ready, running each dataset once; long stages
    report to ``progress``."""
    by_dataset: dict[int, list[PlannedUnit]] = {}
    for unit in units:
        by_dataset.setdefault(id(unit.probe), []).append(unit)
    ablation = ablation or AblationConfig()
    for group in by_dataset.values():
        dataset = group[0].probe
        if isinstance(dataset, IOIPrompts):
            yield from _score_ioi(loaded, group, dataset, ablation, progress)
        else:
            yield from _score_patterns(loaded, group, dataset, ablation)


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
    progress: Callable[[str], None],
) -> Iterator[UnitResult]:  # fmt: skip
    classifiers = [unit.classifier for unit in group if isinstance(unit.classifier, IOIClassifier)]
    assert len(classifiers) == len(group)
    outcome = run_ioi(loaded.adapter, prompts, classifiers, loaded.bos.token_id, ablation, progress)
    for unit in group:
        scores, validation = outcome.scores[unit.classifier.name]
        yield UnitResult(unit, scores, validation, outcome.seconds / len(group))
