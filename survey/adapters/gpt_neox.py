"""GPT-NeoX (Pythia, StableLM-alpha): per-head interleaved fused qkv, parallel residual."""

from torch import nn
from transformers import PreTrainedModel

from survey.adapters.base import ArchitectureAdapter, Projection, Slice


def _interleaved(n_heads: int, d_head: int, part: int) -> Slice:
    """``query_key_value`` is laid out [head, (q|k|v), d_head]; select one of q, k, v."""
    return lambda t: t.unflatten(-1, (n_heads, 3, d_head))[..., part, :].flatten(-2)


class GPTNeoXAdapter(ArchitectureAdapter):
    """Attention and MLP read the same residual when ``use_parallel_residual`` is set (Pythia)."""

    model_types = ("gpt_neox",)
    blocks_path = "gpt_neox.layers"
    attention_path = "attention"
    o_path = "attention.dense"
    mlp_in_path = "mlp.dense_h_to_4h"
    mlp_gate_path = None
    mlp_out_path = "mlp.dense_4h_to_h"
    final_norm_path = "gpt_neox.final_layer_norm"
    embed_path = "gpt_neox.embed_in"

    def __init__(self, model: PreTrainedModel) -> None:
        self.parallel_attn_mlp = bool(getattr(model.config, "use_parallel_residual", True))  # type: ignore[misc]
        super().__init__(model)

    def qkv_projections(self, layer: int) -> dict[str, Projection]:
        fused: nn.Module = self._in_block(layer, "attention.query_key_value")
        n_heads = int(self.config.num_attention_heads)
        d_head = int(self.config.hidden_size) // n_heads
        return {name: Projection(fused, _interleaved(n_heads, d_head, i)) for i, name in enumerate("qkv")}


ADAPTERS = (GPTNeoXAdapter,)
