"""Head classifiers, neuron summaries, layer summaries and validations.

Everything here is a pure function of captured tensors and weights: it never loads a model and
never writes to the database. Importing the package registers the built-in classifiers.
"""

from classifiers import attention as _attention  # noqa: F401  (registers the v1 classifiers)
from classifiers import backup as _backup  # noqa: F401  (registers backup_induction)
from classifiers import function_vector as _function_vector  # noqa: F401  (registers function_vector)
from classifiers import ioi as _ioi  # noqa: F401  (registers the IOI classifiers)
from classifiers import successor as _successor  # noqa: F401  (registers the successor classifier)
from classifiers.base import (
    ClassifierConfig,
    HeadClassifier,
    HeadScores,
    PatternClassifier,
    rank_and_percentile,
)
from classifiers.registry import UnknownClassifierError, classifier_class, classifier_names, parse_selection

__all__ = [
    "ClassifierConfig", "HeadClassifier", "HeadScores", "PatternClassifier", "UnknownClassifierError",
    "classifier_class", "classifier_names", "parse_selection", "rank_and_percentile",
]  # fmt: skip
