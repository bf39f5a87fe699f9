"""interp-survey: attention-head classifiers and neuron summaries across open causal LMs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from db.frames import SurveyDatabase

__version__ = "0.1.0"


def open(url: str | None = None) -> SurveyDatabase:  # noqa: A001  (survey.open, like sqlite3.connect)
    """Open a survey database read-only for pandas access; see :mod:`db.frames`."""
    from db.frames import open_survey

    return open_survey(url)
