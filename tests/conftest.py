"""Shared fixtures: a fixed seed, and an isolated cache and catalog for every test."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


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
