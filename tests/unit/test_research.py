"""Researcher access: read-only SQL, views, the pandas API, exports, schema docs and the example
queries, against the fixture database."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import survey
from db.common.errors import SurveyError
from db.engine import open_database
from db.examples import EXAMPLES
from db.fixtures import build_fixture
from db.frames import SurveyDatabase
from db.readonly import run_query, split_statements
from db.schema import Base
from db.schema_doc import schema_markdown
from tests.support.clitools import run_cli


def unchanged_fingerprint(db: Path) -> tuple[str, int]:
    """The main file's hash and the write-ahead log's size: a read-only connection may create
    the (empty) -wal and -shm sidecars of a WAL database, but never writes data."""
    import hashlib

    wal = db.with_name(db.name + "-wal")
    return hashlib.sha256(db.read_bytes()).hexdigest(), wal.stat().st_size if wal.exists() else 0


@pytest.fixture
def fixture_db(tmp_path: Path) -> Path:
    path = tmp_path / "fixture.db"
    engine = open_database(f"sqlite:///{path}")
    build_fixture(engine)
    engine.dispose()
    return path


@pytest.mark.parametrize(("question", "sql"), EXAMPLES, ids=[q for q, _ in EXAMPLES])
def test_every_example_query_answers_its_question_on_the_fixture(
    question: str, sql: str, fixture_db: Path
) -> None:
    columns, rows = run_query(f"sqlite:///{fixture_db}", sql)
    assert columns and rows, question


def _answer(question: str, url: str) -> list[tuple[object, ...]]:
    sql = next(sql for q, sql in EXAMPLES if q == question)
    return [tuple(row) for row in run_query(url, sql)[1]]


def test_the_neuron_v2_examples_answer_from_the_version_2_unit_only(fixture_db: Path) -> None:
    url = f"sqlite:///{fixture_db}"
    # fixture-a (version 2): neurons 3 and 5 of both layers fire mainly negative, of 12 live neurons;
    # fixture-b is stored as version 1 (no sign) and is left out
    assert _answer("How many neurons fire mainly negative, per model?", url) == [("fixture-a", 4, 12, 0.333)]
    assert _answer("How well do the weight read-outs hold under intervention, per layer?", url) == [
        ("fixture-a", 0, 1, 1, 8.0),
        ("fixture-a", 1, 2, 1, 6.0),
    ]


def test_there_are_at_least_ten_examples_and_the_schema_doc_shows_every_one() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "schema.md").read_text()
    assert len(EXAMPLES) >= 10
    for question, sql in EXAMPLES:
        assert f"### {question}" in doc and sql in doc, f"docs/schema.md lacks {question!r}"


WRITES = [
    "INSERT INTO corpora (name, hash, description) VALUES ('x', 'y', 'z')",
    "UPDATE neurons SET max = 0",
    "DELETE FROM head_scores",
    "DROP TABLE models",
    "ATTACH DATABASE 'other.db' AS other",
    "PRAGMA journal_mode = DELETE",
    "PRAGMA user_version = 7",
    "CREATE TABLE t (a INTEGER)",
    "VACUUM",
    "SELECT 1; DELETE FROM models",
]


@pytest.mark.parametrize("sql", WRITES)
def test_writes_are_refused_and_leave_the_database_unchanged(
    sql: str,
    fixture_db: Path,
    tmp_path: Path,
    monkeypatch,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.chdir(tmp_path)
    before = unchanged_fingerprint(fixture_db)
    code, out, err = run_cli(["query", sql, "--db", f"sqlite:///{fixture_db}"], monkeypatch, capsys)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("Error: ")
    assert "read-only" in err or "one SQL statement at a time" in err
    assert unchanged_fingerprint(fixture_db) == before
    assert not (tmp_path / "other.db").exists()


def test_query_formats_and_read_pragmas(fixture_db: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{fixture_db}"
    sql = "SELECT name, n_layers FROM models ORDER BY name"
    code, out, _ = run_cli(["query", sql, "--db", url], monkeypatch, capsys)
    assert code == 0 and "fixture-a" in out and "(2 rows)" in out
    code, out, _ = run_cli(["query", sql, "--db", url, "--format", "csv"], monkeypatch, capsys)
    assert out.splitlines() == ["name,n_layers", "fixture-a,4", "fixture-b,6"]
    code, out, _ = run_cli(["query", sql, "--db", url, "--format", "json"], monkeypatch, capsys)
    assert json.loads(out) == [{"name": "fixture-a", "n_layers": 4}, {"name": "fixture-b", "n_layers": 6}]
    columns, rows = run_query(url, "PRAGMA table_info(models)")
    assert "name" in columns and any(r[1] == "resolved_sha" for r in rows)


def test_bad_sql_and_missing_database_are_one_line_errors(fixture_db: Path, tmp_path: Path) -> None:
    with pytest.raises(SurveyError, match="query failed: no such table: nope"):
        run_query(f"sqlite:///{fixture_db}", "SELECT * FROM nope")
    with pytest.raises(SurveyError, match="no survey database at"):
        run_query(f"sqlite:///{tmp_path / 'absent.db'}", "SELECT 1")
    assert not (tmp_path / "absent.db").exists()


def test_statement_splitting_respects_quotes_and_comments() -> None:
    assert split_statements("SELECT ';' AS a; -- x; y\n") == ["SELECT ';' AS a"]
    assert split_statements("SELECT 1 /* ; */ ; SELECT 'it''s;'") == ["SELECT 1", "SELECT 'it''s;'"]
    assert len(split_statements("SELECT 1;\n;\nSELECT 2")) == 2


def test_views_answer_the_common_questions(fixture_db: Path) -> None:
    db = survey.open(f"sqlite:///{fixture_db}")
    wide = db.head_wide()
    assert len(wide) == 4 * 3 + 6 * 2
    row = wide[(wide["model"] == "fixture-a") & (wide["layer"] == 2) & (wide["head"] == 1)].iloc[0]
    assert row.induction_score == 0.9 and row.induction_label == 1 and row.attention_sink_label == 1
    mosaic = db.query("SELECT * FROM induction_mosaic WHERE rank = 1 ORDER BY model")
    assert mosaic[["model", "layer", "head"]].values.tolist() == [["fixture-a", 2, 1], ["fixture-b", 2, 0]]
    top = db.query("SELECT * FROM top_neurons WHERE model = 'fixture-a' AND family = 'prediction'")
    assert top.family_rank.tolist() == [1, 2] and top.layer.tolist() == [1, 0]
    first = db.query(
        "SELECT * FROM top_neurons WHERE model = 'fixture-a' AND family = 'first_position' "
        "ORDER BY family_rank"
    )
    assert first.layer.tolist() == [0, 1]  # by typical top activation: layer 1's larger max does not lead
    assert first["max"].iloc[0] < first["max"].iloc[1] and first.typical_top.is_monotonic_decreasing
    legacy = db.query("SELECT * FROM top_neurons WHERE model = 'fixture-b' AND family = 'token'")
    assert legacy.layer.tolist() == [1, 0] and legacy.typical_top.isna().all()  # version 1: by max
    negative = db.query("SELECT * FROM top_neurons WHERE model = 'fixture-a' AND family = 'suppression'")
    assert set(negative.sign) == {-1}
    assert set(db.runs().unit) == {
        "previous_token",
        "duplicate_token",
        "induction",
        "attention_sink",
        "neurons",
        "logit_lens",
    }


def _label_states(db: SurveyDatabase) -> dict[tuple[str, str, int, int], tuple[str, object]]:
    """Per label in ``label_evidence``: its status and its wide row's ``<class>_confirmed``."""
    wide = db.head_wide().set_index(["model", "layer", "head"])
    return {
        (r.model, r.classifier, r.layer, r.head): (
            r.status,
            wide.loc[(r.model, r.layer, r.head), f"{r.classifier}_confirmed"],
        )
        for r in db.label_evidence().itertuples()
    }


def test_label_evidence_and_confirmation_follow_the_validations(fixture_db: Path) -> None:
    db = survey.open(f"sqlite:///{fixture_db}")
    states = _label_states(db)
    assert len(states) == db.heads().label.sum()
    assert states[("fixture-a", "induction", 2, 1)] == ("confirmed", 1)
    assert states[("fixture-b", "induction", 2, 0)] == ("unconfirmed", 0)  # fixture-b's validation failed
    assert states[("fixture-b", "induction", 4, 1)] == ("unconfirmed", 0)
    assert states[("fixture-a", "previous_token", 0, 2)] == ("not validated", 1)
    wide = db.head_wide()
    assert wide.induction_confirmed.notna().sum() == wide.induction_label.sum() == 4  # NULL without a label
    evidence = db.label_evidence("induction")
    assert (evidence.ci_low < evidence.score).all() and (evidence.score < evidence.ci_high).all()
    assert (evidence.q_value < 0.01).all() and (evidence.seed_jaccard.round(2) == 0.67).all()
    failed = evidence[evidence.model == "fixture-b"].iloc[0]
    assert failed.validation_supported == 0 and failed.validation_rank == 4 and failed.validation_z < 2
    assert db.label_evidence("previous_token").validation_supported.isna().all()


def test_pandas_api_reads_heads_neurons_and_examples(fixture_db: Path) -> None:
    db = survey.open(f"sqlite:///{fixture_db}")
    heads = db.heads("induction", model="fixture-b")
    assert isinstance(heads, pd.DataFrame) and len(heads) == 12
    assert heads.sort_values("rank").iloc[0][["layer", "head"]].tolist() == [2, 0]
    assert set(db.neurons(family="dead").model) == {"fixture-a", "fixture-b"}
    signs = db.neurons("fixture-a").set_index(["layer", "neuron"]).sign
    assert signs[(1, 3)] == signs[(1, 5)] == -1 and signs[(1, 2)] == 1
    examples = db.examples("fixture-a", layer=1, neuron=2)
    assert examples["token"].tolist() == ["cat", "the"] and examples["document"].tolist() == ["pets"] * 2
    assert [t for t, _ in examples["context"][0]] == ["The", "cat", "sat"]
    assert examples["context"][0][1][1] == pytest.approx(3.0)
    negative = db.examples("fixture-a", layer=1, neuron=2, tail="negative")
    assert negative["token"].tolist() == ["sat", "on"] and (negative["activation"] < 0).all()
    assert negative["activation"].is_monotonic_increasing  # most negative first
    assert negative["context"][0][1] == ("sat", pytest.approx(-1.5))
    first = db.examples("fixture-a", layer=1, neuron=6, tail="first")
    assert first["token"].tolist() == ["The"] and first["activation"].tolist() == [61.0]
    assert db.examples("fixture-a", layer=1, neuron=2, tail="first").empty  # not a first_position neuron
    legacy = db.examples("fixture-b", layer=1, neuron=2)  # stored before migration 0009: one list
    assert legacy["token"].tolist() == ["cat", "The"]
    assert [t for t, _ in legacy["context"][1]] == ["The", "cat"]  # NaN before the window start is dropped
    assert db.examples("fixture-b", layer=1, neuron=2, tail="negative").empty
    with pytest.raises(ValueError, match="unknown tail 'top'; valid: positive, negative, first"):
        db.examples("fixture-a", layer=1, neuron=2, tail="top")
    lens = db.logit_lens("fixture-a")
    assert lens["layer"].tolist() == [0, 1, 2, 3] and lens["top1_agreement"].iloc[-1] == 1.0
    assert lens["relative_depth"].iloc[-1] == 1.0


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_export_writes_every_table_and_view(
    fmt: str,
    fixture_db: Path,
    tmp_path: Path,
    monkeypatch,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    out = tmp_path / "export"
    args = ["export", "--db", f"sqlite:///{fixture_db}", "--format", fmt, "--out", str(out)]
    code, printed, _ = run_cli(args, monkeypatch, capsys)
    assert code == 0
    names = {p.stem for p in out.iterdir()}
    assert (
        set(Base.metadata.tables) | {"head_wide", "induction_mosaic", "top_neurons", "run_provenance"}
        <= names
    )
    read = pd.read_parquet if fmt == "parquet" else pd.read_csv
    assert len(read(out / f"head_scores.{fmt}")) == 4 * (12 + 12)
    assert len(read(out / f"head_wide.{fmt}")) == 24
    assert "head_scores" in printed


def test_schema_docs_cover_every_column_and_the_schema_doc_shows_them(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    text = schema_markdown()
    for table in Base.metadata.tables.values():
        assert f"**`{table.name}`**" in text
        for column in table.columns:
            assert column.name == "id" or column.doc, f"{table.name}.{column.name} has no doc"
    doc = (Path(__file__).parents[2] / "docs" / "schema.md").read_text()
    assert text in doc, "docs/schema.md is stale: run `survey docs`"
    code, out, _ = run_cli(["schema"], monkeypatch, capsys)
    assert code == 0 and out == text


@pytest.fixture(scope="module")
def postgres_fixture(postgres_url: str) -> str:
    engine = open_database(postgres_url)
    build_fixture(engine)
    engine.dispose()
    return postgres_url


def test_examples_and_views_run_on_postgresql(postgres_fixture: str) -> None:
    for question, sql in EXAMPLES:
        columns, rows = run_query(postgres_fixture, sql)
        assert columns and rows, question
    wide = survey.open(postgres_fixture).head_wide()
    assert len(wide) == 24 and wide["induction_label"].sum() == 4
    states = _label_states(survey.open(postgres_fixture))
    assert states[("fixture-a", "induction", 2, 1)] == ("confirmed", 1)
    assert states[("fixture-b", "induction", 2, 0)] == ("unconfirmed", 0)
    assert states[("fixture-a", "previous_token", 0, 2)] == ("not validated", 1)
    assert survey.open(postgres_fixture).label_evidence("induction").seed_jaccard.notna().all()
    db = survey.open(postgres_fixture)  # unset filters are left out, not bound as untyped NULLs
    assert len(db.heads("induction", "fixture-a")) == 12 and len(db.heads()) > len(db.heads("induction"))


@pytest.mark.parametrize(
    "sql", [w for w in WRITES if "ATTACH" not in w and "PRAGMA" not in w and "VACUUM" not in w]
)
def test_postgresql_queries_run_in_read_only_transactions(sql: str, postgres_fixture: str) -> None:
    count = (
        "SELECT (SELECT count(*) FROM models) + (SELECT count(*) FROM head_scores) "
        "+ (SELECT count(*) FROM neurons)"
    )
    before = run_query(postgres_fixture, count)[1]
    with pytest.raises(SurveyError, match="read-only|one SQL statement at a time"):
        run_query(postgres_fixture, sql)
    assert run_query(postgres_fixture, count)[1] == before
    assert run_query(
        postgres_fixture, "SELECT count(*) FROM information_schema.tables WHERE table_name = 't'"
    )[1] == [(0,)]
