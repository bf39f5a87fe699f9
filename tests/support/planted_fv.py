"""A GPT-2 whose function-vector head is known by construction, on a toy task x_k → y_k.

Prompts are word-level ``Q : x A : y`` blocks. Residual subspaces: the token (TOK), the position
(POS), the token 3 back (X3) and 2 back (X2), and two single directions, CORRECT and GATE.

- L0H0 and L0H1 copy the token 3 and 2 positions back into X3 and X2.
- The layer-0 MLP has one neuron per pair: it fires where the token is y_k and X3 holds x_k,
  that is on every demonstration answer that is right, and writes CORRECT.
- L1H0, the function-vector head, attends uniformly and reads CORRECT into GATE: on clean
  prompts GATE is on, on shuffled-label prompts (no right answer) it is off.
- The layer-1 MLP has one neuron per pair: it fires where X2 holds x_k and GATE is on, and
  writes y_k's logit. So the model answers only when GATE says the task is on, and patching
  L1H0's clean mean output into a shuffled prompt brings the answer back. Every other head does
  nothing that a mean can carry across prompts.

With ``n_layers`` above 2, the layers after these two are blank (they pass the residual on).
"""

from __future__ import annotations

import torch
from transformers import GPT2LMHeadModel

from tests.support.planted import blank_gpt2, set_head
from tests.support.tiny import VOCAB

PLANTED = {"function_vector": (1, 0)}
PAIRS = [(f"x{k}", f"y{k}") for k in range(12)]
WORDS = ["<unk>", "<s>", "</s>", "Q", "A", ":", *[w for pair in PAIRS for w in pair]]
N_POS, D_MODEL, N_HEADS = 96, 512, 4
D_HEAD = D_MODEL // N_HEADS
TOK, POS = 0, VOCAB
X3, X2 = POS + N_POS, POS + N_POS + VOCAB
CORRECT, GATE = X2 + VOCAB, X2 + VOCAB + 1
LN_SCALE = 11.0  # what LayerNorm multiplies a unit entry by with about four unit entries in 512 dims


def fv_tokenizer():  # type: ignore[no-untyped-def]
    """Word-level over WORDS, then fillers."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = WORDS + [f"w{i}" for i in range(len(WORDS), VOCAB)]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )


def _shift_head(attn: torch.nn.Module, head: int, back: int, into: int) -> None:
    """Head ``head`` attends from position i to i - back and copies that token into ``into``."""
    query = torch.zeros(D_MODEL, D_HEAD)
    query[POS + back : POS + N_POS, : N_POS - back] = 1.5 * torch.eye(N_POS - back)
    key = torch.zeros(D_MODEL, D_HEAD)
    key[POS : POS + N_POS, :N_POS] = torch.eye(N_POS)
    value = torch.zeros(D_MODEL, D_HEAD)
    value[TOK : TOK + VOCAB, :VOCAB] = torch.eye(VOCAB)
    set_head(attn, head, query, key, value)
    attn.c_proj.weight[head * D_HEAD : head * D_HEAD + VOCAB, into : into + VOCAB] = (
        torch.eye(VOCAB) / LN_SCALE
    )


def planted_fv_gpt2(tokenizer, n_layers: int = 2) -> GPT2LMHeadModel:  # type: ignore[no-untyped-def]
    """The model of the module docstring, with blank layers after its two when ``n_layers`` > 2."""
    model = blank_gpt2(n_layers, D_MODEL, N_HEADS, N_POS)
    ids = {w: tokenizer.convert_tokens_to_ids(w) for w in WORDS}
    layer0, layer1 = model.transformer.h[:2]
    with torch.no_grad():
        _shift_head(layer0.attn, 0, 3, X3)
        _shift_head(layer0.attn, 1, 2, X2)
        for k, (x, y) in enumerate(PAIRS):  # CORRECT where the token is y_k and X3 holds x_k
            layer0.mlp.c_fc.weight[TOK + ids[y], k] = 1.0
            layer0.mlp.c_fc.weight[X3 + ids[x], k] = 1.0
            layer0.mlp.c_fc.bias[k] = -1.5 * LN_SCALE
            layer0.mlp.c_proj.weight[k, CORRECT] = 2.0 / LN_SCALE
        value = torch.zeros(D_MODEL, D_HEAD)  # L1H0: uniform attention, CORRECT → GATE
        value[CORRECT, 0] = 1.0
        set_head(layer1.attn, 0, torch.zeros(D_MODEL, D_HEAD), torch.zeros(D_MODEL, D_HEAD), value)
        layer1.attn.c_proj.weight[0, GATE] = 8.0 / LN_SCALE
        for k, (x, y) in enumerate(PAIRS):  # y_k's logit where X2 holds x_k and GATE is on
            layer1.mlp.c_fc.weight[X2 + ids[x], k] = 1.0
            layer1.mlp.c_fc.weight[GATE, k] = 1.0
            layer1.mlp.c_fc.bias[k] = -1.5 * LN_SCALE
            layer1.mlp.c_proj.weight[k, TOK + ids[y]] = 1.0
    return model
