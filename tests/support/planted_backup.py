"""A 3-layer GPT-2 whose backup induction head is known by construction.

The residual subspaces of ``tests.support.planted`` (TOK, POS, PREV) plus COPIED, the token the induction
head copied at this position. MLPs are zero.

- L0H0 previous-token, as in ``tests.support.planted``.
- L1H0 induction, as in ``tests.support.planted``; it also writes the copied token into COPIED.
- L2H0 backup induction: the induction head's attention, turned away from the key whose token is
  in COPIED; it copies into TOK. While L1H0 works, the target key is the one it avoids, so it
  spreads its attention and adds little; once L1H0 is mean-ablated, COPIED no longer names the
  target, so it attends the target and copies it.
- every other head has zero weights.
"""

from __future__ import annotations

import torch
from transformers import GPT2LMHeadModel

from tests.support.planted import D_HEAD, D_MODEL, N_HEADS, N_POS, POS, PREV, TOK, _cols, blank_gpt2, set_head
from tests.support.tiny import VOCAB

COPIED = PREV + VOCAB
PLANTED = {"induction": (1, 0), "backup_induction": (2, 0)}
COPY_SCALE = 3.0 / 18.5  # as the induction head of tests.support.planted writes


def planted_backup_gpt2() -> GPT2LMHeadModel:
    """The model described in the module docstring, eager attention, eval mode."""
    model = blank_gpt2(3, D_MODEL, N_HEADS, N_POS)
    layer0, layer1, layer2 = (block.attn for block in model.transformer.h)
    with torch.no_grad():
        previous = torch.zeros(D_MODEL, D_HEAD)
        previous[POS + 1 : POS + N_POS, : N_POS - 1] = 1.5 * torch.eye(N_POS - 1)
        set_head(layer0, 0, previous, _cols((POS, N_POS, 1.0)), _cols((TOK, VOCAB, 1.0)))
        layer0.c_proj.weight[0:VOCAB, PREV : PREV + VOCAB] = torch.eye(VOCAB) / 22.6

        set_head(layer1, 0, _cols((TOK, VOCAB, 1.5)), _cols((PREV, VOCAB, 1.0)), _cols((TOK, VOCAB, 1.0)))
        layer1.c_proj.weight[0:VOCAB, TOK : TOK + VOCAB] = COPY_SCALE * torch.eye(VOCAB)
        layer1.c_proj.weight[0:VOCAB, COPIED : COPIED + VOCAB] = torch.eye(VOCAB) / 18.5

        query = _cols((TOK, VOCAB, 1.5), (COPIED, VOCAB, -4.0))
        key = _cols((PREV, VOCAB, 1.0), (TOK, VOCAB, 1.0))
        set_head(layer2, 0, query, key, _cols((TOK, VOCAB, 1.0)))
        layer2.c_proj.weight[0:VOCAB, TOK : TOK + VOCAB] = COPY_SCALE * torch.eye(VOCAB)
    return model
