"""Gemma 1/2/3: scaled embeddings, (1 + w) RMSNorm; Gemma 2/3 normalise the attention output."""

from survey.adapters.base import ArchitectureAdapter


class GemmaAdapter(ArchitectureAdapter):
    """Gemma 1: the Llama layout with a GELU gate and embeddings scaled by sqrt(d_model)."""

    model_types = ("gemma",)
    norm_gain_offset = 1.0


class Gemma2Adapter(ArchitectureAdapter):
    """Gemma 2 and Gemma 3 text: ``post_attention_layernorm`` normalises the attention output
    before the residual add, so head contributions are linearised with its scale frozen."""

    model_types = ("gemma2", "gemma3_text")
    attn_post_norm_path = "post_attention_layernorm"
    mlp_in_norm_path = "pre_feedforward_layernorm"
    mlp_post_norm_path = "post_feedforward_layernorm"
    norm_gain_offset = 1.0


ADAPTERS = (GemmaAdapter, Gemma2Adapter)
