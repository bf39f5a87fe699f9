"""GPT-J: separate q/k/v without biases, partial rotary, attention parallel to the MLP."""

from survey.adapters.base import ArchitectureAdapter


class GPTJAdapter(ArchitectureAdapter):
    """GPT-J 6B. One LayerNorm feeds both attention and MLP (parallel block)."""

    model_types = ("gptj",)
    blocks_path = "transformer.h"
    attention_path = "attn"
    attn_in_norm_path = "ln_1"
    q_path = "attn.q_proj"
    k_path = "attn.k_proj"
    v_path = "attn.v_proj"
    o_path = "attn.out_proj"
    mlp_in_path = "mlp.fc_in"
    mlp_gate_path = None
    mlp_out_path = "mlp.fc_out"
    mlp_in_norm_path = "ln_1"
    final_norm_path = "transformer.ln_f"
    embed_path = "transformer.wte"
    parallel_attn_mlp = True


ADAPTERS = (GPTJAdapter,)
