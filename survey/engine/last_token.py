"""Reading and writing at the last token of prompts: right-padded batches, each head's residual
contribution from its z, a vector added to the residual after a layer, and top-1 accuracy with it
(the function-vector unit's means and validation use them)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from classifiers.icl_prompts import ICLPrompt
from survey.adapters import ArchitectureAdapter
from survey.engine.capture import first_output
from survey.engine.replay import BlockOutputs, replayed_below, unchanged


def device_of(adapter: ArchitectureAdapter) -> torch.device:
    """The device of the model's weights."""
    return next(adapter.model.parameters()).device


def right_padded(prompts: list[ICLPrompt], device: torch.device) -> tuple[Tensor, Tensor]:
    """The prompts as one batch ``[prompt, pos]``, right-padded with each one's last token (causal
    attention never reads the padding), and each one's last position ``[prompt]``."""
    width = max(len(p.ids) for p in prompts)
    ids = torch.tensor([p.ids + [p.ids[-1]] * (width - len(p.ids)) for p in prompts], device=device)
    return ids, torch.tensor([len(p.ids) - 1 for p in prompts])


def head_contributions(adapter: ArchitectureAdapter, z: Tensor) -> Tensor:
    """``[layer, head, d_model]``: each head's residual contribution from its z ``[layer, head, d_head]``
    at one position, through a post-attention norm linearised at this position's scale."""
    rows = []
    with torch.inference_mode():
        for layer in range(adapter.dims.n_layers):
            w_o, b_o = (w.float().cpu() for w in adapter.output_weights(layer))  # z is on the CPU
            out = torch.einsum("hd,hdm->hm", z[layer], w_o)
            factor = adapter.post_norm_factor(layer, out.sum(0) + b_o)
            rows.append(out if factor is None else out * factor.cpu())
    return torch.stack(rows)


@contextmanager
def added_at_last(
    adapter: ArchitectureAdapter, layer: int, vector: Tensor | None, last: Tensor
) -> Iterator[None]:
    """Within the block, ``vector`` is added to the residual after ``layer`` at each row's
    ``last`` position."""
    if vector is None:
        yield
        return

    def hook(_m: nn.Module, _args: Any, output: Any) -> Any:
        hidden = first_output(output).clone()
        hidden[torch.arange(hidden.shape[0]), last] += vector.to(hidden)
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handle = adapter.blocks()[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def zero_shot_accuracy(
    adapter: ArchitectureAdapter, prompts: list[ICLPrompt], layer: int, vector: Tensor | None,
    plain: BlockOutputs | None = None,
) -> float:  # fmt: skip
    """Top-1 accuracy on zero-shot prompts (right-padded in one batch: causal attention never
    reads the padding), with ``vector`` added after ``layer`` at the last token. With ``plain``
    (the blocks' outputs on these prompts with nothing added), blocks up to ``layer`` are replayed."""
    ids, last = right_padded(prompts, device_of(adapter))
    kept = torch.unique(last)  # the unembedding runs at these positions only
    replay = nullcontext() if plain is None else replayed_below(adapter, plain, layer + 1, unchanged)
    with torch.inference_mode(), replay, added_at_last(adapter, layer, vector, last):
        logits = adapter.model(input_ids=ids, use_cache=False, logits_to_keep=kept.to(ids.device)).logits
    at = torch.searchsorted(kept, last)
    predicted = logits[torch.arange(len(prompts)), at.to(logits.device)].argmax(-1).cpu()
    return float((predicted == torch.tensor([p.target for p in prompts])).double().mean())
