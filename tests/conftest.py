"""Shared fixtures: a fixed seed, and an isolated cache and catalog for every test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.support.clitools import run_cli
from tests.support.tiny import save_tiny


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a PostgreSQL server ``postgres``: those using ``postgres_url``
    and the postgresql case of ``backend_url``."""
    for item in items:
        params = getattr(item, "callspec", None)
        on_backend = params is not None and params.params.get("backend_url") == "postgresql"
        if "postgres_url" in getattr(item, "fixturenames", ()) or on_backend:
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(autouse=True)
def seed() -> int:
    """Every test starts from the same RNG state."""
    torch.manual_seed(1234)
    return 1234


@pytest.fixture
def tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private dequantization cache, so tests never share or pollute the user's cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("INTERP_SURVEY_CACHE", str(cache))
    return cache


@pytest.fixture
def stored(tmp_path: Path, tmp_cache: Path, monkeypatch, capsys) -> Path:  # type: ignore[no-untyped-def]
    """A database that already holds one surveyed model."""
    db = tmp_path / "survey.db"
    code, out, _ = run_cli(
        ["run", str(save_tiny("llama", tmp_path / "tiny")), "--db", f"sqlite:///{db}"], monkeypatch, capsys
    )
    assert code == 0, out
    assert "run 1 done" in out
    return db


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty, offline Hugging Face hub cache (huggingface_hub reads its constants at import)."""
    import huggingface_hub.constants as constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server: the one scripts/test.sh started (``INTERP_SURVEY_TEST_POSTGRES``), else a
    throwaway one for the session; skipped where PostgreSQL is not installed."""
    from tests.support.postgres import SERVER_ENV, find_binary, temporary_server

    if os.environ.get(SERVER_ENV):
        yield os.environ[SERVER_ENV]
        return
    if not find_binary("initdb"):
        pytest.skip("PostgreSQL is not installed (scripts/test.sh installs it)")
    with temporary_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend: a SQLite file, and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'backend.db'}"
    from tests.support.postgres import fresh_database

    name = "t_" + "".join(ch if ch.isalnum() else "_" for ch in request.node.name.lower())[:50]
    return fresh_database(request.getfixturevalue("postgres_url"), name)


@pytest.fixture(scope="module")
def planted_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The planted GPT-2 of ``tests/support/planted.py`` saved as a local model folder."""
    from tests.support.planted import planted_gpt2
    from tests.support.tiny import tiny_tokenizer

    folder = tmp_path_factory.mktemp("planted") / "planted-gpt2"
    planted_gpt2().save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder
