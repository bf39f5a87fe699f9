"""Head units as the classifier tests read them: planned per classifier (with its probe) and
scored through the unit registry, the same path the runner takes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from classifiers import HeadClassifier, HeadScores
from classifiers.validation import AblationConfig, AblationResult
from survey.loading.loaders import LoadedModel
from survey.units.base import PlannedUnit, RunConfig, Shared, compute_all, plan
from survey.units.heads import HeadUnit
from survey.units.registry import unit_kinds


@dataclass(frozen=True)
class PlannedHead:
    """A planned head unit: its classifier and the dataset (probe or prompts) it reads."""

    planned: PlannedUnit

    @property
    def classifier(self) -> HeadClassifier:
        unit = self.planned.unit
        assert isinstance(unit, HeadUnit)
        return unit.classifier

    @property
    def probe(self) -> Any:
        return self.planned.dataset


@dataclass(frozen=True)
class ScoredHead:
    """A scored head unit."""

    unit: PlannedHead
    scores: HeadScores
    validation: AblationResult | None


def plan_units(
    loaded: LoadedModel, classifiers: list[type[HeadClassifier]], ablation: AblationConfig | None = None
) -> list[PlannedHead]:
    """Each classifier's unit with its dataset for this model (units the model cannot take are left out)."""
    units = unit_kinds(classifiers, RunConfig(ablation=ablation or AblationConfig()))
    return [PlannedHead(p) for p in plan(loaded, units, Shared(), on_skip=lambda _name, _why: None)]


def score_units(
    loaded: LoadedModel, units: list[PlannedHead], ablation: AblationConfig | None = None
) -> list[ScoredHead]:
    """Score the units together (sharing captures), validating with ``ablation``."""
    replanned = plan_units(loaded, [type(u.classifier) for u in units], ablation)
    shared = Shared()
    shared.pending = [u.planned for u in replanned]
    by_unit = {id(u.planned.unit): u for u in replanned}
    return [
        ScoredHead(by_unit[id(done.planned.unit)], done.result.scores, done.result.validation)
        for done in compute_all(loaded, shared.pending, shared, lambda _line: None)
    ]
