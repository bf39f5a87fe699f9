"""Measurements for the IOI classifiers, in the adapter/capture layer: the logit difference at
END, the residual stream at END split into components, and their direct logit attribution.

Direct logit attribution (DLA) linearises the final norm with its scale frozen at the clean run:
``norm(x) ≈ gain * centre(x) / sigma + bias``, with ``sigma`` read from the clean residual
(RMS for RMSNorm; the standard deviation, after centring, for LayerNorm). Every residual
component then contributes ``(gain * centre(c) / sigma) · (W_U[:, IO] - W_U[:, S])``, and the
components, the norm's bias and the unembedding bias sum exactly to the clean logit difference.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from survey.adapters import ArchitectureAdapter
from survey.adapters.base import in_out_weight
from survey.engine.ablation import Head, condition_chunks, mean_ablated, rows_replaced
from survey.engine.capture import CaptureSpec, StopForward, capture, first_input
from survey.engine.replay import BlockOutputs, recorded, repeated, replayed_below


def soft_capped(adapter: ArchitectureAdapter, logits: Tensor) -> Tensor:
    """Logits through the family's final soft-capping (Gemma 2), as the model's head applies it."""
    cap = getattr(adapter.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


@contextmanager
def stopped_at_unembedding(adapter: ArchitectureAdapter) -> Iterator[dict[str, Tensor]]:
    """Within the block, a forward pass stops where the unembedding would run and keeps its input
    at the last position as ``kept["input"]`` ``[row, d]``: a read-out of a few logits never
    computes the vocabulary's (:func:`logit_diff_at`)."""
    kept: dict[str, Tensor] = {}

    def stop(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        kept["input"] = first_input(args, kwargs)[:, -1]
        raise StopForward

    head = adapter.model.get_submodule(adapter.unembed_path)
    handle = head.register_forward_pre_hook(stop, with_kwargs=True)
    try:
        yield kept
    except StopForward:
        pass
    finally:
        handle.remove()


def logit_diff_at(adapter: ArchitectureAdapter, head_input: Tensor, io_ids: Tensor, s_ids: Tensor) -> Tensor:
    """``[row]`` logit(IO) - logit(S) from the unembedding's input ``[row, d]``: two of its columns."""
    weight, bias = in_out_weight(adapter.model.get_submodule(adapter.unembed_path))  # [d, vocab]
    ids = torch.stack([io_ids, s_ids], 1).to(weight.device)  # [row, 2]
    columns = weight.T[ids].float()  # [row, 2, d]
    logits = torch.einsum("rd,rkd->rk", head_input.float(), columns) + bias[ids].float()
    logits = soft_capped(adapter, logits)
    return (logits[:, 0] - logits[:, 1]).cpu()


def logit_diff(logits: Tensor, io_ids: Tensor, s_ids: Tensor) -> Tensor:
    """``logits [prompt, vocab]`` at END → logit(IO) - logit(S) per prompt."""
    return logits.gather(1, io_ids[:, None])[:, 0] - logits.gather(1, s_ids[:, None])[:, 0]


@dataclass(frozen=True)
class EndComponents:
    """The residual stream at END, split: embeddings, every head's output, each layer's
    attention output bias, each MLP's output; plus the residual itself, the logits, and each
    head's attention from END to IO, S1 and S2."""

    embed: Tensor  # [prompt, d_model]
    heads: Tensor  # [prompt, layer, head, d_model]
    attn_bias: Tensor  # [layer, d_model]
    mlps: Tensor  # [prompt, layer, d_model]
    resid: Tensor  # [prompt, d_model]: the final norm's input
    logits: Tensor  # [prompt, vocab]
    attention: Tensor  # [prompt, layer, head, 3]: END→IO, END→S1, END→S2

    def total(self) -> Tensor:
        """The sum of the components, which equals ``resid``."""
        return self.embed + self.heads.sum((1, 2)) + self.attn_bias.sum(0) + self.mlps.sum(1)


def keep_input_at(kept: dict[str, Tensor], name: str, position: int | slice) -> Any:
    """A forward pre-hook that keeps the module's input at one position as ``kept[name]``."""

    def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        kept[name] = first_input(args, kwargs)[:, position].detach().float().clone()

    return hook


@contextmanager
def pre_hooks(hooks: list[tuple[nn.Module, Any]]) -> Iterator[None]:
    handles = [module.register_forward_pre_hook(hook, with_kwargs=True) for module, hook in hooks]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def end_components(adapter: ArchitectureAdapter, tokens: Tensor, positions: dict[str, int]) -> EndComponents:
    """One forward pass over ``tokens [prompt, pos]`` that keeps every component at END (the
    last position: the only one unembedded)."""
    end = positions["end"]
    if end != tokens.shape[1] - 1:
        raise ValueError(f"END is position {end}, not the last of {tokens.shape[1]}")
    kept: dict[str, Tensor] = {}
    hooks = [
        (adapter.blocks()[0], keep_input_at(kept, "embed", end)),
        (adapter.final_norm(), keep_input_at(kept, "resid", end)),
    ]
    with pre_hooks(hooks):
        got = capture(
            adapter, tokens, CaptureSpec.of("head_out", "mlp_out", "pattern"), keep_logits=True,
            logits_at=1, batch_size=len(tokens),
        )  # fmt: skip
    if got.logits is None:
        raise RuntimeError("capture returned no logits")
    heads = got.stacked("head_out")[:, :, end].permute(1, 0, 2, 3)  # [prompt, layer, head, d_model]
    mlps = got.stacked("mlp_out")[:, :, end].permute(1, 0, 2)
    keys = [positions["io"], positions["s1"], positions["s2"]]
    # patterns [layer, prompt, head, query, key] → [prompt, layer, head, 3]
    attention = got.stacked("pattern")[:, :, :, end, keys].permute(1, 0, 2, 3)
    bias = torch.stack(
        [adapter.output_weights(layer)[1].detach().float().cpu() for layer in range(adapter.dims.n_layers)]
    )
    return EndComponents(
        kept["embed"].cpu(),
        heads.float(),
        bias,
        mlps.float(),
        kept["resid"].cpu(),
        got.logits[:, -1],
        attention,
    )


@dataclass(frozen=True)
class FinalNormView:
    """The final norm as DLA needs it: gain, bias, whether it centres, and epsilon."""

    gain: Tensor
    bias: Tensor | None
    centred: bool
    eps: float

    @classmethod
    def of(cls, adapter: ArchitectureAdapter) -> FinalNormView:
        norm = adapter.final_norm()
        gain = adapter.final_norm_gain()
        d = adapter.dims.d_model
        bias = getattr(norm, "bias", None)
        eps = float(getattr(norm, "eps", getattr(norm, "variance_epsilon", 1e-5)))
        return cls(  # on the CPU, beside the captured components
            torch.ones(d) if gain is None else gain.cpu(),
            None if bias is None else bias.detach().float().cpu(),
            isinstance(norm, nn.LayerNorm), eps,
        )  # fmt: skip

    def centre(self, x: Tensor) -> Tensor:
        """Subtract the feature mean (LayerNorm only); linear, so it applies per component."""
        return x - x.mean(-1, keepdim=True) if self.centred else x

    def sigma(self, resid: Tensor) -> Tensor:
        """``[prompt]``: the scale the norm divides by on the clean residual."""
        x = self.centre(resid)
        return (x.pow(2).mean(-1) + self.eps).sqrt()


def direct_logit_attribution(
    adapter: ArchitectureAdapter, components: EndComponents, io_ids: Tensor, s_ids: Tensor,
    sigma: Tensor | None = None,
) -> dict[str, Tensor]:  # fmt: skip
    """Each component's contribution to logit(IO) - logit(S): ``heads [prompt, layer, head]``,
    ``mlps [prompt, layer]``, ``embed``, ``attn_bias`` and ``constant`` (norm and unembedding
    biases) ``[prompt]``. Their sum is the logit difference. ``sigma [prompt]`` freezes the final
    norm's scale (from the clean run, when ``components`` come from an ablated run); by default
    it is read from ``components``."""
    norm = FinalNormView.of(adapter)
    w_u, b_u = adapter.unembedding()
    w_u, b_u = w_u.detach().float().cpu(), b_u.detach().float().cpu()  # components are on the CPU
    direction = w_u[:, io_ids].T - w_u[:, s_ids].T  # [prompt, d_model]
    sigma = norm.sigma(components.resid) if sigma is None else sigma
    scale = (norm.gain / sigma[:, None]) * direction  # [prompt, d_model]

    def project(x: Tensor) -> Tensor:  # x [prompt, ..., d_model]
        view = scale.view(scale.shape[0], *([1] * (x.ndim - 2)), scale.shape[1])
        return (norm.centre(x) * view).sum(-1)

    constant = b_u[io_ids] - b_u[s_ids]
    if norm.bias is not None:
        constant = constant + direction @ norm.bias
    attn_bias = components.attn_bias.expand(len(io_ids), -1, -1)  # [prompt, layer, d_model]
    return {
        "heads": project(components.heads), "mlps": project(components.mlps),
        "embed": project(components.embed), "attn_bias": project(attn_bias).sum(1), "constant": constant,
    }  # fmt: skip


def condition_logit_diffs(
    adapter: ArchitectureAdapter, tokens: Tensor, io_ids: Tensor, s_ids: Tensor, masks: Tensor,
    values: Tensor, ablated: Sequence[Head] = (), means: Tensor | None = None,
) -> Tensor:  # fmt: skip
    """``[condition, prompt]``: the logit difference at the last position (END) with each
    condition's heads (``masks [condition, layer, head]``) given ``values`` as their z: means
    ``[layer, pos, head, d_head]`` (mean-ablation, from :func:`survey.engine.ablation.head_means`),
    or each prompt's own z ``[layer, prompt, pos, head, d_head]`` (held at a run); then ``ablated``
    mean-ablated with ``means`` on every row. Conditions run side by side, many to a pass, in
    order of their lowest layer; a pass's blocks below its lowest layer are replayed from a run
    without the conditions."""
    n_prompts, positions = tokens.shape
    n_layers = masks.shape[1]
    device = next(adapter.model.parameters()).device
    firsts = [int(m.any(1).nonzero()[0]) if m.any() else n_layers for m in masks]
    order = sorted(range(len(masks)), key=firsts.__getitem__, reverse=True)

    def then() -> AbstractContextManager[None]:
        return mean_ablated(adapter, ablated, means) if ablated and means is not None else nullcontext()

    base: BlockOutputs = {}
    with recorded(adapter, base), then(), torch.inference_mode(), stopped_at_unembedding(adapter):
        adapter.model(input_ids=tokens.to(device), use_cache=False, logits_to_keep=1)
    result = torch.zeros(len(masks), n_prompts)
    for chunk in condition_chunks(len(masks), n_prompts, positions):
        chosen = order[chunk.start : chunk.stop]
        rows = masks[chosen].repeat_interleave(n_prompts, 0)
        per_row = values.repeat(1, len(chosen), 1, 1, 1) if values.ndim == 5 else values
        ids = tokens.repeat(len(chosen), 1).to(device)
        lowest = min(firsts[c] for c in chosen)
        replay = replayed_below(adapter, base, lowest, repeated(len(chosen), dim=0))
        reading = stopped_at_unembedding(adapter)
        with rows_replaced(adapter, rows, per_row), then(), replay, torch.inference_mode(), reading as head:
            adapter.model(input_ids=ids, use_cache=False, logits_to_keep=1)
        ld = logit_diff_at(adapter, head["input"], io_ids.repeat(len(chosen)), s_ids.repeat(len(chosen)))
        result[chosen] = ld.view(len(chosen), n_prompts)
    return result
