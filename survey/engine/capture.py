"""Capture activations through hooks, in batched forward passes, only for what was asked.

Capture points (shapes per layer, batch first):

- ``pattern``  [batch, head, query, key], fp32: the attention pattern of every query head
- ``attn_in``  [batch, pos, d_model]: the (normalised) input the attention reads
- ``q``/``k``/``v`` [batch, pos, head or kv_head, d_head]: raw projections, before q/k norms and rotary
- ``z``        [batch, pos, head, d_head]: per-head outputs before the output projection
- ``head_out`` [batch, pos, head, d_model]: each head's contribution to the residual stream
  (through a post-attention norm linearised with its scale frozen, where the family has one)
- ``attn_out`` [batch, pos, d_model]: the attention's contribution to the residual stream
- ``neuron``   [batch, pos, d_mlp]: the input to the MLP output projection
- ``mlp_out``  [batch, pos, d_model]: the MLP's contribution to the residual stream (the output
  projection's output, through the post-MLP norm where the family has one)
- ``resid_post`` [batch, pos, d_model]: the residual stream after the block (its output)

Capture never writes to the database and never changes the model; hooks are removed on exit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle
from transformers import PreTrainedModel

from survey.adapters import ArchitectureAdapter
from survey.adapters.base import Projection

POINTS = ("pattern", "attn_in", "q", "k", "v", "z", "head_out", "attn_out", "neuron", "mlp_out", "resid_post")


@dataclass(frozen=True)
class CaptureSpec:
    """What to capture: a set of point names and the layers (None: every layer)."""

    points: frozenset[str]
    layers: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.points) - set(POINTS))
        if unknown:
            raise ValueError(f"unknown capture points {unknown}; valid: {', '.join(POINTS)}")

    @classmethod
    def of(cls, *points: str, layers: tuple[int, ...] | None = None) -> CaptureSpec:
        """Shorthand: ``CaptureSpec.of("pattern", "z", layers=(0, 3))``."""
        return cls(frozenset(points), layers)


@dataclass
class Capture:
    """Captured tensors keyed by (point, layer), plus the final logits when asked for."""

    tensors: dict[tuple[str, int], Tensor] = field(default_factory=dict)
    logits: Tensor | None = None

    def __getitem__(self, key: tuple[str, int]) -> Tensor:
        return self.tensors[key]

    def stacked(self, point: str) -> Tensor:
        """One point across its captured layers, stacked on a new leading layer dimension."""
        layers = sorted(layer for name, layer in self.tensors if name == point)
        return torch.stack([self.tensors[(point, layer)] for layer in layers])


def first_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Tensor:
    """The hidden states a forward pre-hook sees, passed by position or as ``hidden_states``."""
    return args[0] if args else kwargs["hidden_states"]


def first_output(output: Any) -> Tensor:
    """The hidden states a module returned, alone or leading a tuple."""
    return output[0] if isinstance(output, tuple) else output


class _Recorder:
    """Registers the hooks one forward pass needs and keeps what they see."""

    def __init__(self, adapter: ArchitectureAdapter, spec: CaptureSpec, out_device: torch.device) -> None:
        self.adapter = adapter
        self.spec = spec
        self.out_device = out_device
        self.seen: dict[tuple[str, int], Tensor] = {}
        self.handles: list[RemovableHandle] = []

    def _keep(self, key: tuple[str, int], tensor: Tensor) -> None:
        # clone: some families modify projections in place afterwards (OLMo clamps q/k/v)
        self.seen[key] = tensor.detach().to(self.out_device, copy=True)

    def _post(self, module: nn.Module, key: tuple[str, int], read: Callable[[Any], Tensor]) -> None:
        self.handles.append(module.register_forward_hook(lambda _m, _i, out: self._keep(key, read(out))))

    def _pre(self, module: nn.Module, key: tuple[str, int]) -> None:
        def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            self._keep(key, first_input(args, kwargs))

        self.handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))

    def register(self, layers: tuple[int, ...]) -> None:
        """Hook only the modules that the requested points need."""
        points, a = self.spec.points, self.adapter
        needs_z = bool(points & {"z", "head_out"})
        needs_norm_in = "head_out" in points  # attn_out reads the norm's output, not its input
        for layer in layers:
            attention = a.attention(layer)
            post_norm = a.attn_post_norm(layer)
            if "pattern" in points:
                self._post(attention, ("pattern", layer), lambda out: out[1].float())
            if "attn_in" in points:
                self._pre(attention, ("attn_in", layer))
            for name, projection in a.qkv_projections(layer).items():
                if name in points:
                    self._post(projection.module, (name, layer), _sliced(projection))
            if needs_z:
                self._pre(a.attn_out_proj(layer), ("z", layer))
            if needs_norm_in and post_norm is not None:
                self._pre(post_norm, ("_post_norm_in", layer))
            if "attn_out" in points:
                source = attention if post_norm is None else post_norm
                self._post(source, ("attn_out", layer), first_output)
            if "neuron" in points:
                self._pre(a.mlp_out_proj(layer), ("neuron", layer))
            if "mlp_out" in points:
                mlp_norm = a.mlp_post_norm(layer)
                source = a.mlp_out_proj(layer) if mlp_norm is None else mlp_norm
                self._post(source, ("mlp_out", layer), first_output)
            if "resid_post" in points:
                self._post(a.blocks()[layer], ("resid_post", layer), first_output)

    def finish(self, layers: tuple[int, ...], batch: int, pos: int) -> dict[tuple[str, int], Tensor]:
        """Reshape per-head points and derive head contributions; drop helper tensors. MLP points
        come back as ``[batch, pos, ...]`` even from families that flatten tokens (OPT)."""
        d = self.adapter.dims
        result: dict[tuple[str, int], Tensor] = {}
        for layer in layers:
            for name, n in (("q", d.n_heads), ("k", d.n_kv_heads), ("v", d.n_kv_heads)):
                if (name, layer) in self.seen:
                    result[(name, layer)] = self.seen[(name, layer)].unflatten(-1, (n, d.d_head))
            if ("z", layer) in self.seen:
                z = self.seen[("z", layer)].unflatten(-1, (d.n_heads, d.d_head))
                if "z" in self.spec.points:
                    result[("z", layer)] = z
                if "head_out" in self.spec.points:
                    result[("head_out", layer)] = self._head_out(layer, z)
            for name in ("pattern", "attn_in", "attn_out", "neuron", "mlp_out", "resid_post"):
                if (name, layer) in self.seen:
                    tensor = self.seen[(name, layer)]
                    if name in ("neuron", "mlp_out") and tensor.ndim == 2:
                        tensor = tensor.view(batch, pos, -1)
                    result[(name, layer)] = tensor
        return result

    def _head_out(self, layer: int, z: Tensor) -> Tensor:
        W_O = self.adapter.output_weights(layer)[0].to(z)  # [head, d_head, d_model]
        head_out = torch.einsum("bshd,hdm->bshm", z, W_O)
        norm_in = self.seen.get(("_post_norm_in", layer))
        if norm_in is not None:
            factor = self.adapter.post_norm_factor(layer, norm_in)  # [batch, pos, d_model]
            if factor is not None:
                head_out = head_out * factor.to(head_out)[:, :, None, :]
        return head_out

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


def _sliced(projection: Projection) -> Callable[[Any], Tensor]:
    return lambda out: projection.select(first_output(out))


class StopForward(Exception):
    """Raised by a hook once the last layer a measurement reads has run, to skip the rest."""


def _stop(_module: nn.Module, _args: Any, _output: Any) -> None:
    raise StopForward


@contextmanager
def _hooked(recorder: _Recorder, layers: tuple[int, ...], stop_after: int | None) -> Iterator[_Recorder]:
    """The recorder's hooks, then (``stop_after``) one that ends the pass after that block."""
    recorder.register(layers)
    if stop_after is not None:
        recorder.handles.append(recorder.adapter.blocks()[stop_after].register_forward_hook(_stop))
    try:
        yield recorder
    finally:
        recorder.remove()


def ensure_eager(model: PreTrainedModel) -> None:
    """Patterns exist only under eager attention; switch to it when a model was loaded otherwise."""
    if getattr(model.config, "_attn_implementation", "eager") != "eager":
        model.set_attn_implementation("eager")


def capture(
    adapter: ArchitectureAdapter,
    input_ids: Tensor,
    spec: CaptureSpec,
    *,
    attention_mask: Tensor | None = None,
    batch_size: int = 8,
    keep_logits: bool = False,
    logits_at: int | Tensor = 0,
    out_device: str | torch.device = "cpu",
) -> Capture:
    """Run ``input_ids [batch, pos]`` through the model in batches and return what ``spec`` asks for.

    With ``keep_logits``, the logits at ``logits_at`` (0: every position; n: the last n; or a
    tensor of positions) come back ``[batch, kept, vocab]``. Without, the unembedding never runs
    and each pass stops after the last layer captured."""
    model = adapter.model
    ensure_eager(model)
    layers = spec.layers if spec.layers is not None else tuple(range(adapter.dims.n_layers))
    bad = [layer for layer in layers if not 0 <= layer < adapter.dims.n_layers]
    if bad:
        raise ValueError(f"layers {bad} out of range for a {adapter.dims.n_layers}-layer model")
    device = next(model.parameters()).device
    parts: list[dict[tuple[str, int], Tensor]] = []
    logits: list[Tensor] = []
    with torch.inference_mode():
        for start in range(0, input_ids.shape[0], batch_size):
            ids = input_ids[start : start + batch_size].to(device)
            mask = None if attention_mask is None else attention_mask[start : start + batch_size].to(device)
            recorder = _Recorder(adapter, spec, torch.device(out_device))
            with _hooked(recorder, layers, stop_after=None if keep_logits else max(layers, default=0)):
                try:
                    output = model(
                        input_ids=ids, attention_mask=mask, use_cache=False,
                        logits_to_keep=(logits_at.to(device) if isinstance(logits_at, Tensor) else logits_at)
                        if keep_logits
                        else 1,
                    )  # fmt: skip
                except StopForward:
                    output = None
            parts.append(recorder.finish(layers, ids.shape[0], ids.shape[1]))
            if keep_logits:
                assert output is not None
                logits.append(output.logits.float().to(out_device))
    merged = {key: torch.cat([part[key] for part in parts]) for key in parts[0]} if parts else {}
    return Capture(tensors=merged, logits=torch.cat(logits) if logits else None)
