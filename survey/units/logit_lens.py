"""The logit-lens layer summary of one model: the first windows of the neuron pass's corpus, read
through the final norm and the unembedding at every layer (``classifiers.logit_lens``).

The lens applies the model's own modules (final norm, unembedding, and the final logit
soft-capping where the family has one), so the last layer reproduces the model's logits.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from sqlalchemy import Engine
from torch import Tensor

from classifiers.jsonable import JsonFields
from classifiers.keys import LAYER_SUMMARY
from classifiers.logit_lens import LensAccumulator, LensLayer
from db.common.neuron_config import NeuronConfig
from db.common.progress import Meter
from db.store import RunIds, UnitRow, write_lens_unit
from survey.corpus.sources import resolve_corpus
from survey.corpus.windows import Windows, cut_windows
from survey.engine.capture import CaptureSpec, capture
from survey.engine.readouts import soft_capped
from survey.loading.loaders import LoadedModel
from survey.units.base import MODEL_UNITS, ModelUnitKind, PlannedUnit, Progress, RunConfig, Shared, UnitResult

VERSION = 1
NAME = "logit_lens"
CHUNK_TOKENS = 256  # positions unembedded at once: bounds memory for 262k-token vocabularies


@dataclass(frozen=True)
class LensConfig(JsonFields):
    """The corpus, the window length and how many tokens the lens reads."""

    corpus: str = "wiki-news"
    window: int = 128
    token_budget: int = 1024
    batch_size: int = 4

    @classmethod
    def following(cls, neurons: NeuronConfig) -> LensConfig:
        """The lens over the neuron pass's corpus and windows."""
        return cls(corpus=neurons.corpus, window=neurons.window)


@dataclass(frozen=True)
class LensPlan:
    """The windows to read and their hash (the corpus, the BOS policy and the settings)."""

    config: LensConfig
    corpus_name: str
    corpus_hash: str
    windows: Windows
    hash: str

    def describe(self) -> dict[str, Any]:
        """What the unit read, stored beside it."""
        return {
            "corpus": self.corpus_name, "corpus_hash": self.corpus_hash,
            "windows": int(self.windows.tokens.shape[0]), "window": int(self.windows.tokens.shape[1]),
        }  # fmt: skip


def plan_lens(loaded: LoadedModel, config: LensConfig) -> LensPlan:
    """Cut the windows (SurveyError when the corpus cannot be read or is too short)."""
    corpus = resolve_corpus(config.corpus)
    corpus_hash = corpus.hash()
    windows = cut_windows(
        corpus, loaded.tokenizer,
        NeuronConfig(corpus=config.corpus, window=config.window, token_budget=config.token_budget),
    )  # fmt: skip
    payload = {"corpus": corpus_hash, "bos": loaded.bos.token_id, **config.to_dict()}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return LensPlan(config, corpus.name, corpus_hash, windows, digest)


def lens_logits(loaded: LoadedModel, resid: Tensor) -> Tensor:
    """``[token, vocab]`` logits of residual vectors ``[token, d_model]``, as the model's head makes them."""
    adapter = loaded.adapter
    unembed = adapter.model.get_submodule(adapter.unembed_path)
    return soft_capped(adapter, unembed(adapter.final_norm()(resid)).float())


def run_lens(loaded: LoadedModel, plan: LensPlan, echo: Callable[[str], None]) -> list[LensLayer]:
    """Every layer's lens statistics over the plan's windows (BOS positions left out)."""
    tokens = plan.windows.tokens
    bos = loaded.bos.token_id
    if bos is not None:
        tokens = torch.cat([torch.full((tokens.shape[0], 1), bos), tokens], dim=1)
    first = int(bos is not None)
    n_layers = loaded.adapter.dims.n_layers
    device = next(loaded.model.parameters()).device
    totals = LensAccumulator(n_layers)
    size = plan.config.batch_size
    meter = Meter(echo, "logit lens", tokens.shape[0], "windows")
    for start in range(0, tokens.shape[0], size):
        got = capture(
            loaded.adapter, tokens[start : start + size], CaptureSpec.of("resid_post"), batch_size=size,
            keep_logits=True, out_device=device,
        )  # fmt: skip
        assert got.logits is not None
        final = got.logits[:, first:].flatten(0, 1)
        resid = got.stacked("resid_post")[:, :, first:].flatten(1, 2)  # [layer, token, d_model]
        with torch.inference_mode():
            for chunk in range(0, final.shape[0], CHUNK_TOKENS):
                end = chunk + CHUNK_TOKENS
                final_chunk = final[chunk:end]  # one tensor for every layer: its softmax is taken once
                for layer in range(n_layers - 1):
                    totals.update(layer, lens_logits(loaded, resid[layer, chunk:end]), final_chunk)
                totals.update(n_layers - 1, final_chunk, final_chunk)  # the last layer's lens is the model's
        meter.advance(min(size, tokens.shape[0] - start))
    return totals.result()


@MODEL_UNITS.register(NAME)
class LensUnit(ModelUnitKind[LensPlan, list[LensLayer]]):
    """The logit lens over the first windows of the neuron pass's corpus, one row per layer."""

    kind = LAYER_SUMMARY
    name = NAME
    cost = 3
    version = VERSION

    def __init__(self, config: RunConfig, lens: LensConfig) -> None:
        super().__init__(config)
        self.config = lens

    @classmethod
    def for_run(cls, config: RunConfig) -> LensUnit | None:
        """The lens when the run has a neuron pass (it follows its corpus and windows)."""
        return None if config.neurons is None else cls(config, LensConfig.following(config.neurons))

    def definition(self) -> dict[str, Any]:
        return {"config": self.config.to_dict()}

    def dataset(self, loaded: LoadedModel, shared: Shared) -> LensPlan:
        return plan_lens(loaded, self.config)

    def compute(
        self,
        loaded: LoadedModel,
        planned: PlannedUnit[LensPlan, list[LensLayer]],
        shared: Shared,
        progress: Progress,
    ) -> list[LensLayer]:
        return run_lens(loaded, planned.dataset, progress)

    def write(
        self,
        engine: Engine,
        ids: RunIds,
        planned: PlannedUnit[LensPlan, list[LensLayer]],
        result: list[LensLayer],
        replace: bool,
    ) -> None:
        row = UnitRow(planned.key, self.full_definition(), self.config.to_dict(), planned.dataset.describe())
        write_lens_unit(engine, ids, row, result, replace)

    def describe(self, done: UnitResult[LensPlan, list[LensLayer]]) -> str:
        last = done.result[-1]
        return (
            f"{NAME} v{VERSION}: {len(done.result)} layers, last layer agreement {last.top1_agreement:.3f}, "
            f"KL {last.kl_to_final:.2g} [{done.seconds:.1f} s]"
        )
