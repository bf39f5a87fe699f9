"""The recipes of docs/contributing.md, followed with throwaway classes written to a temporary
folder: a pattern class is one file, a measured class two. Each is registered, keyed, documented
by `survey docs`, stored by `survey run` on the planted model and rendered by `survey site build`,
with no other file edited."""

from __future__ import annotations

import html
import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from classifiers import classifier_class, classifier_names
from classifiers.registry import CLASSIFIERS
from survey.cli import cli
from survey.docs import render
from survey.units.base import RunConfig
from survey.units.heads import HEAD_UNITS
from survey.units.registry import head_unit
from tests.support.clitools import rows, run_cli
from tests.support.planted import PLANTED

PATTERN_CLASS = '''
"""A previous-token class at a stricter threshold: the pattern recipe's throwaway class."""

from classifiers.attention import PreviousToken
from classifiers.base import ClassifierConfig
from classifiers.registry import register


@register
class RecipePrevious(PreviousToken):
    """Previous-token heads at threshold 0.6 (recipe test)."""

    name = "recipe_previous"
    version = 1
    summary = "attends from each token to the token before it, strictly"
    default_config = ClassifierConfig(threshold=0.6, probe=PreviousToken.default_config.probe)
'''

MEASURED_CLASS = '''
"""Heads with an output: the measured recipe's throwaway class."""

from dataclasses import dataclass

import torch

from classifiers.base import HeadScores, MeasuredClassifier
from classifiers.jsonable import JsonFields
from classifiers.registry import register


@dataclass(frozen=True)
class OutputNormConfig(JsonFields):
    threshold: float

    def dataset_line(self) -> str:
        return "the weights"


@register
class RecipeOutputNorm(MeasuredClassifier):
    """Heads whose W_O has a norm above half the model's largest (recipe test)."""

    name = "recipe_output_norm"
    version = 1
    summary = "writes to the residual stream at all"
    formula = "||W_O|| / max over heads of ||W_O||"
    null = "none"
    unit = "recipe_output_norm"
    default_config = OutputNormConfig(threshold=0.5)

    def score(self, measures: torch.Tensor) -> HeadScores:
        scores = measures / measures.max()
        evidence = [[{"w_o_norm": float(n)} for n in row] for row in measures]
        return HeadScores(scores, evidence)
'''

MEASURED_UNIT = '''
"""The measured recipe's unit: each head's ||W_O||, read from the weights."""

import hashlib
from dataclasses import dataclass
from typing import Any

import torch

from survey.loading.loaders import LoadedModel
from survey.units.base import Progress
from survey.units.heads import HEAD_UNITS, MeasuredUnit


@dataclass(frozen=True)
class Weights:
    model: str

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.model.encode()).hexdigest()

    def describe(self) -> dict[str, Any]:
        return {"read": "weights"}


@HEAD_UNITS.register("recipe_output_norm")
class OutputNormUnit(MeasuredUnit[Weights, torch.Tensor]):
    def dataset_spec(self) -> str:
        return "weights"

    def make_dataset(self, loaded: LoadedModel, spec: str) -> Weights:
        return Weights(loaded.source.name)

    def measure(self, loaded: LoadedModel, dataset: Weights, progress: Progress) -> tuple[torch.Tensor, None]:
        adapter = loaded.adapter
        layers = range(adapter.dims.n_layers)
        norms = [adapter.output_weights(layer)[0].flatten(1).norm(dim=1) for layer in layers]
        return torch.stack(norms).detach().float(), None
'''

RECIPES = {
    "pattern": {"recipe_previous.py": PATTERN_CLASS},
    "measured": {"recipe_output_norm.py": MEASURED_CLASS, "recipe_output_norm_unit.py": MEASURED_UNIT},
}


@pytest.fixture
def recipe_classes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The recipes' files imported from a temporary folder, into copies of the registries that the
    test's end restores."""
    folder = tmp_path / "recipes"
    folder.mkdir()
    for files in RECIPES.values():
        for name, source in files.items():
            (folder / name).write_text(source)
    monkeypatch.setattr(CLASSIFIERS, "_entries", dict(CLASSIFIERS._entries))
    monkeypatch.setattr(HEAD_UNITS, "_entries", dict(HEAD_UNITS._entries))
    monkeypatch.syspath_prepend(str(folder))
    modules = [name.removesuffix(".py") for files in RECIPES.values() for name in files]
    for module in modules:
        importlib.import_module(module)
    yield
    for module in modules:
        sys.modules.pop(module, None)


def test_a_pattern_class_is_one_file_and_a_measured_class_two() -> None:
    assert {kind: len(files) for kind, files in RECIPES.items()} == {"pattern": 1, "measured": 2}


def test_recipe_classes_are_registered_keyed_and_documented(recipe_classes: None) -> None:
    assert classifier_names()[-2:] == ["recipe_previous", "recipe_output_norm"]
    pattern, measured = (head_unit(classifier_class(n), RunConfig()) for n in classifier_names()[-2:])
    assert type(pattern).__name__ == "PatternUnit" and type(measured).__name__ == "OutputNormUnit"
    previous = head_unit(classifier_class("previous_token"), RunConfig())
    keys = [unit.definition_key() for unit in (pattern, measured, previous)]
    assert len({key.definition_hash for key in keys}) == 3 and all(len(k.definition_hash) == 64 for k in keys)
    listed = render("classifiers.md", cli)
    assert "## `recipe_previous`" in listed and "## `recipe_output_norm`" in listed
    assert "- threshold: > 0.6" in listed and "- dataset: the weights" in listed


def test_a_second_registration_under_a_taken_name_fails(recipe_classes: None) -> None:
    with pytest.raises(ValueError, match="already registered"):
        CLASSIFIERS.add("recipe_previous", classifier_class("previous_token"))
    with pytest.raises(ValueError, match="already registered"):
        HEAD_UNITS.add("recipe_output_norm", HEAD_UNITS["pattern"])


def test_recipe_classes_are_stored_and_rendered(
    recipe_classes: None,
    planted_folder: Path,
    tmp_path: Path,
    monkeypatch,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    db = tmp_path / "recipe.db"
    selection = "recipe_previous,recipe_output_norm"
    code, out, err = run_cli(
        ["run", str(planted_folder), "--db", f"sqlite:///{db}", "--classifiers", selection],
        monkeypatch,
        capsys,
    )
    assert code == 0, out + err
    stored = rows(
        db, "SELECT u.name, h.layer, h.head, h.label, h.evidence FROM head_scores h "
        "JOIN units u ON u.id = h.unit_id ORDER BY u.name, h.layer, h.head",
    )  # fmt: skip
    labelled = {(name, layer, head) for name, layer, head, label, _ in stored if label}
    previous = {(layer, head) for name, layer, head in labelled if name == "recipe_previous"}
    writing = {(layer, head) for name, layer, head in labelled if name == "recipe_output_norm"}
    assert previous == {PLANTED["previous_token"]}  # the planted head is found, the others are not
    assert writing and writing <= set(PLANTED.values())  # only planted heads have an output
    assert len(stored) == 2 * 8
    norm = {
        (layer, head): json.loads(e)["w_o_norm"]
        for n, layer, head, _, e in stored
        if n == "recipe_output_norm"
    }
    assert all(norm[h] == 0 for h in set(norm) - set(PLANTED.values()))

    site = tmp_path / "site"
    code, out, err = run_cli(
        ["site", "build", "--db", f"sqlite:///{db}", "--out", str(site)], monkeypatch, capsys
    )
    assert code == 0, out + err
    layer, head = PLANTED["previous_token"]
    page = html.unescape(next(site.glob(f"models/*/layer-{layer}/head-{head}.html")).read_text())
    assert "recipe_previous" in page and "recipe_output_norm" in page and "w_o_norm" in page
