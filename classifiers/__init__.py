"""Head classifiers, neuron summaries, layer summaries and validations.

Everything here is a pure function of captured tensors and weights: it never loads a model and
never writes to the database. Importing the package imports every module in it, so each
classifier registers itself (``classifiers.registry.register``) with no list to keep.
"""

import importlib
import pkgutil

from classifiers.base import (
    ClassifierConfig,
    HeadClassifier,
    HeadScores,
    PatternClassifier,
    rank_and_percentile,
)
from classifiers.registry import UnknownClassifierError, classifier_class, classifier_names, parse_selection

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "ClassifierConfig", "HeadClassifier", "HeadScores", "PatternClassifier", "UnknownClassifierError",
    "classifier_class", "classifier_names", "parse_selection", "rank_and_percentile",
]  # fmt: skip
