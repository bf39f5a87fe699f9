"""The published database is read over HTTP range requests, a request per page: its views are
stored as tables that answer as the views do, and every example question reads an index or a small
summary, never a whole table of heads or neurons."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from db.engine import open_database
from db.examples import EXAMPLES
from db.fixtures import build_fixture
from db.views import view_sql
from survey.wiki.release import publish_database

WHOLE_TABLES = ("head_scores", "neurons", "neuron_examples", "tokens", "head_wide", "label_evidence",
                "induction_mosaic")  # fmt: skip


@pytest.fixture(scope="module")
def databases(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The fixture database and its published copy, joined from its chunks."""
    folder = tmp_path_factory.mktemp("release")
    source = folder / "source.db"
    engine = open_database(f"sqlite:///{source}")
    build_fixture(engine)
    engine.dispose()
    publish_database(source, folder / "out")
    published = folder / "published.db"
    published.write_bytes(b"".join(p.read_bytes() for p in sorted((folder / "out/db").glob("survey.db.*"))))
    return source, published


def test_the_views_are_tables_that_answer_as_the_views(databases: tuple[Path, Path]) -> None:
    source, published = databases
    with sqlite3.connect(source) as before, sqlite3.connect(published) as after:
        kinds = dict(after.execute("SELECT name, type FROM sqlite_master").fetchall())
        assert {name: kinds.get(name) for name in view_sql()} == {name: "table" for name in view_sql()}
        for name in view_sql():
            query = f"SELECT * FROM {name} ORDER BY 1, 2, 3"
            assert after.execute(query).fetchall() == before.execute(query).fetchall(), name


@pytest.mark.parametrize(("question", "sql"), EXAMPLES, ids=[q for q, _ in EXAMPLES])
def test_every_example_reads_an_index_or_a_small_table(
    question: str, sql: str, databases: tuple[Path, Path]
) -> None:
    _, published = databases
    with sqlite3.connect(published) as db:
        plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql)]
        assert db.execute(sql).fetchall() is not None
    scans = [step for step in plan if step.startswith("SCAN ") and "COVERING INDEX" not in step]
    assert not [s for s in scans if s.split()[1] in WHOLE_TABLES], (question, plan)
