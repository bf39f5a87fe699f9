"""A GPT-2 whose successor head is known by construction, read through its effective embedding.

The residual keeps two one-hot subspaces of width VOCAB: the token (TOK, the tied unembedding
reads it) and MID, which only block 0's MLP writes: it copies the token into MID. Heads:

- L1H0 successor: its OV circuit reads MID and writes the next ordinal token into TOK, so it acts
  only on the effective embedding MLP0(W_E), not on W_E itself.
- L1H1 copy: reads TOK, writes the token itself.
- L1H2 distractor: writes the next member, and twice as strongly a token of another sequence
  ("Z", or "twenty" for letters): first among its own sequence's tokens, never among all of them.
- L0H0 BOS writer: uniform attention; its OV circuit writes a strong " M" into MID from BOS, so the
  old reading (the residual after block 0 behind BOS) turns the successor head into an "N" head.
- every other head has zero weights.

The tokenizer is word-level and knows every ordinal word.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from classifiers.ordinal import SEQUENCES
from tests.support.planted import set_head
from tests.support.tiny import VOCAB

D_MODEL, N_HEADS = 512, 4
D_HEAD = D_MODEL // N_HEADS
TOK, MID = 0, VOCAB  # offsets of the subspaces
BOS_ID = 1
SUCCESSOR, COPY, DISTRACTOR, BOS_WRITER = (1, 0), (1, 1), (1, 2), (0, 0)
PLANTED = {"successor": SUCCESSOR}
LN_SCALE = 22.6  # LayerNorm turns a one-hot entry of a 512-wide residual into about 22.6


def ordinal_tokenizer(missing: frozenset[str] | set[str] = frozenset()):  # type: ignore[no-untyped-def]
    """A word-level tokenizer whose vocabulary holds every ordinal word but ``missing``, then fillers."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    ordinal = dict.fromkeys(w for seq in SEQUENCES.values() for w in seq if w not in missing)
    words = ["<unk>", "<s>", "</s>", *ordinal]
    words += [f"w{i}" for i in range(len(words), VOCAB)]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )


def _blank() -> GPT2LMHeadModel:
    """Two layers, every weight zero but unit LayerNorm gains and one-hot token embeddings (no
    positions), a VOCAB-wide MLP, tied unembedding, eager attention."""
    config = GPT2Config(
        vocab_size=VOCAB, n_positions=8, n_embd=D_MODEL, n_layer=2, n_head=N_HEADS, n_inner=VOCAB,
        bos_token_id=BOS_ID, eos_token_id=2, tie_word_embeddings=True,
    )  # fmt: skip
    model = GPT2LMHeadModel(config)
    model.config._attn_implementation = "eager"
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(1.0) if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")) else p.zero_()
        model.transformer.wte.weight[:, TOK : TOK + VOCAB] = torch.eye(VOCAB)
    return model.eval()


def _reads(offset: int) -> torch.Tensor:
    """A ``[d_model, d_head]`` value map that copies the subspace at ``offset`` into head coordinates."""
    v = torch.zeros(D_MODEL, D_HEAD)
    v[offset : offset + VOCAB, :VOCAB] = torch.eye(VOCAB)
    return v


def planted_successor_gpt2(tokenizer) -> GPT2LMHeadModel:  # type: ignore[no-untyped-def]
    """The model described in the module docstring, for ``ordinal_tokenizer()``'s ids."""
    model = _blank()
    zero = torch.zeros(D_MODEL, D_HEAD)
    ids = {name: tokenizer.convert_tokens_to_ids(words) for name, words in SEQUENCES.items()}
    z_id, twenty_id, m_id = (tokenizer.convert_tokens_to_ids(w) for w in ("Z", "twenty", "M"))
    block0: Any = model.transformer.h[0]
    attn1: Any = model.transformer.h[1].attn
    with torch.no_grad():
        block0.mlp.c_fc.weight[TOK : TOK + VOCAB] = torch.eye(VOCAB)  # neuron t fires on token t
        block0.mlp.c_proj.weight[:, MID : MID + VOCAB] = torch.eye(VOCAB) / LN_SCALE
        set_head(block0.attn, BOS_WRITER[1], zero, zero, _reads(TOK))
        block0.attn.c_proj.weight[BOS_WRITER[1] * D_HEAD + BOS_ID, MID + m_id] = 8.0 / LN_SCALE
        set_head(attn1, SUCCESSOR[1], zero, zero, _reads(MID))
        set_head(attn1, COPY[1], zero, zero, _reads(TOK))
        set_head(attn1, DISTRACTOR[1], zero, zero, _reads(MID))
        copy_rows = slice(COPY[1] * D_HEAD, COPY[1] * D_HEAD + VOCAB)
        attn1.c_proj.weight[copy_rows, TOK : TOK + VOCAB] = torch.eye(VOCAB)
        for name, seq in ids.items():
            other = twenty_id if name == "letters" else z_id
            for a, b in zip(seq, seq[1:], strict=False):
                attn1.c_proj.weight[SUCCESSOR[1] * D_HEAD + a, TOK + b] = 1.0
                attn1.c_proj.weight[DISTRACTOR[1] * D_HEAD + a, TOK + b] = 1.0
                attn1.c_proj.weight[DISTRACTOR[1] * D_HEAD + a, TOK + other] = 2.0
    return model
