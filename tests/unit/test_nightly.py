"""``survey nightly`` and ``survey status`` on tiny local models: config checks, skipping,
retries, failure isolation, sharding, the structured log, and concurrent writers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from db.common.errors import SurveyError
from survey.run.nightly.config import load_config, parse_config
from survey.run.nightly.plan import in_shard, parse_shard
from tests.support.clitools import run_cli
from tests.support.nightlytools import broken_model, results, tiny_models, write_config

REPO = Path(__file__).resolve().parents[2]
PATTERN = '["previous_token", "induction"]'


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return tiny_models(tmp_path_factory.mktemp("tiny"))


def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    with engine.connect() as connection:
        found = [tuple(r) for r in connection.execute(text(sql))]
    engine.dispose()
    return found


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[survey]\ndtyp = "float32"\n[[models]]\nname = "m"', "survey.dtyp is not a known key"),
        ('[survey]\ndtype = "fp8"\n[[models]]\nname = "m"', "survey.dtype must be one of"),
        (
            '[survey]\nclassifiers = ["inductoin"]\n[[models]]\nname = "m"',
            "survey.classifiers names an unknown",
        ),
        ('[survey]\nretries = -1\n[[models]]\nname = "m"', "survey.retries must be >= 0"),
        ('[survey]\nretries = "2"\n[[models]]\nname = "m"', "survey.retries must be int"),
        ("[survey]\n", "[[models]] must list at least one model"),
        ('[[models]]\nname = "m"\n[[models]]\nname = "m"', "[[models]] lists 'm' twice"),
        ('[[models]]\nname = "m"\nrev = "x"', "models[0].rev is not a known key"),
        ('[survey.neurons]\ntokens = 0\n[[models]]\nname = "m"', "survey.neurons.tokens is too small"),
        ('[ray]\nnum_gpus = -1\n[[models]]\nname = "m"', "ray.num_gpus must be >= 0"),
        ('[[models]]\nname = "m"\n[extra]\n', "extra is not a known key"),
    ],
)
def test_a_bad_config_names_the_key(tmp_path: Path, toml: str, key: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(SurveyError, match=f"config {path}: " + key.replace("[", r"\[").replace("]", r"\]")):
        load_config(path)


def test_invalid_toml_is_one_error_line(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.toml"
    path.write_text("[survey\n")
    code, _, err = run_cli(["nightly", "--config", str(path)], monkeypatch, capsys)
    assert (
        code == 1 and err.startswith(f"Error: config {path} is not valid TOML") and len(err.splitlines()) == 1
    )


def test_a_bad_database_url_in_the_config_is_one_error_line(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    config = write_config(tmp_path / "c.toml", "not a url", ["smollm2-135m-instruct"])
    code, _, err = run_cli(["nightly", "--config", str(config)], monkeypatch, capsys)
    assert (
        code == 1
        and err.strip()
        == "Error: bad database URL 'not a url': expected e.g. sqlite:///survey.db or postgresql://…"
    )


def test_shipped_configs_load() -> None:
    nightly = load_config(REPO / "survey/configs/nightly.toml")
    embedded = load_config(REPO / "survey/configs/embedded.toml")
    assert len(nightly.models) >= 30 and nightly.ray["num_gpus"] == 1
    assert [m.name for m in embedded.models] == [
        "smollm2-135m-instruct",
        "gemma3-270m",
        "qwen2.5-coder-0.5b-instruct",
    ]
    assert (
        embedded.neurons is not None and parse_config({"models": [{"name": "x"}]}, Path("x")).neurons is None
    )


def test_shards_partition_the_models_deterministically() -> None:
    specs = load_config(REPO / "survey/configs/nightly.toml").models
    for n in (1, 2, 3, 8):
        shards = [[s for s in specs if in_shard(s, (i, n))] for i in range(n)]
        assert sorted(s.key for shard in shards for s in shard) == sorted(
            s.key for s in specs
        )  # each exactly once
        assert shards == [[s for s in specs if in_shard(s, (i, n))] for i in range(n)]
    assert all(len([s for s in specs if in_shard(s, (i, 3))]) > 5 for i in range(3))
    for bad in ("3/3", "1", "a/b", "-1/2"):
        with pytest.raises(SurveyError, match="--shard"):
            parse_shard(bad)


def test_nightly_runs_skips_retries_and_isolates_a_failing_model(
    models: list[Path],
    tmp_path: Path,
    backend_url: str,
    monkeypatch,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    url = backend_url
    broken = broken_model(tmp_path / "broken")
    config = write_config(tmp_path / "c.toml", url, [models[0], broken, models[1]], PATTERN, retries=2)
    log = tmp_path / "log.jsonl"
    code, out, err = run_cli(["nightly", "--config", str(config), "--log", str(log)], monkeypatch, capsys)
    assert code == 1, out + err  # the broken model failed, so the exit status says so
    assert "3 models, 0 up to date, 3 to run" in out
    assert "previous_token v2" in out and "induction v3" in out  # per-unit progress
    jobs = rows(url, "SELECT model, attempt, status, error FROM nightly_jobs ORDER BY id")
    failed = [j for j in jobs if j[0] == str(broken)]
    assert [(j[1], j[2]) for j in failed] == [(1, "failed"), (2, "failed"), (3, "failed")]  # retried twice
    assert all("JSON" in str(j[3]) or "json" in str(j[3]) or "Error" in str(j[3]) for j in failed)
    assert {(j[0], j[2]) for j in jobs if j[0] != str(broken)} == {
        (str(models[0]), "done"),
        (str(models[1]), "done"),
    }
    assert rows(url, "SELECT count(*) FROM units") == [(4,)]  # both good models, both classifiers
    summary = out[out.rindex("model ") :]
    assert "failed" in summary and "done" in summary
    records = [json.loads(line) for line in log.read_text().splitlines()]
    events = [record["event"] for record in records]
    assert events[0] == "nightly_start" and events[-1] == "nightly_end" and events.count("attempt_end") == 5
    lines = [r["line"] for r in records if r["event"] == "progress" and r["model"] == str(models[0])]
    induction = [line for line in lines if line.startswith("induction v3:")]  # the printed lines, logged
    assert len(induction) == 1 and re.search(r"\(([1-9][\d,]*) passes, ([1-9][\d,]*) tokens\)$", induction[0])
    assert any("] 100% 2/2 units, " in line for line in lines)  # the model's bar, at its end

    before = results(url)
    code, out, _ = run_cli(["nightly", "--config", str(config), "--log", ""], monkeypatch, capsys)
    assert code == 1
    assert "3 models, 2 up to date, 1 to run" in out  # the finished models are not even loaded
    assert results(url) == before
    assert rows(
        url, "SELECT count(*) FROM nightly_jobs WHERE model != :b".replace(":b", repr(str(broken)))
    ) == [(2,)]

    code, out, _ = run_cli(["status", "--config", str(config), "--units"], monkeypatch, capsys)
    assert code == 0
    model_table = out.split("\n\n")[0]
    lines = {line.split()[0]: line for line in model_table.splitlines() if line.startswith("/")}
    assert " done " in lines[str(models[0])] and "2/2" in lines[str(models[0])]
    assert " failed " in lines[str(broken)] and "0/2" in lines[str(broken)]
    assert "2 done, 0 pending, 1 failed, 0 running of 3 models" in out
    assert out.count(" induction v3 ") == 3  # the per-unit table


def test_status_shows_pending_models_before_any_run(
    models: list[Path], tmp_path: Path, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    config = write_config(tmp_path / "c.toml", f"sqlite:///{tmp_path / 's.db'}", models[:2], PATTERN)
    code, out, _ = run_cli(["status", "--config", str(config)], monkeypatch, capsys)
    assert code == 0 and "0 done, 2 pending, 0 failed, 0 running of 2 models" in out


def concurrent_shards(config: Path, n: int) -> list[subprocess.CompletedProcess[str]]:
    """``survey nightly --shard i/n`` for every i, all at once."""
    survey = str(Path(sys.executable).with_name("survey"))
    processes = [
        subprocess.Popen([survey, "nightly", "--config", str(config), "--shard", f"{i}/{n}", "--log", ""],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ})
        for i in range(n)
    ]  # fmt: skip
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=600), p.stdout.read() if p.stdout else "")
            for p in processes]  # fmt: skip


def assert_four_writers_lose_nothing(models: list[Path], tmp_path: Path, url: str) -> None:
    config = write_config(tmp_path / "c.toml", url, models, PATTERN)
    for done in concurrent_shards(config, 4):
        assert done.returncode == 0, done.stdout
    n_heads = 2 * 4
    assert rows(url, "SELECT count(*), count(DISTINCT model_id) FROM units") == [
        (2 * len(models), len(models))
    ]
    assert rows(url, "SELECT count(*) FROM head_scores") == [(2 * len(models) * n_heads,)]
    assert rows(url, "SELECT count(*) FROM nightly_jobs WHERE status = 'done'") == [(len(models),)]
    serial = tmp_path / "serial.db"
    serial_config = write_config(tmp_path / "s.toml", f"sqlite:///{serial}", models, PATTERN)
    survey = str(Path(sys.executable).with_name("survey"))
    done = subprocess.run(
        [survey, "nightly", "--config", str(serial_config), "--log", ""], capture_output=True
    )
    assert done.returncode == 0
    assert results(url) == results(f"sqlite:///{serial}")  # the same as one writer after another


@pytest.mark.slow
def test_four_concurrent_writers_on_sqlite_lose_nothing(models: list[Path], tmp_path: Path) -> None:
    assert_four_writers_lose_nothing(models, tmp_path, f"sqlite:///{tmp_path / 'c.db'}")


@pytest.mark.slow
def test_four_concurrent_writers_on_postgresql_lose_nothing(
    models: list[Path], tmp_path: Path, postgres_url: str
) -> None:
    from tests.support.postgres import fresh_database

    assert_four_writers_lose_nothing(models, tmp_path, fresh_database(postgres_url, "nightly_writers"))
