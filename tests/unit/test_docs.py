"""The generated reference in docs/ matches the code, and `survey docs --check` says when not."""

from __future__ import annotations

from pathlib import Path

import pytest

from survey.cli import cli
from survey.docs import GENERATED, render, write_docs
from tests.support.clitools import run_cli

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_committed_doc_equals_its_generator_output(name: str) -> None:
    committed = (DOCS / name).read_text(encoding="utf-8")
    assert committed == render(name, cli), f"docs/{name} is stale: run `survey docs`"


def test_help_is_rendered_at_a_fixed_width(monkeypatch: pytest.MonkeyPatch) -> None:
    before = render("cli.md", cli)
    monkeypatch.setenv("COLUMNS", "40")
    assert render("cli.md", cli) == before


def test_every_command_has_its_help_in_the_cli_reference() -> None:
    text = render("cli.md", cli)
    for name in cli.commands:
        assert f"## `survey {name}`" in text and f"Usage: survey {name} " in text


def test_docs_check_lists_stale_files_and_writing_fixes_them(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    write_docs(tmp_path, cli)
    (tmp_path / "settings.md").write_text("old\n")
    code, _, err = run_cli(["docs", "--check", "--out", str(tmp_path)], monkeypatch, capsys)
    assert code == 1 and "settings.md" in err and "cli.md" not in err
    code, out, _ = run_cli(["docs", "--out", str(tmp_path)], monkeypatch, capsys)
    assert code == 0 and out.strip() == f"wrote {tmp_path / 'settings.md'}"
    code, _, _ = run_cli(["docs", "--check", "--out", str(tmp_path)], monkeypatch, capsys)
    assert code == 0


def test_every_registered_class_has_its_section_in_methods() -> None:
    from classifiers import classifier_names

    headings = {line.strip() for line in (DOCS / "methods.md").read_text(encoding="utf-8").splitlines()}
    assert [name for name in classifier_names() if f"### `{name}`" not in headings] == []
