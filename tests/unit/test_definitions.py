"""Unit keys cover the whole definition, and a definition cannot change without a version bump."""

from __future__ import annotations

from dataclasses import replace

import pytest

from classifiers import classifier_class, parse_selection
from classifiers.validation import AblationConfig
from db.common.neuron_config import NeuronConfig
from survey.units.base import RunConfig
from survey.units.definitions import (
    changed_without_bump,
    committed_definitions,
    default_definitions,
    updated_table,
)
from survey.units.registry import every_unit, unit_kinds


def keys(config: RunConfig) -> dict[str, str]:
    return {u.name: u.definition_key().definition_hash for u in every_unit(config)}


def test_every_unit_version_is_in_the_committed_table_with_its_current_hash() -> None:
    committed, current = committed_definitions(), default_definitions()
    assert changed_without_bump(committed, current) == []
    missing = [f"{n} v{v}" for n, vs in current.items() for v in vs if v not in committed.get(n, {})]
    assert missing == [], f"run `survey docs` to record {missing}"


def test_a_changed_threshold_without_a_bump_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    induction = classifier_class("induction")
    monkeypatch.setattr(induction, "default_config", replace(induction.default_config, threshold=0.5))
    problems = changed_without_bump(committed_definitions(), default_definitions())
    assert any(p.startswith("induction v3") for p in problems)
    assert any(p.startswith("backup_induction v4") for p in problems)  # it ablates the induction labels
    assert not any(p.startswith("previous_token") for p in problems)


def test_a_changed_gate_or_version_is_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    mover = classifier_class("name_mover")
    monkeypatch.setattr(mover, "gates", {"ld_floor": 0.2})
    problems = changed_without_bump(committed_definitions(), default_definitions())
    assert any(p.startswith("name_mover v3") for p in problems)
    monkeypatch.setattr(mover, "version", 4)  # bumped: a new row in the table, nothing flagged
    current = default_definitions()
    assert not any(p.startswith("name_mover") for p in changed_without_bump(committed_definitions(), current))
    table = updated_table(committed_definitions(), current)
    assert (
        set(table["name_mover"]) == {"1", "2", "3", "4"}
        and table["name_mover"]["3"] == committed_definitions()["name_mover"]["3"]
    )


def test_the_key_covers_validation_settings_dtype_and_the_neuron_pass() -> None:
    base = keys(RunConfig(neurons=NeuronConfig()))
    more_draws = keys(RunConfig(neurons=NeuronConfig(), ablation=AblationConfig(draws=40)))
    changed = {name for name in base if base[name] != more_draws[name]}
    assert changed == {
        "induction", "name_mover", "backup_name_mover", "s_inhibition", "function_vector", "backup_induction"
    }  # fmt: skip
    half = keys(RunConfig(neurons=NeuronConfig(), dtype="bfloat16"))
    assert all(base[name] != half[name] for name in base)
    fewer_tokens = keys(RunConfig(neurons=NeuronConfig(token_budget=1024)))
    assert base["neurons"] != fewer_tokens["neurons"] and base["induction"] == fewer_tokens["induction"]
    every_checkpoint = keys(RunConfig(neurons=NeuronConfig(checkpoint_every=1)))
    assert every_checkpoint == base  # how often state is saved does not change the result


def test_each_classifier_has_one_unit_in_registry_order() -> None:
    units = unit_kinds(parse_selection(None), RunConfig())
    assert [u.name for u in units] == [cls.name for cls in parse_selection(None)]
