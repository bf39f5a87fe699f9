"""A 3-layer GPT-2 with self-repair but no backup head: one head's direct effect rises a little
after any large ablation, not specifically the induction head's.

Residual subspaces: TOK and POS (the embeddings, as in ``tests.support.planted``; the tied
unembedding reads TOK), SRC (a second copy of the token from the embedding, which only the
self-repair head reads, so the induction head's writes into TOK never reach it), PREV, ANCHOR,
and one BULK block per head of layers 0 and 1 but the induction head. MLPs are zero.

- L0H0 previous-token, as in ``tests.support.planted``; it also writes the token it attends to
  into its BULK block.
- L0H1..L0H3 bulk: each attends to its own position and writes its token, folded modulo
  ``BULK_WIDTH``, scaled to norm ``BULK``, into its own BULK block.
- L1H0 induction, as in ``tests.support.planted``: it copies the attended token into TOK, with
  norm ``COPY``. Where no earlier key holds the current token in PREV (the first repeat), its
  query falls back on the key with the same token, its own position, so it writes a large
  output at every position.
- L1H1..L1H3 bulk, as in layer 0.
- L2H0 self-repair, S: zero query and key (uniform causal attention), copying SRC into TOK: a bag
  of the earlier tokens, which on the second repeat holds the right next token once, so its
  direct effect there is small and positive.
- L2H1..L2H3 zero weights.

Every head of layers 0 and 1 writes a large output that varies across the probe's sequences
and whose position-wise mean, what mean-ablation puts in its place, is small. Ablating any of
them shrinks the residual that layer 2's LayerNorm divides by, so S, read through ``ln_1``, has
its direct effect rise by about one percent: by more than the 0.05 share threshold of the
induction head's lost direct effect when the induction head is ablated (S's direct effect is
several times the induction head's), and by more again when a bulk or the previous-token head
is (BULK > COPY). The heads of layer 2 do not reach S's input; ablating S itself removes its
effect.

Layer 0's attention output bias adds ``ANCHOR_SCALE`` on ANCHOR and layer 1's takes it away: a
constant that dominates the norm layer 1 reads, so ablating a head of layer 0 barely changes the
outputs of layer 1, and that is gone by layer 2.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from transformers import GPT2LMHeadModel
from transformers.models.gpt2.modeling_gpt2 import GPT2Attention

from tests.support.planted import blank_gpt2, column_maps, set_head
from tests.support.tiny import VOCAB

D_MODEL, N_HEADS, N_POS = 512, 4, 128
D_HEAD = D_MODEL // N_HEADS
TOK, POS = 0, VOCAB  # where blank_gpt2 puts the embeddings
SRC = POS + N_POS
PREV = SRC + VOCAB
ANCHOR = PREV + VOCAB
BULK_START, BULK_WIDTH = ANCHOR + 1, 13
PLANTED = {"previous_token": (0, 0), "induction": (1, 0), "self_repair": (2, 0)}
BULK, COPY = 4.5, 3.0  # norms of a bulk write and of the induction head's copy
SELF_REPAIR_COPY = 250.0  # what S writes into TOK, before its attention's 1 / (position + 1)
ANCHOR_SCALE = 40.0
SCORE, FALLBACK = 40.0, 20.0  # pre-softmax attention scores: a match, the induction head's own token
BULK_HEADS = [(0, 0), (0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3)]


_cols = column_maps(D_MODEL, D_HEAD)


def _fold() -> torch.Tensor:
    """``[VOCAB, BULK_WIDTH]``: token t onto coordinate t mod BULK_WIDTH."""
    return torch.eye(BULK_WIDTH)[torch.arange(VOCAB) % BULK_WIDTH]


def _inverse_sigma(square_norm: float) -> float:
    """What LayerNorm scales a unit entry to, on a residual of this squared norm (centring ignored)."""
    return math.sqrt(D_MODEL / square_norm)


def planted_selfrepair_gpt2() -> GPT2LMHeadModel:
    """The model described in the module docstring, eager attention, eval mode."""
    if BULK_START + len(BULK_HEADS) * BULK_WIDTH > D_MODEL:
        raise ValueError("the BULK blocks do not fit in D_MODEL")
    model = blank_gpt2(3, D_MODEL, N_HEADS, N_POS)
    attn = [cast(GPT2Attention, block.attn) for block in model.transformer.h]
    sqrt_d = math.sqrt(D_HEAD)
    scale = [
        _inverse_sigma(3.0),  # TOK, SRC and POS one-hots
        _inverse_sigma(4.0 + 4 * BULK**2 + ANCHOR_SCALE**2),  # and PREV, layer 0's BULK, ANCHOR
        _inverse_sigma(4.0 + len(BULK_HEADS) * BULK**2 + COPY**2),
    ]
    with torch.no_grad():
        model.transformer.wte.weight[:, SRC : SRC + VOCAB] = torch.eye(VOCAB)
        attn[0].c_proj.bias[ANCHOR] = ANCHOR_SCALE
        attn[1].c_proj.bias[ANCHOR] = -ANCHOR_SCALE
        for layer, h in [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3)]:  # q.k = SCORE on its own position
            own = _cols((POS, N_POS, math.sqrt(SCORE * sqrt_d) / scale[layer]))
            set_head(attn[layer], h, own, own, _cols((TOK, VOCAB, 1.0)))
        for i, (layer, h) in enumerate(BULK_HEADS):
            start = BULK_START + i * BULK_WIDTH
            rows = slice(h * D_HEAD, h * D_HEAD + VOCAB)
            attn[layer].c_proj.weight[rows, start : start + BULK_WIDTH] = BULK / scale[layer] * _fold()

        # L0H0: the query of position i sits on coordinate i-1, the key of position j on j
        previous = torch.zeros(D_MODEL, D_HEAD)
        previous[POS + 1 : POS + N_POS, : N_POS - 1] = SCORE * sqrt_d / scale[0] ** 2 * torch.eye(N_POS - 1)
        set_head(attn[0], 0, previous, _cols((POS, N_POS, 1.0)), _cols((TOK, VOCAB, 1.0)))
        attn[0].c_proj.weight[0:VOCAB, PREV : PREV + VOCAB] = torch.eye(VOCAB) / scale[0]

        # L1H0: the current token against the key's previous token (SCORE) or its token (FALLBACK)
        query = _cols((TOK, VOCAB, SCORE * sqrt_d / scale[1] ** 2))
        key = torch.zeros(D_MODEL, D_HEAD)
        key[PREV : PREV + VOCAB, :VOCAB] = torch.eye(VOCAB)
        key[TOK : TOK + VOCAB, :VOCAB] = FALLBACK / SCORE * torch.eye(VOCAB)
        set_head(attn[1], 0, query, key, _cols((TOK, VOCAB, 1.0)))
        attn[1].c_proj.weight[0:VOCAB, TOK : TOK + VOCAB] = COPY / scale[1] * torch.eye(VOCAB)

        zero = torch.zeros(D_MODEL, D_HEAD)
        set_head(attn[2], 0, zero, zero, _cols((SRC, VOCAB, 1.0)))
        attn[2].c_proj.weight[0:VOCAB, TOK : TOK + VOCAB] = SELF_REPAIR_COPY / scale[2] * torch.eye(VOCAB)
    return model
