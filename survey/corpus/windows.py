"""A corpus cut into fixed windows for one tokenizer: what the neuron pass and the logit lens read.

Documents are tokenized in corpus order; each gives at most ``max_windows_per_doc`` full windows of
``window`` tokens (shorter documents are skipped) until ``token_budget`` tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from db.common.errors import SurveyError
from db.common.neuron_config import NeuronConfig
from survey.corpus.sources import Corpus, Document


@dataclass(frozen=True)
class TokenizedDocument:
    """A document's token ids and character offsets, up to the last token a window used."""

    document: Document
    token_ids: list[int]
    offsets: list[tuple[int, int]]


@dataclass(frozen=True)
class Windows:
    """``tokens [window, pos]`` without BOS, and where each window starts in its document."""

    tokens: Tensor
    doc_index: Tensor  # [window]
    start: Tensor  # [window]: token index in the document of the window's first token
    documents: list[TokenizedDocument]


def cut_windows(corpus: Corpus, tokenizer: Any, config: NeuronConfig) -> Windows:
    """Tokenize documents in order and cut full windows until the token budget is met."""
    wanted = max(config.token_budget // config.window, 1)
    rows: list[list[int]] = []
    doc_index: list[int] = []
    starts: list[int] = []
    used: list[TokenizedDocument] = []
    for document in corpus.documents():
        encoded = tokenizer(document.text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(encoded["input_ids"])
        n = min(len(ids) // config.window, config.max_windows_per_doc, wanted - len(rows))
        if n <= 0:
            continue
        for w in range(n):
            rows.append(ids[w * config.window : (w + 1) * config.window])
            doc_index.append(document.index)
            starts.append(w * config.window)
        end = n * config.window
        offsets = [tuple(pair) for pair in encoded["offset_mapping"][:end]]
        used.append(TokenizedDocument(document, ids[:end], offsets))  # type: ignore[arg-type]
        if len(rows) >= wanted:
            break
    if not rows:
        raise SurveyError(f"corpus {corpus.name!r} has no document of at least {config.window} tokens")
    return Windows(torch.tensor(rows), torch.tensor(doc_index), torch.tensor(starts), used)
