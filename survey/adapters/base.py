"""The uniform view of a causal LM's heads, neurons and weights.

Every family adapter maps its Hugging Face modules onto the same vocabulary:

- ``attention(layer)``: the module that returns ``(output, pattern)`` under eager attention;
- ``qkv_projections(layer)``: where q, k and v come from, as (module, slice) pairs, so that fused
  projections (GPT-2 ``c_attn``, GPT-NeoX ``query_key_value``, Phi-3 ``qkv_proj``) need only a
  slicing function and the per-head weights are derived from the same slices;
- ``attn_out_proj(layer)``: its input is z, the per-head outputs before the output projection;
- ``mlp_out_proj(layer)``: its input is the neuron activations (for gated MLPs act(gate)·up);
- ``mlp_output(layer, x)``: the MLP's contribution to the residual for a residual ``x``, through
  its input norm and any post-MLP norm (``effective_embedding`` applies block 0's to W_E);
- optional ``attn_post_norm(layer)``: a norm applied to the attention output before it joins the
  residual stream (Gemma 2/3, OLMo 2). Head contributions through it are linearised with the
  norm's scale frozen from the same forward pass.

Weights follow the TransformerLens convention: ``W_Q [head, d_model, d_head]``,
``W_O [head, d_head, d_model]``, ``W_in [d_mlp, d_model]``, ``W_out [d_mlp, d_model]``,
``W_U [d_model, vocab]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from transformers import PreTrainedModel

Slice = Callable[[Tensor], Tensor]


def whole(t: Tensor) -> Tensor:
    """The identity slice: the projection's whole output."""
    return t


def contiguous_slice(start: int, stop: int) -> Slice:
    """Select features ``[start, stop)`` of the last dimension."""
    return lambda t: t[..., start:stop]


@dataclass(frozen=True)
class Projection:
    """A linear map read off a module: the module's output, sliced on its last dimension."""

    module: nn.Module
    select: Slice = whole


@dataclass(frozen=True)
class Dims:
    """Shape facts shared by every family."""

    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_model: int
    d_mlp: int
    d_vocab: int


@dataclass(frozen=True)
class HeadWeights:
    """One layer's attention weights per query head; K and V are already expanded for GQA."""

    W_Q: Tensor  # [head, d_model, d_head]
    b_Q: Tensor  # [head, d_head]
    W_K: Tensor  # [head, d_model, d_head]
    b_K: Tensor  # [head, d_head]
    W_V: Tensor  # [head, d_model, d_head]
    b_V: Tensor  # [head, d_head]
    W_O: Tensor  # [head, d_head, d_model]
    b_O: Tensor  # [d_model]


@dataclass(frozen=True)
class NeuronWeights:
    """One layer's MLP weights per neuron."""

    W_in: Tensor  # [d_mlp, d_model]
    b_in: Tensor  # [d_mlp]
    W_gate: Tensor | None  # [d_mlp, d_model], gated MLPs only
    W_out: Tensor  # [d_mlp, d_model]
    b_out: Tensor  # [d_model]


def weight_of(module: nn.Module) -> Tensor:
    """A module's ``weight`` parameter, detached; TypeError if it has none."""
    weight = getattr(module, "weight", None)
    if not isinstance(weight, Tensor):
        raise TypeError(f"{type(module).__name__} has no weight tensor")
    return weight.detach()


def in_out_weight(module: nn.Module) -> tuple[Tensor, Tensor]:
    """A linear module's weight as ``[d_in, d_out]`` and its bias (zeros when absent)."""
    weight = weight_of(module)
    if type(module).__name__ != "Conv1D":  # HF Conv1D already stores [in, out]
        weight = weight.T
    bias = getattr(module, "bias", None)
    bias = torch.zeros(weight.shape[1], dtype=weight.dtype, device=weight.device) if bias is None else bias
    return weight, bias.detach()


def read_projection(projection: Projection) -> tuple[Tensor, Tensor]:
    """The ``[d_in, d_out']`` weight and bias of a (possibly sliced) projection."""
    weight, bias = in_out_weight(projection.module)
    return projection.select(weight), projection.select(bias)


class ArchitectureAdapter:
    """Base adapter: module paths for the common decoder layout, overridden per family."""

    model_types: ClassVar[tuple[str, ...]] = ()
    blocks_path: ClassVar[str] = "model.layers"
    attention_path: ClassVar[str] = "self_attn"
    q_path: ClassVar[str] = "self_attn.q_proj"
    k_path: ClassVar[str] = "self_attn.k_proj"
    v_path: ClassVar[str] = "self_attn.v_proj"
    o_path: ClassVar[str] = "self_attn.o_proj"
    mlp_in_path: ClassVar[str] = "mlp.up_proj"
    mlp_gate_path: ClassVar[str | None] = "mlp.gate_proj"
    mlp_out_path: ClassVar[str] = "mlp.down_proj"
    mlp_path: ClassVar[str] = "mlp"
    mlp_in_norm_path: ClassVar[str | None] = "post_attention_layernorm"
    attn_in_norm_path: ClassVar[str | None] = "input_layernorm"
    attn_post_norm_path: ClassVar[str | None] = None
    mlp_post_norm_path: ClassVar[str | None] = None
    norm_gain_offset: ClassVar[float] = 0.0  # Gemma RMSNorms multiply by (1 + weight)
    final_norm_path: ClassVar[str] = "model.norm"
    embed_path: ClassVar[str] = "model.embed_tokens"
    pos_embed_path: ClassVar[str | None] = None
    unembed_path: ClassVar[str] = "lm_head"
    parallel_attn_mlp: ClassVar[bool] = False

    def __init__(self, model: PreTrainedModel) -> None:
        self.model = model
        self.config: Any = model.config  # HF configs carry family-specific attributes
        self.dims = self._read_dims()

    # ---- module access -------------------------------------------------------------------
    def blocks(self) -> list[nn.Module]:
        """The decoder layers, in order."""
        blocks = self.model.get_submodule(self.blocks_path)
        if not isinstance(blocks, nn.ModuleList):
            raise TypeError(f"{self.blocks_path} is a {type(blocks).__name__}, not a ModuleList")
        return list(blocks)

    def _in_block(self, layer: int, path: str) -> nn.Module:
        return self.blocks()[layer].get_submodule(path)

    def attention(self, layer: int) -> nn.Module:
        """The module whose forward returns ``(attn_output, pattern)`` under eager attention."""
        return self._in_block(layer, self.attention_path)

    def qkv_projections(self, layer: int) -> dict[str, Projection]:
        """Where the raw (pre-norm, pre-rotary) q, k and v come from."""
        return {
            "q": Projection(self._in_block(layer, self.q_path)),
            "k": Projection(self._in_block(layer, self.k_path)),
            "v": Projection(self._in_block(layer, self.v_path)),
        }

    def attn_out_proj(self, layer: int) -> nn.Module:
        """The output projection; its input is z."""
        return self._in_block(layer, self.o_path)

    def attn_in_norm(self, layer: int) -> nn.Module | None:
        """The norm the attention reads the residual through, if any (OLMo 2 has none)."""
        return None if self.attn_in_norm_path is None else self._in_block(layer, self.attn_in_norm_path)

    def attn_post_norm(self, layer: int) -> nn.Module | None:
        """The norm applied to the attention output before the residual add, if any."""
        return None if self.attn_post_norm_path is None else self._in_block(layer, self.attn_post_norm_path)

    def mlp_post_norm(self, layer: int) -> nn.Module | None:
        """The norm applied to the MLP output before the residual add, if any (Gemma 2/3, OLMo 2)."""
        return None if self.mlp_post_norm_path is None else self._in_block(layer, self.mlp_post_norm_path)

    def mlp_in_norm(self, layer: int) -> nn.Module | None:
        """The norm the MLP reads the residual through, if any (OLMo 2 has none)."""
        return None if self.mlp_in_norm_path is None else self._in_block(layer, self.mlp_in_norm_path)

    def mlp_output(self, layer: int, x: Tensor) -> Tensor:
        """The MLP's contribution to the residual for residual rows ``x [..., d_model]``: through
        the MLP's input norm, the MLP and the post-MLP norm where the family has them."""
        norm, post = self.mlp_in_norm(layer), self.mlp_post_norm(layer)
        out = self._in_block(layer, self.mlp_path)(x if norm is None else norm(x))
        return out if post is None else post(out)

    def effective_embedding(self, token_ids: Tensor) -> Tensor:
        """``[token, d_model]`` fp32: Gould et al.'s effective embedding x + MLP0(x), x the token's
        (scaled) embedding, with block 0's attention skipped and no position embedding."""
        embed = self.model.get_submodule(self.embed_path)
        with torch.inference_mode():
            x = embed(token_ids.to(weight_of(embed).device))
            return (x + self.mlp_output(0, x)).float()

    def mlp_in_projections(self, layer: int) -> dict[str, Projection]:
        """The MLP input maps: ``in`` always, ``gate`` for gated MLPs."""
        projections = {"in": Projection(self._in_block(layer, self.mlp_in_path))}
        if self.mlp_gate_path is not None:
            projections["gate"] = Projection(self._in_block(layer, self.mlp_gate_path))
        return projections

    def mlp_out_proj(self, layer: int) -> nn.Module:
        """The MLP output projection; its input is the neuron activations."""
        return self._in_block(layer, self.mlp_out_path)

    def final_norm(self) -> nn.Module:
        """The norm before the unembedding."""
        return self.model.get_submodule(self.final_norm_path)

    # ---- weights -------------------------------------------------------------------------
    def kv_head_index(self) -> Tensor:
        """For each query head, the key/value head it reads (GQA): ``h // (n_heads // n_kv_heads)``."""
        group = self.dims.n_heads // self.dims.n_kv_heads
        return torch.arange(self.dims.n_heads) // group

    def head_weights(self, layer: int) -> HeadWeights:
        """Per-head W_Q, W_K, W_V, W_O of one layer, with K/V expanded to query heads."""
        d = self.dims
        split: dict[str, tuple[Tensor, Tensor]] = {}
        for name, projection in self.qkv_projections(layer).items():
            weight, bias = read_projection(projection)
            n = d.n_heads if name == "q" else d.n_kv_heads
            per_head_w = weight.reshape(d.d_model, n, d.d_head).permute(1, 0, 2)
            per_head_b = bias.reshape(n, d.d_head)
            if name != "q":
                index = self.kv_head_index().to(weight.device)
                per_head_w, per_head_b = per_head_w[index], per_head_b[index]
            split[name] = (per_head_w, per_head_b)
        w_o, b_o = self.output_weights(layer)
        return HeadWeights(
            W_Q=split["q"][0], b_Q=split["q"][1],
            W_K=split["k"][0], b_K=split["k"][1],
            W_V=split["v"][0], b_V=split["v"][1],
            W_O=w_o, b_O=b_o,
        )  # fmt: skip

    def output_weights(self, layer: int) -> tuple[Tensor, Tensor]:
        """W_O ``[head, d_head, d_model]`` and b_O ``[d_model]`` of one layer, without reading Q/K/V."""
        d = self.dims
        w_o, b_o = in_out_weight(self.attn_out_proj(layer))
        return w_o.reshape(d.n_heads, d.d_head, d.d_model), b_o

    def neuron_weights(self, layer: int) -> NeuronWeights:
        """Per-neuron W_in (and W_gate), W_out of one layer."""
        projections = self.mlp_in_projections(layer)
        w_in, b_in = read_projection(projections["in"])
        w_gate = read_projection(projections["gate"])[0].T if "gate" in projections else None
        w_out, b_out = in_out_weight(self.mlp_out_proj(layer))
        return NeuronWeights(W_in=w_in.T, b_in=b_in, W_gate=w_gate, W_out=w_out, b_out=b_out)

    def embedding(self) -> Tensor:
        """W_E ``[vocab, d_model]``, already multiplied by the family's embedding scale."""
        return weight_of(self.model.get_submodule(self.embed_path)) * self.embed_scale()

    def embed_scale(self) -> float:
        """The factor the model multiplies token embeddings by (Gemma: sqrt(d_model))."""
        scale = getattr(self.model.get_submodule(self.embed_path), "embed_scale", 1.0)
        return float(scale)

    def pos_embedding(self) -> Tensor | None:
        """Learned absolute position embeddings ``[n_ctx, d_model]``, for families that have them."""
        if self.pos_embed_path is None:
            return None
        return weight_of(self.model.get_submodule(self.pos_embed_path))

    def final_norm_gain(self) -> Tensor | None:
        """The final norm's per-feature gain ``[d_model]`` (Gemma's 1 + w), None when it has none."""
        weight = getattr(self.final_norm(), "weight", None)
        return None if weight is None else weight.detach().float() + self.norm_gain_offset

    def final_norm_centres(self) -> bool:
        """Whether the final norm removes the mean (LayerNorm) rather than only rescaling (RMSNorm)."""
        return "rms" not in type(self.final_norm()).__name__.lower()

    def mlp_post_gain(self, layer: int) -> Tensor | None:
        """The post-MLP norm's per-feature gain ``[d_model]`` (Gemma's 1 + w), None without one."""
        norm = self.mlp_post_norm(layer)
        return None if norm is None else weight_of(norm).detach().float() + self.norm_gain_offset

    def unembedding(self) -> tuple[Tensor, Tensor]:
        """W_U ``[d_model, vocab]`` and b_U ``[vocab]`` (zeros when the head has no bias)."""
        return in_out_weight(self.model.get_submodule(self.unembed_path))

    # ---- post-attention norm linearisation -----------------------------------------------
    def post_norm_factor(self, layer: int, norm_input: Tensor) -> Tensor | None:
        """The frozen per-position, per-feature factor of the post-attention RMSNorm.

        ``norm(x) = gain * x * rsqrt(mean(x^2) + eps)``; with the scale frozen at the value the
        summed attention output produced, every head's contribution passes through the same
        linear map, so the per-head contributions still sum to the norm's output.
        """
        norm = self.attn_post_norm(layer)
        if norm is None:
            return None
        eps = float(getattr(norm, "eps", getattr(norm, "variance_epsilon", 1e-6)))
        x = norm_input.float()
        scale = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)  # [..., 1]
        gain = (weight_of(norm).float() + self.norm_gain_offset).to(x.device)  # [d_model]
        return scale * gain

    # ---- dims ----------------------------------------------------------------------------
    def _read_dims(self) -> Dims:
        n_heads = int(self.config.num_attention_heads)
        q_weight, _ = read_projection(self.qkv_projections(0)["q"])
        k_weight, _ = read_projection(self.qkv_projections(0)["k"])
        d_model = int(q_weight.shape[0])
        d_head = int(q_weight.shape[1]) // n_heads
        w_out, _ = in_out_weight(self.mlp_out_proj(0))
        w_u, _ = in_out_weight(self.model.get_submodule(self.unembed_path))
        return Dims(
            n_layers=len(self.blocks()),
            n_heads=n_heads,
            n_kv_heads=int(k_weight.shape[1]) // d_head,
            d_head=d_head,
            d_model=d_model,
            d_mlp=int(w_out.shape[0]),
            d_vocab=int(w_u.shape[1]),
        )
