"""Probe datasets: seeded token batches generated per tokenizer, each with a content hash.

Every probe puts the model's BOS token (when its policy has one) at position 0 and nowhere
else; ``first_content`` says where the probe's own tokens start. The hash covers the generator,
its parameters and the exact token ids, so a different tokenizer gives a different hash.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, replace
from functools import cached_property
from importlib import resources
from typing import Any

import torch
from torch import Tensor

from classifiers.jsonable import JsonFields

PROBE_KINDS = ("repeated_random", "unrepeated_random", "natural_text")


@dataclass(frozen=True)
class ProbeSpec(JsonFields):
    """Which probe to generate: its kind, sequence length (before BOS), batch size and seed.

    For ``repeated_random`` the length is L, the length of r in [BOS] + r + r.
    """

    kind: str
    length: int
    batch: int
    seed: int = 0

    def null(self) -> ProbeSpec | None:
        """The spec of this probe's null, where it has one: [BOS] + r + r' for [BOS] + r + r."""
        return replace(self, kind="unrepeated_random") if self.kind == "repeated_random" else None

    def __post_init__(self) -> None:
        if self.kind not in PROBE_KINDS:
            raise ValueError(f"unknown probe kind {self.kind!r}; valid: {', '.join(PROBE_KINDS)}")
        if self.length < 2 or self.batch < 1:
            raise ValueError(f"probe length must be >= 2 and batch >= 1, got {self.length}, {self.batch}")


@dataclass(frozen=True, eq=False)
class ProbeSet:
    """Generated probe tokens ``[batch, pos]`` (int64), with BOS at 0 when ``first_content`` is 1."""

    spec: ProbeSpec
    tokens: Tensor
    first_content: int

    @cached_property
    def hash(self) -> str:
        """sha256 over the spec and the token ids."""
        digest = hashlib.sha256(json.dumps(self.spec.to_dict(), sort_keys=True).encode())
        digest.update(self.tokens.to(torch.int64).contiguous().numpy().tobytes())
        return digest.hexdigest()

    def describe(self) -> dict[str, Any]:
        """What is stored beside the hash: the spec, the shape and the BOS convention."""
        return {**self.spec.to_dict(), "shape": list(self.tokens.shape), "first_content": self.first_content}


def regular_token_ids(tokenizer: Any, d_vocab: int) -> Tensor:
    """Ids of ordinary tokens: inside both the tokenizer's base vocabulary and the model's
    embedding, and not special or added tokens."""
    limit = min(int(tokenizer.vocab_size), d_vocab)
    excluded = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}))
    ids = torch.tensor([i for i in range(limit) if i not in excluded], dtype=torch.int64)
    if ids.numel() < 2:
        raise ValueError("the tokenizer has fewer than 2 ordinary tokens")
    return ids


def _with_bos(body: Tensor, bos_id: int | None) -> tuple[Tensor, int]:
    if bos_id is None:
        return body, 0
    return torch.cat([torch.full_like(body[:, :1], bos_id), body], dim=1), 1


def _distinct_draw(candidates: Tensor, length: int, generator: torch.Generator) -> Tensor:
    """``length`` tokens from ``candidates``, without replacement when there are enough."""
    if candidates.numel() >= length:
        return candidates[torch.randperm(candidates.numel(), generator=generator)[:length]]
    return candidates[torch.randint(candidates.numel(), (length,), generator=generator)]


def repeated_random(spec: ProbeSpec, tokenizer: Any, bos_id: int | None, d_vocab: int) -> ProbeSet:
    """[BOS] + r + r, r being ``length`` distinct uniform random ordinary tokens per row; with
    kind ``unrepeated_random``, [BOS] + r + r' (the same r, and r' drawn from the tokens not in r).

    Tokens are drawn without replacement within a row (when the vocabulary allows), so every
    token of the second repeat has exactly one earlier occurrence, and none in r + r'.
    """
    candidates = regular_token_ids(tokenizer, d_vocab)
    generator = torch.Generator().manual_seed(spec.seed)
    r = torch.stack([_distinct_draw(candidates, spec.length, generator) for _ in range(spec.batch)])
    second = r
    if spec.kind == "unrepeated_random":
        other = torch.Generator().manual_seed(spec.seed + 2**31)  # a stream no probe seed uses
        second = torch.stack([
            _distinct_draw(candidates[~torch.isin(candidates, row)], spec.length, other) for row in r
        ])  # fmt: skip
    tokens, first = _with_bos(torch.cat([r, second], dim=1), bos_id)
    return ProbeSet(spec, tokens, first)


def natural_paragraphs() -> list[str]:
    """The packaged English prose used for natural-text probes, one paragraph per line."""
    text = resources.files("classifiers").joinpath("data/natural_text.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def natural_text(spec: ProbeSpec, tokenizer: Any, bos_id: int | None) -> ProbeSet:
    """``batch`` consecutive windows of ``length`` tokens from the packaged prose, paragraphs
    in a seeded order (reshuffled and appended until there is enough text), BOS in front."""
    paragraphs = natural_paragraphs()
    shuffler = random.Random(spec.seed)
    stream: list[int] = []
    while len(stream) < spec.length * spec.batch:
        order = paragraphs[:]
        shuffler.shuffle(order)
        ids = tokenizer("\n".join(order) + "\n", add_special_tokens=False).input_ids
        if not ids:
            raise ValueError("the tokenizer turns the natural-text probe into no tokens at all")
        stream += ids
    body = torch.tensor(stream[: spec.length * spec.batch], dtype=torch.int64).view(spec.batch, spec.length)
    tokens, first = _with_bos(body, bos_id)
    return ProbeSet(spec, tokens, first)


def generate(spec: ProbeSpec, tokenizer: Any, bos_id: int | None, d_vocab: int) -> ProbeSet:
    """Build the probe ``spec`` names for this tokenizer."""
    if spec.kind in ("repeated_random", "unrepeated_random"):
        return repeated_random(spec, tokenizer, bos_id, d_vocab)
    return natural_text(spec, tokenizer, bos_id)
