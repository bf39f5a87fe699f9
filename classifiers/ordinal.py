"""Ordinal sequences for successor heads (Gould et al. 2023), kept per tokenizer.

Each sequence is written with a leading space (" Monday") and without ("Monday"); the form with
more single-token members is kept. A member that is not one token is dropped, and a sequence
needs ``min_tokens`` members to count. The pairs scored are consecutive members that both stayed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

SEQUENCES: dict[str, list[str]] = {
    "numbers": [str(i) for i in range(1, 21)],
    "number_words": [
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
    ],
    "days": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "months": [
        "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
        "November", "December",
    ],
    "letters": [chr(c) for c in range(ord("A"), ord("Z") + 1)],
}  # fmt: skip


@dataclass(frozen=True)
class OrdinalSpec:
    """How many single-token members a sequence needs to be kept."""

    min_tokens: int = 4


@dataclass(frozen=True)
class OrdinalTask:
    """One kept sequence: its words and token ids, in order, and the consecutive pairs scored
    (indices into them)."""

    name: str
    words: list[str]
    token_ids: list[int]
    pairs: list[tuple[int, int]]


@dataclass(frozen=True, eq=False)
class OrdinalTasks:
    """Every sequence kept for one tokenizer, with a content hash."""

    tasks: list[OrdinalTask]
    params: dict[str, Any]

    @cached_property
    def hash(self) -> str:
        """sha256 over the parameters and every kept token id."""
        payload = {"params": self.params, "tasks": [[t.name, t.token_ids, t.pairs] for t in self.tasks]}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    @cached_property
    def members(self) -> dict[int, str]:
        """Token id → word for every member of every kept sequence, in order: the candidates a
        successor is ranked among (a token shared by two sequences keeps its first word)."""
        members: dict[int, str] = {}
        for task in self.tasks:
            for token_id, word in zip(task.token_ids, task.words, strict=True):
                members.setdefault(token_id, word)
        return members

    def describe(self) -> dict[str, Any]:
        """What is stored beside the hash."""
        return {**self.params, "kind": "ordinal", "tasks": {t.name: t.words for t in self.tasks}}


def _single_token_members(tokenizer: Any, words: list[str], prefix: str) -> dict[int, int]:
    """Index in ``words`` → token id, for the members that are one token with ``prefix``."""
    kept = {}
    unknown = getattr(tokenizer, "unk_token_id", None)
    for index, word in enumerate(words):
        ids = tokenizer(prefix + word, add_special_tokens=False).input_ids
        if len(ids) == 1 and ids[0] != unknown:
            kept[index] = int(ids[0])
    return kept


def generate_ordinal(tokenizer: Any, spec: OrdinalSpec) -> OrdinalTasks:
    """The sequences this tokenizer can score; ValueError when none has enough single tokens."""
    tasks = []
    for name, words in SEQUENCES.items():
        spaced, bare = (_single_token_members(tokenizer, words, prefix) for prefix in (" ", ""))
        members = spaced if len(spaced) >= len(bare) else bare
        if len(members) < spec.min_tokens:
            continue
        order = sorted(members)
        position = {index: i for i, index in enumerate(order)}
        pairs = [(position[i], position[i + 1]) for i in order if i + 1 in members]
        if pairs and len(set(members.values())) == len(members):
            tasks.append(OrdinalTask(name, [words[i] for i in order], [members[i] for i in order], pairs))
    if not tasks:
        raise ValueError(f"no ordinal sequence has {spec.min_tokens} single-token members for this tokenizer")
    return OrdinalTasks(tasks, {"min_tokens": spec.min_tokens, "sequences": sorted(SEQUENCES)})
