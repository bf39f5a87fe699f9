"""Successor heads on the planted GPT-2 of ``tests/support/planted_successor.py``, the effective
embedding they are read from, the deranged null, and the ordinal sequences kept per tokenizer."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

from classifiers.ordinal import SEQUENCES, OrdinalSpec, OrdinalTasks, generate_ordinal
from classifiers.successor import SuccessorHead, deranged_targets
from survey.adapters import ArchitectureAdapter, adapt
from survey.adapters.base import weight_of
from survey.engine.ov import ov_outputs, resid_after_block0
from survey.units.successor import successor_measures
from tests.support.planted_successor import (
    BOS_ID,
    COPY,
    DISTRACTOR,
    N_HEADS,
    SUCCESSOR,
    ordinal_tokenizer,
    planted_successor_gpt2,
)  # fmt: skip
from tests.support.tiny import VOCAB, tiny_model, tiny_tokenizer

FAMILIES = [
    "gpt2", "gpt_neox", "gptj", "gpt_neo", "opt", "llama", "mistral", "qwen2", "qwen3",
    "gemma", "gemma2", "gemma3_text", "phi3", "phi", "olmo", "olmo2",
]  # fmt: skip


@pytest.fixture(scope="module")
def planted() -> tuple[ArchitectureAdapter, OrdinalTasks]:
    tokenizer = ordinal_tokenizer()
    return adapt(planted_successor_gpt2(tokenizer)), generate_ordinal(tokenizer, OrdinalSpec())


def test_the_planted_successor_head_is_labelled_beyond_its_null_and_no_other_head_is(planted) -> None:
    adapter, tasks = planted
    assert [t.name for t in tasks.tasks] == list(SEQUENCES)
    result = SuccessorHead().score(successor_measures(adapter, tasks))
    assert result.scores[SUCCESSOR] == 1.0
    others = [
        result.scores[layer, head]
        for layer in range(2)
        for head in range(N_HEADS)
        if (layer, head) != SUCCESSOR
    ]
    assert max(others) == 0.0  # the copy and distractor heads included
    labels = result.labels(SuccessorHead().threshold)
    assert labels.sum() == 1 and labels[SUCCESSOR]
    stats = result.statistics
    assert stats is not None and stats.p_value[SUCCESSOR] < 1e-3 and stats.q_value[SUCCESSOR] < 1e-3
    assert stats.null_score[SUCCESSOR] == 0.0  # it never writes a deranged ordinal token
    evidence = result.evidence[SUCCESSOR[0]][SUCCESSOR[1]]
    assert evidence["per_task"] == {name: 1.0 for name in SEQUENCES}
    assert evidence["pairs"] == sum(len(words) - 1 for words in SEQUENCES.values())
    days = {"task": "days", "input": "Monday", "top": "Tuesday", "successor": "Tuesday"}
    assert days in evidence["successor_examples"]
    copy = result.evidence[COPY[0]][COPY[1]]["successor_examples"]
    assert {"task": "days", "input": "Monday", "top": "Monday", "successor": "Tuesday"} in copy


def test_the_top_is_taken_among_the_ordinal_tokens_of_every_sequence(planted) -> None:
    """The distractor writes the successor and, more strongly, "Z": it wins among the day tokens
    but not among all ordinal tokens, so it is no successor head."""
    adapter, tasks = planted
    result = SuccessorHead().score(successor_measures(adapter, tasks))
    examples = result.evidence[DISTRACTOR[0]][DISTRACTOR[1]]["successor_examples"]
    assert {"task": "days", "input": "Monday", "top": "Z", "successor": "Tuesday"} in examples
    assert {"task": "letters", "input": "A", "top": "twenty", "successor": "B"} in examples
    days = next(t for t in tasks.tasks if t.name == "days")
    ids = torch.tensor(days.token_ids)
    out = list(ov_outputs(adapter, adapter.effective_embedding(ids)))[DISTRACTOR[0]][:, DISTRACTOR[1]]
    among_days = (out @ adapter.unembedding()[0][:, ids]).argmax(-1)
    assert among_days[:-1].tolist() == list(range(1, len(ids)))  # the successor, within the days


def test_layer0_attention_to_bos_corrupts_the_old_reading_but_not_the_effective_embedding(planted) -> None:
    adapter, tasks = planted
    words = list(tasks.members.values())
    ids = torch.tensor(list(tasks.members))
    w_u = adapter.unembedding()[0][:, ids]

    def successor_top(x: Tensor) -> list[str]:
        out = list(ov_outputs(adapter, x))[SUCCESSOR[0]][:, SUCCESSOR[1]]
        return [words[int(c)] for c in (out @ w_u).argmax(-1)]

    monday = ids[words.index("Monday")]
    in_context = resid_after_block0(adapter, torch.tensor([[BOS_ID, int(monday)]]))[:, -1]
    assert successor_top(in_context) == ["N"]  # L0H0 wrote " M" from BOS
    assert successor_top(adapter.effective_embedding(monday[None])) == ["Tuesday"]
    assert successor_top(adapter.embedding()[monday[None]].float()) != ["Tuesday"]  # MLP0 matters


def _block0_without_attention(adapter: ArchitectureAdapter, ids: Tensor) -> Tensor:
    """``[token, d_model]``: the model's own residual after block 0 for each token alone, with the
    attention's output replaced by zeros."""
    kept: dict[str, Tensor] = {}
    hooks = [
        adapter.attention(0).register_forward_hook(lambda _m, _a, out: (torch.zeros_like(out[0]), *out[1:])),
        adapter.blocks()[1].register_forward_pre_hook(
            lambda _m, args, kwargs: kept.update(x=(args[0] if args else kwargs["hidden_states"])[:, 0]),
            with_kwargs=True,
        ),
    ]
    with torch.no_grad():
        adapter.model(input_ids=ids[:, None], use_cache=False)
    for handle in hooks:
        handle.remove()
    return kept["x"]


@pytest.mark.parametrize("model_type", FAMILIES)
def test_the_effective_embedding_is_block0_without_attention(model_type: str) -> None:
    model = tiny_model(model_type)
    adapter = adapt(model)
    if adapter.pos_embed_path is not None:  # the effective embedding has no position
        with torch.no_grad():
            weight_of(model.get_submodule(adapter.pos_embed_path)).zero_()
    ids = torch.arange(3, VOCAB)
    effective = adapter.effective_embedding(ids)
    torch.testing.assert_close(effective, _block0_without_attention(adapter, ids), atol=1e-5, rtol=1e-4)
    assert (effective - adapter.embedding()[ids]).abs().max() > 1e-4  # MLP0 is in it


def test_gemma3_effective_embedding_by_hand() -> None:
    """sqrt(d_model)·W_E[t] plus the post-MLP norm of the gated MLP on the pre-MLP norm."""
    model: Any = tiny_model("gemma3_text")
    block = model.model.layers[0]
    ids = torch.arange(3, 20)

    def rms(x: Tensor, norm: Any) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps) * (1 + norm.weight)

    with torch.no_grad():
        x = model.model.embed_tokens.weight[ids] * model.config.hidden_size**0.5
        h = rms(x, block.pre_feedforward_layernorm)
        gate = torch.nn.functional.gelu(h @ block.mlp.gate_proj.weight.T, approximate="tanh")
        mlp = (gate * (h @ block.mlp.up_proj.weight.T)) @ block.mlp.down_proj.weight.T
        expected = x + rms(mlp, block.post_feedforward_layernorm)
    torch.testing.assert_close(adapt(model).effective_embedding(ids), expected, atol=1e-5, rtol=1e-4)


def test_deranged_targets_are_seeded_ordinal_tokens_that_are_neither_input_nor_successor() -> None:
    inputs, successors = torch.arange(0, 40), torch.arange(1, 41)
    targets = deranged_targets(50, inputs, successors)
    assert ((targets != inputs) & (targets != successors)).all()
    assert ((targets >= 0) & (targets < 50)).all()
    assert torch.equal(targets, deranged_targets(50, inputs, successors))
    assert not torch.equal(targets, deranged_targets(50, inputs, successors, seed=1))
    assert len(set(targets.tolist())) > 10  # spread over the candidates, not one fixed token
    assert (targets >= 41).any()  # drawn from all candidates, beyond the pairs' own range


def test_members_that_are_not_one_token_are_dropped_with_their_pairs() -> None:
    tasks = generate_ordinal(ordinal_tokenizer(missing={"Wednesday"}), OrdinalSpec())
    days = next(t for t in tasks.tasks if t.name == "days")
    assert days.words == ["Monday", "Tuesday", "Thursday", "Friday", "Saturday", "Sunday"]
    assert [(days.words[i], days.words[j]) for i, j in days.pairs] == [
        ("Monday", "Tuesday"), ("Thursday", "Friday"), ("Friday", "Saturday"), ("Saturday", "Sunday"),
    ]  # fmt: skip
    assert "Wednesday" not in tasks.members.values()
    assert len(tasks.members) == sum(len(t.token_ids) for t in tasks.tasks)
    assert [t.name for t in generate_ordinal(ordinal_tokenizer(), OrdinalSpec(min_tokens=21)).tasks] == [
        "letters"
    ]
    with pytest.raises(ValueError, match="no ordinal sequence"):
        generate_ordinal(tiny_tokenizer(), OrdinalSpec())  # knows none of the words
