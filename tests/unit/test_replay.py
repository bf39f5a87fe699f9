"""Replaying the blocks below an ablation gives what running them gives, in every family."""

from __future__ import annotations

import pytest
import torch

from survey.adapters import adapt
from survey.engine.ablation import (
    ablated_losses,
    condition_masks,
    head_means,
    mean_ablated,
    next_token_loss,
)
from survey.engine.readouts import condition_logit_diffs, logit_diff
from survey.engine.replay import recorded, replayed_below, unchanged
from tests.support.tiny import VOCAB, tiny_model

FAMILIES = [
    "gpt2",
    "gpt_neo",
    "gptj",
    "llama",
    "gemma2",
    "gemma3_text",
    "qwen2",
    "gpt_neox",
    "opt",
    "phi",
    "olmo2",
]


@pytest.mark.parametrize("model_type", FAMILIES)
def test_ablated_losses_equal_running_every_block(model_type: str) -> None:
    adapter = adapt(tiny_model(model_type))
    torch.manual_seed(0)
    tokens = torch.randint(3, VOCAB, (3, 12))
    means = head_means(adapter, torch.randint(3, VOCAB, (4, 12)))
    conditions = [[(1, 0)], [(0, 2), (1, 1)], [], [(1, 3)]]
    baseline, losses = ablated_losses(adapter, tokens, 4, 11, means, conditions)
    assert baseline == pytest.approx(next_token_loss(adapter, tokens, 4, 11), rel=1e-5)
    for heads, loss in zip(conditions, losses, strict=True):
        with mean_ablated(adapter, heads, means):
            assert loss == pytest.approx(next_token_loss(adapter, tokens, 4, 11), rel=1e-5)
    assert abs(losses[0] - baseline) > 1e-5 and losses[2] == pytest.approx(baseline, rel=1e-6)


@pytest.mark.parametrize("model_type", FAMILIES)
def test_condition_logit_diffs_equal_running_every_block(model_type: str) -> None:
    adapter = adapt(tiny_model(model_type))
    torch.manual_seed(1)
    tokens = torch.randint(3, VOCAB, (3, 10))
    io, s = torch.randint(3, VOCAB, (3,)), torch.randint(3, VOCAB, (3,))
    means = head_means(adapter, torch.randint(3, VOCAB, (5, 10)))
    conditions = [[(1, 2)], [(0, 0)], [(1, 0), (1, 3)], [(0, 1), (1, 1)]]
    got = condition_logit_diffs(adapter, tokens, io, s, condition_masks(conditions, 2, 4), means)
    for row, heads in enumerate(conditions):
        with mean_ablated(adapter, heads, means), torch.inference_mode():
            logits = adapter.model(input_ids=tokens).logits[:, -1]
        torch.testing.assert_close(got[row], logit_diff(logits, io, s), rtol=1e-5, atol=1e-5)


def test_a_replayed_block_returns_its_record_and_runs_again_afterwards() -> None:
    adapter = adapt(tiny_model("llama"))
    tokens = torch.randint(3, VOCAB, (2, 8))
    outputs: dict[int, object] = {}
    with torch.inference_mode():
        with recorded(adapter, outputs):
            clean = adapter.model(input_ids=tokens).logits
        with replayed_below(adapter, outputs, 2, unchanged):  # every block replayed: the input is ignored
            replayed = adapter.model(input_ids=torch.randint(3, VOCAB, (2, 8))).logits
        other = adapter.model(input_ids=torch.randint(3, VOCAB, (2, 8))).logits
    torch.testing.assert_close(replayed, clean)
    assert not torch.allclose(other, clean)  # the blocks run again once the replay ends
    assert all("forward" not in block.__dict__ for block in adapter.blocks())
