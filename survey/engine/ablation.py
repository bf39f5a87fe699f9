"""Mean-ablation of attention heads, through hooks on the output projection's input (z).

A mean-ablated head's output is replaced, at every position, by its mean over a reference
batch at that position. The model's weights are never changed; hooks are removed on exit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from survey.adapters import ArchitectureAdapter
from survey.engine.capture import CaptureSpec, capture, first_input
from survey.engine.replay import BlockOutputs, recorded, replayed_below, unchanged

Head = tuple[int, int]  # (layer, head)


def head_means(adapter: ArchitectureAdapter, input_ids: Tensor, batch_size: int = 8) -> Tensor:
    """Position-wise mean of every head's z over the batch: ``[layer, pos, head, d_head]``."""
    z = capture(adapter, input_ids, CaptureSpec.of("z"), batch_size=batch_size).stacked("z")
    return z.mean(dim=1)  # z: [layer, batch, pos, head, d_head]


def _replace_heads(heads: list[int], values: Tensor, d_head: int) -> Any:
    """A forward pre-hook that overwrites the z of ``heads`` with ``values [..., pos, head, d_head]``."""

    def hook(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        z = first_input(args, kwargs).clone()
        n = z.shape[-2]
        for h in heads:
            z[..., h * d_head : (h + 1) * d_head] = values[..., :n, h, :].to(z)
        return ((z, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": z})

    return hook


@contextmanager
def heads_replaced(adapter: ArchitectureAdapter, heads: Iterable[Head], values: Tensor) -> Iterator[None]:
    """Within the block, ``heads`` output ``values`` as their z: ``[layer, pos, head, d_head]``
    means over a reference batch (mean-ablation), or ``[layer, batch, pos, head, d_head]``, one
    run's own z per prompt (holding heads at that run)."""
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        by_layer.setdefault(layer, []).append(head)
    handles: list[RemovableHandle] = []
    try:
        for layer, layer_heads in by_layer.items():
            hook = _replace_heads(layer_heads, values[layer], adapter.dims.d_head)
            handles.append(adapter.attn_out_proj(layer).register_forward_pre_hook(hook, with_kwargs=True))
        yield
    finally:
        for handle in handles:
            handle.remove()


def condition_masks(conditions: list[list[Head]], n_layers: int, n_heads: int) -> Tensor:
    """``[condition, layer, head]``: True where a condition replaces the head."""
    masks = torch.zeros(len(conditions), n_layers, n_heads, dtype=torch.bool)
    for row, heads in enumerate(conditions):
        for layer, head in heads:
            masks[row, layer, head] = True
    return masks


def _replace_rows(mask: Tensor, values: Tensor, n_heads: int) -> Any:
    """A forward pre-hook that gives row r's heads in ``mask [row, head]`` the z ``values``:
    ``[pos, head, d_head]`` for every row, or ``[row, pos, head, d_head]``."""

    def hook(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        z = first_input(args, kwargs)
        rows, n, width = z.shape
        heads = z.view(rows, n, n_heads, width // n_heads)
        where = mask.to(z.device)[:, None, :, None]
        z = torch.where(where, values[..., :n, :, :].to(z), heads).reshape(rows, n, width)
        return ((z, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": z})

    return hook


@contextmanager
def rows_replaced(adapter: ArchitectureAdapter, masks: Tensor, values: Tensor) -> Iterator[None]:
    """Within the block, each pass's row r has the heads in ``masks[r]`` (``[row, layer, head]``)
    output ``values`` as their z: ``[layer, pos, head, d_head]`` means for every row, or
    ``[layer, row, pos, head, d_head]``, one value per row. Many ablation conditions then run
    side by side in one batch, row by row as if each ran alone."""
    handles: list[RemovableHandle] = []
    try:
        for layer in torch.nonzero(masks.any(dim=(0, 2)))[:, 0].tolist():
            hook = _replace_rows(masks[:, layer], values[layer], adapter.dims.n_heads)
            handles.append(adapter.attn_out_proj(layer).register_forward_pre_hook(hook, with_kwargs=True))
        yield
    finally:
        for handle in handles:
            handle.remove()


def first_layer(heads: Iterable[Head], n_layers: int) -> int:
    """The lowest layer of ``heads`` (``n_layers`` when there are none): nothing below it changes."""
    return min((layer for layer, _ in heads), default=n_layers)


def condition_chunks(conditions: int, rows_each: int, positions: int, budget: int = 4096) -> list[range]:
    """Conditions in runs whose rows (``rows_each`` per condition) hold at most ``budget`` tokens
    (at least one condition a run)."""
    per_pass = max(1, budget // max(rows_each * positions, 1))
    return [range(first, min(first + per_pass, conditions)) for first in range(0, conditions, per_pass)]


def mean_ablated(
    adapter: ArchitectureAdapter, heads: Iterable[Head], means: Tensor
) -> AbstractContextManager[None]:
    """Within the block, ``heads`` output their mean z (``means [layer, pos, head, d_head]``)."""
    return heads_replaced(adapter, heads, means)


def ablated_losses(
    adapter: ArchitectureAdapter, tokens: Tensor, start: int, stop: int, means: Tensor,
    conditions: list[list[Head]], advance: Callable[[], None] = lambda: None,
) -> tuple[float, list[float]]:  # fmt: skip
    """The next-token loss over ``[start, stop)`` (:func:`next_token_loss`) clean, and with each
    condition's heads mean-ablated, a pass each over the whole batch; a condition's blocks below
    its lowest layer are replayed from the clean pass."""
    clean: BlockOutputs = {}
    batch = tokens.shape[0]
    with recorded(adapter, clean):
        baseline = next_token_loss(adapter, tokens, start, stop, batch)
    losses = []
    for heads in conditions:
        lowest = first_layer(heads, adapter.dims.n_layers)
        with mean_ablated(adapter, heads, means), replayed_below(adapter, clean, lowest, unchanged):
            losses.append(next_token_loss(adapter, tokens, start, stop, batch))
        advance()
    return baseline, losses


def next_token_loss(
    adapter: ArchitectureAdapter, input_ids: Tensor, start: int, stop: int, batch_size: int = 8
) -> float:
    """Mean cross-entropy of predicting token p+1 from every position p in ``[start, stop)``."""
    model = adapter.model
    device = next(model.parameters()).device
    total, count = 0.0, 0
    with torch.inference_mode():
        for first in range(0, input_ids.shape[0], batch_size):
            ids = input_ids[first : first + batch_size].to(device)
            kept = torch.arange(start, stop, device=device)  # the unembedding runs at these only
            out = model(input_ids=ids, use_cache=False, logits_to_keep=kept).logits.float()
            targets = ids[:, start + 1 : stop + 1]
            loss = torch.nn.functional.cross_entropy(out.flatten(0, 1), targets.flatten(), reduction="sum")
            total += float(loss)
            count += targets.numel()
    return total / count
