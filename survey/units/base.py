"""What every unit of survey work is, and the one registry of them.

A unit kind (a head class, the neuron pass, the logit lens) says in one place what it needs to
be computed and stored: its full definition (hashed into its key), the dataset it reads for one
model, how it computes, and the rows it writes. The runner, the nightly plan and the end-of-run
report only ever go through this interface.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import torch
from sqlalchemy import Engine

from classifiers.keys import DefinitionKey, UnitKey, definition_hash
from classifiers.registry import Registry
from classifiers.validation import AblationConfig
from db.common.errors import SurveyError
from db.common.neuron_config import NeuronConfig
from db.store import RunIds
from survey.loading.loaders import LoadedModel

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunConfig:
    """How models are run: device and dtype (fp32 on CPU by default), the validation settings,
    and the neuron pass (None: no neuron pass and no logit lens)."""

    device: str = "cpu"
    dtype: str = "float32"
    ablation: AblationConfig = field(default_factory=AblationConfig)
    neurons: NeuronConfig | None = None

    def torch_dtype(self) -> torch.dtype:
        """The torch dtype named by ``dtype``."""
        value = getattr(torch, self.dtype, None)
        if not isinstance(value, torch.dtype):
            raise SurveyError(f"unknown dtype {self.dtype!r}; use float32, bfloat16 or float16")
        return value

    def to_dict(self) -> dict[str, Any]:
        """JSON form, stored on each run."""
        return asdict(self)


class Dataset(Protocol):
    """What a unit reads for one model: a content hash and a JSON description."""

    @property
    def hash(self) -> str: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Skip:
    """A unit this model cannot take (e.g. too few single-token names), and why."""

    reason: str


D = TypeVar("D", bound=Dataset)  # what a unit reads for one model
R = TypeVar("R")  # what it computes


class UnitKind(ABC, Generic[D, R]):
    """One kind of unit under one run config: registered once, asked for everything. ``D`` is the
    dataset it reads for one model, ``R`` the result it computes and stores."""

    kind: ClassVar[str]
    cost: ClassVar[float] = 1.0  # rough share of a model's time (bench/unit_profile.py), for time left

    def __init__(self, config: RunConfig) -> None:
        self.run_config = config

    @property
    @abstractmethod
    def name(self) -> str:
        """The unit's name (a classifier's name, ``neurons``, ``logit_lens``)."""

    @property
    @abstractmethod
    def version(self) -> int:
        """Bumped whenever the definition changes; stored rows keep theirs."""

    @abstractmethod
    def definition(self) -> dict[str, Any]:
        """Every setting that changes the unit's result, as JSON (the run's dtype excluded)."""

    def full_definition(self) -> dict[str, Any]:
        """The definition the key hashes: the unit's own plus the dtype."""
        return {"kind": self.kind, "name": self.name, "version": self.version, "dtype": self.run_config.dtype,
                **self.definition()}  # fmt: skip

    def definition_key(self) -> DefinitionKey:
        """The key without the dataset: known before any model is loaded (the nightly plan)."""
        return DefinitionKey(self.kind, self.name, self.version, definition_hash(self.full_definition()))

    @abstractmethod
    def dataset(self, loaded: LoadedModel, shared: Shared) -> D | Skip:
        """The dataset for this model (SurveyError when the model cannot take the unit at all)."""

    @abstractmethod
    def compute(
        self, loaded: LoadedModel, planned: PlannedUnit[D, R], shared: Shared, progress: Progress
    ) -> R:
        """The unit's result for this model."""

    @abstractmethod
    def write(
        self, engine: Engine, ids: RunIds, planned: PlannedUnit[D, R], result: R, replace: bool
    ) -> None:
        """Store the result in one transaction (replacing a unit under the same key)."""

    @abstractmethod
    def describe(self, done: UnitResult[D, R]) -> str:
        """One progress line about a computed unit."""


class ModelUnitKind(UnitKind[D, R]):
    """A unit computed once per model, not per classifier (the logit lens, the neuron pass)."""

    @classmethod
    @abstractmethod
    def for_run(cls, config: RunConfig) -> ModelUnitKind[D, R] | None:
        """The unit under ``config``, or None when the run does not ask for it."""


MODEL_UNITS: Registry[type[ModelUnitKind[Any, Any]]] = Registry("model unit", SurveyError)
"""Model-wide unit classes by name (each registers itself), computed after the head units."""


@dataclass(frozen=True)
class PlannedUnit(Generic[D, R]):
    """A unit bound to the dataset it reads for one model, with its key."""

    unit: UnitKind[D, R]
    dataset: D
    key: UnitKey


@dataclass(frozen=True)
class UnitResult(Generic[D, R]):
    """A computed unit, how long it took, and the forward passes it ran and their tokens (batch ×
    positions entering the model; blocks replayed from a recorded run cost less than their tokens)."""

    planned: PlannedUnit[D, R]
    result: R
    seconds: float
    passes: int = 0
    tokens: int = 0


class PassCounter:
    """Counts forward passes through the first decoder layer, and their tokens."""

    def __init__(self) -> None:
        self.passes = 0
        self.tokens = 0

    def __call__(self, _module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        hidden = args[0] if args else kwargs["hidden_states"]
        self.passes += 1
        self.tokens += int(hidden.shape[0]) * int(hidden.shape[1])


class Shared:
    """Work that several units of one model reuse (a generated probe, a captured pattern
    stack, one IOI suite run): computed by the first unit that asks, kept for the model."""

    def __init__(self) -> None:
        self._values: dict[Any, Any] = {}
        self.pending: list[PlannedUnit[Any, Any]] = []  # the units this run computes for the model

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        """The value under ``key``, made by ``make()`` the first time."""
        if key not in self._values:
            self._values[key] = make()
        return self._values[key]


def plan(
    loaded: LoadedModel, units: list[UnitKind[Any, Any]], shared: Shared, on_skip: Callable[[str, str], None]
) -> list[PlannedUnit[Any, Any]]:
    """Each unit's dataset and key for this model, grouped by dataset (in order of first use);
    units the model cannot take go to ``on_skip``."""
    planned = []
    for unit in units:
        dataset = unit.dataset(loaded, shared)
        if isinstance(dataset, Skip):
            on_skip(unit.name, dataset.reason)
            continue
        planned.append(PlannedUnit(unit, dataset, unit.definition_key().with_dataset(dataset.hash)))
    groups: dict[str, list[PlannedUnit[Any, Any]]] = {}  # units that read one dataset run one after another
    for planned_unit in planned:
        groups.setdefault(planned_unit.dataset.hash, []).append(planned_unit)
    return [planned_unit for group in groups.values() for planned_unit in group]


def compute_all(
    loaded: LoadedModel, planned: list[PlannedUnit[Any, Any]], shared: Shared, progress: Progress
) -> Iterator[UnitResult[Any, Any]]:
    """Compute each planned unit in turn, yielding each result as soon as it is ready."""
    for unit in planned:
        counter = PassCounter()
        hook = loaded.adapter.blocks()[0].register_forward_pre_hook(counter, with_kwargs=True)
        started = time.perf_counter()
        try:
            result = unit.unit.compute(loaded, unit, shared, progress)
        finally:
            hook.remove()
        yield UnitResult(unit, result, time.perf_counter() - started, counter.passes, counter.tokens)
