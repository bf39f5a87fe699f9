"""A label's evidence as the wiki words it: the validation's outcome, why a head is or is not
labelled, and each class's summary in a model (labelled heads, null false-positive rate, seed
stability, validation).

A label is *unconfirmed* when its unit has a validation that failed; a unit with no validation
row is *not validated*. Rows stored before label statistics (NULL) read as "—".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from classifiers.statistics import ALPHA
from db.reads import ablating, validation_failed

REASONS = {
    "labelled": "labelled",
    "below_threshold": "below the threshold",
    "within_null": "within the null (q ≥ {alpha:g})",
    "gated": "gated (fails the class's gate)",
}
CONFIRMED, UNCONFIRMED, NOT_VALIDATED = "confirmed", "unconfirmed", "not validated"


def validation_test(v: dict[str, Any]) -> str:
    """A validation's test in words: ``rank 1/21, z 8.2`` (a ratio for rows stored before ranks)."""
    if v.get("rank") is None:
        return "—" if v.get("ratio") is None else f"ratio {v['ratio']:.1f}"
    test = f"rank {v['rank']}/{len(v.get('effect_random') or []) + 1}"
    return test if v.get("z_score") is None else f"{test}, z {v['z_score']:.1f}"


def validation_status(validations: Sequence[dict[str, Any]], labelled: bool = True) -> str:
    """A unit's validation outcome: ``validated: …``, ``UNCONFIRMED: validation failed (…)`` (for a
    label; ``validation failed (…)`` otherwise) or ``not validated``."""
    if not validations:
        return NOT_VALIDATED
    if not ablating(validations):
        return "not run: no head is labelled"
    failed = [v for v in ablating(validations) if not v["supported"]]
    if not failed:
        return "validated: " + "; ".join(validation_test(v) for v in validations)
    tests = "; ".join(validation_test(v) for v in failed)
    return f"UNCONFIRMED: validation failed ({tests})" if labelled else f"validation failed ({tests})"


def label_status(validations: Sequence[dict[str, Any]]) -> str:
    """What a unit's labels are: confirmed, unconfirmed or not validated."""
    if not ablating(validations):
        return NOT_VALIDATED
    return UNCONFIRMED if validation_failed(validations) else CONFIRMED


def reason_text(reason: str | None, alpha: float = ALPHA) -> str:
    """Why a head is or is not labelled, in words (``—`` for rows stored before reasons)."""
    if reason is None:
        return "—"
    template = REASONS.get(reason)
    return template.format(alpha=alpha) if template else reason


@dataclass(frozen=True)
class ClassEvidence:
    """One class in one model: labelled heads, null false-positive rate, seed stability (None:
    not stored) and validation."""

    labelled: int
    null_fp_rate: float | None
    seed_jaccard: float | None
    status: str
    validation: str

    @property
    def unconfirmed(self) -> bool:
        return self.status == UNCONFIRMED


def class_evidence(
    labelled: int, statistics: dict[str, Any] | None, validations: Sequence[dict[str, Any]]
) -> ClassEvidence:
    """The summary of a unit from its label count, ``units.statistics`` and validations."""
    stats = statistics or {}
    return ClassEvidence(
        labelled, stats.get("null_fp_rate"), stats.get("seed_jaccard"), label_status(validations),
        validation_status(validations),
    )  # fmt: skip
