"""The label statistics (``classifiers.statistics``) and the validation's rank and z-score:
checked against scipy's reference implementations and against cases known by construction."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from classifiers.base import HeadScores
from classifiers.statistics import (
    benjamini_hochberg,
    bootstrap_interval,
    head_statistics,
    jaccard,
    mean_pairwise_jaccard,
    null_percentiles,
    welch_p_values,
)
from classifiers.validation import AblationConfig
from survey.engine.validation import Check, rank_and_z


def test_welch_p_values_match_scipys_one_sided_welch_test() -> None:
    torch.manual_seed(0)
    samples = torch.randn(12, 3, 4) + torch.linspace(-1, 2, 4)
    null = torch.randn(30, 3, 4) * 2
    expected = stats.ttest_ind(samples.numpy(), null.numpy(), equal_var=False, alternative="greater").pvalue
    torch.testing.assert_close(
        welch_p_values(samples, null), torch.from_numpy(expected).float(), rtol=1e-4, atol=1e-7
    )


def test_constant_samples_give_p_zero_above_the_null_and_one_half_on_it() -> None:
    samples = torch.ones(5, 1, 2)
    null = torch.tensor([0.0, 1.0]).expand(4, 1, 2)
    p = welch_p_values(samples, null)
    assert float(p[0, 0]) < 1e-12 and float(p[0, 1]) == pytest.approx(0.5)


def test_benjamini_hochberg_matches_scipy() -> None:
    p = torch.tensor([[0.001, 0.008, 0.039], [0.041, 0.042, 0.06], [0.074, 0.205, 0.9]])
    expected = stats.false_discovery_control(p.flatten().double().numpy(), method="bh")
    torch.testing.assert_close(benjamini_hochberg(p).flatten(), torch.from_numpy(expected).float())


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_more_items() -> None:
    torch.manual_seed(1)
    few, many = torch.randn(10, 1, 1), torch.randn(400, 1, 1)
    for items in (few, many):
        low, high = bootstrap_interval(items)
        assert float(low) < float(items.mean()) < float(high)
    width = [float(h - lo) for lo, h in (bootstrap_interval(few), bootstrap_interval(many))]
    assert width[1] < width[0] / 3


def test_null_percentile_is_the_share_of_the_models_null_scores_at_or_below() -> None:
    scores = torch.tensor([[0.5, 0.05]])
    null_scores = torch.tensor([[0.1, 0.0]])
    assert null_percentiles(scores, null_scores).tolist() == [[100.0, 50.0]]


def test_statistics_reject_wrong_shapes() -> None:
    with pytest.raises(ValueError, match="must be"):
        head_statistics(torch.zeros(2, 3), torch.zeros(4, 3, 2), torch.zeros(4, 2, 3))


def test_labels_need_threshold_gate_and_null_and_reasons_name_the_first_failure() -> None:
    samples = torch.stack([torch.tensor([[0.9, 0.9, 0.2, 0.9]]) + 0.01 * i for i in range(6)])
    null = torch.stack([torch.tensor([[0.0, 0.0, 0.0, 0.9]]) + 0.01 * (i % 2) for i in range(6)])
    gate = torch.tensor([[True, False, True, True]])
    scored = HeadScores(samples.mean(0), [[{}] * 4], gate, samples, null)
    assert scored.labels(0.5).tolist() == [[True, False, False, False]]
    assert scored.reasons(0.5) == [["labelled", "gated", "below_threshold", "within_null"]]
    assert scored.null_false_positive_rate(0.5) == pytest.approx(0.25)


def test_jaccard_of_label_sets() -> None:
    assert jaccard({(0, 1), (1, 1)}, {(0, 1)}) == 0.5 and jaccard(set(), set()) == 1.0
    assert mean_pairwise_jaccard([{(0, 1)}, {(0, 1)}, set()]) == pytest.approx(1 / 3)


def test_rank_counts_the_draws_at_least_as_large_and_z_uses_their_spread() -> None:
    assert rank_and_z(5.0, [1.0, 2.0, 3.0]) == (1, pytest.approx(3.0))
    assert rank_and_z(2.0, [1.0, 2.0, 3.0])[0] == 3
    assert rank_and_z(2.0, [1.0, 1.0]) == (1, None)


def test_supported_needs_every_draw_beaten_and_the_minimum_effect() -> None:
    check = Check("m", "metric", 0.0, AblationConfig(min_effect=0.1))
    top = [(0, 0)]
    beats_all = check.result(top, [0.5, 0.1, 0.2], [[(1, 1)], [(1, 2)]], {}, 3, 0.0, {})
    assert beats_all.supported and beats_all.rank == 1
    one_draw_higher = check.result(top, [0.5, 0.6, 0.2], [[(1, 1)], [(1, 2)]], {}, 3, 0.0, {})
    assert not one_draw_higher.supported and one_draw_higher.rank == 2
    too_small = check.result(top, [0.05, -0.1, -0.2], [[(1, 1)], [(1, 2)]], {}, 3, 0.0, {})
    assert not too_small.supported and too_small.rank == 1


def test_the_rule_on_the_null_alone_labels_a_head_only_when_its_null_halves_differ() -> None:
    """Head 0's null is high but the same in both halves: over the threshold, yet not labelled on
    the null alone. Head 1's null alternates between high and low items: labelled."""
    high_same = torch.full((8,), 0.9) + 0.01 * torch.arange(8)
    alternating = torch.tensor([0.9, 0.0] * 4) + 0.001 * torch.arange(8)
    null = torch.stack([high_same, alternating], dim=1)[:, None, :]  # [item, layer 1, head 2]
    scored = HeadScores(torch.ones(1, 2), [[{}, {}]], None, torch.ones(8, 1, 2), null)
    assert scored.null_false_positive_rate(0.3) == 1.0
    assert scored.null_label_rate(0.3) == 0.5
