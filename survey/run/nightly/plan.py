"""What the nightly survey has to do: per model of the config, which units are already stored.

A unit is stored when the model (by the config's name and revision) has a unit of that kind,
classifier and version whose config is the current one. This is known without loading the
model, so a finished model costs one query; a model with anything pending is loaded, and the
runner then checks the exact keys (dataset hashes included) and computes only what is missing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text

from classifiers import parse_selection
from db.store import HEAD_CLASSIFIER, LAYER_SUMMARY, NEURON_SUMMARY
from survey.catalog import Catalog
from survey.errors import SurveyError
from survey.loading.loaders import ModelSource, resolve
from survey.run.nightly.config import ModelSpec, NightlyConfig
from survey.units.logit_lens import NAME as LENS_NAME
from survey.units.logit_lens import VERSION as LENS_VERSION
from survey.units.logit_lens import LensConfig
from survey.units.neurons import VERSION as NEURON_VERSION


@dataclass(frozen=True)
class UnitPlan:
    """One unit the config asks for: kind, name, version and the config it must be stored with."""

    kind: str
    name: str
    version: int
    config: dict[str, Any]


@dataclass(frozen=True)
class ModelPlan:
    """A model of the config: its source (None when it cannot be resolved, with the error) and
    each of its units with whether it is stored."""

    spec: ModelSpec
    source: ModelSource | None
    units: list[tuple[UnitPlan, bool]]
    error: str | None = None

    @property
    def pending(self) -> list[UnitPlan]:
        return [unit for unit, stored in self.units if not stored]


def wanted_units(config: NightlyConfig) -> list[UnitPlan]:
    """The units every model should have under this config."""
    units = [
        UnitPlan(HEAD_CLASSIFIER, cls.name, cls.version, cls.default_config.to_dict())
        for cls in parse_selection(config.classifiers)
    ]
    if config.neurons is not None:
        units.append(UnitPlan(NEURON_SUMMARY, "neurons", NEURON_VERSION, config.neurons.result_fields()))
        lens = LensConfig.following(config.neurons)
        units.append(UnitPlan(LAYER_SUMMARY, LENS_NAME, LENS_VERSION, lens.to_dict()))
    return units


def plan_models(
    engine: Engine, config: NightlyConfig, specs: list[ModelSpec], catalog: Catalog
) -> list[ModelPlan]:
    """Each model resolved (no network, no loading) with its units marked stored or pending."""
    wanted = wanted_units(config)
    stored: dict[tuple[str, str | None], set[tuple[str, str, int, str]]] = {}
    with engine.connect() as connection:
        for row in connection.execute(text(
            "SELECT m.name, m.revision, u.kind, u.name, u.version, u.config FROM units u "
            "JOIN models m ON m.id = u.model_id"
        )):  # fmt: skip
            config_json = row[5] if isinstance(row[5], str) else json.dumps(row[5])
            stored.setdefault((row[0], row[1]), set()).add((row[2], row[3], row[4], _canonical(config_json)))
    plans = []
    for spec in specs:
        try:
            source = resolve(spec.argument, catalog)
        except SurveyError as exc:
            plans.append(ModelPlan(spec, None, [(u, False) for u in wanted], str(exc)))
            continue
        have = stored.get((source.name, source.revision), set())
        marks = [(u, (u.kind, u.name, u.version, _canonical(json.dumps(u.config))) in have) for u in wanted]
        plans.append(ModelPlan(spec, source, marks))
    return plans


def _canonical(config_json: str) -> str:
    return json.dumps(json.loads(config_json), sort_keys=True)


def parse_shard(value: str | None) -> tuple[int, int] | None:
    """``"i/n"`` (0 <= i < n) → (i, n); SurveyError otherwise."""
    if value is None:
        return None
    index, _, count = value.partition("/")
    if not (index.isdigit() and count.isdigit()) or not 0 <= int(index) < int(count):
        raise SurveyError(f"--shard {value!r}: expected i/n with 0 <= i < n, e.g. 0/4")
    return int(index), int(count)


def in_shard(spec: ModelSpec, shard: tuple[int, int] | None) -> bool:
    """Whether the model belongs to the shard: a stable hash of its key, modulo n."""
    if shard is None:
        return True
    digest = int.from_bytes(hashlib.sha256(spec.key.encode()).digest()[:8], "big")
    return digest % shard[1] == shard[0]
