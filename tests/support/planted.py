"""A GPT-2 with hand-set weights whose heads are known by construction.

The residual stream keeps three one-hot subspaces: the current token (TOK), the position (POS),
and the previous token (PREV), written by the previous-token head. MLPs are zero. Heads:

- L0H0 previous-token: its query at i matches the key of position i-1; it copies the attended
  token into PREV.
- L0H1 duplicate-token: its query matches keys with the same token, minus its own position.
- L1H0 induction: its query (current token) matches keys whose PREV is that token; it copies
  the attended token into TOK, so the tied unembedding predicts it (the loss on a second
  repeat is low unless this head, or L0H0 that feeds it, is ablated).
- L1H1 attention sink: a constant query matches only position 0.
- L1H2 anti-induction: L1H0's attention, but it writes the attended token back negated (weakly,
  so the model still predicts the repeat): it suppresses what it attends.
- every other head has zero weights: uniform attention, no output.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from tests.support.tiny import VOCAB

D_MODEL, N_HEADS, N_POS = 1024, 4, 128
D_HEAD = D_MODEL // N_HEADS
TOK, POS, PREV = 0, VOCAB, VOCAB + N_POS  # offsets of the subspaces
PLANTED = {
    "previous_token": (0, 0), "duplicate_token": (0, 1), "induction": (1, 0), "attention_sink": (1, 1),
    "anti_induction": (1, 2),
}  # fmt: skip


def column_maps(d_model: int, d_head: int) -> Callable[..., torch.Tensor]:
    """``cols(*blocks)``: a [d_model, d_head] map where each (offset, width, scale) block copies
    residual dims offset..offset+width into the next free head coordinates, times scale."""

    def cols(*blocks: tuple[int, int, float]) -> torch.Tensor:
        m = torch.zeros(d_model, d_head)
        col = 0
        for offset, width, scale in blocks:
            m[offset : offset + width, col : col + width] = scale * torch.eye(width)
            col += width
        return m

    return cols


_cols = column_maps(D_MODEL, D_HEAD)


def set_head(attn: torch.nn.Module, head: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    """Write ``[d_model, d_head]`` query, key and value maps of one head into GPT-2's fused c_attn."""
    d_model, d_head = q.shape
    for i, w in enumerate((q, k, v)):
        start = i * d_model + head * d_head
        attn.c_attn.weight[:, start : start + d_head] = w


def blank_gpt2(n_layer: int, d_model: int, n_heads: int, n_pos: int) -> GPT2LMHeadModel:
    """A GPT-2 with every weight zero but unit LayerNorm gains and one-hot token (at 0) and
    position (at VOCAB) embeddings, tied unembedding, eager attention, eval mode."""
    config = GPT2Config(
        vocab_size=VOCAB, n_positions=n_pos, n_embd=d_model, n_layer=n_layer, n_head=n_heads, n_inner=16,
        bos_token_id=1, eos_token_id=2, tie_word_embeddings=True,
    )  # fmt: skip
    model = GPT2LMHeadModel(config)
    model.config._attn_implementation = "eager"
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for name, p in model.named_parameters():
            if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                p.fill_(1.0)
        model.transformer.wte.weight[:, :VOCAB] = torch.eye(VOCAB)
        model.transformer.wpe.weight[:, VOCAB : VOCAB + n_pos] = torch.eye(n_pos)
    return model.eval()


def planted_gpt2() -> GPT2LMHeadModel:
    """The model described in the module docstring, eager attention, eval mode."""
    model = blank_gpt2(2, D_MODEL, N_HEADS, N_POS)
    zero = torch.zeros(D_MODEL, D_HEAD)
    with torch.no_grad():
        layer0, layer1 = model.transformer.h[0].attn, model.transformer.h[1].attn

        # L0H0: the query of position i sits on coordinate i-1, the key of position j on j
        previous = torch.zeros(D_MODEL, D_HEAD)
        previous[POS + 1 : POS + N_POS, : N_POS - 1] = 1.5 * torch.eye(N_POS - 1)
        set_head(layer0, 0, previous, _cols((POS, N_POS, 1.0)), _cols((TOK, VOCAB, 1.0)))
        # LayerNorm scales a one-hot entry to about 22.6 here; write the copied token back at ~1
        layer0.c_proj.weight[0:VOCAB, PREV : PREV + VOCAB] = torch.eye(VOCAB) / 22.6

        # L0H1: same token, and its own position cancelled
        same_token = _cols((TOK, VOCAB, 1.0), (POS, N_POS, 1.0))
        set_head(layer0, 1, _cols((TOK, VOCAB, 1.0), (POS, N_POS, -1.0)), same_token, zero)

        # L1H0: current token against the key's previous token; copies the key's token into TOK
        set_head(layer1, 0, _cols((TOK, VOCAB, 1.5)), _cols((PREV, VOCAB, 1.0)), _cols((TOK, VOCAB, 1.0)))
        layer1.c_proj.weight[0:VOCAB, TOK : TOK + VOCAB] = 3.0 * torch.eye(VOCAB) / 18.5

        # L1H2: L1H0's query and key; writes the attended token into TOK negated
        set_head(layer1, 2, _cols((TOK, VOCAB, 1.5)), _cols((PREV, VOCAB, 1.0)), _cols((TOK, VOCAB, 1.0)))
        start = 2 * D_HEAD
        layer1.c_proj.weight[start : start + VOCAB, TOK : TOK + VOCAB] = -0.1 * torch.eye(VOCAB) / 18.5

        # L1H1: a constant query (bias) against the key of position 0
        first = torch.zeros(D_MODEL, D_HEAD)
        first[POS, 0] = 1.0
        set_head(layer1, 1, zero, first, zero)
        layer1.c_attn.bias[D_HEAD] = 30.0
    return model
