"""Function-vector heads on the planted GPT-2 of ``tests/support/planted_fv.py``: the label, the
tasks a model cannot do left out, the validation's fixed layer; the exactness of the batched
last-token patching, and the ICL prompts built per tokenizer."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from classifiers.function_vector import (
    FunctionVectorConfig,
    FunctionVectorHead,
    FunctionVectorMeasures,
    excluded_tasks,
)
from classifiers.icl_prompts import ICLPrompt, ICLSpec, generate_icl, task_pairs
from classifiers.statistics import GATED
from classifiers.validation import AblationConfig, AblationResult
from survey.adapters import adapt
from survey.engine import copy_patching
from survey.engine.copy_patching import _replace_copies, pass_groups, patched_probabilities
from survey.engine.last_token import zero_shot_accuracy
from survey.units.function_vectors import measure_function_vectors, task_means, vector_layer
from tests.support.planted_fv import N_HEADS, PAIRS, PLANTED, fv_tokenizer, planted_fv_gpt2
from tests.support.tiny import tiny_model
from tests.unit.test_replay import FAMILIES

SPEC = ICLSpec(min_pairs=11, clean_prompts=6, shuffled_prompts=4, zero_shot=12)
FV_HEAD = PLANTED["function_vector"]
SHIFTED = [
    (f"x{k}", f"y{(k + 1) % len(PAIRS)}") for k in range(len(PAIRS))
]  # the planted model never answers
CONFIG = FunctionVectorConfig(threshold=0.01, top_k=1)


def _measure(
    tasks: dict[str, list[tuple[str, str]]], n_layers: int = 2
) -> tuple[FunctionVectorMeasures, AblationResult, list[str]]:
    """Measure the planted model (``n_layers`` deep, its working layers 0 and 1) on ``tasks``."""
    tokenizer = fv_tokenizer()
    adapter = adapt(planted_fv_gpt2(tokenizer, n_layers))
    lines: list[str] = []
    measures, validation = measure_function_vectors(
        adapter, generate_icl(tokenizer, 1, SPEC, tasks), CONFIG, AblationConfig(draws=3), lines.append
    )
    return measures, validation, lines


def test_the_planted_head_carries_the_task_and_its_vector_teaches_zero_shot_prompts() -> None:
    measures, validation, lines = _measure({"toy": PAIRS})
    assert measures.clean_accuracy == {"toy": 1.0} and measures.excluded == {}
    assert measures.shuffled_probability[0] < 0.01 and measures.cie.shape == (
        SPEC.shuffled_prompts,
        2,
        N_HEADS,
    )
    result = FunctionVectorHead(CONFIG).score(measures)
    stats = result.statistics
    assert stats is not None and result.scores[FV_HEAD] > 0.95 and stats.p_value[FV_HEAD] < 1e-3
    assert abs(float(stats.null_score[FV_HEAD])) < 0.01  # its shuffled-prompt mean carries nothing
    others = [(layer, head) for layer in range(2) for head in range(N_HEADS) if (layer, head) != FV_HEAD]
    assert max(abs(float(result.scores[h])) for h in others) < 0.01
    assert result.labels(CONFIG.threshold).nonzero().tolist() == [list(FV_HEAD)]
    assert result.evidence[1][0] == {
        "per_task_cie": {"toy": pytest.approx(float(result.scores[FV_HEAD]))},
        "excluded_tasks": {},
    }
    assert (
        validation.heads == [FV_HEAD]
        and validation.baseline == 0.0
        and validation.details["layer_added"] == 0
    )
    assert validation.effect_top == 1.0 and max(validation.effect_random) == 0.0 and validation.supported
    assert validation.details["per_task"]["toy"]["after"] == 1.0 and any(
        "toy (1/1)" in line for line in lines
    )


def test_a_task_below_half_clean_accuracy_is_left_out_with_its_reason() -> None:
    alone, _, _ = _measure({"toy": PAIRS})
    measures, validation, lines = _measure({"toy": PAIRS, "shifted": SHIFTED})
    reason = "clean accuracy 0.00 < 0.5"
    assert measures.clean_accuracy == {"toy": 1.0, "shifted": 0.0} and measures.excluded == {
        "shifted": reason
    }
    assert (
        measures.tasks == ["toy"] and measures.cie.shape[0] == measures.null.shape[0] == SPEC.shuffled_prompts
    )
    result, toy_only = FunctionVectorHead(CONFIG).score(measures), FunctionVectorHead(CONFIG).score(alone)
    assert torch.equal(result.scores, toy_only.scores)  # the excluded task adds nothing to the score
    assert result.evidence[0][2]["excluded_tasks"] == {"shifted": reason}
    assert validation.details["excluded"] == {"shifted": reason} and list(validation.details["per_task"]) == [
        "toy"
    ]
    assert f"function vectors: shifted excluded: {reason}" in lines


def test_when_every_task_is_excluded_nothing_is_labelled_and_the_evidence_says_why() -> None:
    measures, validation, _ = _measure({"shifted": SHIFTED})
    assert measures.tasks == [] and measures.cie.shape == (0, 2, N_HEADS)
    result = FunctionVectorHead(CONFIG).score(measures)
    assert not result.labels(CONFIG.threshold).any() and result.reasons(CONFIG.threshold)[1][0] == GATED
    assert result.evidence[1][0] == {
        "per_task_cie": {},
        "excluded_tasks": {"shifted": "clean accuracy 0.00 < 0.5"},
    }
    assert validation.heads == [] and not validation.supported
    assert validation.details["excluded"] == {"shifted": "clean accuracy 0.00 < 0.5"}


def test_the_vector_is_added_after_layer_l_over_3_even_where_another_layer_would_do_better() -> None:
    """Four layers, the mechanism in layers 0-1: the layer-1 MLP reads the vector, so it helps after
    layer 0 and not after L/3 = 1. The validation adds it after 1 all the same (no layer is
    chosen on the prompts it is scored on), and so it fails."""
    assert [vector_layer(n) for n in (2, 4, 18, 30)] == [0, 1, 6, 10]
    _, validation, _ = _measure({"toy": PAIRS}, n_layers=4)
    assert validation.heads == [FV_HEAD] and validation.details["layer_added"] == 1
    assert validation.details["per_task"]["toy"]["after"] == 0.0 and not validation.supported
    tokenizer = fv_tokenizer()
    adapter = adapt(planted_fv_gpt2(tokenizer, 4))
    (task,) = generate_icl(tokenizer, 1, SPEC, {"toy": PAIRS}).tasks
    vector = task_means(adapter, task.clean)[1][FV_HEAD]  # the labelled head's mean contribution
    assert zero_shot_accuracy(adapter, task.zero_shot, 0, vector) == 1.0  # a best-of choice would win here


def test_tasks_count_from_half_clean_accuracy_and_the_definition_has_25_shuffled_prompts() -> None:
    assert excluded_tasks({"a": 0.0, "b": 0.5, "c": 0.92}, 0.5) == {"a": "clean accuracy 0.00 < 0.5"}
    config = FunctionVectorHead.default_config
    assert config.dataset.shuffled_prompts == 25 and config.min_clean_accuracy == 0.5
    assert "25 shuffled" in config.dataset_line() and FunctionVectorHead.version == 4


def _layers_of(heads: int, n_layers: int) -> list[int]:
    return [layer for layer in range(n_layers) for _ in range(heads)]


def test_pass_groups_are_the_fewest_passes_of_whole_layers_filled_from_the_lowest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Qwen's shape (24 layers, 28 copies a layer): 19 layers fit in 544 copies, the last pass
    holds the 5 highest layers. A layer larger than a pass is split in equal passes."""
    layers = _layers_of(28, 24)
    rows = list(range(len(layers)))
    groups = pass_groups(layers, rows)
    assert [r for g in groups for r in g] == rows
    assert [sorted({layers[r] for r in g}) for g in groups] == [list(range(19)), list(range(19, 24))]
    monkeypatch.setattr(copy_patching, "ROWS_PER_PASS", 5)  # a layer of 18 copies in passes of 5 or less
    assert [len(g) for g in pass_groups(_layers_of(18, 2), list(range(36)))] == [5, 5, 5, 3] * 2
    monkeypatch.setattr(copy_patching, "ROWS_PER_PASS", 20)
    assert [len(g) for g in pass_groups(_layers_of(6, 4), list(range(24)))] == [18, 6]


@pytest.mark.parametrize("rows_per_pass", [5, 544])
@pytest.mark.parametrize("model_type", FAMILIES)
def test_batched_last_token_patching_equals_a_full_sequence_run(
    model_type: str, rows_per_pass: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every head and both variants, in passes of 5 copies (a layer split in two) and in one pass
    (each block running only the copies patched at or below it), against one full run per patch."""
    monkeypatch.setattr(copy_patching, "ROWS_PER_PASS", rows_per_pass)
    model = tiny_model(model_type)
    adapter = adapt(model)
    d = adapter.dims
    torch.manual_seed(1)
    prompt = ICLPrompt(torch.randint(3, 90, (12,)).tolist(), target=7)
    variants = [torch.randn(d.n_layers, d.n_heads, d.d_head) for _ in range(2)]
    base, patched = patched_probabilities(adapter, prompt, variants)
    ids = torch.tensor([prompt.ids])
    with torch.inference_mode():
        assert base == pytest.approx(float(model(input_ids=ids).logits[0, -1].softmax(-1)[7]), rel=1e-4)
        for v, values in enumerate(variants):
            for layer in range(d.n_layers):
                for head in range(d.n_heads):
                    hook = _replace_copies([(layer, head, values[layer, head])], layer, d.d_head)
                    handle = adapter.attn_out_proj(layer).register_forward_pre_hook(hook, with_kwargs=True)
                    try:
                        expected = float(model(input_ids=ids).logits[0, -1].softmax(-1)[7])
                    finally:
                        handle.remove()
                    assert float(patched[v, layer, head]) == pytest.approx(expected, rel=1e-4)
    assert not torch.allclose(patched, torch.full_like(patched, base), rtol=1e-3)  # the patches change things


def test_prompts_are_seeded_and_shuffled_prompts_keep_questions_but_move_every_answer() -> None:
    tokenizer = fv_tokenizer()
    prompts = generate_icl(tokenizer, 1, SPEC, {"toy": PAIRS})
    assert prompts.hash == generate_icl(tokenizer, 1, SPEC, {"toy": PAIRS}).hash
    assert prompts.hash != generate_icl(tokenizer, 1, ICLSpec(min_pairs=11, seed=1), {"toy": PAIRS}).hash
    (task,) = prompts.tasks
    assert len(task.shuffled) == SPEC.shuffled_prompts
    for prompt in task.shuffled:
        words = tokenizer.convert_ids_to_tokens(prompt.ids)
        blocks = [(words[i + 2], words[i + 5]) for i in range(1, len(words) - 5, 6)]  # (x, y) of each demo
        assert len(blocks) == SPEC.shots and all(f"y{x[1:]}" != y for x, y in blocks)
        answers = Counter(y for _, y in blocks)
        assert answers == Counter(f"y{x[1:]}" for x, _ in blocks)  # the same answers, each moved
    zero = tokenizer.convert_ids_to_tokens(task.zero_shot[0].ids)
    assert zero[:3] == ["<s>", "Q", ":"] and zero[-2:] == ["A", ":"] and len(zero) == 6


def test_each_tokenizer_keeps_the_tasks_whose_answers_are_one_token() -> None:
    pairs = {"toy": PAIRS, "long": [(f"x{k}", f"y{k} y{k}") for k in range(12)]}  # two-token answers
    prompts = generate_icl(fv_tokenizer(), 1, ICLSpec(min_pairs=11), pairs)
    assert [t.name for t in prompts.tasks] == ["toy"] and prompts.dropped["long"].startswith("0 of 12")
    assert len(task_pairs()) >= 6 and all(len(p) >= 60 for p in task_pairs().values())
    with pytest.raises(ValueError, match="no in-context task"):
        generate_icl(fv_tokenizer(), 1, ICLSpec(), None)  # the real tasks' words are unknown here


@pytest.mark.parametrize("model_type", ["llama", "gemma3_text", "gpt2"])
def test_zero_shot_accuracy_reads_each_prompts_own_last_position(model_type: str) -> None:
    """Prompts of different lengths in one right-padded batch, the unembedding kept only at their
    last positions: each is scored as if run alone (targets set to its own argmax, with and
    without a vector added), so any misread position shows as a miss."""
    from survey.engine.last_token import added_at_last

    adapter = adapt(tiny_model(model_type))
    torch.manual_seed(2)
    lengths = [5, 9, 7, 9, 6]
    vector = 3 * torch.randn(adapter.dims.d_model)
    for added in (None, vector):
        prompts = []
        for n in lengths:
            ids = torch.randint(3, 90, (n,)).tolist()
            with torch.inference_mode(), added_at_last(adapter, 0, added, torch.tensor([n - 1])):
                alone = adapter.model(input_ids=torch.tensor([ids])).logits[0, -1]
            prompts.append(ICLPrompt(ids, int(alone.argmax())))
        assert zero_shot_accuracy(adapter, prompts, 0, added) == 1.0
        wrong = [ICLPrompt(p.ids, (p.target + 1) % 90) for p in prompts]
        assert zero_shot_accuracy(adapter, wrong, 0, added) < 1.0
