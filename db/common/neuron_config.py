"""The neuron pass's settings: one definition of their defaults and of the values they may take,
read by ``survey run``, the nightly config and every part of the pass."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

MINIMUM = {"token_budget": 1, "window": 2, "top_k": 1, "checkpoint_every": 1}


class TooSmall(ValueError):
    """A neuron-pass setting below its minimum (``field`` and ``minimum`` say which)."""

    def __init__(self, field: str, minimum: int) -> None:
        super().__init__(f"{field} must be at least {minimum}")
        self.field, self.minimum = field, minimum


@dataclass(frozen=True)
class NeuronConfig:
    """Settings of the neuron pass; every field but ``checkpoint_every`` changes the result."""

    corpus: str = "wiki-news"
    window: int = 128
    max_windows_per_doc: int = 4
    token_budget: int = 32_768
    top_k: int = 20
    context_before: int = 10
    context_after: int = 4
    batch_size: int = 8
    token_matched: int = 16  # frequency-matched tokens a token neuron's candidate is compared with
    seed: int = 0  # the matched tokens, the random directions and the checked neurons
    check_neurons: int = 200  # neurons whose promoted tokens are checked by intervention
    check_windows: int = 16  # corpus windows the check averages over
    check_length: int = 32  # tokens of each checked window
    checkpoint_every: int = 16

    def __post_init__(self) -> None:
        for field, minimum in MINIMUM.items():
            if getattr(self, field) < minimum:
                raise TooSmall(field, minimum)

    def result_fields(self) -> dict[str, Any]:
        """The fields that define the unit (stored as its config)."""
        fields = asdict(self)
        fields.pop("checkpoint_every")
        return fields
