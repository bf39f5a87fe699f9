"""OLMo (non-parametric LayerNorm, clipped qkv) and OLMo 2 (post-sublayer RMSNorm)."""

from survey.adapters.base import ArchitectureAdapter


class OlmoAdapter(ArchitectureAdapter):
    """OLMo 1: the Llama layout; q/k/v may be clamped (``clip_qkv``) after the projections."""

    model_types = ("olmo",)


class Olmo2Adapter(ArchitectureAdapter):
    """OLMo 2: no pre-norms; ``post_attention_layernorm`` normalises the attention output, so head
    contributions are linearised with its scale frozen."""

    model_types = ("olmo2",)
    attn_in_norm_path = None
    attn_post_norm_path = "post_attention_layernorm"
    mlp_in_norm_path = None
    mlp_post_norm_path = "post_feedforward_layernorm"


ADAPTERS = (OlmoAdapter, Olmo2Adapter)
