"""Every unit kind a run can compute: a head unit per classifier (found in ``HEAD_UNITS`` by the
classifier's ``unit`` tag) and the model-wide units a run config asks for (``MODEL_UNITS``). Each
unit class registers itself in its own module; importing ``survey.units`` imports every module
in it. The runner, the nightly plan and the definition table all read this module."""

from __future__ import annotations

from typing import Any

from classifiers import HeadClassifier, parse_selection
from survey.units.base import MODEL_UNITS, RunConfig, UnitKind
from survey.units.heads import HEAD_UNITS, HeadUnit


def head_unit(classifier: type[HeadClassifier], config: RunConfig) -> HeadUnit[Any]:
    """The unit that computes ``classifier`` (SurveyError when no unit measures its tag)."""
    return HEAD_UNITS[classifier.unit](config, classifier)


def unit_kinds(classifiers: list[type[HeadClassifier]], config: RunConfig) -> list[UnitKind[Any, Any]]:
    """Every unit a run computes: one per classifier, in the given order, then the model-wide
    units the config asks for (logit lens, neurons)."""
    units: list[UnitKind[Any, Any]] = [head_unit(cls, config) for cls in classifiers]
    return units + [unit for kind in MODEL_UNITS.values() if (unit := kind.for_run(config)) is not None]


def every_unit(config: RunConfig) -> list[UnitKind[Any, Any]]:
    """Every registered unit under ``config`` (all classifiers, and the model-wide units when the
    config has a neuron pass)."""
    return unit_kinds(parse_selection(None), config)
