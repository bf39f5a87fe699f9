"""Measurements for the IOI classifiers, in the adapter/capture layer: the logit difference at
END, the residual stream at END split into components, and their direct logit attribution.

Direct logit attribution (DLA) linearises the final norm with its scale frozen at the clean run:
``norm(x) ≈ gain * centre(x) / sigma + bias``, with ``sigma`` read from the clean residual
(RMS for RMSNorm; the standard deviation, after centring, for LayerNorm). Every residual
component then contributes ``(gain * centre(c) / sigma) · (W_U[:, IO] - W_U[:, S])``, and the
components, the norm's bias and the unembedding bias sum exactly to the clean logit difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from survey.adapters import ArchitectureAdapter
from survey.capture import CaptureSpec, capture, first_input


def logit_diff(logits: Tensor, io_ids: Tensor, s_ids: Tensor) -> Tensor:
    """``logits [prompt, vocab]`` at END → logit(IO) - logit(S) per prompt."""
    return logits.gather(1, io_ids[:, None])[:, 0] - logits.gather(1, s_ids[:, None])[:, 0]


@dataclass(frozen=True)
class EndComponents:
    """The residual stream at END, split: embeddings, every head's output, each layer's
    attention output bias, each MLP's output; plus the residual itself and the logits."""

    embed: Tensor  # [prompt, d_model]
    heads: Tensor  # [prompt, layer, head, d_model]
    attn_bias: Tensor  # [layer, d_model]
    mlps: Tensor  # [prompt, layer, d_model]
    resid: Tensor  # [prompt, d_model]: the final norm's input
    logits: Tensor  # [prompt, vocab]

    def total(self) -> Tensor:
        """The sum of the components, which equals ``resid``."""
        return self.embed + self.heads.sum((1, 2)) + self.attn_bias.sum(0) + self.mlps.sum(1)


def _keep_at(kept: dict[str, Tensor], name: str, position: int) -> Any:
    """A forward pre-hook that keeps the module's input at one position as ``kept[name]``."""

    def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        kept[name] = first_input(args, kwargs)[:, position].detach().float().clone()

    return hook


def end_components(adapter: ArchitectureAdapter, tokens: Tensor, end: int) -> EndComponents:
    """One forward pass over ``tokens [prompt, pos]`` that keeps every component at position ``end``."""
    kept: dict[str, Tensor] = {}
    handles = [
        adapter.blocks()[0].register_forward_pre_hook(_keep_at(kept, "embed", end), with_kwargs=True),
        adapter.final_norm().register_forward_pre_hook(_keep_at(kept, "resid", end), with_kwargs=True),
    ]
    try:
        got = capture(
            adapter, tokens, CaptureSpec.of("head_out", "mlp_out"), keep_logits=True, batch_size=len(tokens)
        )
    finally:
        for handle in handles:
            handle.remove()
    if got.logits is None:
        raise RuntimeError("capture returned no logits")
    heads = got.stacked("head_out")[:, :, end].permute(1, 0, 2, 3)  # [prompt, layer, head, d_model]
    mlps = got.stacked("mlp_out")[:, :, end].permute(1, 0, 2)
    bias = torch.stack(
        [adapter.output_weights(layer)[1].detach().float() for layer in range(adapter.dims.n_layers)]
    )
    return EndComponents(kept["embed"], heads.float(), bias, mlps.float(), kept["resid"], got.logits[:, end])


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
        return cls(
            torch.ones(d) if gain is None else gain, None if bias is None else bias.detach().float(),
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
    adapter: ArchitectureAdapter, components: EndComponents, io_ids: Tensor, s_ids: Tensor
) -> dict[str, Tensor]:
    """Each component's contribution to logit(IO) - logit(S): ``heads [prompt, layer, head]``,
    ``mlps [prompt, layer]``, ``embed``, ``attn_bias`` and ``constant`` (norm and unembedding
    biases) ``[prompt]``. Their sum is the clean logit difference."""
    norm = FinalNormView.of(adapter)
    w_u, b_u = adapter.unembedding()
    w_u, b_u = w_u.detach().float(), b_u.detach().float()
    direction = w_u[:, io_ids].T - w_u[:, s_ids].T  # [prompt, d_model]
    scale = (norm.gain / norm.sigma(components.resid)[:, None]) * direction  # [prompt, d_model]

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


def end_attention(adapter: ArchitectureAdapter, tokens: Tensor, positions: dict[str, int]) -> Tensor:
    """``[prompt, layer, head, 3]``: each head's attention from END to IO, S1 and S2."""
    patterns = capture(adapter, tokens, CaptureSpec.of("pattern"), batch_size=len(tokens)).stacked("pattern")
    keys = [positions["io"], positions["s1"], positions["s2"]]
    return patterns[:, :, :, positions["end"], keys].permute(1, 0, 2, 3)  # from [layer, prompt, head, 3]


def ablated_logit_diff(
    adapter: ArchitectureAdapter, tokens: Tensor, end: int, io_ids: Tensor, s_ids: Tensor,
    heads: list[tuple[int, int]], means: Tensor,
) -> Tensor:  # fmt: skip
    """``[prompt]``: the logit difference with ``heads`` mean-ablated (``means`` from
    :func:`survey.ablation.head_means`, usually over the ABC prompts)."""
    from survey.ablation import mean_ablated

    with mean_ablated(adapter, heads, means), torch.inference_mode():
        device = next(adapter.model.parameters()).device
        logits = adapter.model(input_ids=tokens.to(device), use_cache=False).logits[:, end].float().cpu()
    return logit_diff(logits, io_ids, s_ids)


def resid_after_first_block(adapter: ArchitectureAdapter, token_ids: Tensor, bos_id: int | None) -> Tensor:
    """``[token, d_model]``: each token's residual after block 0 (attention and MLP), read alone
    after BOS. This is "the embedding after the first MLP" of the OV copy score."""
    tokens = (
        token_ids[:, None]
        if bos_id is None
        else torch.stack([torch.full_like(token_ids, bos_id), token_ids], 1)
    )
    kept: dict[str, Tensor] = {}
    after = adapter.blocks()[1] if adapter.dims.n_layers > 1 else adapter.final_norm()
    handle = after.register_forward_pre_hook(_keep_at(kept, "x", -1), with_kwargs=True)
    try:
        with torch.inference_mode():
            adapter.model(input_ids=tokens.to(next(adapter.model.parameters()).device), use_cache=False)
    finally:
        handle.remove()
    return kept["x"]


def ov_copy_scores(
    adapter: ArchitectureAdapter, name_ids: Tensor, bos_id: int | None, top: int = 5
) -> tuple[Tensor, Tensor]:
    """Per head ``[layer, head]``: the share of names whose own token is in the top ``top`` of
    W_U·W_OV applied to the name's residual after block 0 (copy score), and in the bottom
    ``top`` (negative copy score). Each head's output passes through the norms around it (the
    layer's attention input norm, a post-attention norm, the final norm); ties never count."""
    x = resid_after_first_block(adapter, name_ids, bos_id)
    w_u = adapter.unembedding()[0].detach().float()
    final = adapter.final_norm()
    copy, negative = [], []
    with torch.inference_mode():
        for layer in range(adapter.dims.n_layers):
            norm, post = adapter.attn_in_norm(layer), adapter.attn_post_norm(layer)
            read = x if norm is None else norm(x.to(next(norm.parameters(), x).dtype)).float()
            w = adapter.head_weights(layer)
            v = torch.einsum("nm,hmd->nhd", read, w.W_V.float()) + w.b_V.float()
            out = torch.einsum("nhd,hdm->nhm", v, w.W_O.float())  # [name, head, d_model]
            if post is not None:
                out = post(out)
            logits = final(out).float() @ w_u  # [name, head, vocab]
            own = logits.gather(-1, name_ids[:, None, None].expand(-1, logits.shape[1], 1))[..., 0]
            beyond_top = logits.topk(top + 1, dim=-1).values[..., top]
            beyond_bottom = logits.topk(top + 1, dim=-1, largest=False).values[..., top]
            copy.append((own > beyond_top).float().mean(0))
            negative.append((own < beyond_bottom).float().mean(0))
    return torch.stack(copy), torch.stack(negative)
