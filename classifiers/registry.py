"""The classifier registry: one name, one class. Registering a name twice is an error, and an
unknown name is an error that lists the valid ones."""

from __future__ import annotations

from typing import Any, TypeVar

from classifiers.base import HeadClassifier

C = TypeVar("C", bound=type[HeadClassifier])

_REGISTRY: dict[str, type[HeadClassifier]] = {}


class UnknownClassifierError(ValueError):
    """A classifier name that is not registered."""


def register(cls: C) -> C:
    """Class decorator: add ``cls`` under ``cls.name``."""
    if cls.name in _REGISTRY:
        raise ValueError(f"classifier {cls.name!r} is already registered by {_REGISTRY[cls.name].__name__}")
    _REGISTRY[cls.name] = cls
    return cls


def classifier_names() -> list[str]:
    """Every registered name, in registration order."""
    return list(_REGISTRY)


def classifier_class(name: str) -> type[HeadClassifier]:
    """The class registered under ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownClassifierError(
            f"unknown classifier {name!r}; valid: {', '.join(classifier_names())}"
        ) from None


def parse_selection(selection: str | None) -> list[type[HeadClassifier]]:
    """``"a,b"`` → their classes, in the given order; None → all of them; "" → none."""
    if selection is None:
        return list(_REGISTRY.values())
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
