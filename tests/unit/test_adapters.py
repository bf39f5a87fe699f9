"""Reconstruction tests of the uniform view, for every supported family on tiny random configs."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor
from transformers.activations import ACT2FN

from db.common.errors import SurveyError
from survey.adapters import ArchitectureAdapter, adapt, adapter_class, supported_model_types
from survey.engine.capture import POINTS, CaptureSpec, capture
from tests.support.tiny import GQA_TYPES, PARALLEL_TYPES, VOCAB, tiny_model

FAMILIES = [
    "gpt2", "gpt_neox", "gptj", "gpt_neo", "opt", "llama", "mistral", "qwen2", "qwen3",
    "gemma", "gemma2", "gemma3_text", "phi3", "phi", "olmo", "olmo2",
]  # fmt: skip
ATOL = 1e-5


@pytest.fixture(scope="module", params=FAMILIES)
def family(request: pytest.FixtureRequest) -> tuple[ArchitectureAdapter, dict]:
    adapter = adapt(tiny_model(request.param))
    ids = torch.randint(3, VOCAB, (3, 11), generator=torch.Generator().manual_seed(0))
    got = capture(adapter, ids, CaptureSpec(frozenset(POINTS)), batch_size=2, keep_logits=True)
    return adapter, {"capture": got, "ids": ids}


def test_every_listed_family_is_registered() -> None:
    assert set(FAMILIES) <= set(supported_model_types())


def test_unknown_architecture_lists_the_supported_ones() -> None:
    with pytest.raises(SurveyError, match=r"unsupported architecture 'bloom'.*gpt2.*llama"):
        adapter_class("bloom")


def test_head_contributions_sum_to_attention_output(family) -> None:
    adapter, data = family
    for layer in range(adapter.dims.n_layers):
        head_out = data["capture"]["head_out", layer]  # [batch, pos, head, d_model]
        attn_out = data["capture"]["attn_out", layer]
        bias = adapter.head_weights(layer).b_O
        z_norm = data["capture"].tensors.get(("_post_norm_in", layer))
        assert z_norm is None  # helper tensors never leak into the result
        factor = None
        if adapter.attn_post_norm(layer) is not None:
            raw = torch.einsum("bshd,hdm->bsm", data["capture"]["z", layer], adapter.head_weights(layer).W_O)
            factor = adapter.post_norm_factor(layer, raw + bias)
        expected_bias = bias if factor is None else bias * factor
        torch.testing.assert_close(head_out.sum(2) + expected_bias, attn_out, atol=ATOL, rtol=1e-4)
        # and the contributions are not all alike: each head says something different
        assert not torch.allclose(head_out[:, :, 0], head_out[:, :, 1])


def test_neuron_activations_times_w_out_equal_mlp_output(family) -> None:
    adapter, data = family
    for layer in range(adapter.dims.n_layers):
        weights = adapter.neuron_weights(layer)
        neurons = data["capture"]["neuron", layer]  # [batch, pos, d_mlp]
        assert neurons.shape[-1] == adapter.dims.d_mlp
        out = neurons @ weights.W_out + weights.b_out
        post_norm = adapter.mlp_post_norm(layer)  # Gemma 2/3, OLMo 2: mlp_out is what joins the residual
        expected = out if post_norm is None else post_norm(out)
        torch.testing.assert_close(expected, data["capture"]["mlp_out", layer], atol=ATOL, rtol=1e-4)


def _activation(config) -> torch.nn.Module:  # type: ignore[no-untyped-def]
    for attr in ("hidden_activation", "hidden_act", "activation_function"):
        if getattr(config, attr, None):
            return ACT2FN[getattr(config, attr)]
    raise AssertionError("config names no activation")


def test_neuron_input_weights_reproduce_activations(family) -> None:
    adapter, _ = family
    for layer in range(adapter.dims.n_layers):
        weights = adapter.neuron_weights(layer)
        seen: dict[str, Tensor] = {}
        module = adapter.mlp_in_projections(layer)["in"].module
        handle = module.register_forward_pre_hook(lambda _m, args, seen=seen: seen.setdefault("x", args[0]))
        got = capture(adapter, torch.randint(3, VOCAB, (2, 6)), CaptureSpec.of("neuron", layers=(layer,)))
        handle.remove()
        pre = seen["x"] @ weights.W_in.T + weights.b_in  # [batch, pos, d_mlp]
        act = _activation(adapter.config)
        expected = act(seen["x"] @ weights.W_gate.T) * pre if weights.W_gate is not None else act(pre)
        torch.testing.assert_close(
            expected.reshape(got["neuron", layer].shape), got["neuron", layer], atol=ATOL, rtol=1e-4
        )


def _per_head(x: Tensor, W: Tensor, b: Tensor) -> Tensor:
    return torch.einsum("bsm,hmd->bshd", x, W) + b


def test_head_weights_reproduce_captured_q_k_v(family) -> None:
    adapter, data = family
    kv_index = adapter.kv_head_index()
    for layer in range(adapter.dims.n_layers):
        w = adapter.head_weights(layer)
        x = data["capture"]["attn_in", layer]
        torch.testing.assert_close(
            _per_head(x, w.W_Q, w.b_Q), data["capture"]["q", layer], atol=ATOL, rtol=1e-4
        )
        for name, W, b in (("k", w.W_K, w.b_K), ("v", w.W_V, w.b_V)):
            captured = data["capture"][name, layer][:, :, kv_index]  # expanded to query heads
            torch.testing.assert_close(_per_head(x, W, b), captured, atol=ATOL, rtol=1e-4)


def test_pattern_times_values_gives_z(family) -> None:
    adapter, data = family
    for layer in range(adapter.dims.n_layers):
        pattern = data["capture"]["pattern", layer]  # [batch, head, q, k]
        assert pattern.dtype == torch.float32
        torch.testing.assert_close(pattern.sum(-1), torch.ones_like(pattern.sum(-1)), atol=1e-5, rtol=0)
        assert torch.all(pattern.triu(1) == 0), "causal: no attention to later positions"
        v = data["capture"]["v", layer][:, :, adapter.kv_head_index()]  # [batch, key, head, d_head]
        z = torch.einsum("bhqk,bkhd->bqhd", pattern, v)
        torch.testing.assert_close(z, data["capture"]["z", layer], atol=ATOL, rtol=1e-4)


def test_gqa_mapping(family) -> None:
    adapter, _ = family
    d = adapter.dims
    expected_kv = 2 if adapter.config.model_type in GQA_TYPES else 4
    assert (d.n_heads, d.n_kv_heads) == (4, expected_kv)
    if expected_kv == 2:
        assert adapter.kv_head_index().tolist() == [0, 0, 1, 1]
        w = adapter.head_weights(0)
        torch.testing.assert_close(w.W_K[0], w.W_K[1])
        assert not torch.allclose(w.W_K[1], w.W_K[2])
    else:
        assert adapter.kv_head_index().tolist() == [0, 1, 2, 3]


def test_embedding_unembedding_and_final_norm_reproduce_logits(family) -> None:
    adapter, data = family
    W_U, b_U = adapter.unembedding()
    assert W_U.shape == (adapter.dims.d_model, adapter.dims.d_vocab)
    assert adapter.embedding().shape == (adapter.dims.d_vocab, adapter.dims.d_model)
    captured: dict[str, Tensor] = {}
    handle = adapter.final_norm().register_forward_hook(lambda _m, _i, out: captured.setdefault("x", out))
    with torch.no_grad():
        logits = adapter.model(data["ids"]).logits
    handle.remove()
    expected = captured["x"] @ W_U + b_U
    if getattr(adapter.config, "final_logit_softcapping", None):
        cap = adapter.config.final_logit_softcapping
        expected = torch.tanh(expected / cap) * cap
    torch.testing.assert_close(expected, logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits.float(), data["capture"].logits, atol=1e-5, rtol=1e-5)


def test_parallel_block_flag(family) -> None:
    adapter, _ = family
    assert adapter.parallel_attn_mlp == (adapter.config.model_type in PARALLEL_TYPES)


def test_capture_only_what_was_asked() -> None:
    adapter = adapt(tiny_model("llama"))
    ids = torch.randint(3, VOCAB, (2, 5))
    got = capture(adapter, ids, CaptureSpec.of("pattern", layers=(1,)))
    assert set(got.tensors) == {("pattern", 1)}
    assert got.logits is None
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in adapter.model.modules())


def test_capture_rejects_unknown_points_and_layers() -> None:
    adapter = adapt(tiny_model("gpt2"))
    with pytest.raises(ValueError, match="unknown capture points"):
        CaptureSpec.of("resid_banana")
    with pytest.raises(ValueError, match="out of range"):
        capture(adapter, torch.zeros(1, 3, dtype=torch.long), CaptureSpec.of("z", layers=(7,)))


def test_the_attention_input_norm_reproduces_what_the_attention_reads(family) -> None:
    adapter, _ = family
    tokens = torch.randint(3, VOCAB, (2, 6))
    seen: dict[str, Tensor] = {}

    def keep(_m, args, kwargs) -> None:  # type: ignore[no-untyped-def]
        seen["x"] = args[0] if args else kwargs["hidden_states"]

    handle = adapter.blocks()[1].register_forward_pre_hook(keep, with_kwargs=True)
    got = capture(adapter, tokens, CaptureSpec.of("attn_in", layers=(1,)))
    handle.remove()
    norm = adapter.attn_in_norm(1)
    with torch.inference_mode():
        expected = seen["x"] if norm is None else norm(seen["x"])
    torch.testing.assert_close(expected, got["attn_in", 1], atol=ATOL, rtol=1e-4)
