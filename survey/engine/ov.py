"""OV-circuit read-outs: what each head would write, through the norms around it, for a given
residual vector, and where a token ranks among a set of candidate tokens in that output.

The rank is taken among candidates (the names of an IOI prompt set, the tokens of a random
probe), not the whole vocabulary, so a copy score means the same for a 50k and a 262k vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import Tensor

from survey.adapters import ArchitectureAdapter
from survey.engine.readouts import keep_input_at


def resid_after_block0(adapter: ArchitectureAdapter, tokens: Tensor) -> Tensor:
    """``[batch, pos, d_model]``: the residual stream after block 0 (attention and MLP), in context."""
    kept: dict[str, Tensor] = {}
    after = adapter.blocks()[1] if adapter.dims.n_layers > 1 else adapter.final_norm()
    keep = keep_input_at(kept, "x", slice(None))
    handle = after.register_forward_pre_hook(keep, with_kwargs=True)
    try:
        with torch.inference_mode():
            adapter.model(input_ids=tokens.to(next(adapter.model.parameters()).device), use_cache=False)
    finally:
        handle.remove()
    return kept["x"]


def ov_outputs(adapter: ArchitectureAdapter, x: Tensor) -> Iterator[Tensor]:
    """Per layer, ``[row, head, d_model]``: each head's OV output for each residual row of
    ``x [row, d_model]``, through the layer's attention input norm, a post-attention norm and the
    final norm, ready for the unembedding."""
    final = adapter.final_norm()
    with torch.inference_mode():
        for layer in range(adapter.dims.n_layers):
            norm, post = adapter.attn_in_norm(layer), adapter.attn_post_norm(layer)
            read = x if norm is None else norm(x.to(next(norm.parameters(), x).dtype)).float()
            w = adapter.head_weights(layer)
            v = torch.einsum("nm,hmd->nhd", read, w.W_V.float()) + w.b_V.float()
            out = torch.einsum("nhd,hdm->nhm", v, w.W_O.float())  # [row, head, d_model]
            if post is not None:
                out = post(out)
            yield final(out).float().contiguous()  # einsum's layout would make the next matmul slow


class CandidateRanks(NamedTuple):
    """``[layer, row, head]``: how many other candidates score at least as high as the own token
    (``above``; 0: it ranks first) and at most as high (``below``; 0: it ranks last). Ties count
    against the own token both ways, so a head that writes nothing neither copies nor suppresses."""

    above: Tensor
    below: Tensor

    def copy(self) -> Tensor:
        """``[layer, head]``: the share of rows whose own token ranks first (the copy score)."""
        return (self.above == 0).float().mean(1)

    def negative_copy(self) -> Tensor:
        """``[layer, head]``: the share of rows whose own token ranks last (the negative copy score)."""
        return (self.below == 0).float().mean(1)


def ov_candidate_ranks(
    adapter: ArchitectureAdapter, x: Tensor, candidates: Tensor, own: Tensor
) -> CandidateRanks:
    """Where candidate ``own[row]`` ranks among the row's ``candidates [row, c]`` token ids in
    W_U · OV(x[row]), for every head; ``x [row, d_model]`` is a residual vector per row."""
    w_u = adapter.unembedding()[0].detach().float()  # [d_model, vocab]
    directions = w_u.T[candidates]  # [row, c, d_model]
    above, below = [], []
    for out in ov_outputs(adapter, x.float()):
        logits = torch.einsum("nhm,ncm->nhc", out, directions)  # [row, head, c]
        own_logit = logits.gather(-1, own[:, None, None].expand(-1, logits.shape[1], 1))
        above.append((logits >= own_logit).sum(-1) - 1)
        below.append((logits <= own_logit).sum(-1) - 1)
    return CandidateRanks(torch.stack(above), torch.stack(below))


def resid_after_first_block(adapter: ArchitectureAdapter, token_ids: Tensor, bos_id: int | None) -> Tensor:
    """``[token, d_model]``: each token's residual after block 0 (attention and MLP), read alone
    after BOS. This is "the embedding after the first MLP" of the OV copy score."""
    tokens = (
        token_ids[:, None]
        if bos_id is None
        else torch.stack([torch.full_like(token_ids, bos_id), token_ids], 1)
    )
    kept: dict[str, Tensor] = {}
    after = adapter.blocks()[1] if adapter.dims.n_layers > 1 else adapter.final_norm()
    handle = after.register_forward_pre_hook(keep_input_at(kept, "x", -1), with_kwargs=True)
    try:
        with torch.inference_mode():
            adapter.model(input_ids=tokens.to(next(adapter.model.parameters()).device), use_cache=False)
    finally:
        handle.remove()
    return kept["x"]


OV_EXAMPLES = 3  # names whose top OV output tokens are kept as evidence


class OVCopy(NamedTuple):
    """``copy`` and ``negative`` ``[layer, head]``; ``top_ids [layer, head, name, top]``: the top
    output tokens for the first ``OV_EXAMPLES`` names."""

    copy: Tensor
    negative: Tensor
    top_ids: Tensor


def ov_readouts(adapter: ArchitectureAdapter, token_ids: Tensor, bos_id: int | None) -> Iterator[Tensor]:
    """Per layer, ``[token, head, d_model]``: each head's OV output for each token's residual after
    block 0, passed through the norms around it (the layer's attention input norm, a
    post-attention norm, the final norm), ready for the unembedding."""
    return ov_outputs(adapter, resid_after_first_block(adapter, token_ids, bos_id))


def ov_copy_scores(
    adapter: ArchitectureAdapter, name_ids: Tensor, bos_id: int | None, top: int = 5
) -> OVCopy:
    """Per head ``[layer, head]``: the share of names whose own token is in the top ``top`` of
    W_U·W_OV applied to the name's residual after block 0 (copy score), and in the bottom
    ``top`` (negative copy score); ties never count."""
    vocab_major = adapter.unembedding()[0].detach().float().T.contiguous()  # [vocab, d_model]
    copy, negative, top_ids = [], [], []
    with torch.inference_mode():
        for read_out in ov_readouts(adapter, name_ids, bos_id):
            logits = torch.nn.functional.linear(read_out, vocab_major)  # [name, head, vocab]
            own = logits.gather(-1, name_ids[:, None, None].expand(-1, logits.shape[1], 1))[..., 0]
            highest = logits.topk(top + 1, dim=-1)
            beyond_top = highest.values[..., top]
            top_ids.append(highest.indices[:OV_EXAMPLES, :, :top].transpose(0, 1))  # [head, name, top]
            beyond_bottom = logits.topk(top + 1, dim=-1, largest=False).values[..., top]
            copy.append((own > beyond_top).float().mean(0))
            negative.append((own < beyond_bottom).float().mean(0))
    return OVCopy(torch.stack(copy), torch.stack(negative), torch.stack(top_ids))
