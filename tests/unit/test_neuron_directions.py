"""Neurons v2 on planted models: the sign of a gated neuron, the post-MLP norm's gain, and the
intervention that checks the weight read-out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from sqlalchemy import text

from classifiers import parse_selection
from classifiers.neuron_weights import effective_directions, unembedding_read, vocab_projection
from db.common.neuron_config import NeuronConfig
from db.engine import open_database
from survey.adapters import adapt
from survey.engine.neuron_intervention import NeuronNudge, logit_rises
from survey.loading.loaders import LoadedModel
from survey.run.runner import survey_model
from survey.units.base import RunConfig
from tests.support.tiny import loaded_in_memory, tiny_model, tiny_tokenizer
from tests.unit.test_neurons import word_corpus

LAYER, NEURON = 1, 7
PLANTED = [f"w{i}" for i in range(10, 34)]  # the tokens the neuron fires on, negatively
TARGET, READ_DIM = "w50", 5  # the token its W_out row points at, through one residual dimension


def gated_negative_model():  # type: ignore[no-untyped-def]
    """Tiny Llama whose last-layer neuron 7 is strongly negative on the PLANTED tokens (and 0
    elsewhere), and whose W_out row points at TARGET's unembedding: positively skewed over the
    vocabulary, so only the sign of its activation says it suppresses TARGET."""
    model = tiny_model("llama")
    tokenizer = tiny_tokenizer()
    planted = tokenizer.convert_tokens_to_ids(PLANTED)
    target = tokenizer.convert_tokens_to_ids(TARGET)
    with torch.no_grad():
        inner = model.model
        inner.embed_tokens.weight[:, 0] = 0.0
        inner.embed_tokens.weight[planted, 0] = 6.0
        shared_rest = inner.embed_tokens.weight[planted[0], 1:].clone()
        inner.embed_tokens.weight[planted, 1:] = shared_rest  # the planted tokens look alike
        for block in inner.layers:
            block.self_attn.o_proj.weight[0, :] = 0.0  # nothing but the embedding writes dimension 0
            block.mlp.down_proj.weight[0, :] = 0.0
        block = inner.layers[LAYER]
        block.post_attention_layernorm.weight[0] = 1.0
        block.mlp.gate_proj.weight[NEURON, :] = 0.0
        block.mlp.gate_proj.weight[NEURON, 0] = 2.0  # silu(2 x0): large where x0 is large
        block.mlp.up_proj.weight[NEURON, :] = 0.0
        block.mlp.up_proj.weight[NEURON, 0] = -1.0  # times -x0: a large negative activation
        block.mlp.down_proj.weight[:, NEURON] = 0.0
        block.mlp.down_proj.weight[READ_DIM, NEURON] = 1.0
        model.lm_head.weight[:, READ_DIM] = 0.0
        model.lm_head.weight[target, READ_DIM] = 3.0  # only TARGET reads that dimension
    return model


@pytest.fixture
def gated() -> LoadedModel:
    return loaded_in_memory(gated_negative_model(), "gated-negative", "2" * 64)


def test_a_negative_gated_neuron_pointing_at_a_token_is_labelled_suppression(
    gated: LoadedModel, tmp_path: Path, tmp_cache: Path
) -> None:
    corpus = word_corpus(tmp_path / "words.txt", docs=120)
    config = NeuronConfig(corpus=str(corpus), window=16, token_budget=4096, batch_size=8)
    engine = open_database(f"sqlite:///{tmp_path / 's.db'}")
    lines: list[str] = []
    result = survey_model(engine, gated, parse_selection(""), RunConfig(neurons=config), False, lines.append)
    assert result.error is None, lines
    tokenizer = gated.tokenizer
    target = tokenizer.convert_tokens_to_ids(TARGET)
    planted = set(tokenizer.convert_tokens_to_ids(PLANTED))
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT family, sign, bottom_tokens, top_tokens, vocab_skew, typical_top, min FROM neurons "
            f"WHERE layer = {LAYER} AND neuron = {NEURON}"
        )).one()  # fmt: skip
        tails = dict(conn.execute(text(
            f"SELECT tail, examples FROM neuron_examples WHERE layer = {LAYER} AND neuron = {NEURON}"
        )).all())  # fmt: skip
        stats = json.loads(
            conn.execute(text("SELECT statistics FROM units WHERE kind = 'neuron_summary'")).scalar_one()
        )
    engine.dispose()
    assert row.sign == -1 and row.typical_top > 20 and row.min < -20
    assert row.family == "suppression" and row.vocab_skew < 0
    assert json.loads(row.bottom_tokens)[0][0] == target and json.loads(row.top_tokens)[0][0] != target
    raw = vocab_projection(
        gated.adapter.neuron_weights(LAYER).W_out[NEURON : NEURON + 1].detach(),
        unembedding_read(gated.adapter.unembedding()[0].detach(), gated.adapter.final_norm_gain(), False),
    )
    assert raw["moments"][0, 2] > 0 and raw["top_ids"][0, 0] == target  # the sign-less reading: prediction
    negative = json.loads(tails["negative"])
    assert len(negative) == 20 and {e[2] for e in negative} <= planted
    assert all(e[3] < -20 for e in negative)  # stored activations keep their sign
    assert set(tails) == {"positive", "negative"}  # no first-position list: not a first_position neuron
    assert stats["intervention"]["neurons"] == 2 * 64 and stats["family_null"]["draws"] == 1000


def gemma_with_post_norm_gain():  # type: ignore[no-untyped-def]
    """Tiny Gemma 3 whose last-layer neuron 3 writes 3 e_3 + 1 e_20, where only token A reads
    e_3 and only token B reads e_20; the post-feedforward norm's gain is 0.1 on e_3 and 2 on e_20."""
    model = tiny_model("gemma3_text")
    with torch.no_grad():
        embed = model.model.embed_tokens.weight  # tied: also W_U
        embed[:, [3, 20]] = 0.0
        embed[A, 3], embed[B, 20] = 4.0, 4.0
        model.model.norm.weight[[3, 20]] = 0.0  # final gain 1 + 0
        mlp = model.model.layers[1].mlp
        mlp.down_proj.weight[:, 3] = 0.0
        mlp.down_proj.weight[3, 3], mlp.down_proj.weight[20, 3] = 3.0, 1.0
        post = model.model.layers[1].post_feedforward_layernorm
        post.weight[3], post.weight[20] = -0.9, 1.0  # Gemma multiplies by 1 + weight
    return model


A, B = 40, 41


def test_the_post_mlp_norm_gain_changes_the_promoted_token_and_the_model_agrees() -> None:
    model = gemma_with_post_norm_gain()
    adapter = adapt(model)
    gain = adapter.mlp_post_gain(1)
    assert gain is not None and gain[3] == pytest.approx(0.1) and gain[20] == pytest.approx(2.0)
    w_u = unembedding_read(adapter.unembedding()[0].detach(), adapter.final_norm_gain(), False)
    w_out = adapter.neuron_weights(1).W_out.detach()
    plus = torch.ones(w_out.shape[0])
    without = vocab_projection(effective_directions(w_out, plus, None), w_u)["top_ids"][3, 0]
    through = vocab_projection(effective_directions(w_out, plus, gain), w_u)["top_ids"][3, 0]
    assert (without, through) == (A, B)
    ids = torch.randint(3, 96, (4, 12), generator=torch.Generator().manual_seed(0))
    rises = logit_rises(adapter, ids, [NeuronNudge(1, 3, 20.0)])
    assert int(rises[0].argmax()) == B  # the real model promotes what the gain-aware reading says


@pytest.mark.parametrize("family", ["llama", "gemma3_text", "opt", "gpt2"])
def test_logit_rises_through_the_cache_equal_full_forward_passes(family: str) -> None:
    model = tiny_model(family)
    adapter = adapt(model)
    ids = torch.randint(3, 96, (3, 10), generator=torch.Generator().manual_seed(1))
    nudges = [NeuronNudge(0, 5, 2.0), NeuronNudge(1, 9, -3.0), NeuronNudge(1, 2, 1.5)]
    rises = logit_rises(adapter, ids, nudges, rows_per_pass=6)  # two passes

    def last_logits(nudge: NeuronNudge | None) -> torch.Tensor:
        def hook(_m, args):  # type: ignore[no-untyped-def]
            x = args[0].clone()
            x.view(ids.shape[0], ids.shape[1], -1)[:, -1, nudge.neuron] += nudge.delta
            return (x,)

        handle = adapter.mlp_out_proj(nudge.layer).register_forward_pre_hook(hook) if nudge else None
        with torch.inference_mode():
            logits = model(input_ids=ids, use_cache=False).logits[:, -1].float()
        if handle:
            handle.remove()
        return logits

    baseline = last_logits(None)
    for nudge, rise in zip(nudges, rises, strict=True):
        torch.testing.assert_close(rise, (last_logits(nudge) - baseline).mean(0), rtol=1e-4, atol=1e-4)
