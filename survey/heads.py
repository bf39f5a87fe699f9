"""Score every head of one loaded model with the chosen classifiers.

Classifiers that share a probe share one capture: the probe is generated once per tokenizer,
run once with every layer's pattern captured, and each classifier scores the same tensors.
Classes with a validator (induction) are then validated by mean-ablation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from classifiers import HeadClassifier, HeadScores
from classifiers.probes import ProbeSet, ProbeSpec, generate
from survey.capture import CaptureSpec, capture
from survey.errors import SurveyError
from survey.loaders import LoadedModel
from survey.validation import AblationConfig, AblationResult, validate_induction

Validator = Callable[..., AblationResult]
VALIDATORS: dict[str, Validator] = {"induction": validate_induction}
PATTERN_SUM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class PlannedUnit:
    """A classifier bound to the probe it reads, generated for this model's tokenizer."""

    classifier: HeadClassifier
    probe: ProbeSet


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


def plan_units(loaded: LoadedModel, classifiers: list[type[HeadClassifier]]) -> list[PlannedUnit]:
    """Instantiate each classifier and generate its probe (one ProbeSet per distinct spec)."""
    probes: dict[ProbeSpec, ProbeSet] = {}
    planned = []
    limit = context_length(loaded.model)
    for cls in classifiers:
        classifier = cls()
        spec = classifier.config.probe
        if spec not in probes:
            probe = generate(spec, loaded.tokenizer, loaded.bos.token_id, loaded.adapter.dims.d_vocab)
            if limit is not None and probe.tokens.shape[1] > limit:
                raise SurveyError(
                    f"{classifier.name} needs {probe.tokens.shape[1]} positions but "
                    f"{loaded.source.name!r} supports {limit}"
                )
            probes[spec] = probe
        planned.append(PlannedUnit(classifier, probes[spec]))
    return planned


def check_patterns(name: str, patterns: Tensor) -> None:
    """Every captured attention row must be a distribution; otherwise the view is broken."""
    worst = float((patterns.sum(-1) - 1).abs().max())
    if worst > PATTERN_SUM_TOLERANCE:
        raise SurveyError(f"attention patterns of {name!r} do not sum to 1 (off by {worst:.2g})")


def score_units(
    loaded: LoadedModel, units: list[PlannedUnit], ablation: AblationConfig | None = None
) -> Iterator[UnitResult]:
    """Yield each unit's result as soon as it is ready, capturing each probe's patterns once."""
    by_probe: dict[int, list[PlannedUnit]] = {}
    for unit in units:
        by_probe.setdefault(id(unit.probe), []).append(unit)
    ablation = ablation or AblationConfig()
    for group in by_probe.values():
        started = time.perf_counter()
        probe = group[0].probe
        patterns = capture(loaded.adapter, probe.tokens, CaptureSpec.of("pattern")).stacked("pattern")
        check_patterns(loaded.source.name, patterns)
        capture_seconds = (time.perf_counter() - started) / len(group)
        for unit in group:
            began = time.perf_counter()
            scores = unit.classifier.score(patterns, probe)
            validator = VALIDATORS.get(unit.classifier.name)
            validation = None
            if validator is not None:
                labels = scores.labels(unit.classifier.threshold)
                validation = validator(
                    loaded.adapter, probe, scores.scores, labels, ablation or AblationConfig()
                )
            yield UnitResult(unit, scores, validation, capture_seconds + time.perf_counter() - began)
