"""OPT: learned positions (offset by 2), ReLU MLP with ``fc1``/``fc2`` on the layer itself."""

from torch import Tensor

from survey.adapters.base import ArchitectureAdapter


class OPTAdapter(ArchitectureAdapter):
    """OPT 125m-66b (pre-norm configs; OPT-350m's post-norm layout is read the same way)."""

    model_types = ("opt",)
    blocks_path = "model.decoder.layers"
    q_path = "self_attn.q_proj"
    o_path = "self_attn.out_proj"
    attn_in_norm_path = "self_attn_layer_norm"
    mlp_in_path = "fc1"
    mlp_gate_path = None
    mlp_out_path = "fc2"
    mlp_in_norm_path = "final_layer_norm"
    final_norm_path = "model.decoder.final_layer_norm"
    embed_path = "model.decoder.embed_tokens"
    pos_embed_path = "model.decoder.embed_positions"

    def mlp_output(self, layer: int, x: Tensor) -> Tensor:
        """``fc2(act(fc1(final_layer_norm(x))))``: OPT keeps its MLP on the layer, not in a module."""
        fc1, act, fc2 = (
            self._in_block(layer, path) for path in (self.mlp_in_path, "activation_fn", self.mlp_out_path)
        )
        norm = self.mlp_in_norm(layer)
        return fc2(act(fc1(x if norm is None else norm(x))))


ADAPTERS = (OPTAdapter,)
