"""Streaming neuron statistics against full-batch and brute-force computations."""

from __future__ import annotations

import pytest
import torch

from classifiers import neuron_weights
from classifiers.neuron_stats import (
    ContextShape,
    Histogram,
    Moments,
    TokenSelectivity,
    TopK,
    frequency_matched,
)
from classifiers.neuron_weights import (
    NeuronEvidence,
    VocabNull,
    families,
    top_token_share,
    unembedding_read,
    vocab_null,
    vocab_projection,
)

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


def brute_force_tail(acts: torch.Tensor, tail: str, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores and global positions of a tail's top k, ranked over the whole stream at once."""
    scores = {"positive": acts, "negative": -acts, "first": acts.abs()}[tail].clone()
    if tail == "first":
        scores[:, 1:] = float("-inf")
    else:
        scores[:, 0] = float("-inf")
    values, positions = scores.reshape(-1, N).topk(k, dim=0)
    return values.T, positions.T


@pytest.mark.parametrize("tail", ["positive", "negative", "first"])
def test_streaming_tails_equal_brute_force_with_contexts(tail: str) -> None:
    acts = stream()
    top = TopK(N, 5, ContextShape(2, 1), tail)
    first = 0
    for size in [2, 7, 1, 13]:
        top.update(acts[first : first + size], first * acts.shape[1])
        first += size
    windows, tokens, _ = acts.shape
    values, positions = brute_force_tail(acts, tail, 5)
    torch.testing.assert_close(top.values, values)
    assert torch.equal(top.positions, positions)
    flat = acts.reshape(-1, N)
    signed = flat.gather(0, positions.T).T
    torch.testing.assert_close(top.activations(), signed)  # signed activations come back
    for n in range(N):
        for rank in range(5):
            w, t = divmod(int(positions[n, rank]), tokens)
            expected = [
                acts[w, t + j, n].item() if 0 <= t + j < tokens else float("nan") for j in (-2, -1, 0, 1)
            ]
            torch.testing.assert_close(top.contexts[n, rank], torch.tensor(expected), equal_nan=True)
    if tail == "negative":  # neuron 5 never fires positive: its negative tail holds its largest |activation|s
        assert (top.activations()[5] < 0).all()


def test_moments_keep_the_minimum_and_the_share_of_each_sign() -> None:
    acts = stream()
    result = feed(acts, [4, 19])[0].result()
    flat = acts.reshape(-1, N).double()
    torch.testing.assert_close(result["min"], flat.min(0).values)
    torch.testing.assert_close(result["frac_negative"], (flat < 0).double().mean(0))
    assert result["frac_active"][5] == 0 and result["frac_negative"][5] == 1


def test_token_selectivity_sums_equal_brute_force_means() -> None:
    torch.manual_seed(1)
    ids = torch.randint(0, 30, (500,))
    acts = torch.randn(500, N)
    chosen = torch.tensor([[3, 4, 5], [3, -1, 7], [-1, -1, -1], [29, 0, 1], [12, 12, 2], [8, 9, 10]])
    tracker = TokenSelectivity(chosen)
    for start in range(0, 500, 77):
        tracker.update(acts[start : start + 77], ids[start : start + 77])
    means = tracker.means()
    for n in range(N):
        for j in range(3):
            token = int(chosen[n, j])
            on = acts[ids == token, n]
            if token < 0 or on.numel() == 0:
                assert means[n, j].isnan()
            else:
                assert means[n, j].item() == pytest.approx(float(on.double().mean()), rel=1e-5)
                assert tracker.counts[n, j] == on.numel()


def test_frequency_matched_tokens_share_the_candidates_frequency_bin() -> None:
    counts = torch.zeros(40, dtype=torch.int64)
    counts[:10] = 3  # bin 1
    counts[10:30] = torch.arange(16, 36)  # bin 4 (16 tokens) and bin 5 (4 tokens)
    candidates = torch.tensor([0, 12, 29, -1, 35])  # token 35 never occurs
    matched = frequency_matched(counts, candidates, size=4, seed=0)
    bins = torch.log2(counts.double().clamp_min(1)).floor()
    for n, token in enumerate(candidates.tolist()):
        row = matched[n][matched[n] >= 0]
        if token < 0 or counts[token] == 0:
            assert row.numel() == 0
            continue
        same_bin = int(((bins == bins[token]) & (counts > 0)).sum())
        assert row.numel() == min(4, same_bin - 1) and token not in row.tolist()
        assert (bins[row] == bins[token]).all()
    assert torch.equal(matched, frequency_matched(counts, candidates, size=4, seed=0))  # seeded


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
    w_u = unembedding_read(torch.randn(64, 500), gain=None, centres=False)
    directions = torch.zeros(3, 64)
    directions[0] = w_u[:, 7] * 3  # promotes token 7
    directions[1] = -w_u[:, 11]  # suppresses token 11
    directions[2] = torch.randn(64)
    result = vocab_projection(directions, w_u)
    assert result["top_ids"][0, 0] == 7 and result["bottom_ids"][1, 0] == 11
    cos = torch.nn.functional.normalize(directions, dim=1) @ torch.nn.functional.normalize(w_u, dim=0)
    torch.testing.assert_close(result["moments"][:, 0], cos.mean(1), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(result["moments"][:, 1], cos.var(1, unbiased=False), rtol=1e-4, atol=1e-6)
    assert result["moments"][0, 2] > 0 and result["moments"][1, 2] < 0  # skew sign follows the role


def test_vocab_moments_match_a_float64_reference_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 4 over 10 directions (the last chunk short): each row's four moments are its own,
    though one scratch buffer serves every chunk."""
    monkeypatch.setattr(neuron_weights, "CHUNK", 4)
    torch.manual_seed(2)
    w_u = unembedding_read(torch.randn(32, 300), gain=None, centres=False)
    directions = torch.randn(10, 32) * torch.linspace(0.1, 3, 10)[:, None]
    directions[3] = w_u[:, 5] * 4  # one heavy-tailed row among Gaussian-looking ones
    cos = torch.nn.functional.normalize(directions.double(), dim=1) @ torch.nn.functional.normalize(
        w_u.double(), dim=0
    )
    d = cos - cos.mean(1, keepdim=True)
    var = (d**2).mean(1)
    expected = torch.stack([cos.mean(1), var, (d**3).mean(1) / var**1.5, (d**4).mean(1) / var**2], 1)
    moments = vocab_projection(directions, w_u)["moments"].double()
    torch.testing.assert_close(moments, expected, rtol=1e-4, atol=1e-6)
    assert int(expected[:, 3].argmax()) == 3  # the rows differ: a moment in the wrong row would fail


def test_the_unembedding_read_folds_the_final_norm_and_is_centred() -> None:
    torch.manual_seed(0)
    w_u, gain = torch.randn(16, 50) + 3.0, torch.rand(16) + 0.5
    rms = unembedding_read(w_u, gain, centres=False)
    torch.testing.assert_close(rms, gain[:, None] * w_u - (gain[:, None] * w_u).mean(1, keepdim=True))
    layer_norm = unembedding_read(w_u, gain, centres=True)
    assert layer_norm.mean(0).abs().max() < 1e-5 and layer_norm.mean(1).abs().max() < 1e-5
    # a LayerNorm removes the residual's mean, so the all-ones direction reads as nothing
    assert (torch.ones(16) @ layer_norm).abs().max() < 1e-4


def evidence(n: int, **fields: torch.Tensor) -> NeuronEvidence:
    """Evidence of ``n`` unremarkable live neurons, with ``fields`` replaced."""
    plain = dict(
        nonzero_fraction=torch.full((n,), 0.5), largest_abs=torch.full((n,), 2.0),
        first_abs=torch.full((n,), 1.0), typical_top=torch.full((n,), 1.5),
        token_mean=torch.full((n,), float("nan")), token_count=torch.zeros(n, dtype=torch.int64),
        matched_means=torch.full((n, 5), float("nan")),
        vocab_moments=torch.tensor([[0.0, 0.01, 0.0, 3.0]] * n),
    )  # fmt: skip
    return NeuronEvidence(**(plain | fields))


def test_families_follow_their_documented_rules() -> None:
    null = VocabNull(kurtosis=6.0, skew_high=0.8, skew_low=-0.8, variance=0.1, draws=1000)
    moments = torch.tensor([[0.0, 0.01, 0.0, 3.0]] * 9)
    moments[4], moments[5], moments[6] = (
        torch.tensor([0, 0.01, 2.0, 12.0]),
        torch.tensor([0, 0.01, -2.0, 12.0]),
        torch.tensor([0, 0.2, 0.0, 3.0]),
    )
    moments[7] = torch.tensor([0, 0.01, 0.5, 12.0])  # peaked, but its skew is within the null
    token_mean = torch.tensor([float("nan"), float("nan"), 1.0, 0.4, 0, 0, 0, 0, 1.0])
    matched = torch.full((9, 5), 0.1)
    matched[8, 0] = 1.2  # a matched token fires more: not selective
    e = evidence(
        9, nonzero_fraction=torch.tensor([0.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]),
        first_abs=torch.tensor([0.0, 4.6, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]), token_mean=token_mean,
        token_count=torch.full((9,), 10), matched_means=matched, vocab_moments=moments,
    )  # fmt: skip
    labels = families(e, null)
    assert labels == [
        "dead", "first_position", "token", None, "prediction", "suppression", "partition", None, None
    ]  # fmt: skip


def test_the_family_null_of_random_directions_is_seeded_and_above_a_gaussian() -> None:
    torch.manual_seed(0)
    w_u = unembedding_read(torch.randn(128, 300), gain=None, centres=False)
    null = vocab_null(w_u, 128, draws=200, seed=3)
    assert null == vocab_null(w_u, 128, draws=200, seed=3)
    assert null.kurtosis > 3.0 and null.skew_low < 0 < null.skew_high
    spike = vocab_projection(w_u[:, 5][None] * 2, w_u)["moments"][0]
    assert spike[3] > null.kurtosis and spike[2] > null.skew_high  # one promoted token passes the null


def test_top_token_share_ignores_empty_slots() -> None:
    ids = torch.tensor([[4, 4, 4, 2], [1, 2, 3, -1], [-1, -1, -1, -1]])
    token, share = top_token_share(ids)
    assert token.tolist()[0] == 4 and token.tolist()[2] == -1
    assert share.tolist() == pytest.approx([0.75, 1 / 3, 0.0])
