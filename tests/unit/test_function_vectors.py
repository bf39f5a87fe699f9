"""Function-vector heads on the planted GPT-2 of ``tests/planted_fv.py``, the exactness of the
cached last-token patching, and the ICL prompts built per tokenizer."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from classifiers.function_vector import FunctionVectorConfig, FunctionVectorHead
from classifiers.icl_prompts import ICLSpec, generate_icl, task_pairs
from classifiers.validation import AblationConfig
from survey.adapters import adapt
from survey.units.function_vectors import _replace_last, measure_function_vectors, patched_probabilities
from tests.support.planted_fv import N_HEADS, PAIRS, PLANTED, fv_tokenizer, planted_fv_gpt2
from tests.support.tiny import tiny_model

SPEC = ICLSpec(min_pairs=11, clean_prompts=6, shuffled_prompts=3, zero_shot=12)
FV_HEAD = PLANTED["function_vector"]


def test_the_planted_head_carries_the_task_and_its_vector_teaches_zero_shot_prompts() -> None:
    tokenizer = fv_tokenizer()
    adapter = adapt(planted_fv_gpt2(tokenizer))
    prompts = generate_icl(tokenizer, 1, SPEC, {"toy": PAIRS})
    config = FunctionVectorConfig(threshold=0.01, top_k=1)
    lines: list[str] = []
    measures, validation = measure_function_vectors(
        adapter, prompts, config, AblationConfig(draws=3), lines.append
    )
    assert measures.clean_accuracy == [1.0] and measures.shuffled_probability[0] < 0.01
    result = FunctionVectorHead(config).score(measures)
    assert result.scores[FV_HEAD] > 0.95
    others = [
        float(result.scores[layer, head])
        for layer in range(2)
        for head in range(N_HEADS)
        if (layer, head) != FV_HEAD
    ]
    assert max(abs(x) for x in others) < 0.01
    assert result.labels(config.threshold).sum() == 1
    assert result.statistics is not None and result.statistics.p_value[FV_HEAD] < 1e-3
    assert result.evidence[1][0]["per_task_cie"]["toy"] == pytest.approx(
        float(result.scores[FV_HEAD]), abs=1e-6
    )
    assert validation.heads == [FV_HEAD] and validation.baseline == 0.0
    assert validation.effect_top == 1.0 and max(validation.effect_random) == 0.0 and validation.supported
    assert validation.details["per_task"]["toy"]["after"] == 1.0 and "toy (1/1)" in lines[0]


@pytest.mark.parametrize("model_type", ["llama", "gemma3_text", "gpt2"])
def test_cached_last_token_patching_equals_a_full_sequence_run(model_type: str) -> None:
    model = tiny_model(model_type)
    adapter = adapt(model)
    d = adapter.dims
    torch.manual_seed(1)
    from classifiers.icl_prompts import ICLPrompt

    prompt = ICLPrompt(torch.randint(3, 90, (12,)).tolist(), target=7)
    values = torch.randn(d.n_layers, d.n_heads, d.d_head)
    base, patched = patched_probabilities(adapter, prompt, [values, values.flip(0)])
    ids = torch.tensor([prompt.ids])
    with torch.inference_mode():
        assert base == pytest.approx(float(model(input_ids=ids).logits[0, -1].softmax(-1)[7]), rel=1e-4)
        for layer, head in [(0, 1), (1, 3)]:
            hook = _replace_last([(layer, head, values[layer, head])], layer, d.d_head)
            handle = adapter.attn_out_proj(layer).register_forward_pre_hook(hook, with_kwargs=True)
            try:
                expected = float(model(input_ids=ids).logits[0, -1].softmax(-1)[7])
            finally:
                handle.remove()
            assert float(patched[0, layer, head]) == pytest.approx(expected, rel=1e-4)
            assert expected != pytest.approx(base, rel=1e-3)  # the patch changes something


def test_prompts_are_seeded_and_shuffled_prompts_keep_questions_but_move_every_answer() -> None:
    tokenizer = fv_tokenizer()
    prompts = generate_icl(tokenizer, 1, SPEC, {"toy": PAIRS})
    assert prompts.hash == generate_icl(tokenizer, 1, SPEC, {"toy": PAIRS}).hash
    assert prompts.hash != generate_icl(tokenizer, 1, ICLSpec(min_pairs=11, seed=1), {"toy": PAIRS}).hash
    (task,) = prompts.tasks
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
    import torch

    from classifiers.icl_prompts import ICLPrompt
    from survey.units.function_vectors import added_at_last, zero_shot_accuracy

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
