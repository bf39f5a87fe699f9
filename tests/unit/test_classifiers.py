"""Classifier registry, pure scoring on synthetic patterns with known answers, and probes."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import classifiers
from classifiers import (
    PatternClassifier,
    UnknownClassifierError,
    classifier_class,
    classifier_names,
    parse_selection,
    rank_and_percentile,
)
from classifiers.attention import (
    AntiInduction,
    AttendedCopy,
    AttentionSink,
    DuplicateToken,
    Induction,
    PreviousToken,
)
from classifiers.probes import ProbeSet, ProbeSpec, generate, natural_text, regular_token_ids
from classifiers.registry import register
from tests.support.tiny import VOCAB, tiny_tokenizer

L = 8  # repeat length of the synthetic [BOS] + r + r probes


def repeated_probe(length: int = L, batch: int = 3) -> ProbeSet:
    return generate(ProbeSpec("repeated_random", length, batch, seed=0), tiny_tokenizer(), 1, VOCAB)


def stacked(*per_head: torch.Tensor) -> torch.Tensor:
    """Patterns [layer=1, batch, head, q, k] from per-head [batch, q, k] patterns."""
    return torch.stack(per_head, dim=1)[None]


def copying(n_heads: int) -> AttendedCopy:
    """OV copy scores [layer=1, head] of heads that copy the token they attend."""
    return AttendedCopy(torch.ones(1, n_heads), torch.zeros(1, n_heads))


def uniform(batch: int, n: int) -> torch.Tensor:
    causal = torch.tril(torch.ones(n, n))
    return (causal / causal.sum(-1, keepdim=True)).expand(batch, n, n).clone()


def one_hot_rows(batch: int, n: int, key_of: list[int]) -> torch.Tensor:
    pattern = torch.zeros(batch, n, n)
    pattern[:, torch.arange(n), torch.tensor(key_of)] = 1.0
    return pattern


def test_registry_lists_the_four_v1_classifiers_with_versions_and_thresholds() -> None:
    assert classifier_names()[:4] == ["previous_token", "duplicate_token", "induction", "attention_sink"]
    for name in classifier_names():
        cls = classifier_class(name)
        assert cls.name == name and cls.version >= 1 and cls.formula and cls.__doc__
        assert "Threshold" in cls.__doc__ and 0 < cls.default_config.threshold < 1


def test_unknown_classifier_lists_the_valid_names() -> None:
    with pytest.raises(UnknownClassifierError) as info:
        parse_selection("induction,inductoin")
    message = str(info.value)
    assert "'inductoin'" in message and all(name in message for name in classifier_names())


def test_selection_keeps_order_drops_duplicates_and_defaults_to_all() -> None:
    assert [c.name for c in parse_selection(" induction, previous_token,induction ")] == [
        "induction", "previous_token",
    ]  # fmt: skip
    assert [c.name for c in parse_selection(None)] == classifier_names()
    assert parse_selection("") == []


def test_registering_a_name_twice_is_an_error() -> None:
    with pytest.raises(ValueError, match="already registered"):

        @register
        class Again(Induction):
            name = "induction"


def test_every_registered_classifier_has_a_ground_truth_test_and_a_doc_entry() -> None:
    from pathlib import Path

    root = Path(__file__).parents[2]
    planted = "".join(path.read_text() for path in (root / "tests" / "support").glob("planted*.py"))
    doc = (root / "docs" / "classifiers.md").read_text()
    for name in classifier_names():
        assert f'"{name}"' in planted, f"{name} has no planted head in tests/support/planted*.py"
        assert f"## `{name}`" in doc, f"{name} is not documented in docs/classifiers.md (run `survey docs`)"


def test_configs_round_trip_to_json_and_are_frozen() -> None:
    import dataclasses
    import json

    config = Induction().config
    assert json.loads(json.dumps(config.to_dict()))["probe"]["length"] == 50
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.threshold = 0.9  # type: ignore[misc]
    assert config.with_probe(batch=2).probe.batch == 2 and config.probe.batch == 10


def test_perfect_previous_token_pattern_scores_one_and_uniform_about_one_over_n() -> None:
    probe = natural_text(ProbeSpec("natural_text", 31, 2), tiny_tokenizer(), 1)
    n = probe.tokens.shape[1]
    perfect = one_hot_rows(2, n, [0, *range(n - 1)])
    scores = PreviousToken().score(stacked(perfect, uniform(2, n)), probe).scores
    assert scores[0, 0] == pytest.approx(1.0)
    expected = sum(1 / (i + 1) for i in range(2, n)) / (n - 2)  # query i sees i+1 keys
    assert scores[0, 1] == pytest.approx(expected, rel=1e-5)
    assert 0.5 / n < scores[0, 1] < 6 / n


def test_induction_and_duplicate_stripes_score_one_and_swap_low() -> None:
    probe = repeated_probe()
    n = probe.tokens.shape[1]
    # second repeat i = L+1..2L: duplicate target i-L, induction target i-L+1; else attend BOS
    dup = one_hot_rows(3, n, [i - L if i > L else 0 for i in range(n)])
    ind = one_hot_rows(3, n, [i - L + 1 if i > L else 0 for i in range(n)])
    patterns = stacked(dup, ind, uniform(3, n))
    null = stacked(uniform(3, n), uniform(3, n), uniform(3, n))
    d = DuplicateToken().score(patterns, probe, null).scores[0]
    i = Induction().score(patterns, probe, null, copying(3)).scores[0]
    assert d[0] == pytest.approx(1.0) and i[1] == pytest.approx(1.0)
    assert d[1] == 0 and i[0] == 0
    assert 0 < d[2] < 0.2 and 0 < i[2] < 0.2


def test_induction_equals_neels_stripe_mean_on_repeated_random_tokens() -> None:
    probe = repeated_probe()
    torch.manual_seed(0)
    raw = torch.rand(1, 3, 2, 2 * L + 1, 2 * L + 1).tril()
    patterns = raw / raw.sum(-1, keepdim=True)
    stripe = patterns.diagonal(offset=-(L - 1), dim1=-2, dim2=-1)[..., 2:]  # queries L+1..2L
    expected = stripe.mean(dim=(1, 3))  # over batch and queries
    got = Induction().score(patterns, probe, patterns, copying(2)).scores
    torch.testing.assert_close(got, expected)


def test_sink_scores_first_token_mass_excluding_query_zero() -> None:
    probe = natural_text(ProbeSpec("natural_text", 15, 2), tiny_tokenizer(), 1)
    n = probe.tokens.shape[1]
    on_bos = one_hot_rows(2, n, [0] * n)
    scores = AttentionSink().score(stacked(on_bos, uniform(2, n)), probe).scores
    assert scores[0, 0] == pytest.approx(1.0)
    assert scores[0, 1] == pytest.approx(sum(1 / (t + 1) for t in range(1, n)) / (n - 1))


def test_scoring_never_changes_its_input_and_checks_shapes() -> None:
    probe = repeated_probe()
    n = probe.tokens.shape[1]
    patterns = stacked(uniform(3, n), uniform(3, n))
    before = patterns.clone()
    DuplicateToken().score(patterns, probe, patterns)
    Induction().score(patterns, probe, patterns, copying(2))
    assert torch.equal(patterns, before)
    with pytest.raises(ValueError, match=r"\[layer, batch, head, query, key\]"):
        Induction().score(patterns[0], probe, patterns[0], copying(2))
    with pytest.raises(ValueError, match="OV copy scores"):
        Induction().score(patterns, probe, patterns)


def test_evidence_holds_target_bos_and_self_mass_and_example_rows() -> None:
    probe = repeated_probe()
    n = probe.tokens.shape[1]
    ind = one_hot_rows(3, n, [i - L + 1 if i > L else 0 for i in range(n)])
    evidence = Induction().score(stacked(ind), probe, stacked(uniform(3, n)), copying(1)).evidence[0][0]
    assert evidence["target_mass"] == pytest.approx(1.0) and evidence["bos_mass"] == 0.0
    assert evidence["n_queries"] == 3 * L
    row = evidence["example"][0]
    assert row["top_keys"][0] == row["targets"][0] == row["query"] - L + 1 and row["top_weights"][0] == 1.0
    assert evidence["copy_score"] == 1.0 and evidence["negative_copy_score"] == 0.0


def test_the_negative_copy_score_splits_induction_attention_into_induction_and_anti_induction() -> None:
    """Three heads with the same induction stripe: one copies the attended token, one suppresses
    it, one does neither. Induction takes the copier and the neutral head, anti-induction only
    the suppressor; the others are gated, not below threshold."""
    probe = repeated_probe()
    n = probe.tokens.shape[1]
    ind = one_hot_rows(3, n, [i - L + 1 if i > L else 0 for i in range(n)])
    patterns, null = stacked(ind, ind, ind), stacked(uniform(3, n), uniform(3, n), uniform(3, n))
    copy = AttendedCopy(torch.tensor([[0.9, 0.0, 0.1]]), torch.tensor([[0.0, 0.8, 0.2]]))
    induction = Induction().score(patterns, probe, null, copy)
    anti = AntiInduction().score(patterns, probe, null, copy)
    torch.testing.assert_close(induction.scores, anti.scores)
    assert induction.labels(Induction().threshold).tolist() == [[True, False, True]]
    assert anti.labels(AntiInduction().threshold).tolist() == [[False, True, False]]
    assert induction.reasons(Induction().threshold)[0][1] == "gated"
    assert anti.reasons(AntiInduction().threshold)[0] == ["gated", "labelled", "gated"]
    assert anti.evidence[0][1]["negative_copy_score"] == 0.8


def test_rank_is_one_for_the_best_and_percentile_counts_heads_at_or_below() -> None:
    rank, percentile = rank_and_percentile(torch.tensor([[0.1, 0.9], [0.5, 0.5]]))
    assert rank.tolist() == [[4, 1], [2, 3]]
    assert percentile.tolist() == [[25.0, 100.0], [75.0, 75.0]]


def test_repeated_probe_is_seeded_bos_first_and_free_of_special_tokens() -> None:
    tokenizer = tiny_tokenizer()
    spec = ProbeSpec("repeated_random", 50, 10, seed=0)
    a, b = generate(spec, tokenizer, 1, VOCAB), generate(spec, tokenizer, 1, VOCAB)
    assert torch.equal(a.tokens, b.tokens) and a.hash == b.hash
    assert a.tokens.shape == (10, 101) and a.first_content == 1
    assert (a.tokens[:, 0] == 1).all() and not (a.tokens[:, 1:] == 1).any()
    assert torch.equal(a.tokens[:, 1:51], a.tokens[:, 51:])
    assert all(len(set(row[1:51].tolist())) == 50 for row in a.tokens)  # distinct within r
    assert set(a.tokens[:, 1:].flatten().tolist()) <= set(regular_token_ids(tokenizer, VOCAB).tolist())
    other = generate(ProbeSpec("repeated_random", 50, 10, seed=1), tokenizer, 1, VOCAB)
    assert other.hash != a.hash


def test_probe_hash_depends_on_the_tokens_and_bos_policy() -> None:
    tokenizer = tiny_tokenizer()
    spec = ProbeSpec("natural_text", 16, 2)
    with_bos, without = natural_text(spec, tokenizer, 1), natural_text(spec, tokenizer, None)
    assert with_bos.first_content == 1 and without.first_content == 0
    assert with_bos.hash != without.hash
    assert with_bos.describe()["shape"] == [2, 17]


def test_natural_text_probe_uses_real_words_for_a_real_tokenizer() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for p in classifiers.probes.natural_paragraphs() for w in p.split()})
    backend = Tokenizer(models.WordLevel({"<unk>": 0, **{w: i + 1 for i, w in enumerate(words)}}, "<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")
    probe = natural_text(ProbeSpec("natural_text", 64, 8, seed=3), tokenizer, None)
    assert probe.tokens.shape == (8, 64) and not (probe.tokens == 0).any()
    assert len(set(probe.tokens.flatten().tolist())) > 150


def test_bad_probe_specs_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown probe kind"):
        ProbeSpec("random", 10, 2)
    with pytest.raises(ValueError, match="length"):
        ProbeSpec("natural_text", 1, 2)


def test_head_classifier_is_abstract() -> None:
    with pytest.raises(TypeError):
        PatternClassifier()  # type: ignore[abstract]


def test_a_tokenizer_that_yields_no_tokens_is_refused_not_looped_on() -> None:
    class Mute:
        def __call__(self, text: str, add_special_tokens: bool = False) -> Any:
            return type("Encoding", (), {"input_ids": []})()

    with pytest.raises(ValueError, match="no tokens"):
        natural_text(ProbeSpec("natural_text", 16, 2), Mute(), 1)


def test_example_pattern_shows_both_repeats_of_a_repeated_probe_and_the_start_of_text() -> None:
    from classifiers.patterns import PATTERN_SPAN, example_pattern, example_positions

    repeated = generate(ProbeSpec("repeated_random", 50, 2), tiny_tokenizer(), 1, 96)
    positions = example_positions(repeated)
    assert positions == [0, *range(1, 1 + PATTERN_SPAN), *range(51, 51 + PATTERN_SPAN)]
    natural = natural_text(ProbeSpec("natural_text", 31, 2), tiny_tokenizer(), 1)
    assert example_positions(natural) == list(range(1 + 2 * PATTERN_SPAN))
    n = repeated.tokens.shape[1]
    patterns = torch.softmax(torch.randn(2, 2, 3, n, n), -1)  # [layer, batch, head, query, key]
    (first, *_), *_ = example_pattern(patterns, repeated)
    pattern = first["pattern"]
    assert pattern["token_ids"] == repeated.tokens[0, positions].tolist()
    assert [len(row) for row in pattern["weights"]] == list(range(1, len(positions) + 1))  # causal rows
    q, k = len(positions) - 1, PATTERN_SPAN + 1  # the second repeat's last query, its induction key
    assert pattern["weights"][q][k] == round(float(patterns[0, 0, 0, positions[q], positions[k]]), 3)


def test_a_positional_head_scores_like_induction_but_is_within_its_null() -> None:
    """A head attending i-(L-1) by position alone scores 1 on [BOS]+r+r, and 1 on [BOS]+r+r' too:
    it passes the threshold but not the null, and says why."""
    probe = repeated_probe()
    n = probe.tokens.shape[1]
    positional = one_hot_rows(3, n, [i - L + 1 if i > L else 0 for i in range(n)])
    null = stacked(positional, uniform(3, n))
    result = Induction().score(stacked(positional, positional), probe, null, copying(2))
    assert result.scores[0, 1] == pytest.approx(1.0)  # head 1: a real induction head
    labels = result.labels(Induction().threshold)
    assert labels.tolist() == [[False, True]]
    assert result.reasons(Induction().threshold) == [["within_null", "labelled"]]
    assert result.null_false_positive_rate(Induction().threshold) == pytest.approx(0.5)


def test_previous_token_null_is_the_stronger_control_offset() -> None:
    probe = natural_text(ProbeSpec("natural_text", 31, 3), tiny_tokenizer(), 1)
    n = probe.tokens.shape[1]
    previous = one_hot_rows(3, n, [0, 0, *range(1, n - 1)])  # query i attends i-1 (i >= 2)
    two_back = one_hot_rows(3, n, [0, 0, 0, *range(1, n - 2)])  # query i attends i-2 (i >= 3)
    result = PreviousToken().score(stacked(previous, two_back), probe)
    assert result.statistics is not None
    assert result.statistics.null_score[0].tolist() == pytest.approx([0.0, 1.0])
    assert result.labels(0.4).tolist() == [[True, False]]
    assert result.statistics.p_value[0, 0] < 1e-3


def test_the_null_probe_keeps_r_and_shares_no_token_between_r_and_r_prime() -> None:
    spec = ProbeSpec("repeated_random", 8, 3)
    null_spec = spec.null()
    assert null_spec is not None and null_spec.kind == "unrepeated_random" and null_spec.null() is None
    real, null = (generate(s, tiny_tokenizer(), 1, VOCAB) for s in (spec, null_spec))
    assert torch.equal(real.tokens[:, : 1 + 8], null.tokens[:, : 1 + 8])
    for row in null.tokens:
        assert not set(row[1:9].tolist()) & set(row[9:].tolist())
    assert real.hash != null.hash
