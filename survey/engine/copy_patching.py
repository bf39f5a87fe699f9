"""Patching one head's z at a time, for every head, at the last token of a prompt: the prefix runs
once into a KV cache, and the patches run as copies of the last token side by side in one
sequence (each copy sees the prefix and itself only), in passes of whole layers whose blocks run
only the copies patched at or below them (``survey.engine.replay.replayed_rows``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from classifiers.icl_prompts import ICLPrompt
from survey.adapters import ArchitectureAdapter
from survey.engine.capture import first_input
from survey.engine.last_token import device_of
from survey.engine.replay import BlockOutputs, prefix_copy, recorded, replayed_rows

ROWS_PER_PASS = 544  # patched copies of the last token side by side in one pass, at most


Patch = tuple[int, int, Tensor]  # (layer, head, the z its copy of the last token gets)


def _replace_copies(rows: list[Patch], layer: int, d_head: int) -> Any:
    """A pre-hook on the output projection: the last ``len(rows)`` positions are copies of the
    last token, and copy r, when ``rows[r]`` is in ``layer``, gets that head's z replaced. Copies
    are indexed from the end, so a block that runs only its last copies (``replayed_rows``, which
    always runs the copies patched in it) still finds them."""
    here = [(r, head, values) for r, (at, head, values) in enumerate(rows) if at == layer]
    copies = torch.tensor([r for r, _, _ in here])
    columns = torch.tensor([head for _, head, _ in here])[:, None] * d_head + torch.arange(d_head)
    values = torch.stack([v for _, _, v in here])  # [copy, d_head]

    def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        z = first_input(args, kwargs).clone()
        at = (z.shape[1] - len(rows) + copies).to(z.device)
        z[0, at[:, None], columns.to(z.device)] = values.to(z)
        return ((z, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": z})

    return hook


def copies_mask(prefix: int, copies: int, dtype: torch.dtype) -> Tensor:
    """``[1, 1, copy, prefix + copy]`` additive mask: each copy of the last token attends to the
    prefix and to itself, never to another copy."""
    mask = torch.full((copies, prefix + copies), torch.finfo(dtype).min, dtype=dtype)
    mask[:, :prefix] = 0
    mask[:, prefix:].fill_diagonal_(0)
    return mask[None, None]


def pass_groups(layers: list[int], rows: list[int]) -> list[list[int]]:
    """``rows`` (patched at ``layers``, ascending) in the fewest passes of whole layers, filled
    from the lowest layer: a pass costs a fixed read of the weights for each block from its lowest
    layer on, so the last pass, the shortest, starts as high as it can. A layer of more than
    ``ROWS_PER_PASS`` copies is split in equal passes."""
    by_layer: dict[int, list[int]] = {}
    for layer, row in zip(layers, rows, strict=True):
        by_layer.setdefault(layer, []).append(row)
    groups: list[list[int]] = []
    current: list[int] = []
    for members in by_layer.values():
        if len(current) + len(members) > ROWS_PER_PASS and current:
            groups.append(current)
            current = []
        if len(members) > ROWS_PER_PASS:
            parts = -(-len(members) // ROWS_PER_PASS)
            size = -(-len(members) // parts)
            groups += [members[i : i + size] for i in range(0, len(members), size)]
        else:
            current = current + members
    return groups + [current] if current else groups


def copy_passes(adapter: ArchitectureAdapter, variants: int) -> list[list[int]]:
    """The patched copies (variant-major, then layer, then head) in their passes, by layer."""
    d = adapter.dims
    per_variant = d.n_layers * d.n_heads
    order = sorted(range(variants * per_variant), key=lambda r: (r % per_variant) // d.n_heads)  # stable
    layers = [(r % per_variant) // d.n_heads for r in order]
    return pass_groups(layers, order)


def patched_probabilities(
    adapter: ArchitectureAdapter, prompt: ICLPrompt, z_means: list[Tensor]
) -> tuple[float, Tensor]:
    """P(answer) on the prompt unpatched, and ``[variant, layer, head]`` with each head's
    last-token z replaced by its value in each of ``z_means`` (``[layer, head, d_head]`` each).

    The prefix runs once into a KV cache and the unpatched last token once after it, its blocks'
    outputs recorded. The patches then run as copies of the last token side by side at the last
    position, in passes of whole layers' copies (:func:`pass_groups`). A block runs only the
    copies patched at or below it: the others are still the unpatched token there, and take its
    recorded output."""
    model, device = adapter.model, device_of(adapter)
    window = getattr(model.config, "sliding_window", None)
    if window is not None and len(prompt.ids) > window:
        raise ValueError(f"a {len(prompt.ids)}-token prompt is longer than the {window}-token sliding window")
    d = adapter.dims
    ids = torch.tensor([prompt.ids], device=device)
    prefix_length = ids.shape[1] - 1
    dtype = next(model.parameters()).dtype
    rows: list[Patch] = [
        (layer, head, values[layer, head])
        for values in z_means
        for layer in range(d.n_layers)
        for head in range(d.n_heads)
    ]
    probabilities = torch.zeros(len(rows))
    unpatched: BlockOutputs = {}
    with torch.inference_mode():
        prefix = model(input_ids=ids[:, :-1], use_cache=True, logits_to_keep=1).cache
        with recorded(adapter, unpatched):
            out = model(input_ids=ids[:, -1:], cache=prefix_copy(prefix), use_cache=True)
        baseline = float(out.logits[0, -1].float().softmax(-1)[prompt.target])
        for ascending in copy_passes(adapter, len(z_means)):
            chosen = ascending[::-1]  # highest layer first: the copies a block runs are the last
            chunk = [rows[r] for r in chosen]
            copies = len(chunk)
            active = [sum(at <= layer for at, _, _ in chunk) for layer in range(d.n_layers)]
            handles = [
                adapter.attn_out_proj(layer).register_forward_pre_hook(
                    _replace_copies(chunk, layer, d.d_head), with_kwargs=True
                )
                for layer in sorted({layer for layer, _, _ in chunk})
            ]
            try:
                with replayed_rows(adapter, unpatched, active):
                    out = model(
                        input_ids=ids[:, -1:].expand(1, copies),
                        attention_mask=copies_mask(prefix_length, copies, dtype).to(device),
                        position_ids=torch.full((1, copies), prefix_length, device=device),
                        cache=prefix_copy(prefix),
                        use_cache=True,
                    )
            finally:
                for handle in handles:
                    handle.remove()
            probabilities[chosen] = out.logits[0].float().softmax(-1)[:, prompt.target].cpu()
    return baseline, probabilities.view(len(z_means), d.n_layers, d.n_heads)
