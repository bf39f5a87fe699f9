"""GPT-Neo (and TinyStories): learned positions, unscaled attention, local/global layers."""

from survey.adapters.base import ArchitectureAdapter


class GPTNeoAdapter(ArchitectureAdapter):
    """GPT-Neo 125M-2.7B and the TinyStories models."""

    model_types = ("gpt_neo",)
    blocks_path = "transformer.h"
    attention_path = "attn.attention"
    attn_in_norm_path = "ln_1"
    q_path = "attn.attention.q_proj"
    k_path = "attn.attention.k_proj"
    v_path = "attn.attention.v_proj"
    o_path = "attn.attention.out_proj"
    mlp_in_path = "mlp.c_fc"
    mlp_gate_path = None
    mlp_out_path = "mlp.c_proj"
    mlp_in_norm_path = "ln_2"
    final_norm_path = "transformer.ln_f"
    embed_path = "transformer.wte"
    pos_embed_path = "transformer.wpe"


ADAPTERS = (GPTNeoAdapter,)
