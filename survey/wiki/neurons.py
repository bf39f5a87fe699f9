"""What the wiki shows of a neuron unit beyond its rows: each neuron's example lists (one per
tail, headed, with the scale its context shading uses) and the unit's intervention check.

Version-1 units kept one list per neuron (the positive tail) and no statistics; they show that
list alone and no check.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Connection, text

from classifiers.neuron_stats import TAILS
from db.neuron_examples import Example, decode_examples, load_document
from db.reads import NeuronUnit, decode_json

EXAMPLES_SHOWN = 3
TAIL_HEADINGS = {
    "positive": "Positive tail: the largest activations",
    "negative": "Negative tail: the most negative activations",
    "first": "First positions: the largest |activation| at a window's first position (massive activations)",
}
SIGN_NAMES = {1: "positive", -1: "negative"}


@dataclass(frozen=True)
class TailExamples:
    """One of a neuron's example lists as a layer page shows it: ``peak`` is the |activation|
    that gets full colour in the contexts (the list's most extreme example)."""

    tail: str
    heading: str
    dominant: bool
    peak: float
    examples: list[Example]


def sign_name(sign: int | None) -> str:
    """The dominant tail of a neuron (its ``sign``), in words; an em dash for version-1 rows."""
    return "—" if sign is None else SIGN_NAMES.get(sign, "—")


class ExampleReader:
    """Reads and decodes the example lists of one neuron unit, each document loaded once."""

    def __init__(self, conn: Connection, unit: NeuronUnit) -> None:
        self.conn, self.unit = conn, unit
        self.document = cache(self._document)

    def read(self, layer: int, neuron: int, tail: str) -> list[Example]:
        """One tail of the neuron's top examples, most extreme first (at most ``EXAMPLES_SHOWN``)."""
        row = self.conn.execute(
            text(
                "SELECT examples, context_acts FROM neuron_examples "
                "WHERE unit_id = :u AND layer = :l AND neuron = :n AND tail = :t"
            ),
            {"u": self.unit.id, "l": layer, "n": neuron, "t": tail},
        ).first()
        return [] if row is None else self._decode(row.examples, row.context_acts)

    def lists(self, neuron: dict[str, Any]) -> list[TailExamples]:
        """The neuron's stored example lists in ``TAILS`` order (positive, negative, first
        positions), each headed and marked when it is the neuron's dominant tail."""
        found = []
        for tail in TAILS:
            examples = self.read(neuron["layer"], neuron["neuron"], tail)
            if examples:
                peak = max(abs(e.activation) for e in examples)
                dominant = sign_name(neuron["sign"]) == tail
                found.append(TailExamples(tail, TAIL_HEADINGS[tail], dominant, peak, examples))
        return found

    def _decode(self, stored: Any, context_acts: bytes) -> list[Example]:
        examples = decode_json(stored)
        shown = _first_rows(context_acts, len(examples))
        return decode_examples(examples[:EXAMPLES_SHOWN], shown, self.unit.config, self.document)

    def _document(self, document_id: int) -> tuple[str, str, list[list[int]]]:
        return load_document(self.conn, self.unit.id, document_id)


def _first_rows(context_acts: bytes, n_examples: int) -> bytes:
    width = len(context_acts) // 2 // max(n_examples, 1)
    return bytes(context_acts[: 2 * width * min(n_examples, EXAMPLES_SHOWN)])


def intervention(unit: NeuronUnit | None) -> dict[str, Any] | None:
    """The unit's intervention check (``statistics.intervention``), None when it has none."""
    return (unit.statistics.get("intervention") or None) if unit else None


def family_null(unit: NeuronUnit | None) -> dict[str, Any] | None:
    """The floors the families were labelled against (``statistics.family_null``: the extreme
    vocabulary kurtosis and skews of random directions), None when the unit has none."""
    return (unit.statistics.get("family_null") or None) if unit else None


def check_by_layer(unit: NeuronUnit | None) -> list[tuple[int, dict[str, int]]]:
    """Each layer with sampled neurons, in order: ``(layer, {"neurons": n, "confirmed": c})``."""
    check = intervention(unit) or {}
    return sorted((int(layer), counts) for layer, counts in (check.get("by_layer") or {}).items())


def layer_check(unit: NeuronUnit | None, layer: int) -> dict[str, Any] | None:
    """The intervention check within one layer: sampled and confirmed neurons and the overlap a
    confirmation needs; None when none of the layer's neurons was sampled (or there is no check)."""
    check = intervention(unit) or {}
    found = (check.get("by_layer") or {}).get(str(layer))
    return {**found, "min_overlap": check.get("min_overlap")} if found else None
