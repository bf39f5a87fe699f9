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

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from survey.adapters import ArchitectureAdapter
from survey.engine.capture import first_input, first_output

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


def _last_rows(value: Any, keep: int, rows: int) -> Any:
    """A block argument cut to the last ``keep`` of a pass's ``rows`` positions: hidden states and
    positions ``[1, rows, ...]`` (tuples of them too), an attention mask ``[1, 1, rows, prefix + rows]``
    (its prefix columns kept); anything else as it is."""
    if isinstance(value, tuple):
        return tuple(_last_rows(v, keep, rows) for v in value)
    if not isinstance(value, Tensor):
        return value
    if value.dim() == 4 and value.shape[-2] == rows:
        prefix = value.shape[-1] - rows
        columns = torch.cat([torch.arange(prefix), torch.arange(prefix + rows - keep, prefix + rows)])
        return value[..., rows - keep :, :][..., columns.to(value.device)]
    if value.dim() >= 2 and value.shape[1] == rows:
        return value[:, rows - keep :]
    return value


def _partial(forward: Callable[..., Any], recorded_output: Any, keep: int) -> Callable[..., Any]:
    """A block's forward that runs only the last ``keep`` positions and gives the others the
    recorded output (one position, repeated)."""

    def run(*args: Any, **kwargs: Any) -> Any:
        rows = first_input(args, kwargs).shape[1]
        if keep >= rows:
            return forward(*args, **kwargs)
        replayed = _reshaped(recorded_output, repeated(rows - keep, dim=1))
        if keep == 0:
            return replayed
        cut_args = tuple(_last_rows(a, keep, rows) for a in args)
        out = forward(*cut_args, **{name: _last_rows(v, keep, rows) for name, v in kwargs.items()})
        head = torch.cat([first_output(replayed), first_output(out)], dim=1)
        return (head, *out[1:]) if isinstance(out, tuple) else head

    return run


@contextmanager
def replayed_rows(adapter: ArchitectureAdapter, outputs: BlockOutputs, active: list[int]) -> Iterator[None]:
    """Within the block, a pass of copies of one recorded position (side by side in the sequence,
    each seeing a cached prefix and itself only) runs block ``l`` on its last ``active[l]``
    copies only: the copies changed at or below ``l``. The others are still the recorded
    position there, so they get its output from ``outputs`` without running. Order the copies by
    the layer of their change, highest first, and the active ones are always the last."""
    blocks = adapter.blocks()
    try:
        for layer, block in enumerate(blocks):
            block.forward = _partial(block.forward, outputs[layer], active[layer])  # type: ignore[method-assign]
        yield
    finally:
        for block in blocks:
            block.__dict__.pop("forward", None)
