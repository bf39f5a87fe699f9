"""GPT-2: fused ``c_attn`` Conv1D, learned positions, GELU MLP."""

from typing import ClassVar

from torch import nn

from survey.adapters.base import ArchitectureAdapter, Projection, contiguous_slice


class GPT2Adapter(ArchitectureAdapter):
    """GPT-2 small to XL, distilgpt2, the stanford-crfm seeds."""

    model_types = ("gpt2",)
    blocks_path = "transformer.h"
    attention_path = "attn"
    attn_in_norm_path = "ln_1"
    o_path = "attn.c_proj"
    mlp_in_path = "mlp.c_fc"
    mlp_gate_path: ClassVar[str | None] = None
    mlp_out_path = "mlp.c_proj"
    mlp_in_norm_path = "ln_2"
    final_norm_path = "transformer.ln_f"
    embed_path = "transformer.wte"
    pos_embed_path = "transformer.wpe"

    def qkv_projections(self, layer: int) -> dict[str, Projection]:
        """``c_attn`` emits [q | k | v], each ``d_model`` wide."""
        fused: nn.Module = self._in_block(layer, "attn.c_attn")
        d = int(self.config.hidden_size)
        return {name: Projection(fused, contiguous_slice(i * d, (i + 1) * d)) for i, name in enumerate("qkv")}


ADAPTERS = (GPT2Adapter,)
