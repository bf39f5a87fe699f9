"""Tiny random-weight models of every supported family, built from configs (no downloads)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

from survey.adapters import adapt
from survey.loading.loaders import BosPolicy, LoadedModel, LocalSource

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
        attention_types=[[["global", "local"], 1]], max_position_embeddings=128, n_positions=128,
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


def tiny_tokenizer():  # type: ignore[no-untyped-def]
    """A word-level tokenizer over VOCAB tokens: specials, then ``w3`` … ``w95``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>"]
    vocab = {tok: i for i, tok in enumerate(specials + [f"w{i}" for i in range(len(specials), VOCAB)])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )


def loaded_in_memory(model: PreTrainedModel, name: str, sha: str) -> LoadedModel:
    """``model`` held in memory with the tiny tokenizer and ``<s>`` as BOS, as the runner takes a
    loaded model; ``sha`` stands for its resolved revision."""
    tokenizer = tiny_tokenizer()
    return LoadedModel(
        LocalSource(name, "memory"), model, tokenizer, adapt(model),
        BosPolicy.for_tokenizer(tokenizer, "<s>"), sha, None,
    )  # fmt: skip


def save_tiny(model_type: str, folder: Path) -> Path:
    """Write a tiny model and its tokenizer with ``save_pretrained``, as a hub snapshot would hold them."""
    tiny_model(model_type).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def fake_hub_snapshot(cache: Path, hub_id: str, model_type: str, commit: str) -> Path:
    """Lay out ``hub_id`` in a Hugging Face hub cache at ``commit``, with ``refs/main`` pointing to it."""
    repo = cache / ("models--" + hub_id.replace("/", "--"))
    save_tiny(model_type, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return repo
