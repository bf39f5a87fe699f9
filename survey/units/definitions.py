"""The committed table of unit definitions: for each unit and version, the hash of its default
definition. A definition that changes without a version bump fails the test that reads
:func:`changed_without_bump`; ``survey docs`` rewrites the table once the version is bumped."""

from __future__ import annotations

import json
from pathlib import Path

from db.common.errors import SurveyError
from db.common.neuron_config import NeuronConfig
from survey.units.base import RunConfig
from survey.units.registry import every_unit

TABLE = Path(__file__).with_name("definitions.json")


def default_definitions() -> dict[str, dict[str, str]]:
    """Unit name → {version: definition hash} at the default settings (neuron pass included)."""
    units = every_unit(RunConfig(neurons=NeuronConfig()))
    return {u.name: {str(u.version): u.definition_key().definition_hash} for u in units}


def committed_definitions(path: Path = TABLE) -> dict[str, dict[str, str]]:
    """The committed table (empty when missing)."""
    return json.loads(path.read_text()) if path.exists() else {}


def changed_without_bump(
    committed: dict[str, dict[str, str]], current: dict[str, dict[str, str]]
) -> list[str]:
    """One line per unit whose current version is in the committed table with another hash."""
    problems = []
    for name, versions in current.items():
        for version, digest in versions.items():
            old = committed.get(name, {}).get(version)
            if old is not None and old != digest:
                problems.append(
                    f"{name} v{version}: definition changed without a version bump "
                    f"({old[:12]} → {digest[:12]})"
                )
    return problems


def updated_table(
    committed: dict[str, dict[str, str]], current: dict[str, dict[str, str]]
) -> dict[str, dict[str, str]]:
    """The committed table with every new (name, version) added; a recorded hash is never changed."""
    table = {name: dict(versions) for name, versions in committed.items()}
    for name, versions in current.items():
        for version, digest in versions.items():
            table.setdefault(name, {}).setdefault(version, digest)
    return table


def record_definitions(path: Path = TABLE) -> bool:
    """Add new unit versions to the committed table; SurveyError when a recorded version's
    definition changed (bump its version instead). Returns whether the file changed."""
    committed, current = committed_definitions(path), default_definitions()
    problems = changed_without_bump(committed, current)
    if problems:
        raise SurveyError("; ".join(problems))
    text = table_text(updated_table(committed, current))
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def definitions_markdown() -> str:
    """Every unit's full default definition and its hash, for ``docs/definitions.md``."""
    lines = ["# Unit definitions", "", "What each unit's key hashes, at the default settings (dtype float32, "
             "default validation, default neuron pass). A change to any field gives a new key and needs a "
             "version bump (`survey/units/definitions.json` records every version's hash).", ""]  # fmt: skip
    for unit in every_unit(RunConfig(neurons=NeuronConfig())):
        key = unit.definition_key()
        lines += [
            f"## `{unit.name}` v{unit.version}",
            "",
            f"- kind: {unit.kind}",
            f"- hash: `{key.definition_hash}`",
            "",
        ]
        lines += ["```json", json.dumps(unit.full_definition(), indent=2, sort_keys=True), "```", ""]
    return "\n".join(lines)


def table_text(table: dict[str, dict[str, str]]) -> str:
    """The table as committed: sorted, indented JSON."""
    return json.dumps(table, indent=2, sort_keys=True) + "\n"
