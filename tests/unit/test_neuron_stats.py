"""Streaming neuron statistics against full-batch and brute-force computations."""

from __future__ import annotations

import pytest
import torch

from classifiers.neuron_stats import ContextShape, Histogram, Moments, TopK
from classifiers.neuron_weights import families, top_token_share, vocab_projection

N = 6


def stream() -> torch.Tensor:
    """``[window, token, neuron]`` activations with different scales, shifts and tails."""
    torch.manual_seed(0)
    acts = torch.randn(23, 12, N) * torch.tensor([1.0, 3.0, 0.2, 1.0, 5.0, 1.0])
    acts[..., 3] = acts[..., 3].exp()  # skewed, heavy-tailed
    acts[..., 5] = -acts[..., 5].abs()  # never active
    return acts + torch.tensor([0.0, 10.0, -1.0, 0.0, 2.0, 0.0])


def feed(acts: torch.Tensor, sizes: list[int]) -> tuple[Moments, Histogram, TopK]:
    moments, histogram, top = Moments(N), Histogram(N), TopK(N, 5, ContextShape(2, 1))
    first = 0
    for size in sizes:
        chunk = acts[first : first + size]
        moments.update(chunk.reshape(-1, N))
        histogram.update(chunk.reshape(-1, N))
        top.update(chunk, first * acts.shape[1])
        first += size
    return moments, histogram, top


def test_streaming_moments_equal_a_full_batch_computation() -> None:
    acts = stream()
    result = feed(acts, [1, 4, 10, 8])[0].result()
    x = acts.reshape(-1, N).double()
    mean, std = x.mean(0), x.std(0, unbiased=False)
    z = (x - mean) / std
    torch.testing.assert_close(result["mean"], mean, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(result["std"], std, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(result["skew"], (z**3).mean(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(result["kurtosis"], (z**4).mean(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(result["max"], x.max(0).values)
    torch.testing.assert_close(result["frac_active"], (x > 0).double().mean(0))
    assert result["frac_active"][5] == 0


def test_histogram_counts_every_token_in_the_right_bin() -> None:
    acts = stream()
    histogram = feed(acts, [3, 20])[1]
    x = acts.reshape(-1, N)
    assert (histogram.counts.sum(1) == x.shape[0]).all()
    for n in range(N):
        edges = torch.linspace(float(histogram.low[n]), float(histogram.high[n]), histogram.bins + 1)
        inside = x[:, n].clamp(edges[0], edges[-1] - 1e-6)
        expected = torch.histogram(inside, bins=edges).hist.long()
        assert (histogram.counts[n] - expected).abs().sum() <= 2  # float edge rounding at most


def test_streaming_top_k_equals_brute_force_with_contexts() -> None:
    acts = stream()
    top = feed(acts, [2, 7, 1, 13])[2]
    windows, tokens, _ = acts.shape
    flat = acts.reshape(-1, N)
    values, positions = flat.topk(5, dim=0)
    torch.testing.assert_close(top.values, values.T)
    assert torch.equal(top.positions, positions.T)
    for n in range(N):
        for rank in range(5):
            w, t = divmod(int(positions[rank, n]), tokens)
            expected = [
                acts[w, t + j, n].item() if 0 <= t + j < tokens else float("nan") for j in (-2, -1, 0, 1)
            ]
            torch.testing.assert_close(top.contexts[n, rank], torch.tensor(expected), equal_nan=True)


def test_saved_state_resumes_to_the_same_result() -> None:
    acts = stream()
    whole = feed(acts, [5, 5, 5, 8])
    first = feed(acts[:10], [5, 5])
    resumed = (Moments(N), Histogram(N), TopK(N, 5, ContextShape(2, 1)))
    for tracker, saved in zip(resumed, first, strict=True):
        tracker.load_state_dict(saved.state_dict())
    resumed[0].update(acts[10:15].reshape(-1, N))
    resumed[0].update(acts[15:].reshape(-1, N))
    resumed[1].update(acts[10:15].reshape(-1, N))
    resumed[1].update(acts[15:].reshape(-1, N))
    resumed[2].update(acts[10:15], 10 * 12)
    resumed[2].update(acts[15:], 15 * 12)
    for a, b in zip(whole[0].result().values(), resumed[0].result().values(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(whole[1].counts, resumed[1].counts)
    assert torch.equal(whole[2].values, resumed[2].values) and torch.equal(
        whole[2].positions, resumed[2].positions
    )


def test_vocab_projection_finds_the_promoted_and_suppressed_tokens() -> None:
    torch.manual_seed(0)
    w_u = torch.randn(64, 500)
    w_out = torch.zeros(3, 64)
    w_out[0] = w_u[:, 7] * 3  # promotes token 7
    w_out[1] = -w_u[:, 11]  # suppresses token 11
    w_out[2] = torch.randn(64)
    result = vocab_projection(w_out, w_u, gain=torch.ones(64))
    assert result["top_ids"][0, 0] == 7 and result["bottom_ids"][1, 0] == 11
    cos = torch.nn.functional.normalize(w_out, dim=1) @ torch.nn.functional.normalize(w_u, dim=0)
    torch.testing.assert_close(result["moments"][:, 0], cos.mean(1), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(result["moments"][:, 1], cos.var(1, unbiased=False), rtol=1e-4, atol=1e-6)
    assert result["moments"][0, 2] > 0 and result["moments"][1, 2] < 0  # skew sign follows the role
    gained = vocab_projection(w_out, w_u, gain=torch.full((64,), 2.0))
    torch.testing.assert_close(gained["top"], 2 * result["top"])


def test_families_follow_their_documented_thresholds() -> None:
    moments = torch.tensor([
        [0.0, 0.01, 0.0, 3.0], [0.0, 0.01, 0.0, 3.0], [0.0, 0.01, 2.0, 12.0],
        [0.0, 0.01, -2.0, 12.0], [0.0, 0.2, 0.0, 3.0], [0.0, 0.01, 0.0, 3.0],
    ])  # fmt: skip
    labels = families(
        frac_active=torch.tensor([0.0, 0.3, 0.3, 0.3, 0.3, 0.3]),
        max_activation=torch.tensor([0.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
        top_token_share=torch.tensor([0.0, 0.9, 0.1, 0.1, 0.1, 0.1]),
        vocab_moments=moments,
    )
    assert labels == ["dead", "token", "prediction", "suppression", "partition", None]


def test_top_token_share_ignores_empty_slots() -> None:
    ids = torch.tensor([[4, 4, 4, 2], [1, 2, 3, -1], [-1, -1, -1, -1]])
    assert top_token_share(ids).tolist() == pytest.approx([0.75, 1 / 3, 0.0])
