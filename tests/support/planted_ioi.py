"""A GPT-2 with a hand-set IOI circuit, and IOI prompts over its word-level vocabulary.

Prompts are ``[BOS] A and B went C gave to`` with C = S (ABBA: A = IO; BABA: B = IO); END is
"to". The residual stream keeps one-hot subspaces: the token (TOK), the position (POS), a
duplicate flag (DUP), the inhibited name (INHIB) and the copied name (COPIED). MLPs are zero.

- L0H0 duplicate-token: attends an earlier occurrence of its own token (else BOS) and sets DUP.
- L1H0 S-inhibition: attends the DUP position (else BOS) and writes that token into INHIB.
- L2H0 name mover: attends names, except those in INHIB, and copies the attended name into TOK
  (the logits, through the tied unembedding) and into COPIED.
- L2H1 negative name mover: the same attention, and writes minus a third of the copy into TOK.
- L3H0 backup name mover: the name mover's attention, also turned off the name in COPIED; it
  copies into TOK. While the name mover works it finds no name to attend and writes nothing;
  when the name mover is mean-ablated, it attends IO and copies it.
- L3H1 copy suppression of the prediction: attends the name in COPIED (IO, once the name mover
  has copied it) and writes minus a twelfth of it. When the name mover is ablated it no longer
  finds IO, so its suppression shrinks: a rise in DLA that is not a backup.
- L3H2 copy suppression of S: attends the inhibited name (S) and writes minus a quarter of it.
- L3H3 the same attention, and copies S (a quarter): attends S but is no copy suppression.
- every other head has zero weights: uniform attention, no output.
"""

from __future__ import annotations

import random

import torch
from transformers import GPT2LMHeadModel

from classifiers.ioi_prompts import IOIGroup, IOIPrompts
from tests.support.planted import blank_gpt2, set_head
from tests.support.tiny import VOCAB

D_MODEL, N_HEADS, N_LAYERS, N_POS = 512, 4, 4, 16
D_HEAD = D_MODEL // N_HEADS
TOK, POS, DUP = 0, VOCAB, VOCAB + N_POS
INHIB, COPIED = DUP + 1, DUP + 1 + VOCAB
BOS = 1
NAMES = list(range(10, 50))
AND, WENT, GAVE, TO = 60, 61, 62, 63
PLANTED = {
    "name_mover": [(2, 0)],
    "negative_name_mover": [(2, 1), (3, 1)],
    "copy_suppression": [(2, 1), (3, 1), (3, 2)],
    "backup_name_mover": [(3, 0)],
    "s_inhibition": [(1, 0)],
}
ATTENDS_S_COPIES_S = (3, 3)
SCALE = 16.0  # what LayerNorm makes of a one-hot entry here, roughly: outputs divide by it


def _map(rows: list[int], offset_out: int = 0, scale: float = 1.0) -> torch.Tensor:
    """A [D_MODEL, D_HEAD] map sending residual dim ``rows[i]`` to head coordinate ``offset_out + i``."""
    m = torch.zeros(D_MODEL, D_HEAD)
    for i, row in enumerate(rows):
        m[row, offset_out + i] = scale
    return m


def _tokens(offset: int, ids: list[int]) -> list[int]:
    return [offset + t for t in ids]


def _query_bias(attn: torch.nn.Module, head: int, column: int, value: float) -> None:
    attn.c_attn.bias[head * D_HEAD + column] = value


def _write(attn: torch.nn.Module, head: int, columns: list[int], dims: list[int], scale: float) -> None:
    """Output projection: head coordinate ``columns[i]`` adds ``scale`` to residual dim ``dims[i]``."""
    for column, dim in zip(columns, dims, strict=True):
        attn.c_proj.weight[head * D_HEAD + column, dim] += scale


def planted_ioi_gpt2() -> GPT2LMHeadModel:
    """The model described in the module docstring, eager attention, eval mode."""
    model = blank_gpt2(N_LAYERS, D_MODEL, N_HEADS, N_POS)
    names = list(range(len(NAMES)))
    with torch.no_grad():
        h = [block.attn for block in model.transformer.h]
        every_token, positions = list(range(VOCAB)), list(range(N_POS))

        # L0H0 duplicate: same token, own position cancelled; BOS as the default
        q = _map(_tokens(TOK, every_token)) + _map(_tokens(POS, positions), VOCAB, -1.0)
        k = _map(_tokens(TOK, every_token)) + _map(_tokens(POS, positions), VOCAB)
        k[POS, VOCAB + N_POS] = 1.0
        v = torch.zeros(D_MODEL, D_HEAD)
        v[_tokens(TOK, NAMES), 0] = 1.0
        set_head(h[0], 0, q, k, v)
        _query_bias(h[0], 0, VOCAB + N_POS, 6.0)
        _write(h[0], 0, [0], [DUP], 1.0 / SCALE)

        # L1H0 S-inhibition: attends DUP (else BOS), writes the attended name into INHIB
        k = torch.zeros(D_MODEL, D_HEAD)
        k[DUP, 0], k[POS, 1] = 1.0, 1.0
        set_head(h[1], 0, torch.zeros(D_MODEL, D_HEAD), k, _map(_tokens(TOK, NAMES)))
        _query_bias(h[1], 0, 0, 10.0)
        _query_bias(h[1], 0, 1, 5.0)
        _write(h[1], 0, names, _tokens(INHIB, NAMES), 1.0 / SCALE)

        # L2H0, L2H1 (and L3H0): names, minus the inhibited one
        name_keys = _map(_tokens(TOK, NAMES))
        inhibited = _map(_tokens(INHIB, NAMES), scale=-1.5)
        for layer, head in ((2, 0), (2, 1), (3, 0)):
            query = inhibited + (_map(_tokens(COPIED, NAMES), scale=-2.0) if layer == 3 else 0)
            set_head(h[layer], head, query, name_keys, _map(_tokens(TOK, NAMES)))
            for column in names:
                _query_bias(h[layer], head, column, 8.0)
        _write(h[2], 0, names, _tokens(TOK, NAMES), 1.0 / SCALE)
        _write(h[2], 0, names, _tokens(COPIED, NAMES), 1.0 / SCALE)
        _write(h[2], 1, names, _tokens(TOK, NAMES), -1.0 / (3 * SCALE))
        _write(h[3], 0, names, _tokens(TOK, NAMES), 1.0 / SCALE)

        # L3H1: attends the copied name; L3H2, L3H3: attend the inhibited name (S)
        set_head(h[3], 1, _map(_tokens(COPIED, NAMES), scale=4.0), name_keys, _map(_tokens(TOK, NAMES)))
        for head in (2, 3):
            set_head(h[3], head, _map(_tokens(INHIB, NAMES), scale=2.0), name_keys, _map(_tokens(TOK, NAMES)))
        for head, weight in ((1, -1 / 12), (2, -1 / 4), (3, 1 / 4)):
            _write(h[3], head, names, _tokens(TOK, NAMES), weight / SCALE)
    return model


def planted_ioi_prompts(per_group: int = 8, seed: int = 0) -> IOIPrompts:
    """ABBA and BABA groups of ``[BOS] A and B went C gave to`` with ABC counterparts."""
    rng = random.Random(seed)
    groups = []
    for order in ("ABBA", "BABA"):
        clean, corrupted, io_ids, s_ids = [], [], [], []
        for _ in range(per_group):
            io, s, x, y, z = rng.sample(NAMES, 5)
            a, b = (io, s) if order == "ABBA" else (s, io)
            clean.append([BOS, a, AND, b, WENT, s, GAVE, TO])
            corrupted.append([BOS, x, AND, y, WENT, z, GAVE, TO])
            io_ids.append(io)
            s_ids.append(s)
        io_at, s1_at = (1, 3) if order == "ABBA" else (3, 1)
        groups.append(IOIGroup(
            0, order, torch.tensor(clean), torch.tensor(corrupted), torch.tensor(io_ids), torch.tensor(s_ids),
            {"io": io_at, "s1": s1_at, "s2": 5, "end": 7},
        ))  # fmt: skip
    params = {"per_group": per_group, "seed": seed, "planted": True}
    return IOIPrompts(groups, [f"w{t}" for t in NAMES], NAMES, [], [], params)
