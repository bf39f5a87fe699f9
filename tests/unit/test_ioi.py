"""IOI prompts per tokenizer, and the END measurements: logit difference and a direct logit
attribution whose components sum to it."""

from __future__ import annotations

import re

import pytest
import torch

from classifiers.ioi_prompts import NAMES, OBJECTS, PLACES, TEMPLATES, generate_ioi
from survey.adapters import adapt
from survey.adapters.base import ArchitectureAdapter
from survey.engine.readouts import (
    condition_logit_diffs,
    direct_logit_attribution,
    end_components,
    logit_diff,
)
from tests.support.tiny import VOCAB, tiny_model


def word_tokenizer():  # type: ignore[no-untyped-def]
    """A word-level tokenizer that knows every template word, name, place and object."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {w for t in TEMPLATES for w in re.findall(r"\w+|[^\w\s]", re.sub(r"\{\w+\}", " ", t))}
    vocab = ["<unk>", "<s>", *sorted(words | set(NAMES) | set(PLACES) | set(OBJECTS))]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>")


def test_prompts_cover_the_templates_in_both_orders_with_names_at_their_positions() -> None:
    tokenizer = word_tokenizer()
    prompts = generate_ioi(tokenizer, bos_id=1, per_group=6, seed=3)
    assert len(prompts.names) >= 30 and len({g.template for g in prompts.groups}) >= 15
    assert {g.order for g in prompts.groups} == {"ABBA", "BABA"}
    for group in prompts.groups:
        p = group.positions
        assert (group.clean[:, 0] == 1).all() and p["end"] == group.clean.shape[1] - 1
        assert torch.equal(group.clean[:, p["io"]], group.io_ids)
        assert torch.equal(group.clean[:, p["s1"]], group.s_ids) and torch.equal(
            group.clean[:, p["s2"]], group.s_ids
        )
        assert (p["io"] < p["s1"]) == (group.order == "ABBA")
        corrupt = group.corrupted[:, [p["io"], p["s1"], p["s2"]]]
        assert all(len(set(row.tolist())) == 3 for row in corrupt)  # ABC: three distinct names
        assert all(
            not {int(i), int(s)} & set(row.tolist())
            for i, s, row in zip(group.io_ids, group.s_ids, corrupt, strict=True)
        )
        same = torch.ones_like(group.clean, dtype=torch.bool)
        same[:, [p["io"], p["s1"], p["s2"]]] = False
        assert torch.equal(group.clean[same], group.corrupted[same])  # only the names differ
    again = generate_ioi(tokenizer, bos_id=1, per_group=6, seed=3)
    assert again.hash == prompts.hash and generate_ioi(tokenizer, 1, 6, seed=4).hash != prompts.hash


def test_too_few_single_token_names_is_an_error() -> None:
    from tests.support.tiny import tiny_tokenizer

    with pytest.raises(ValueError, match="too few single-token words"):
        generate_ioi(tiny_tokenizer(), bos_id=1)


FAMILIES = [
    "gpt2",
    "llama",
    "gpt_neox",
    "opt",
    "gemma",
    "gemma2",
    "gemma3_text",
    "olmo2",
    "phi",
    "gptj",
    "phi3",
]


POSITIONS = {"io": 2, "s1": 4, "s2": 6, "end": 9}


@pytest.mark.parametrize("model_type", FAMILIES)
def test_direct_logit_attribution_sums_to_the_logit_difference(model_type: str) -> None:
    adapter: ArchitectureAdapter = adapt(tiny_model(model_type))
    tokens = torch.randint(3, VOCAB, (4, 10))
    io, s = torch.randint(3, VOCAB, (4,)), torch.randint(3, VOCAB, (4,))
    components = end_components(adapter, tokens, POSITIONS)
    torch.testing.assert_close(components.total(), components.resid, atol=2e-5, rtol=1e-4)
    dla = direct_logit_attribution(adapter, components, io, s)
    total = dla["heads"].sum((1, 2)) + dla["mlps"].sum(1) + dla["embed"] + dla["attn_bias"] + dla["constant"]
    ld = logit_diff(components.logits, io, s)
    torch.testing.assert_close(total, ld, atol=1e-4, rtol=1e-4)
    assert dla["heads"].shape == (4, adapter.dims.n_layers, adapter.dims.n_heads)
    assert ld.abs().max() > 1e-3  # a real, non-zero difference was decomposed


def test_end_attention_reads_the_pattern_rows_at_the_name_positions() -> None:
    from survey.engine.capture import CaptureSpec, capture

    adapter = adapt(tiny_model("llama"))
    tokens = torch.randint(3, VOCAB, (3, 10))
    got = end_components(adapter, tokens, POSITIONS).attention
    pattern = capture(adapter, tokens, CaptureSpec.of("pattern"))["pattern", 1]  # [prompt, head, q, k]
    assert got.shape == (3, 2, 4, 3)
    torch.testing.assert_close(got[:, 1], pattern[:, :, 9, [2, 4, 6]])


def test_mean_ablating_heads_changes_the_logit_difference_only_through_those_heads() -> None:
    from survey.engine.ablation import condition_masks, head_means

    adapter = adapt(tiny_model("gpt2"))
    clean, reference = torch.randint(3, VOCAB, (4, 10)), torch.randint(3, VOCAB, (6, 10))
    io, s = torch.randint(3, VOCAB, (4,)), torch.randint(3, VOCAB, (4,))
    means = head_means(adapter, reference)
    base = logit_diff(end_components(adapter, clean, POSITIONS).logits, io, s)
    conditions = [[], [(1, 0), (1, 3)], [(0, 2)], [(0, 1), (1, 3)]]
    masks = condition_masks(conditions, 2, 4)
    together = condition_logit_diffs(adapter, clean, io, s, masks, means)
    torch.testing.assert_close(together[0], base)
    assert (together[1] - base).abs().max() > 1e-4
    for row, heads in enumerate(conditions):  # side by side in one pass, each as if alone
        alone = condition_logit_diffs(adapter, clean, io, s, condition_masks([heads], 2, 4), means)[0]
        torch.testing.assert_close(together[row], alone)
    # ablating with the clean prompts' own means at a single prompt is the identity for that head
    own = head_means(adapter, clean[:1])
    one = condition_logit_diffs(adapter, clean[:1], io[:1], s[:1], condition_masks([[(0, 2)]], 2, 4), own)
    torch.testing.assert_close(one[0], base[:1])


def test_holding_heads_at_their_own_run_undoes_nothing_and_then_ablating_applies() -> None:
    from survey.engine.ablation import condition_masks, head_means
    from survey.engine.capture import CaptureSpec, capture

    adapter = adapt(tiny_model("llama"))
    clean, reference = torch.randint(3, VOCAB, (3, 10)), torch.randint(3, VOCAB, (5, 10))
    io, s = torch.randint(3, VOCAB, (3,)), torch.randint(3, VOCAB, (3,))
    means = head_means(adapter, reference)
    z = capture(adapter, clean, CaptureSpec.of("z")).stacked("z")  # [layer, prompt, pos, head, d_head]
    masks = condition_masks([[(0, 1)], [(1, 2)]], 2, 4)
    held = condition_logit_diffs(adapter, clean, io, s, masks, z, [(0, 0)], means)
    alone = condition_logit_diffs(adapter, clean, io, s, condition_masks([[(0, 0)]], 2, 4), means)[0]
    torch.testing.assert_close(held[0], alone)  # a head of the ablated layer does not respond
    assert (held[1] - alone).abs().max() > 1e-5  # a later head held at its clean run cannot respond


def test_ov_copy_score_ranks_among_candidates_and_finds_a_copier_and_a_negative_copier() -> None:
    from survey.engine.ov import ov_candidate_ranks, ov_top_tokens, resid_after_block0
    from tests.support.planted import D_HEAD, PLANTED, planted_gpt2

    model = planted_gpt2()  # L1H0 copies the attended token (OV = identity), L1H2 writes it negated
    adapter = adapt(model)
    names = torch.arange(10, 40)
    x = resid_after_block0(adapter, torch.cat([torch.tensor([1]), names])[None])[0, 1:]

    def copy_scores() -> tuple[torch.Tensor, torch.Tensor]:
        ranks = ov_candidate_ranks(adapter, x, names.expand(len(names), -1), torch.arange(len(names)))
        return ranks.copy(), ranks.negative_copy()

    copy, negative = copy_scores()
    (layer, head), anti = PLANTED["induction"], PLANTED["anti_induction"]
    assert copy[layer, head] == 1.0 and negative[layer, head] == 0.0
    assert negative[anti] == 1.0 and copy[anti] == 0.0
    top_ids = ov_top_tokens(adapter, x[:3])
    assert top_ids[layer, head, :, 0].tolist() == names[:3].tolist()  # its top output is the name
    others_copy, others_negative = copy.clone(), negative.clone()
    others_copy[layer, head], others_negative[anti] = 0.0, 0.0
    assert others_copy.max() == 0.0 and others_negative.max() == 0.0  # a silent head ties: neither

    with torch.no_grad():  # flip the copier's output: it now suppresses the attended token
        model.transformer.h[layer].attn.c_proj.weight[head * D_HEAD : (head + 1) * D_HEAD] *= -1
    copy, negative = copy_scores()
    assert negative[layer, head] == 1.0 and copy[layer, head] == 0.0
