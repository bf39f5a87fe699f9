"""Registries: one name, one thing. Registering a name twice is an error, and an unknown name is
an error that lists the valid ones.

:data:`CLASSIFIERS` holds every head classifier. A classifier registers itself with
:func:`register` in its own module; importing the ``classifiers`` package imports every module in
it, so a new module is found without an import list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from classifiers.base import HeadClassifier

T = TypeVar("T")
C = TypeVar("C", bound=type[HeadClassifier])


class UnknownClassifierError(ValueError):
    """A classifier name that is not registered."""


class Registry(Generic[T]):
    """Things by name, in registration order."""

    def __init__(self, what: str, unknown: type[Exception] = KeyError) -> None:
        self.what, self.unknown = what, unknown
        self._entries: dict[str, T] = {}

    def add(self, name: str, value: T) -> None:
        """Register ``value`` under ``name``; ValueError when the name is taken."""
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} is already registered by {self._entries[name]!r}")
        self._entries[name] = value

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register what it decorates under ``name``."""

        def decorate(value: T) -> T:
            self.add(name, value)
            return value

        return decorate

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise self.unknown(f"unknown {self.what} {name!r}; valid: {', '.join(self._entries)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def names(self) -> list[str]:
        """Every registered name, in registration order."""
        return list(self._entries)

    def values(self) -> list[T]:
        """Every registered thing, in registration order."""
        return list(self._entries.values())


CLASSIFIERS: Registry[type[HeadClassifier]] = Registry("classifier", UnknownClassifierError)


def register(cls: C) -> C:
    """Class decorator: add ``cls`` under ``cls.name``."""
    CLASSIFIERS.add(cls.name, cls)
    return cls


def classifier_names() -> list[str]:
    """Every registered name, in registration order."""
    return CLASSIFIERS.names()


def classifier_class(name: str) -> type[HeadClassifier]:
    """The class registered under ``name``."""
    return CLASSIFIERS[name]


def parse_selection(selection: str | None) -> list[type[HeadClassifier]]:
    """``"a,b"`` → their classes, in the given order; None → all of them; "" → none."""
    if selection is None:
        return CLASSIFIERS.values()
    names = [n.strip() for n in selection.split(",") if n.strip()]
    return [classifier_class(n) for n in dict.fromkeys(names)]


def classifier_definition(cls: type[HeadClassifier]) -> dict[str, Any]:
    """Everything that decides ``cls``'s result: its own definition and, for a class measured after
    another's labels, that class's definition (the unit key hashes it with the run's validation
    settings and dtype)."""
    return {
        **cls.own_definition(),
        "depends_on": {name: classifier_definition(classifier_class(name)) for name in cls.depends_on},
    }
