"""Phi-1/1.5/2 (parallel block, partial rotary) and Phi-3 (fused qkv and gate_up)."""

from torch import nn

from survey.adapters.base import ArchitectureAdapter, Projection, contiguous_slice


class PhiAdapter(ArchitectureAdapter):
    """Phi-1, Phi-1.5, Phi-2: one LayerNorm feeds attention and MLP in parallel."""

    model_types = ("phi",)
    o_path = "self_attn.dense"
    mlp_in_path = "mlp.fc1"
    mlp_gate_path = None
    mlp_out_path = "mlp.fc2"
    mlp_in_norm_path = "input_layernorm"
    final_norm_path = "model.final_layernorm"
    parallel_attn_mlp = True


class Phi3Adapter(ArchitectureAdapter):
    """Phi-3: ``qkv_proj`` emits [q | k | v] (GQA-sized), ``gate_up_proj`` emits [gate | up]."""

    model_types = ("phi3",)

    def qkv_projections(self, layer: int) -> dict[str, Projection]:
        fused: nn.Module = self._in_block(layer, "self_attn.qkv_proj")
        n_heads = int(self.config.num_attention_heads)
        d_head = int(getattr(self.config, "head_dim", None) or self.config.hidden_size // n_heads)
        q_end = n_heads * d_head
        k_end = q_end + int(self.config.num_key_value_heads) * d_head
        v_end = k_end + int(self.config.num_key_value_heads) * d_head
        return {
            "q": Projection(fused, contiguous_slice(0, q_end)),
            "k": Projection(fused, contiguous_slice(q_end, k_end)),
            "v": Projection(fused, contiguous_slice(k_end, v_end)),
        }

    def mlp_in_projections(self, layer: int) -> dict[str, Projection]:
        fused: nn.Module = self._in_block(layer, "mlp.gate_up_proj")
        d_mlp = int(self.config.intermediate_size)
        return {
            "gate": Projection(fused, contiguous_slice(0, d_mlp)),
            "in": Projection(fused, contiguous_slice(d_mlp, 2 * d_mlp)),
        }


ADAPTERS = (PhiAdapter, Phi3Adapter)
