"""Store a neuron pass: the corpus documents once, then the unit with every neuron, example and
tokenized document, in one transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from db.engine import session_factory
from db.schema import Corpus, Document, Neuron, NeuronExample, TokenizedDocument
from db.store import UnitKey, delete_unit, insert_rows, new_unit

if TYPE_CHECKING:
    from survey.corpus.sources import Corpus as CorpusSource
    from survey.units.neurons import NeuronSummary


def _documents(
    session: Session, corpus: CorpusSource, corpus_hash: str, summary: NeuronSummary
) -> dict[int, int]:
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
    engine: Engine, model_id: int, run_id: int, key: UnitKey, config: dict[str, Any], dataset: dict[str, Any],
    corpus: CorpusSource, corpus_hash: str, summary: NeuronSummary, replace: bool,
) -> int:  # fmt: skip
    """Write everything of one neuron unit atomically; return the unit id."""
    with session_factory(engine).begin() as session:
        if replace:
            delete_unit(session, model_id, key)
        document_ids = _documents(session, corpus, corpus_hash, summary)
        unit = new_unit(session, model_id, run_id, key, config, dataset)
        insert_rows(session, TokenizedDocument, [
            {"unit_id": unit.id, "document_id": document_ids[t.document.index], "token_ids": t.token_ids,
             "offsets": [list(pair) for pair in t.offsets]}
            for t in summary.documents
        ])  # fmt: skip
        insert_rows(session, Neuron, [{"unit_id": unit.id, **row} for row in summary.neurons])
        insert_rows(session, NeuronExample, [
            {**row, "unit_id": unit.id,
             "examples": [[document_ids[doc], *rest] for doc, *rest in row["examples"]]}
            for row in summary.examples
        ])  # fmt: skip
        return unit.id
