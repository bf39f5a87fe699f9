"""Indirect-object-identification prompts, generated per tokenizer (Wang et al. 2022).

Each template mentions two names, then repeats one (the subject S) and ends where the other (the
indirect object IO) is the answer: "When Mary and John went to the store, John gave a drink to"
→ " Mary". ABBA puts IO first, BABA puts S first. Names, places and objects are kept only when
they are a single token for this tokenizer (with their leading space), so every prompt of one
template has the same length and the same IO, S1, S2 and END positions. Each clean prompt has an
ABC counterpart: the same sentence with three distinct other names at IO, S1 and S2.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
from torch import Tensor

TEMPLATES = [
    "When {A} and {B} went to the {PLACE}, {C} gave a {OBJECT} to",
    "When {A} and {B} got a {OBJECT} at the {PLACE}, {C} decided to give it to",
    "Then, {A} and {B} went to the {PLACE}. {C} gave a {OBJECT} to",
    "Then, {A} and {B} had a long argument, and afterwards {C} said to",
    "After {A} and {B} went to the {PLACE}, {C} gave a {OBJECT} to",
    "While {A} and {B} were working at the {PLACE}, {C} gave a {OBJECT} to",
    "While {A} and {B} were commuting to the {PLACE}, {C} gave a {OBJECT} to",
    "After the lunch, {A} and {B} went to the {PLACE}. {C} gave a {OBJECT} to",
    "Afterwards, {A} and {B} went to the {PLACE}. {C} gave a {OBJECT} to",
    "Then, {A} and {B} had a lot of fun at the {PLACE}. {C} gave a {OBJECT} to",
    "Friends {A} and {B} found a {OBJECT} at the {PLACE}. {C} gave it to",
    "The {PLACE} {A} and {B} went to had a {OBJECT}. {C} gave it to",
    "{A} and {B} were thinking about going to the {PLACE}. {C} wanted to give a {OBJECT} to",
    "The local big {PLACE} {A} and {B} went to had a {OBJECT}. {C} gave it to",
    "When {A} and {B} arrived at the {PLACE}, {C} handed a {OBJECT} to",
    "Yesterday {A} and {B} met at the {PLACE}, and {C} passed a {OBJECT} to",
]
NAMES = [
    "Mary", "John", "Tom", "James", "Dan", "Sid", "Martin", "Amy", "Paul", "Kate", "Lisa", "Mark",
    "Sarah", "David", "Anna", "Peter", "Emma", "Jack", "Laura", "Mike", "Steve", "Chris", "Ben",
    "Sam", "Alex", "Rose", "Ryan", "Adam", "Jane", "Eric", "Luke", "Grace", "Max", "Tim", "Kevin",
    "Henry", "George", "Alice", "Joe", "Bob",
]  # fmt: skip
PLACES = [
    "store",
    "garden",
    "restaurant",
    "school",
    "hospital",
    "office",
    "house",
    "station",
    "park",
    "market",
]
OBJECTS = ["ring", "kiss", "bone", "basketball", "computer", "necklace", "drink", "snack", "book", "letter"]


def single_tokens(tokenizer: Any, words: list[str]) -> dict[str, int]:
    """The words that are one known token with a leading space, mapped to that token's id."""
    kept = {}
    unknown = getattr(tokenizer, "unk_token_id", None)
    for word in words:
        ids = tokenizer(" " + word, add_special_tokens=False).input_ids
        if len(ids) == 1 and ids[0] != unknown:
            kept[word] = int(ids[0])
    return kept


@dataclass(frozen=True)
class IOIGroup:
    """Prompts of one template and order: clean and ABC tokens ``[prompt, pos]`` (BOS included
    when the model has one), the answer ids, and the positions shared by every prompt."""

    template: int
    order: str  # "ABBA" (IO first) or "BABA" (S first)
    clean: Tensor
    corrupted: Tensor
    io_ids: Tensor  # [prompt]
    s_ids: Tensor  # [prompt]
    positions: dict[str, int] = field(default_factory=dict)  # io, s1, s2, end


@dataclass(frozen=True, eq=False)
class IOIPrompts:
    """Every group generated for one tokenizer, with what was kept and a content hash."""

    groups: list[IOIGroup]
    names: list[str]
    name_ids: list[int]  # the token of each name, in ``names`` order
    places: list[str]
    objects: list[str]
    params: dict[str, Any]

    @cached_property
    def hash(self) -> str:
        """sha256 over the parameters and every token id."""
        digest = hashlib.sha256(json.dumps(self.params, sort_keys=True).encode())
        for group in self.groups:
            for tensor in (group.clean, group.corrupted, group.io_ids, group.s_ids):
                digest.update(tensor.to(torch.int64).contiguous().numpy().tobytes())
        return digest.hexdigest()

    @property
    def n_prompts(self) -> int:
        return sum(g.clean.shape[0] for g in self.groups)

    def describe(self) -> dict[str, Any]:
        """What is stored beside the hash: parameters, sizes and the words kept."""
        return {
            **self.params, "kind": "ioi", "groups": len(self.groups), "prompts": self.n_prompts,
            "names": self.names, "places": self.places, "objects": self.objects,
        }  # fmt: skip


def _fill(template: str, a: str, b: str, c: str, place: str, obj: str) -> str:
    return template.format(A=a, B=b, C=c, PLACE=place, OBJECT=obj)


def generate_ioi(
    tokenizer: Any, bos_id: int | None, per_group: int = 8, seed: int = 0, min_names: int = 6
) -> IOIPrompts:
    """``per_group`` clean/ABC prompt pairs for every template in both orders, seeded."""
    names = single_tokens(tokenizer, NAMES)
    places = single_tokens(tokenizer, PLACES)
    objects = single_tokens(tokenizer, OBJECTS)
    if len(names) < min_names or not places or not objects:
        raise ValueError(
            f"too few single-token words for IOI prompts: {len(names)} names, {len(places)} places, "
            f"{len(objects)} objects"
        )
    rng = random.Random(seed)
    name_list = sorted(names)
    groups = []
    for index, template in enumerate(TEMPLATES):
        for order in ("ABBA", "BABA"):
            clean_rows, corrupt_rows, io_ids, s_ids = [], [], [], []
            positions: dict[str, int] = {}
            for _ in range(per_group):
                io, s, x, y, z = rng.sample(name_list, 5)
                place, obj = rng.choice(sorted(places)), rng.choice(sorted(objects))
                first, second = (io, s) if order == "ABBA" else (s, io)
                clean = _encode(tokenizer, bos_id, _fill(template, first, second, s, place, obj))
                corrupt = _encode(tokenizer, bos_id, _fill(template, x, y, z, place, obj))
                found = _positions(clean, names[io], names[s])
                if found is None or len(corrupt) != len(clean) or (positions and found != positions):
                    break  # the template does not tokenize uniformly for this tokenizer: skip it
                positions = found
                clean_rows.append(clean)
                corrupt_rows.append(corrupt)
                io_ids.append(names[io])
                s_ids.append(names[s])
            if len(clean_rows) == per_group:
                groups.append(IOIGroup(
                    index, order, torch.tensor(clean_rows), torch.tensor(corrupt_rows), torch.tensor(io_ids),
                    torch.tensor(s_ids), positions,
                ))  # fmt: skip
    params = {"per_group": per_group, "seed": seed, "bos": bos_id, "templates": len(TEMPLATES)}
    return IOIPrompts(
        groups, name_list, [names[n] for n in name_list], sorted(places), sorted(objects), params
    )


def _encode(tokenizer: Any, bos_id: int | None, text: str) -> list[int]:
    ids = list(tokenizer(text, add_special_tokens=False).input_ids)
    return ids if bos_id is None else [bos_id, *ids]


def _positions(ids: list[int], io: int, s: int) -> dict[str, int] | None:
    """IO, S1, S2 and END positions, when IO appears once and S twice."""
    io_at = [i for i, t in enumerate(ids) if t == io]
    s_at = [i for i, t in enumerate(ids) if t == s]
    if len(io_at) != 1 or len(s_at) != 2:
        return None
    return {"io": io_at[0], "s1": s_at[0], "s2": s_at[1], "end": len(ids) - 1}
