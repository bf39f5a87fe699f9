"""Path patching: a sender head's END output patched from corrupted prompts into the receivers'
queries only (Wang et al. 2022), in chunked last-token passes over a shared KV-cache prefix.

Two read-outs: the receivers' attention END→IO (the pass stops after the last receiver layer),
or the logit difference at END (the rest of the model runs on from the receivers' changed
outputs). Every query of a receiver layer is recomputed (a q norm may span all heads, as in
OLMo-2); for the logit difference, the layer's other heads are held at their clean END output."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from survey.adapters import ArchitectureAdapter
from survey.adapters.base import Projection, in_out_weight
from survey.engine.ablation import Head
from survey.engine.capture import CaptureSpec, StopForward, capture, first_input
from survey.engine.readouts import keep_input_at, logit_diff_at, pre_hooks, stopped_at_unembedding
from survey.engine.replay import BlockOutputs, interleaved, prefix_copy, recorded, replayed_below


def _projection_columns(projection: Projection, width: int) -> Tensor:
    """Which output features of its module a (sliced) projection selects, in order."""
    return projection.select(torch.arange(width))


def _module_width(module: nn.Module) -> int:
    weight, _ = in_out_weight(module)
    return int(weight.shape[1])


@dataclass(frozen=True)
class _ReceiverLayer:
    """One receiver layer: its heads, and the modules and output features of the layer's queries
    and keys. Every query of the layer is recomputed (a q norm may span all heads, as in OLMo-2);
    only the receivers' patterns are read."""

    layer: int
    heads: list[int]
    q_module: nn.Module
    q_columns: Tensor
    k_module: nn.Module
    k_columns: Tensor

    def projection_modules(self) -> list[nn.Module]:
        """The query and key modules, once each (one module when q, k and v are fused)."""
        return list({id(self.q_module): self.q_module, id(self.k_module): self.k_module}.values())


def _receiver_layers(adapter: ArchitectureAdapter, receivers: list[Head]) -> list[_ReceiverLayer]:
    layers = []
    for layer in sorted({layer for layer, _ in receivers}):
        heads = sorted(h for r_layer, h in receivers if r_layer == layer)
        projections = adapter.qkv_projections(layer)
        q, k = projections["q"], projections["k"]
        layers.append(_ReceiverLayer(
            layer, heads, q.module, _projection_columns(q, _module_width(q.module)), k.module,
            _projection_columns(k, _module_width(k.module)),
        ))  # fmt: skip
    return layers


def _override_end(replacements: list[tuple[Tensor, Tensor]]) -> Any:
    """A forward hook that writes ``values [row, n]`` into features ``columns`` at the last position."""

    def hook(_m: nn.Module, _args: Any, output: Tensor) -> Tensor:
        output = output.clone()
        for columns, values in replacements:
            output[:, -1, columns] = values.to(output)
        return output

    return hook


@dataclass(frozen=True)
class LogitDiffReadout:
    """Read the logit difference at END per row, for the prompts' IO and S ids."""

    io_ids: Tensor
    s_ids: Tensor


def path_patched_attention(
    adapter: ArchitectureAdapter, clean: Tensor, corrupted: Tensor, positions: dict[str, int],
    receivers: list[Head], senders: list[Head], rows_per_pass: int = 256,
) -> Tensor:  # fmt: skip
    """Path patching from each sender into the receivers' queries: ``[sender, prompt, receiver]``
    attention END→IO of every receiver when the sender's END output is its output on the
    ``corrupted`` prompts on the path into the receivers' queries, and nothing else changes.

    Exact, for every family: positions before END are shared, so they run once (a KV cache) and
    each patch costs one END-token pass. The receivers' query projections at END are replaced by
    the projection of their patched input, their layers' keys at END by the clean keys, and the
    pass stops after the last receiver layer. A sender in or after a receiver's layer leaves that
    receiver unchanged.
    """
    return _path_patched(adapter, clean, corrupted, positions, receivers, senders, rows_per_pass, None)


def path_patched_logit_diff(
    adapter: ArchitectureAdapter, clean: Tensor, corrupted: Tensor, positions: dict[str, int],
    receivers: list[Head], senders: list[Head], io_ids: Tensor, s_ids: Tensor, rows_per_pass: int = 256,
) -> Tensor:  # fmt: skip
    """``[sender, prompt]``: the logit difference at END when each sender's END output reaches
    the receivers' queries from the ``corrupted`` prompts (as :func:`path_patched_attention`) and
    the model runs on from the receivers' outputs to the logits."""
    readout = LogitDiffReadout(io_ids, s_ids)
    return _path_patched(adapter, clean, corrupted, positions, receivers, senders, rows_per_pass, readout)


def _path_patched(
    adapter: ArchitectureAdapter, clean: Tensor, corrupted: Tensor, positions: dict[str, int],
    receivers: list[Head], senders: list[Head], rows_per_pass: int, readout: LogitDiffReadout | None,
) -> Tensor:  # fmt: skip
    end, io = positions["end"], positions["io"]
    model, device = adapter.model, next(adapter.model.parameters()).device
    layers = _receiver_layers(adapter, receivers)
    sender_layers = tuple(sorted({layer for layer, _ in senders}))
    kept: dict[str, Tensor] = {}
    hooks = [(adapter.blocks()[r.layer], keep_input_at(kept, f"resid{r.layer}", end)) for r in layers]
    projection_hooks = []
    for r in layers:
        for module in r.projection_modules():
            projection_hooks.append(
                module.register_forward_hook(_keep_output_at(kept, f"out{id(module)}", end))
            )
    receiver_layers = tuple(r.layer for r in layers)
    read_layers = tuple(sorted({*sender_layers, *receiver_layers}))
    try:
        with pre_hooks(hooks):
            clean_out = capture(
                adapter, clean, CaptureSpec.of("head_out", "z", layers=read_layers), batch_size=len(clean)
            )
    finally:
        for handle in projection_hooks:
            handle.remove()
    for layer in receiver_layers:
        kept[f"z{layer}"] = clean_out[("z", layer)][:, end].float()
    corrupt_out = capture(
        adapter, corrupted, CaptureSpec.of("head_out", layers=sender_layers), batch_size=len(clean)
    )
    deltas = torch.stack([
        corrupt_out[("head_out", layer)][:, end, head] - clean_out[("head_out", layer)][:, end, head]
        for layer, head in senders
    ]).to(device)  # fmt: skip  # [sender, prompt, d_model], beside the weights
    clean_end: BlockOutputs = {}  # every block's output at END, clean: replayed below the receivers
    with torch.inference_mode():
        prefix = model(input_ids=clean[:, :end].to(device), use_cache=True, logits_to_keep=1).cache
        with recorded(adapter, clean_end), stopped_at_unembedding(adapter):  # only the blocks are read
            model(
                input_ids=clean[:, end:].to(device),
                cache=prefix_copy(prefix),
                use_cache=True,
                logits_to_keep=1,
            )
    n_prompts = clean.shape[0]
    per_pass = max(1, rows_per_pass // n_prompts)
    result = []
    for first in range(0, len(senders), per_pass):
        chunk, chunk_deltas = senders[first : first + per_pass], deltas[first : first + per_pass]
        result.append(_patched_chunk(
            adapter, clean[:, end:], prefix, clean_end, layers, kept, chunk_deltas, chunk, io, readout
        ))  # fmt: skip
    return torch.cat(result)  # [sender, prompt, receiver] or [sender, prompt]


def _keep_output_at(kept: dict[str, Tensor], name: str, position: int) -> Any:
    def hook(_m: nn.Module, _args: Any, output: Tensor) -> None:
        kept[name] = output[:, position].detach().clone()

    return hook


def _patched_chunk(
    adapter: ArchitectureAdapter, end_tokens: Tensor, prefix: Any, clean_end: BlockOutputs,
    layers: list[_ReceiverLayer], kept: dict[str, Tensor], deltas: Tensor, senders: list[Head], io: int,
    readout: LogitDiffReadout | None,
) -> Tensor:  # fmt: skip
    """One END-token pass for a chunk of senders; rows are prompt-major (prompt, sender). The
    blocks below the lowest receiver layer, which no patch reaches, are replayed from the clean run."""
    n_senders, n_prompts = deltas.shape[0], deltas.shape[1]
    sender_layers = torch.tensor([layer for layer, _ in senders])
    handles = []
    seen: dict[int, Tensor] = {}
    last = layers[-1].layer
    with torch.inference_mode():
        for r in layers:
            reaches = (sender_layers < r.layer).to(deltas)[:, None, None]
            resid = kept[f"resid{r.layer}"][None] + reaches * deltas  # [sender, prompt, d_model]
            resid = resid.transpose(0, 1).flatten(0, 1)  # prompt-major rows
            dtype = next(r.q_module.parameters()).dtype
            norm = adapter.attn_in_norm(r.layer)
            read = resid.to(dtype) if norm is None else norm(resid.to(dtype))
            patched_q = r.q_module(read[:, None])[:, -1, r.q_columns]
            clean_k = kept[f"out{id(r.k_module)}"][:, r.k_columns].repeat_interleave(n_senders, 0)
            writes = {id(r.q_module): [(r.q_columns, patched_q)]}
            writes.setdefault(id(r.k_module), []).append((r.k_columns, clean_k))
            for module in r.projection_modules():
                handles.append(module.register_forward_hook(_override_end(writes[id(module)])))
            if readout is None:
                stop = _keep_pattern(seen, r, io, last)
                handles.append(adapter.attention(r.layer).register_forward_hook(stop))
            else:
                others = [h for h in range(adapter.dims.n_heads) if h not in r.heads]
                clean_z = kept[f"z{r.layer}"][:, others].repeat_interleave(n_senders, 0)
                hold = _hold_end_z(others, clean_z, adapter.dims.d_head)
                handles.append(
                    adapter.attn_out_proj(r.layer).register_forward_pre_hook(hold, with_kwargs=True)
                )
        cache = prefix_copy(prefix)
        cache.batch_repeat_interleave(n_senders)
        device = next(adapter.model.parameters()).device
        reading: AbstractContextManager[dict[str, Tensor]] = (
            nullcontext({}) if readout is None else stopped_at_unembedding(adapter)
        )
        try:
            with replayed_below(adapter, clean_end, layers[0].layer, interleaved(n_senders)), reading as head:
                adapter.model(
                    input_ids=end_tokens.repeat_interleave(n_senders, 0).to(device),
                    cache=cache,
                    use_cache=True,
                )
        except StopForward:  # the attention read-out has read the last receiver layer
            pass
        finally:
            for handle in handles:
                handle.remove()
    if readout is not None:
        io_ids, s_ids = (
            readout.io_ids.repeat_interleave(n_senders),
            readout.s_ids.repeat_interleave(n_senders),
        )
        return logit_diff_at(adapter, head["input"], io_ids, s_ids).view(n_prompts, n_senders).T
    attention = torch.cat([seen[r.layer] for r in layers], dim=1)  # [row, receiver]
    return attention.view(n_prompts, n_senders, -1).transpose(0, 1)


def _hold_end_z(heads: list[int], values: Tensor, d_head: int) -> Any:
    """A forward pre-hook on the output projection that writes ``values [row, head, d_head]`` as
    the z of ``heads`` at the last position."""

    def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        z = first_input(args, kwargs).clone()
        for index, h in enumerate(heads):
            z[:, -1, h * d_head : (h + 1) * d_head] = values[:, index].to(z)
        return ((z, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": z})

    return hook


def _keep_pattern(seen: dict[int, Tensor], r: _ReceiverLayer, io: int, last: int) -> Any:
    def hook(_m: nn.Module, _args: Any, output: Any) -> None:
        seen[r.layer] = output[1][:, r.heads, -1, io].float().cpu()
        if r.layer == last:
            raise StopForward

    return hook
