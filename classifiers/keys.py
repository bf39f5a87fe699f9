"""The unit key: which unit of work a stored result is, so a rerun can tell it is done.

A unit is identified within one model by its kind and name, its version, the hash of the exact
dataset it read (probe token ids, prompts or corpus windows, per tokenizer) and the hash of its
complete definition: every config field, the gates, the validation settings and the dtype.
Changing any of them makes a new key, so a changed default never silently reuses old rows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

HEAD_CLASSIFIER = "head_classifier"
NEURON_SUMMARY = "neuron_summary"
LAYER_SUMMARY = "layer_summary"


def canonical_json(value: Any) -> str:
    """``value`` as JSON with sorted keys and no whitespace: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def definition_hash(definition: dict[str, Any]) -> str:
    """The sha256 of a unit's definition in canonical JSON."""
    return hashlib.sha256(canonical_json(definition).encode()).hexdigest()


@dataclass(frozen=True)
class DefinitionKey:
    """What a unit is, independent of the model's tokenizer: known before a model is loaded."""

    kind: str
    name: str
    version: int
    definition_hash: str

    def with_dataset(self, dataset_hash: str) -> UnitKey:
        """The full key once the dataset is made for one model."""
        return UnitKey(self.kind, self.name, self.version, dataset_hash, self.definition_hash)


@dataclass(frozen=True)
class UnitKey:
    """The idempotence key of a unit within one model."""

    kind: str
    name: str
    version: int
    dataset_hash: str
    definition_hash: str

    @property
    def definition(self) -> DefinitionKey:
        """The key without the dataset hash."""
        return DefinitionKey(self.kind, self.name, self.version, self.definition_hash)
