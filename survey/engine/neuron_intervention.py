"""Which tokens' logits a neuron really raises: add to its activation at the last position of a
few corpus windows, run the model on, and average the logit change over the windows.

The windows' prefixes run once into a KV cache; each pass then runs only the last token, for
many (neuron, window) rows at once, with the neurons' additions made by a pre-hook on each
layer's MLP output projection.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from survey.adapters import ArchitectureAdapter
from survey.engine.capture import ensure_eager, first_input
from survey.engine.replay import BlockOutputs, interleaved, prefix_copy, recorded, replayed_below


@dataclass(frozen=True)
class NeuronNudge:
    """Add ``delta`` to neuron ``neuron`` of layer ``layer``."""

    layer: int
    neuron: int
    delta: float


@contextmanager
def _nudged(adapter: ArchitectureAdapter, nudges: list[NeuronNudge], windows: int) -> Iterator[None]:
    """Rows are window-major (window w, nudge c at row w * len(nudges) + c); each row's nudge is
    added to the MLP's neuron activations of its one (last) position."""
    handles = []
    count = len(nudges)
    for layer in sorted({n.layer for n in nudges}):
        chosen = [c for c, n in enumerate(nudges) if n.layer == layer]
        rows = torch.tensor([w * count + c for w in range(windows) for c in chosen])
        neurons = torch.tensor([nudges[c].neuron for c in chosen]).repeat(windows)
        deltas = torch.tensor([nudges[c].delta for c in chosen]).repeat(windows)

        def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], rows: Tensor = rows,
                 neurons: Tensor = neurons, deltas: Tensor = deltas) -> Any:  # fmt: skip
            x = first_input(args, kwargs)
            shaped = x.reshape(windows * count, -1, x.shape[-1]).clone()
            shaped[rows.to(x.device), -1, neurons.to(x.device)] += deltas.to(x)
            if args:
                return (shaped.view_as(x), *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": shaped.view_as(x)}

        handles.append(adapter.mlp_out_proj(layer).register_forward_pre_hook(hook, with_kwargs=True))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def logit_rises(
    adapter: ArchitectureAdapter, ids: Tensor, nudges: list[NeuronNudge], rows_per_pass: int = 128
) -> Tensor:
    """``[nudge, vocab]``: the mean over the windows ``ids [window, pos]`` of each nudge's change
    to the last position's logits. The blocks below a pass's lowest nudged layer are replayed
    from the unnudged run (nudges in layer order make that most of them)."""
    model = adapter.model
    ensure_eager(model)
    device = next(model.parameters()).device
    ids = ids.to(device)
    windows = ids.shape[0]
    per_pass = max(1, rows_per_pass // windows)
    with torch.inference_mode():
        prefix = model(input_ids=ids[:, :-1], use_cache=True, logits_to_keep=1).cache
        unnudged: BlockOutputs = {}
        with recorded(adapter, unnudged):
            baseline = model(input_ids=ids[:, -1:], cache=prefix_copy(prefix), use_cache=True).logits[:, -1]
        rises = []
        for first in range(0, len(nudges), per_pass):
            chunk = nudges[first : first + per_pass]
            cache = prefix_copy(prefix)
            cache.batch_repeat_interleave(len(chunk))
            lowest = min(nudge.layer for nudge in chunk)
            with (
                _nudged(adapter, chunk, windows),
                replayed_below(adapter, unnudged, lowest, interleaved(len(chunk))),
            ):
                logits = model(
                    input_ids=ids[:, -1:].repeat_interleave(len(chunk), 0), cache=cache, use_cache=True
                ).logits[:, -1]
            change = logits.float().view(windows, len(chunk), -1) - baseline.float()[:, None]
            rises.append(change.mean(0).cpu())
    return torch.cat(rises)
