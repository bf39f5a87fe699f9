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
from survey.engine.replay import prefix_copy, recorded, replayed_below, unchanged
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


@pytest.mark.parametrize("model_type", FAMILIES)
def test_a_prefix_copy_serves_pass_after_pass_and_leaves_the_prefix_as_it_was(model_type: str) -> None:
    """Passes over copies of one prefix cache (one of them repeated along the batch) give what
    a full run gives, and the prefix's tensors keep their shapes and values."""
    model = tiny_model(model_type)
    torch.manual_seed(0)
    ids = torch.randint(3, VOCAB, (2, 10))
    with torch.inference_mode():
        full = model(input_ids=ids).logits[:, -1]
        prefix = model(input_ids=ids[:, :-1], use_cache=True).cache
        before = [(layer.keys.clone(), layer.values.clone()) for layer in prefix.layers]
        first = model(input_ids=ids[:, -1:], cache=prefix_copy(prefix), use_cache=True).logits[:, -1]
        repeated_cache = prefix_copy(prefix)
        repeated_cache.batch_repeat_interleave(3)
        tripled = model(input_ids=ids[:, -1:].repeat_interleave(3, 0), cache=repeated_cache, use_cache=True)
        again = model(input_ids=ids[:, -1:], cache=prefix_copy(prefix), use_cache=True).logits[:, -1]
    torch.testing.assert_close(first, full, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(tripled.logits[::3, -1], full, rtol=1e-4, atol=1e-5)
    assert torch.equal(again, first)
    for layer, (keys, values) in zip(prefix.layers, before, strict=True):
        assert torch.equal(layer.keys, keys) and torch.equal(layer.values, values)
