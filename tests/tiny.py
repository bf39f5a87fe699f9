"""Tiny random-weight models of every supported family, built from configs (no downloads)."""

from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

# Families with grouped-query attention get 4 query heads over 2 key/value heads.
GQA_TYPES = {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3", "olmo", "olmo2"}
PARALLEL_TYPES = {"gptj", "phi", "gpt_neox"}
VOCAB = 96


def tiny_config(model_type: str):  # type: ignore[no-untyped-def]
    """A 2-layer, 4-head, d_model=32 config of ``model_type``."""
    n_kv = 2 if model_type in GQA_TYPES else 4
    return AutoConfig.for_model(
        model_type,
        vocab_size=VOCAB, hidden_size=32, n_embd=32, num_hidden_layers=2, n_layer=2, num_layers=2,
        num_attention_heads=4, n_head=4, num_heads=4, num_key_value_heads=n_kv, head_dim=8,
        intermediate_size=64, ffn_dim=64, word_embed_proj_dim=32, rotary_dim=4,
        attention_types=[[["global", "local"], 1]], max_position_embeddings=64, n_positions=64,
        pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )  # fmt: skip


def tiny_model(model_type: str, seed: int = 0) -> PreTrainedModel:
    """A tiny eager-attention model with randomised norm gains, so norms are not the identity."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(model_type), attn_implementation="eager")
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name or "ln" in name:
                param.add_(0.3 * torch.randn_like(param))
    return model.eval()
