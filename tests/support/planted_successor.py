"""A GPT-2 whose successor head is known by construction: L1H0's OV circuit maps each ordinal
token to the next one, L1H1's copies the token itself, every other head writes nothing. The
tokenizer is word-level and knows every ordinal word."""

from __future__ import annotations

import torch
from transformers import GPT2LMHeadModel

from classifiers.ordinal import SEQUENCES
from tests.support.planted import blank_gpt2, set_head
from tests.support.tiny import VOCAB

PLANTED = {"successor": (1, 0)}

D_MODEL, N_HEADS = 512, 4
D_HEAD = D_MODEL // N_HEADS
SUCCESSOR, COPY = PLANTED["successor"], (1, 1)


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


def planted_successor_gpt2(tokenizer) -> GPT2LMHeadModel:  # type: ignore[no-untyped-def]
    model = blank_gpt2(2, D_MODEL, N_HEADS, 32)
    identity = torch.zeros(D_MODEL, D_HEAD)
    identity[:VOCAB, :VOCAB] = torch.eye(VOCAB)
    zero = torch.zeros(D_MODEL, D_HEAD)
    attn = model.transformer.h[1].attn
    with torch.no_grad():
        for _, head in (SUCCESSOR, COPY):
            set_head(attn, head, zero, zero, identity)
        rows = {head: slice(head * D_HEAD, head * D_HEAD + VOCAB) for _, head in (SUCCESSOR, COPY)}
        attn.c_proj.weight[rows[COPY[1]], :VOCAB] = torch.eye(VOCAB)
        for words in SEQUENCES.values():
            ids = tokenizer.convert_tokens_to_ids(words)
            for a, b in zip(ids, ids[1:], strict=False):
                attn.c_proj.weight[SUCCESSOR[1] * D_HEAD + a, b] = 1.0
    return model
