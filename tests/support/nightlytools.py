"""Configs of tiny local models for the nightly tests, and a fingerprint of a database's results."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.support.tiny import save_tiny

TINY_TYPES = ("llama", "gpt2", "opt", "gpt_neox")


def tiny_models(folder: Path, types: tuple[str, ...] = TINY_TYPES) -> list[Path]:
    """One saved tiny model per type, plus nothing else."""
    return [save_tiny(t, folder / f"tiny-{t}") for t in types]


def broken_model(folder: Path) -> Path:
    """A model folder whose config.json is not JSON: it fails to load."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{ not json")
    return folder


def write_config(path: Path, database: str, models: list[Path | str], classifiers: str = '"all"',
                 retries: int = 1, extra: str = "") -> Path:  # fmt: skip
    """A survey config over ``models``."""
    entries = "".join(f'\n[[models]]\nname = "{m}"\n' for m in models)
    survey = f'[survey]\ndatabase = "{database}"\nclassifiers = {classifiers}\nretries = {retries}\n'
    path.write_text(f"{survey}{extra}\n{entries}")
    return path


RESULTS = {
    "units": "SELECT m.name, u.kind, u.name, u.version, u.dataset_hash, u.config FROM units u "
    "JOIN models m ON m.id = u.model_id",
    "head_scores": "SELECT m.name, u.name, h.layer, h.head, round(CAST(h.score AS NUMERIC), 5), h.label, "
    "h.rank FROM head_scores h JOIN units u ON u.id = h.unit_id JOIN models m ON m.id = u.model_id",
    "validations": "SELECT m.name, u.name, v.metric, v.k, v.heads, round(CAST(v.effect_top AS NUMERIC), 4) "
    "FROM validations v JOIN units u ON u.id = v.unit_id JOIN models m ON m.id = u.model_id",
    "models": "SELECT name, source, resolved_sha, n_layers, n_heads FROM models",
}


def _normal(value: object) -> object:
    """One representation on every backend: JSON text parsed, decimals as floats, booleans as ints."""
    if isinstance(value, str) and value[:1] in "[{":
        value = json.loads(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, Decimal):
        return float(value)
    return int(value) if isinstance(value, bool) else value


def results(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every stored result, without ids or times, sorted: equal for equal science, on any backend."""
    engine = create_engine(url)
    with engine.connect() as connection:
        found = {
            name: sorted((tuple(_normal(v) for v in row) for row in connection.execute(text(sql))), key=repr)
            for name, sql in RESULTS.items()
        }
    engine.dispose()
    return found
