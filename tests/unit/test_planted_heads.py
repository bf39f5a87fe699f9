"""Ground truth: a hand-set GPT-2 whose previous-token, duplicate-token, induction, sink and
anti-induction heads are known by construction. Each planted head must score high and every other
head low (the induction and anti-induction heads share one attention, so they share the score and
only the OV gate tells them apart), and the ablation validation must find the planted induction
head causal."""

from __future__ import annotations

import pytest
import torch

from classifiers import parse_selection
from classifiers.validation import AblationConfig
from survey.engine.ablation import head_means, mean_ablated, next_token_loss
from survey.loading.loaders import LoadedModel
from tests.support.planted import PLANTED, planted_gpt2
from tests.support.tiny import loaded_in_memory
from tests.support.units import ScoredHead as UnitResult
from tests.support.units import plan_units, score_units

SAME_ATTENTION = {"induction": PLANTED["anti_induction"], "anti_induction": PLANTED["induction"]}


@pytest.fixture(scope="module")
def planted() -> LoadedModel:
    return loaded_in_memory(planted_gpt2(), "planted", "0" * 64)


@pytest.fixture(scope="module")
def results(planted: LoadedModel) -> dict[str, UnitResult]:
    units = plan_units(planted, parse_selection(None))
    return {r.unit.classifier.name: r for r in score_units(planted, units, AblationConfig(draws=8))}


@pytest.mark.parametrize("name", list(PLANTED))
def test_the_planted_head_scores_high_and_every_other_head_low(
    name: str, results: dict[str, UnitResult]
) -> None:
    scores = results[name].scores.scores
    layer, head = PLANTED[name]
    assert scores[layer, head] > 0.95
    others = scores.clone()
    others[layer, head] = float("nan")
    if name in SAME_ATTENTION:
        twin = SAME_ATTENTION[name]
        assert scores[twin] == pytest.approx(float(scores[layer, head]), abs=1e-4)
        others[twin] = float("nan")
    assert others.nan_to_num(0.0).max() < 0.1
    labels = results[name].scores.labels(results[name].unit.classifier.threshold)
    assert labels.sum() == 1 and labels[layer, head]
    statistics = results[name].scores.statistics
    assert statistics is not None and statistics.p_value[layer, head] < 1e-3
    assert statistics.ci_low[layer, head] <= scores[layer, head] <= statistics.ci_high[layer, head]


@pytest.mark.parametrize(
    ("name", "other"), [("induction", "anti_induction"), ("anti_induction", "induction")]
)
def test_the_ov_copy_score_tells_copying_from_suppressing(
    name: str, other: str, results: dict[str, UnitResult]
) -> None:
    """Both heads attend the next token; the copying one is induction, the suppressing one is
    anti-induction, and each is gated out of the other class."""
    scored = results[name].scores
    evidence = scored.evidence
    copier, suppressor = PLANTED["induction"], PLANTED["anti_induction"]
    assert evidence[copier[0]][copier[1]]["copy_score"] == 1.0
    assert evidence[copier[0]][copier[1]]["negative_copy_score"] == 0.0
    assert evidence[suppressor[0]][suppressor[1]]["negative_copy_score"] == 1.0
    assert evidence[suppressor[0]][suppressor[1]]["copy_score"] == 0.0
    blank = evidence[1][3]  # a zero-weight head writes nothing: it neither copies nor suppresses
    assert blank["copy_score"] == blank["negative_copy_score"] == 0.0
    reasons = scored.reasons(results[name].unit.classifier.threshold)
    assert reasons[PLANTED[name][0]][PLANTED[name][1]] == "labelled"
    assert reasons[PLANTED[other][0]][PLANTED[other][1]] == "gated"


def test_induction_validation_finds_the_planted_head_causal(results: dict[str, UnitResult]) -> None:
    v = results["induction"].validation
    assert v is not None and v.heads == [PLANTED["induction"]] and v.k == 1
    assert v.baseline < 0.1  # the planted circuit predicts the second repeat
    assert v.effect_top > 3.0 and v.per_head_effect[PLANTED["induction"]] == pytest.approx(v.effect_top)
    assert len(v.random_heads) == 8 and all(PLANTED["induction"] not in draw for draw in v.random_heads)
    for draw, effect in zip(v.random_heads, v.effect_random, strict=True):
        if PLANTED["previous_token"] in draw:  # the head feeding the induction head is causal too
            assert effect > 1.0
        else:
            assert abs(effect) < 0.01
    assert v.rank == 1 + sum(1 for effect in v.effect_random if effect >= v.effect_top)  # ties rank below
    assert v.forward_passes == 1 + 2 + 1 + 8


def test_other_classes_have_no_validator(results: dict[str, UnitResult]) -> None:
    assert all(results[name].validation is None for name in PLANTED if name != "induction")


def test_mean_ablation_hooks_change_only_the_chosen_heads_and_are_removed(planted: LoadedModel) -> None:
    probe = plan_units(planted, parse_selection("induction"))[0].probe
    adapter, tokens = planted.adapter, probe.tokens
    start, stop = probe.first_content + 50, probe.first_content + 99
    clean = next_token_loss(adapter, tokens, start, stop)
    means = head_means(adapter, tokens)
    assert means.shape == (2, tokens.shape[1], 4, 256)
    with mean_ablated(adapter, [(1, 2), (1, 3), (0, 2)], means):  # zero-output heads: no effect
        assert next_token_loss(adapter, tokens, start, stop) == pytest.approx(clean, abs=1e-6)
    with mean_ablated(adapter, [PLANTED["previous_token"]], means):
        assert next_token_loss(adapter, tokens, start, stop) > clean + 3.0
    assert next_token_loss(adapter, tokens, start, stop) == pytest.approx(clean, abs=1e-6)
    assert not any(m._forward_pre_hooks for m in planted.model.modules())


def test_scores_do_not_depend_on_the_capture_batch_split(planted: LoadedModel) -> None:
    from survey.engine.capture import CaptureSpec, capture

    unit = plan_units(planted, parse_selection("previous_token"))[0]
    whole = capture(planted.adapter, unit.probe.tokens, CaptureSpec.of("pattern"), batch_size=16)
    split = capture(planted.adapter, unit.probe.tokens, CaptureSpec.of("pattern"), batch_size=3)
    a = unit.classifier.score(whole.stacked("pattern"), unit.probe).scores
    b = unit.classifier.score(split.stacked("pattern"), unit.probe).scores
    torch.testing.assert_close(a, b)
