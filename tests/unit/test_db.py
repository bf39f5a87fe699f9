"""Schema, migrations and SQLite concurrency settings."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text

from db.common.errors import SurveyError
from db.engine import make_engine, open_database
from db.migrate import current_revision, head_revision
from db.schema import Base


def test_migrations_build_exactly_the_schema(backend_url: str) -> None:
    engine = open_database(backend_url)
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_sqlite_uses_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 's.db'}")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() >= 10_000


def test_concurrent_read_then_write_transactions_never_fail(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 's.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE counter (n INTEGER)"))
        connection.execute(text("INSERT INTO counter VALUES (0)"))
    errors: list[BaseException] = []

    def writer() -> None:
        for _ in range(25):
            try:
                with engine.begin() as connection:  # BEGIN IMMEDIATE: read, then write
                    n = connection.execute(text("SELECT n FROM counter")).scalar_one()
                    connection.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with engine.connect() as connection:
        assert connection.execute(text("SELECT n FROM counter")).scalar_one() == 100  # no lost update


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "bad database URL 'not a url'"),
        ("nosuchdialect://x/y", "bad database URL"),
        ("sqlite:////no/such/folder/s.db", "folder /no/such/folder does not exist"),
        ("postgresql+psycopg2://u:secret@127.0.0.1:1/db", "bad database URL|cannot open database"),
    ],
)
def test_bad_urls_are_one_clear_line(url: str, message: str) -> None:
    with pytest.raises(SurveyError, match=message) as info:
        open_database(url)
    assert "\n" not in str(info.value) and "secret" not in str(info.value)


def test_make_engine_accepts_memory_sqlite() -> None:
    with make_engine("sqlite://").connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar() == 1


@contextmanager
def stored_at(backend_url: str, revision: str) -> Iterator[Connection]:
    """A database migrated only to ``revision``, holding model 1 and its run 1; yields the open
    transaction to add rows as that revision stored them."""
    from alembic import command

    from db.migrate import alembic_config

    engine = make_engine(backend_url)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.execute(text(
            "INSERT INTO models (id, name, source, location, resolved_sha, architecture, n_layers, "
            "n_heads, n_kv_heads, d_model, d_head, d_mlp, d_vocab, n_params, parallel_attn_mlp, "
            "quantization, created_at) "
            "VALUES (1, 'm', 'local', '/m', 'abc', 'llama', 1, 1, 1, 8, 8, 16, 10, 100, false, 'none', "
            "CURRENT_TIMESTAMP)"
        ))  # fmt: skip
        connection.execute(text(
            "INSERT INTO runs (id, model_id, code_version, config, device, dtype, started_at, status) "
            "VALUES (1, 1, 'old', '{}', 'cpu', 'float32', CURRENT_TIMESTAMP, 'done')"
        ))  # fmt: skip
        yield connection
    engine.dispose()


def test_a_0006_database_upgrades_keeping_its_units_under_an_empty_definition_hash(backend_url: str) -> None:
    with stored_at(backend_url, "0006") as connection:
        connection.execute(text(
            "INSERT INTO units (model_id, run_id, kind, name, version, config, dataset_hash, dataset, "
            "created_at) "
            "VALUES (1, 1, 'head_classifier', 'induction', 1, '{}', 'd', '{}', CURRENT_TIMESTAMP)"
        ))  # fmt: skip
    engine = open_database(backend_url)
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT name, definition_hash FROM units")).all() == [
            ("induction", "")
        ]
        assert connection.execute(text("SELECT count(*) FROM run_provenance")).scalar() == 1
        assert "induction_score" in list(connection.execute(text("SELECT * FROM head_wide")).keys())


def test_a_0008_neuron_unit_upgrades_as_version_1_and_top_neurons_still_ranks_it(backend_url: str) -> None:
    from db.views import views_hash

    with stored_at(backend_url, "0008") as connection:
        connection.execute(text(
            "INSERT INTO units (id, model_id, run_id, kind, name, version, config, dataset_hash, dataset, "
            "created_at) VALUES (1, 1, 1, 'neuron_summary', 'neurons', 1, '{}', 'd', '{}', CURRENT_TIMESTAMP)"
        ))  # fmt: skip
        for neuron, top in ((0, 2.0), (1, 5.0)):
            connection.execute(text(
                "INSERT INTO neurons (unit_id, layer, neuron, mean, std, skew, kurtosis, max, frac_active, "
                "hist_low, hist_high, histogram, w_in_norm, w_out_norm, vocab_mean, vocab_var, vocab_skew, "
                "vocab_kurtosis, top_tokens, bottom_tokens, top_token_share, family) VALUES (1, 0, :neuron, "
                "0, 1, 0, 3, :top, 0.5, -1, 1, '[1]', 1, 1, 0, 1, 2, 20, '[[1, 2.0]]', '[[2, -2.0]]', 0.5, "
                "'prediction')"
            ), {"neuron": neuron, "top": top})  # fmt: skip
        connection.execute(
            text(
                "INSERT INTO neuron_examples (unit_id, layer, neuron, examples, context_acts) "
                "VALUES (1, 0, 1, '[]', :acts)"
            ),
            {"acts": b""},
        )
    engine = open_database(backend_url)
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        new_columns = "SELECT sign, typical_top, min, token_id, check_overlap FROM neurons ORDER BY neuron"
        assert connection.execute(text(new_columns)).all() == [(None,) * 5] * 2
        assert connection.execute(text("SELECT tail FROM neuron_examples")).all() == [("positive",)]
        ranked = "SELECT neuron, family_rank, sign, typical_top FROM top_neurons ORDER BY family_rank"
        assert connection.execute(text(ranked)).all() == [(1, 1, None, None), (0, 2, None, None)]  # by max
        assert connection.execute(text("SELECT views_hash FROM view_state")).scalar() == views_hash()


def test_views_are_rebuilt_when_the_classifier_registry_changes(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from db import views

    url = f"sqlite:///{tmp_path / 's.db'}"
    open_database(url).dispose()
    names = [*views.classifier_names(), "planted_class"]
    monkeypatch.setattr(views, "classifier_names", lambda: names)
    engine = open_database(url)
    with engine.connect() as connection:
        columns = list(connection.execute(text("SELECT * FROM head_wide")).keys())
        assert "planted_class_score" in columns and "successor_label" in columns
        assert connection.execute(text("SELECT views_hash FROM view_state")).scalar() == views.views_hash()


def test_the_browser_sql_page_allows_the_same_pragmas_as_survey_query() -> None:
    import re

    from db.readonly import READ_PRAGMAS

    worker = (Path(__file__).resolve().parents[2] / "site/assets/sql/sql-worker.js").read_text()
    listed = re.search(r"const READ_PRAGMAS = new Set\(\[(.*?)\]\);", worker, re.S)
    assert listed is not None and set(re.findall(r'"(\w+)"', listed.group(1))) == READ_PRAGMAS
