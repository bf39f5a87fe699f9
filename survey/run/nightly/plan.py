"""What the nightly survey has to do: per model of the config, which units are already stored.

A unit is stored when the model (by the config's name and revision) has a unit with the same
definition key (kind, name, version and definition hash) as the registry gives for this config:
the same key function the runner uses, without the dataset hash, which needs the tokenizer. So a
finished model costs one query; a model with anything pending is loaded, and the runner then
checks the full keys and computes only what is missing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import Engine

from classifiers import parse_selection
from classifiers.keys import DefinitionKey
from db.common.errors import SurveyError
from db.store import stored_definitions
from survey.catalog import Catalog
from survey.loading.loaders import ModelSource, resolve
from survey.run.nightly.config import ModelSpec, NightlyConfig
from survey.units.base import RunConfig
from survey.units.registry import unit_kinds


@dataclass(frozen=True)
class ModelPlan:
    """A model of the config: its source (None when it cannot be resolved, with the error) and
    each of its units with whether it is stored."""

    spec: ModelSpec
    source: ModelSource | None
    units: list[tuple[DefinitionKey, bool]]
    error: str | None = None

    @property
    def pending(self) -> list[DefinitionKey]:
        return [unit for unit, stored in self.units if not stored]


def run_config(config: NightlyConfig) -> RunConfig:
    """The run config every model of the nightly is surveyed with."""
    return RunConfig(device=config.device, dtype=config.dtype, neurons=config.neurons)


def wanted_units(config: NightlyConfig) -> list[DefinitionKey]:
    """The definition key of every unit each model should have under this config."""
    return [
        unit.definition_key() for unit in unit_kinds(parse_selection(config.classifiers), run_config(config))
    ]


def plan_models(
    engine: Engine, config: NightlyConfig, specs: list[ModelSpec], catalog: Catalog
) -> list[ModelPlan]:
    """Each model resolved (no network, no loading) with its units marked stored or pending."""
    wanted = wanted_units(config)
    stored = stored_definitions(engine)
    plans = []
    for spec in specs:
        try:
            source = resolve(spec.argument, catalog)
        except SurveyError as exc:
            plans.append(ModelPlan(spec, None, [(u, False) for u in wanted], str(exc)))
            continue
        have = stored.get((source.name, source.revision), set())
        plans.append(ModelPlan(spec, source, [(u, u in have) for u in wanted]))
    return plans


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
