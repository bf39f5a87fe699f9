"""Replaying the blocks below a change: when no row of a pass changes anything below layer ``l``,
blocks ``0..l-1`` return their outputs from a recorded unchanged pass instead of running (exact:
they would see the same inputs). Hooks on a replayed block still run; its KV cache is not
extended, which a pass over a copied cache never reads again.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from survey.adapters import ArchitectureAdapter

BlockOutputs = dict[int, Any]  # layer -> what the block returned: a tensor or a tuple led by one


@contextmanager
def recorded(adapter: ArchitectureAdapter, outputs: BlockOutputs) -> Iterator[None]:
    """Within the block, every block's output is kept in ``outputs`` (the last pass's)."""

    def keeper(layer: int) -> Callable[[nn.Module, Any, Any], None]:
        def hook(_module: nn.Module, _args: Any, output: Any) -> None:
            outputs[layer] = output

        return hook

    handles: list[RemovableHandle] = [
        block.register_forward_hook(keeper(layer)) for layer, block in enumerate(adapter.blocks())
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def repeated(times: int, dim: int) -> Callable[[Tensor], Tensor]:
    """A reshape for :func:`replayed_below`: the recorded hidden states repeated along ``dim``."""
    sizes = [1, 1, 1]
    sizes[dim] = times
    return lambda hidden: hidden.repeat(*sizes)


def interleaved(times: int) -> Callable[[Tensor], Tensor]:
    """A reshape for :func:`replayed_below`: each recorded row repeated ``times`` in place."""
    return lambda hidden: hidden.repeat_interleave(times, 0)


def unchanged(hidden: Tensor) -> Tensor:
    """A reshape for :func:`replayed_below`: the pass has the recorded pass's rows."""
    return hidden


def _reshaped(output: Any, reshape: Callable[[Tensor], Tensor]) -> Any:
    return (reshape(output[0]), *output[1:]) if isinstance(output, tuple) else reshape(output)


@contextmanager
def replayed_below(
    adapter: ArchitectureAdapter, outputs: BlockOutputs, layer: int, reshape: Callable[[Tensor], Tensor]
) -> Iterator[None]:
    """Within the block, blocks ``0..layer-1`` return ``reshape`` of their recorded hidden states
    (e.g. one row repeated for every row of the pass) without running."""
    blocks = adapter.blocks()[:layer]
    try:
        for index, block in enumerate(blocks):
            value = _reshaped(outputs[index], reshape)
            block.forward = lambda *_args, _value=value, **_kwargs: _value  # type: ignore[method-assign]
        yield
    finally:
        for block in blocks:
            block.__dict__.pop("forward", None)


def prefix_copy(prefix: Any) -> Any:
    """A KV cache of a shared prefix, ready for one more pass: its structure is copied and its
    tensors shared (a pass appends by concatenation and repeats rows into new tensors, never
    writing to them), so a pass costs no copy of the prefix."""
    fresh = copy.copy(prefix)
    fresh.layers = [copy.copy(layer) for layer in prefix.layers]
    return fresh
