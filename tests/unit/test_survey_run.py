"""`survey run` end to end on the planted model saved as a local folder: what is stored, that a
rerun adds and changes nothing, --force, --classifiers, and bad classifier names."""

from __future__ import annotations

import json
from pathlib import Path

from classifiers import classifier_class, classifier_names
from tests.support.clitools import db_bytes, rows, run_cli
from tests.support.planted import PLANTED
from tests.support.planted_ioi import PLANTED as IOI_PLANTED
from tests.support.tiny import tiny_tokenizer

PER_HEAD = (
    "SELECT u.name, u.version, h.layer, h.head, count(*) FROM head_scores h JOIN units u ON u.id = h.unit_id "
    "GROUP BY 1, 2, 3, 4"
)
LABELLED = (
    "SELECT h.layer, h.head, h.label, h.rank, h.percentile, h.evidence FROM head_scores h "
    "JOIN units u ON u.id = h.unit_id WHERE u.name = '{}' AND h.label"
)


def top_evidence(db: Path, classifier: str) -> str:
    """The evidence JSON of the classifier's top head."""
    return rows(db, LABELLED.format(classifier) + " ORDER BY h.rank LIMIT 1")[0][5]


def test_run_stores_every_head_with_label_rank_evidence_and_provenance(
    planted_folder: Path,
    tmp_path: Path,
    monkeypatch,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    db = tmp_path / "s.db"
    code, out, err = run_cli(["run", str(planted_folder), "--db", f"sqlite:///{db}"], monkeypatch, capsys)
    assert code == 0, out + err
    assert "top heads per class" in out and "rank" in out and "seed Jaccard" in out
    assert "skipping name_mover: too few single-token words" in out  # a word-level toy vocabulary
    units = rows(db, "SELECT name, version, threshold, dataset_hash, config, run_id FROM units ORDER BY name")
    ((status, run_config),) = rows(db, "SELECT status, config FROM runs")
    assert status == "done"
    skipped = json.loads(run_config)["skipped"]  # the wiki shows why a classifier is missing
    stored = [u[0] for u in units]
    assert set(PLANTED) <= set(stored) and sorted([*stored, *skipped]) == sorted(classifier_names())
    assert set(skipped) == {*IOI_PLANTED, "successor", "function_vector"}  # the toy vocabulary has no words
    assert all(len(u[3]) == 64 and ('"probe"' in u[4] or '"dataset"' in u[4]) for u in units)
    assert skipped["name_mover"].startswith("too few single-token words")
    assert rows(db, "SELECT count(*) FROM tokens") == [(rows(db, "SELECT d_vocab FROM models")[0][0],)]
    assert '"pattern"' in top_evidence(db, "induction")
    per_head = rows(db, PER_HEAD)
    assert len(per_head) == len(stored) * 8 and {r[-1] for r in per_head} == {1}
    for name, (layer, head) in PLANTED.items():
        top = rows(db, LABELLED.format(name))
        rank = 2 if name == "anti_induction" else 1  # it ties with the induction head, which ranks first
        assert [(r[0], r[1], r[3], r[4]) for r in top] == [(layer, head, rank, 100.0)]
        assert '"target_mass"' in top[0][5] and '"example"' in top[0][5]
    (validation,) = rows(
        db, "SELECT v.metric, v.k, v.heads, v.supported, v.details FROM validations v "
        "JOIN units u ON u.id = v.unit_id WHERE u.name = 'induction'",
    )  # fmt: skip
    assert validation[:2] == ("second_repeat_loss", 1) and validation[2] == "[[1, 0]]"
    assert '"random_heads"' in validation[4] and '"forward_passes"' in validation[4]
    evidence = rows(
        db, "SELECT u.name, h.reason, h.q_value, h.ci_low, h.score, h.ci_high, u.statistics "
        "FROM head_scores h JOIN units u ON u.id = h.unit_id WHERE h.label",
    )  # fmt: skip
    assert {r[0] for r in evidence} >= set(PLANTED)
    for name, reason, q, low, score, high, statistics in evidence:
        assert reason == "labelled" and q < 0.01 and low <= score <= high, name
        assert json.loads(statistics)["null_fp_rate"] is not None
    seeds = dict(rows(db, "SELECT name, statistics FROM units WHERE name IN ('induction', 'previous_token')"))
    assert all(json.loads(seeds[name])["seed_jaccard"] == 1.0 for name in seeds)  # planted: every seed agrees

    before = db_bytes(db)
    code, out, _ = run_cli(["run", str(planted_folder), "--db", f"sqlite:///{db}"], monkeypatch, capsys)
    assert code == 0 and "up to date" in out and "top heads per class" in out
    assert db_bytes(db) == before  # a rerun adds and changes nothing, not even a run row

    code, out, _ = run_cli(
        ["run", str(planted_folder), "--db", f"sqlite:///{db}", "--classifiers", "induction", "--force"],
        monkeypatch, capsys,
    )  # fmt: skip
    assert code == 0, out
    assert rows(db, PER_HEAD) == per_head  # still exactly one row per (head, classifier, version)
    assert rows(db, "SELECT name, run_id FROM units WHERE run_id = 2") == [("induction", 2)]
    assert rows(db, "SELECT count(*) FROM validations") == [(2,)]  # induction's and backup_induction's


def test_classifier_selection_runs_only_those(
    planted_folder: Path,
    tmp_path: Path,
    monkeypatch,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    db = tmp_path / "s.db"
    selection = "attention_sink,previous_token"
    args = ["run", str(planted_folder), "--db", f"sqlite:///{db}", "--classifiers", selection]
    code, out, _ = run_cli(args, monkeypatch, capsys)
    assert code == 0, out
    assert rows(db, "SELECT name FROM units ORDER BY name") == [("attention_sink",), ("previous_token",)]
    assert rows(db, "SELECT count(*) FROM validations") == [(0,)]


def test_unknown_classifier_is_one_error_line_and_leaves_the_database_untouched(
    stored: Path,
    monkeypatch,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    before = db_bytes(stored)
    args = ["run", "anything", "--db", f"sqlite:///{stored}", "--classifiers", "induction,nope"]
    code, out, err = run_cli(args, monkeypatch, capsys)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("Error: unknown classifier 'nope'; valid: previous_token")
    assert db_bytes(stored) == before


def test_a_model_too_short_for_the_probes_is_refused_before_anything_is_written(
    tmp_path: Path,
    monkeypatch,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    from transformers import AutoModelForCausalLM

    from tests.support.tiny import tiny_config

    folder = tmp_path / "short"
    config = tiny_config("gpt2")
    config.n_positions = 48
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    db = tmp_path / "s.db"
    code, _, err = run_cli(["run", str(folder), "--db", f"sqlite:///{db}"], monkeypatch, capsys)
    assert code == 1 and "needs 65 positions but 'short' supports 48" in err
    assert rows(db, "SELECT count(*) FROM models") == [(0,)]


def test_classifiers_command_lists_every_definition(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli(["classifiers"], monkeypatch, capsys)
    assert code == 0
    assert all(f"{name} v{classifier_class(name).version}" in out for name in classifier_names())
    assert "A[i, i-(L-1)]" in out
    assert all(f"null: {classifier_class(name).null}" in out for name in classifier_names())


def test_an_interrupted_run_keeps_whole_units_and_a_rerun_finishes_the_rest(
    planted_folder: Path,
    tmp_path: Path,
    monkeypatch,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    import survey.run.runner

    real_write = survey.run.runner.write_unit
    calls = {"n": 0}

    def write_then_interrupt(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_write(*args, **kwargs)

    db = tmp_path / "s.db"
    args = ["run", str(planted_folder), "--db", f"sqlite:///{db}"]
    monkeypatch.setattr(survey.run.runner, "write_unit", write_then_interrupt)
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 130 and "Aborted." in err
    assert rows(db, "SELECT count(*) FROM units") == [(1,)]
    assert rows(db, "SELECT count(*) FROM head_scores") == [(8,)]
    assert rows(db, "SELECT status, error FROM runs") == [("failed", "interrupted")]

    monkeypatch.setattr(survey.run.runner, "write_unit", real_write)
    code, out, _ = run_cli(args, monkeypatch, capsys)
    assert code == 0, out
    assert rows(db, "SELECT count(*) FROM units") == [(6,)]  # 5 pattern classifiers and backup_induction
    per_head = rows(db, PER_HEAD)
    assert len(per_head) == 6 * 8 and {r[-1] for r in per_head} == {1}
    assert rows(db, "SELECT run_id, count(*) FROM units GROUP BY run_id") == [(1, 1), (2, 5)]


def test_a_unit_that_fails_marks_the_run_failed_and_the_next_model_goes_on(
    planted_folder: Path,
    tmp_path: Path,
    monkeypatch,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    from classifiers.attention import Induction
    from tests.support.tiny import save_tiny

    def broken(self, patterns, probe, null_patterns=None, copy=None):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    monkeypatch.setattr(Induction, "score", broken)
    db = tmp_path / "s.db"
    other = save_tiny("llama", tmp_path / "tiny-llama")
    code, out, _ = run_cli(
        ["run", str(planted_folder), str(other), "--db", f"sqlite:///{db}"], monkeypatch, capsys
    )
    assert code == 1
    assert rows(db, "SELECT status, error FROM runs ORDER BY id") == [("failed", "RuntimeError: boom")] * 2
    assert "induction" not in {r[0] for r in rows(db, "SELECT name FROM units")}
    assert rows(db, "SELECT model_id, count(*) FROM units GROUP BY model_id") == [(1, 3), (2, 3)]
