"""The JSON form every config and spec shares: its dataclass fields, nested ones included."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any


class JsonFields:
    """Mixin for frozen dataclasses whose JSON form (stored beside results) is their fields."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields, nested dataclasses as dicts."""
        fields: dict[str, Any] = asdict(self)  # type: ignore[call-overload]
        return fields
