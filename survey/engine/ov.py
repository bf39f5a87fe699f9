"""OV-circuit read-outs: what each head would write, through the norms around it, for a given
residual vector, and where a token ranks among a set of candidate tokens in that output.

The rank is taken among candidates (the names of an IOI prompt set, the tokens of a random
probe), not the whole vocabulary, so a copy score means the same for a 50k and a 262k vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from survey.adapters import ArchitectureAdapter
from survey.engine.capture import StopForward
from survey.engine.readouts import keep_input_at


def resid_after_block0(adapter: ArchitectureAdapter, tokens: Tensor) -> Tensor:
    """``[batch, pos, d_model]``: the residual stream after block 0 (attention and MLP), in context;
    the forward pass stops there."""
    kept: dict[str, Tensor] = {}
    after = adapter.blocks()[1] if adapter.dims.n_layers > 1 else adapter.final_norm()
    keep = keep_input_at(kept, "x", slice(None))

    def keep_then_stop(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        keep(module, args, kwargs)
        raise StopForward

    handle = after.register_forward_pre_hook(keep_then_stop, with_kwargs=True)
    try:
        with torch.inference_mode():
            adapter.model(input_ids=tokens.to(next(adapter.model.parameters()).device), use_cache=False)
    except StopForward:
        pass
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
    candidates, own, x = candidates.to(w_u.device), own.to(w_u.device), x.to(w_u.device)
    directions = w_u.T[candidates]  # [row, c, d_model]
    above, below = [], []
    for out in ov_outputs(adapter, x.float()):
        logits = torch.einsum("nhm,ncm->nhc", out, directions)  # [row, head, c]
        own_logit = logits.gather(-1, own[:, None, None].expand(-1, logits.shape[1], 1))
        above.append((logits >= own_logit).sum(-1) - 1)
        below.append((logits <= own_logit).sum(-1) - 1)
    return CandidateRanks(torch.stack(above).cpu(), torch.stack(below).cpu())


def ov_top_tokens(adapter: ArchitectureAdapter, x: Tensor, top: int = 5) -> Tensor:
    """``[layer, head, row, top]``: the token ids each head's OV output ranks highest over the
    whole vocabulary, for each residual row of ``x [row, d_model]`` (evidence to read, not a score)."""
    vocab_major = adapter.unembedding()[0].detach().float().T.contiguous()  # [vocab, d_model]
    ids = []
    with torch.inference_mode():
        for out in ov_outputs(adapter, x.float()):
            logits = torch.nn.functional.linear(out, vocab_major)  # [row, head, vocab]
            ids.append(logits.topk(top, dim=-1).indices.transpose(0, 1))  # [head, row, top]
    return torch.stack(ids).cpu()
