"""Decode a neuron's stored top examples (one tail of them) into tokens in context.

``neuron_examples`` keeps token positions and float16 context activations; the text lives once
in ``documents`` with per-unit character offsets. Used by the Python API and by the wiki.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, text

from db.reads import decode_json

# document id -> (text, title, offsets [[start, end], ...]) for the unit's tokenization
DocumentLoader = Callable[[int], tuple[str, str, list[list[int]]]]


@dataclass(frozen=True)
class Example:
    """One top example: the token, its (signed) activation, the document title, and the
    context tokens with the neuron's activation on each (``focus`` indexes the token itself)."""

    rank: int
    token: str
    activation: float
    document: str
    context: list[tuple[str, float]]
    focus: int


def load_document(conn: Connection, unit_id: int, document_id: int) -> tuple[str, str, list[list[int]]]:
    """A document's text and title, with its character offsets as the unit's model tokenized it."""
    row = conn.execute(
        text("""SELECT d.text, d.title, t.offsets FROM documents d JOIN tokenized_documents t
        ON t.document_id = d.id AND t.unit_id = :unit WHERE d.id = :document"""),
        {"unit": unit_id, "document": document_id},
    ).one()
    offsets = decode_json(row.offsets)
    return row.text, row.title, offsets


def decode_examples(
    examples: list[list[Any]], context_acts: bytes, config: dict[str, Any], document: DocumentLoader
) -> list[Example]:
    """The examples of one ``neuron_examples`` row, most extreme first."""
    before = int(config["context_before"])
    width = before + 1 + int(config["context_after"])
    acts = np.frombuffer(context_acts, dtype=np.float16).reshape(len(examples), width)
    decoded = []
    for rank, (document_id, token_index, _token_id, activation) in enumerate(examples, 1):
        text, title, offsets = document(int(document_id))
        context: list[tuple[str, float]] = []
        focus = 0
        for j, i in enumerate(range(token_index - before, token_index - before + width)):
            if 0 <= i < len(offsets) and not np.isnan(acts[rank - 1, j]):
                if i == token_index:
                    focus = len(context)
                context.append((text[offsets[i][0] : offsets[i][1]], float(acts[rank - 1, j])))
        token = text[offsets[token_index][0] : offsets[token_index][1]]
        decoded.append(Example(rank, token, float(activation), title, context, focus))
    return decoded
