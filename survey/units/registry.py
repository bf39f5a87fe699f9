"""The one registry of unit kinds: every head class's unit, by the classifier's ``unit`` tag, and
the model-wide units a run config asks for. The runner, the nightly plan and the definition
table all read it."""

from __future__ import annotations

from collections.abc import Callable

from classifiers import HeadClassifier, parse_selection
from db.common.errors import SurveyError
from survey.units.backup import BackupInductionUnit
from survey.units.base import RunConfig, UnitKind
from survey.units.function_vectors import FunctionVectorUnit
from survey.units.heads import AttendedCopyUnit, HeadUnit, InductionUnit, PatternUnit
from survey.units.ioi import IOIUnit
from survey.units.logit_lens import LensUnit
from survey.units.neurons import NeuronUnit
from survey.units.successor import SuccessorUnit

HEAD_UNITS: dict[str, type[HeadUnit]] = {
    "pattern": PatternUnit,
    "induction": InductionUnit,
    "attended_copy": AttendedCopyUnit,
    "ioi": IOIUnit,
    "successor": SuccessorUnit,
    "function_vector": FunctionVectorUnit,
    "backup_induction": BackupInductionUnit,
}
MODEL_UNITS: tuple[Callable[[RunConfig], UnitKind | None], ...] = (LensUnit.for_run, NeuronUnit.for_run)


def head_unit(classifier: type[HeadClassifier], config: RunConfig) -> HeadUnit:
    """The unit that computes ``classifier``."""
    try:
        unit = HEAD_UNITS[classifier.unit]
    except KeyError:
        raise SurveyError(
            f"classifier {classifier.name!r} names unit {classifier.unit!r}; "
            f"registered: {', '.join(HEAD_UNITS)}"
        ) from None
    return unit(config, classifier)


def unit_kinds(classifiers: list[type[HeadClassifier]], config: RunConfig) -> list[UnitKind]:
    """Every unit a run computes: one per classifier, in the given order, then the model-wide
    units the config asks for (logit lens, neurons)."""
    units: list[UnitKind] = [head_unit(cls, config) for cls in classifiers]
    return units + [unit for make in MODEL_UNITS if (unit := make(config)) is not None]


def every_unit(config: RunConfig) -> list[UnitKind]:
    """Every registered unit under ``config`` (all classifiers, and the model-wide units when the
    config has a neuron pass)."""
    return unit_kinds(parse_selection(None), config)
