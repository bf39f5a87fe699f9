"""The survey config (TOML): which models, classifiers, neuron settings, database and device.

Every key is checked; an unknown or ill-typed key is a SurveyError that names it::

    [survey]
    database = "sqlite:///survey.db"   # any SQLAlchemy URL; INTERP_SURVEY_DB when absent
    device = "cpu"
    dtype = "float32"
    classifiers = "all"                # or a list of names
    retries = 2                        # extra attempts for a model that fails
    [survey.neurons]                   # optional: the neuron pass
    corpus = "wiki-news"
    tokens = 32768
    [ray]                              # resources of each Ray task (one per model)
    num_cpus = 1
    num_gpus = 0
    [[models]]
    name = "smollm2-135m-instruct"     # catalog name, hub id, folder or .gguf file
    revision = "main"                  # optional, hub ids only
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from classifiers import UnknownClassifierError, parse_selection
from db.common.errors import SurveyError
from db.common.neuron_config import NeuronConfig, TooSmall

DTYPES = ("float32", "bfloat16", "float16")
SURVEY_KEYS = {"database", "device", "dtype", "classifiers", "retries", "neurons"}
NEURON_KEYS = {"corpus": str, "tokens": int, "window": int, "top_k": int, "checkpoint_every": int}
RAY_KEYS = {"num_cpus": (int, float), "num_gpus": (int, float)}
MODEL_KEYS = {"name", "revision"}


@dataclass(frozen=True)
class ModelSpec:
    """One model to survey: what the CLI would take as MODEL, and the requested revision."""

    name: str
    revision: str | None = None

    @property
    def argument(self) -> str:
        """The MODEL argument: ``name@revision`` for a hub id with a revision."""
        return f"{self.name}@{self.revision}" if self.revision else self.name

    @property
    def key(self) -> str:
        """How jobs and shards name the model."""
        return self.argument


@dataclass(frozen=True)
class NightlyConfig:
    """A parsed survey config."""

    path: Path
    models: tuple[ModelSpec, ...]
    classifiers: str | None  # comma-separated names; None: all
    database: str | None
    device: str = "cpu"
    dtype: str = "float32"
    retries: int = 2
    neurons: NeuronConfig | None = None
    ray: dict[str, float] = field(default_factory=lambda: {"num_cpus": 1, "num_gpus": 0})


def load_config(path: Path) -> NightlyConfig:
    """Read and check a config file; SurveyError naming the file and the bad key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SurveyError(f"cannot read config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SurveyError(f"config {path} is not valid TOML: {exc}") from None
    return parse_config(data, path)


def parse_config(data: dict[str, Any], path: Path) -> NightlyConfig:
    """Check every key of a decoded config."""

    def bad(key: str, why: str) -> SurveyError:
        return SurveyError(f"config {path}: {key} {why}")

    _only(data, {"survey", "ray", "models"}, "", bad)
    survey = _table(data, "survey", bad)
    _only(survey, SURVEY_KEYS, "survey.", bad)
    models = data.get("models")
    if not isinstance(models, list) or not models:
        raise bad("[[models]]", "must list at least one model")
    specs = []
    for i, entry in enumerate(models):
        where = f"models[{i}]"
        if not isinstance(entry, dict):
            raise bad(where, "must be a table with a name")
        _only(entry, MODEL_KEYS, f"{where}.", bad)
        name, revision = entry.get("name"), entry.get("revision")
        if not isinstance(name, str) or not name:
            raise bad(f"{where}.name", "must be a non-empty string")
        if revision is not None and not isinstance(revision, str):
            raise bad(f"{where}.revision", "must be a string")
        specs.append(ModelSpec(name, revision))
    keys = [s.key for s in specs]
    if len(set(keys)) != len(keys):
        raise bad("[[models]]", f"lists {sorted(k for k in set(keys) if keys.count(k) > 1)[0]!r} twice")
    dtype = _typed(survey, "dtype", str, "survey.", bad, "float32")
    if dtype not in DTYPES:
        raise bad("survey.dtype", f"must be one of {', '.join(DTYPES)}, not {dtype!r}")
    retries = _typed(survey, "retries", int, "survey.", bad, 2)
    if retries < 0:
        raise bad("survey.retries", "must be >= 0")
    return NightlyConfig(
        path=path, models=tuple(specs), classifiers=_classifiers(survey.get("classifiers", "all"), bad),
        database=_typed(survey, "database", str, "survey.", bad, None), retries=retries, dtype=dtype,
        device=_typed(survey, "device", str, "survey.", bad, "cpu"), neurons=_neurons(survey, bad),
        ray=_ray(data, bad),
    )  # fmt: skip


def _only(table: dict[str, Any], allowed: set[str], prefix: str, bad: Any) -> None:
    for key in table:
        if key not in allowed:
            raise bad(f"{prefix}{key}", f"is not a known key (known: {', '.join(sorted(allowed))})")


def _table(data: dict[str, Any], key: str, bad: Any) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise bad(f"[{key}]", "must be a table")
    return value


def _typed(table: dict[str, Any], key: str, kind: Any, prefix: str, bad: Any, default: Any) -> Any:
    value = table.get(key, default)
    if value is not default and (not isinstance(value, kind) or isinstance(value, bool) and kind is not bool):
        raise bad(f"{prefix}{key}", f"must be {getattr(kind, '__name__', kind)}, not {type(value).__name__}")
    return value


def _classifiers(value: Any, bad: Any) -> str | None:
    if value == "all":
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad("survey.classifiers", 'must be "all" or a list of classifier names')
    try:
        parse_selection(",".join(value))
    except UnknownClassifierError as exc:
        raise bad("survey.classifiers", f"names an {exc}") from None
    return ",".join(value)


def _neurons(survey: dict[str, Any], bad: Any) -> NeuronConfig | None:
    if "neurons" not in survey:
        return None
    table = survey["neurons"]
    if not isinstance(table, dict):
        raise bad("[survey.neurons]", "must be a table")
    _only(table, set(NEURON_KEYS), "survey.neurons.", bad)
    values = {
        key: _typed(table, key, kind, "survey.neurons.", bad, None) for key, kind in NEURON_KEYS.items()
    }
    renamed = {"token_budget" if k == "tokens" else k: v for k, v in values.items() if v is not None}
    try:
        return NeuronConfig(**renamed)
    except TooSmall as exc:
        key = "tokens" if exc.field == "token_budget" else exc.field
        raise bad(f"survey.neurons.{key}", f"is too small (at least {exc.minimum})") from None


def _ray(data: dict[str, Any], bad: Any) -> dict[str, float]:
    table = _table(data, "ray", bad)
    _only(table, set(RAY_KEYS), "ray.", bad)
    resources = {"num_cpus": 1.0, "num_gpus": 0.0}
    for key, kinds in RAY_KEYS.items():
        value = _typed(table, key, kinds, "ray.", bad, None)
        if value is not None:
            if value < 0:
                raise bad(f"ray.{key}", "must be >= 0")
            resources[key] = float(value)
    return resources
