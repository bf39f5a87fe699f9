"""The logit lens: the pure statistics, the last layer reproducing the model's own prediction on
several families, an independent check of an early layer, and the stored per-layer rows."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from sqlalchemy import text

from classifiers import parse_selection
from classifiers.logit_lens import LensAccumulator
from db.common.neuron_config import NeuronConfig
from db.engine import open_database
from survey.engine.capture import CaptureSpec, capture
from survey.loading.loaders import LoadedModel
from survey.run.runner import survey_model
from survey.units.base import RunConfig
from survey.units.logit_lens import LensConfig, lens_logits, plan_lens, run_lens
from tests.support.tiny import VOCAB, loaded_in_memory, tiny_model
from tests.unit.test_neurons import word_corpus


def loaded_tiny(model_type: str) -> LoadedModel:
    return loaded_in_memory(tiny_model(model_type), f"tiny-{model_type}", "2" * 64)


def test_the_statistics_match_their_definitions() -> None:
    torch.manual_seed(0)
    final, layer = torch.randn(50, VOCAB), torch.randn(50, VOCAB)
    totals = LensAccumulator(3)
    totals.update(0, final, final)
    totals.update(1, torch.zeros(50, VOCAB), final)
    totals.update(2, layer, final)
    same, uniform, other = totals.result()
    assert same.kl_to_final == pytest.approx(0, abs=1e-6) and same.top1_agreement == 1.0
    assert uniform.entropy == pytest.approx(math.log(VOCAB), rel=1e-6)
    expected_kl = torch.nn.functional.kl_div(
        layer.log_softmax(-1), final.log_softmax(-1), log_target=True, reduction="batchmean"
    )
    assert other.kl_to_final == pytest.approx(float(expected_kl), rel=1e-5) and other.kl_to_final > 0.1
    assert other.top1_agreement == pytest.approx(
        float((layer.argmax(-1) == final.argmax(-1)).double().mean())
    )


@pytest.mark.parametrize("model_type", ["gpt2", "llama", "gemma2", "qwen2", "gpt_neox"])
def test_the_last_layer_agrees_with_the_output_everywhere(model_type: str, tmp_path: Path) -> None:
    loaded = loaded_tiny(model_type)
    config = LensConfig(corpus=str(word_corpus(tmp_path / "w.txt")), window=16, token_budget=320)
    plan = plan_lens(loaded, config)
    layers = run_lens(loaded, plan, lambda _line: None)
    assert [entry.layer for entry in layers] == [0, 1]
    assert layers[-1].top1_agreement == 1.0 and layers[-1].kl_to_final < 1e-6
    assert layers[0].kl_to_final > 1e-5  # random weights: the first layer predicts otherwise
    # the lens of the last layer's residual is the model's own output (run_lens reads it from there)
    ids = loaded.bos.prepend(plan.windows.tokens[:2])
    got = capture(loaded.adapter, ids, CaptureSpec.of("resid_post", layers=(1,)), keep_logits=True)
    assert got.logits is not None
    with torch.inference_mode():
        lens = lens_logits(loaded, got["resid_post", 1].flatten(0, 1))
    torch.testing.assert_close(lens, got.logits.flatten(0, 1), rtol=1e-5, atol=1e-5)


def test_an_early_layer_matches_hugging_face_hidden_states(tmp_path: Path) -> None:
    loaded = loaded_tiny("gpt2")
    config = LensConfig(corpus=str(word_corpus(tmp_path / "w.txt")), window=16, token_budget=64)
    plan = plan_lens(loaded, config)
    layer0 = run_lens(loaded, plan, lambda _line: None)[0]
    ids = loaded.bos.prepend(plan.windows.tokens)
    model = loaded.model
    with torch.inference_mode():
        out = model(input_ids=ids, output_hidden_states=True)
        lens = model.lm_head(model.transformer.ln_f(out.hidden_states[1]))[:, 1:].flatten(0, 1)
    final = out.logits[:, 1:].flatten(0, 1)
    totals = LensAccumulator(1)
    totals.update(0, lens, final)
    (expected,) = totals.result()
    assert layer0.kl_to_final == pytest.approx(expected.kl_to_final, rel=1e-4)
    assert layer0.top1_agreement == pytest.approx(expected.top1_agreement)
    assert layer0.entropy == pytest.approx(expected.entropy, rel=1e-4)


def test_the_survey_stores_one_row_per_layer_and_skips_it_on_rerun(tmp_path: Path, tmp_cache: Path) -> None:
    loaded = loaded_tiny("llama")
    neurons = NeuronConfig(corpus=str(word_corpus(tmp_path / "w.txt")), window=16, token_budget=256)
    engine = open_database(f"sqlite:///{tmp_path / 's.db'}")
    lines: list[str] = []
    outcome = survey_model(
        engine, loaded, parse_selection(""), RunConfig(neurons=neurons), False, lines.append
    )
    assert outcome.error is None and outcome.units_written == 2, lines
    with engine.connect() as connection:
        stored = connection.execute(text(
            "SELECT l.layer, l.top1_agreement, l.kl_to_final, u.kind, u.name FROM logit_lens l "
            "JOIN units u ON u.id = l.unit_id ORDER BY l.layer"
        )).all()  # fmt: skip
    assert [row[0] for row in stored] == [0, 1]
    assert stored[-1][1] == 1.0 and stored[-1][2] < 1e-6
    assert {(row[3], row[4]) for row in stored} == {("layer_summary", "logit_lens")}
    again: list[str] = []
    assert (
        survey_model(
            engine, loaded, parse_selection(""), RunConfig(neurons=neurons), False, again.append
        ).run_id
        is None
    )
    assert any("up to date: 2 units" in line for line in again)
    engine.dispose()
