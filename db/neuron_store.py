"""Store a neuron pass: the corpus documents once, then the unit with every neuron, example and
tokenized document, in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from db.engine import session_factory
from db.schema import Corpus, Document, Neuron, NeuronExample, TokenizedDocument
from db.store import RunIds, UnitRow, insert_rows, new_unit


class CorpusDocument(Protocol):
    """A corpus document as the store reads it."""

    @property
    def index(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def text(self) -> str: ...


class DocumentTokens(Protocol):
    """A document with the token ids and character offsets the pass read from it."""

    @property
    def document(self) -> CorpusDocument: ...
    @property
    def token_ids(self) -> list[int]: ...
    @property
    def offsets(self) -> list[tuple[int, int]]: ...


class CorpusInfo(Protocol):
    """The corpus a pass read: its name and description."""

    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...


class NeuronRows(Protocol):
    """A finished pass: one row per neuron, one per neuron's examples, and the documents used."""

    @property
    def neurons(self) -> list[dict[str, Any]]: ...
    @property
    def examples(self) -> list[dict[str, Any]]: ...
    @property
    def documents(self) -> Sequence[DocumentTokens]: ...


def _documents(session: Session, corpus: CorpusInfo, corpus_hash: str, summary: NeuronRows) -> dict[int, int]:
    """Get or add the corpus and each document the summary uses; return doc_index -> documents.id."""
    corpus_id = session.scalar(select(Corpus.id).where(Corpus.hash == corpus_hash))
    if corpus_id is None:
        corpus_row = Corpus(name=corpus.name, hash=corpus_hash, description=corpus.description)
        session.add(corpus_row)
        session.flush()
        corpus_id = corpus_row.id
    query = select(Document.doc_index, Document.id).where(Document.corpus_id == corpus_id)
    stored = {index: row_id for index, row_id in session.execute(query)}
    for tokenized in summary.documents:
        doc = tokenized.document
        if doc.index not in stored:
            row = Document(corpus_id=corpus_id, doc_index=doc.index, title=doc.title, text=doc.text)
            session.add(row)
            session.flush()
            stored[doc.index] = row.id
    return stored


def write_neuron_unit(
    engine: Engine, ids: RunIds, unit: UnitRow, corpus: CorpusInfo, corpus_hash: str, summary: NeuronRows,
    replace: bool,
) -> int:  # fmt: skip
    """Write everything of one neuron unit atomically; return the unit id."""
    with session_factory(engine).begin() as session:
        document_ids = _documents(session, corpus, corpus_hash, summary)
        row = new_unit(session, ids, unit, replace)
        insert_rows(session, TokenizedDocument, [
            {"unit_id": row.id, "document_id": document_ids[t.document.index], "token_ids": t.token_ids,
             "offsets": [list(pair) for pair in t.offsets]}
            for t in summary.documents
        ])  # fmt: skip
        insert_rows(session, Neuron, [{"unit_id": row.id, **neuron} for neuron in summary.neurons])
        insert_rows(session, NeuronExample, [
            {**example, "unit_id": row.id,
             "examples": [[document_ids[doc], *rest] for doc, *rest in example["examples"]]}
            for example in summary.examples
        ])  # fmt: skip
        return row.id
