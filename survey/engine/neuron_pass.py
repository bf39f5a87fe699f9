"""The neuron pass: every corpus window through the model once, each layer's neuron activations
fed to its trackers, checkpointed atomically so that a killed pass resumes where it stopped and
ends with the same numbers as an uninterrupted one."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from classifiers.neuron_trackers import LayerTrackers
from db.common.neuron_config import NeuronConfig
from db.common.progress import Meter
from survey.corpus.windows import Windows
from survey.engine.capture import CaptureSpec, capture
from survey.loading.loaders import LoadedModel


def _save_atomically(state: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with partial.open("wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def run_pass(
    loaded: LoadedModel, windows: Windows, config: NeuronConfig, checkpoint: Path, key: str,
    echo: Callable[[str], None],
) -> list[LayerTrackers]:  # fmt: skip
    """Feed every window through the model once, updating each layer's trackers; resume from
    ``checkpoint`` when it holds a state for the same ``key``. Token candidates are fixed after
    the first half of the batches and measured on the second."""
    d = loaded.adapter.dims
    trackers = [LayerTrackers(d.d_mlp, config) for _ in range(d.n_layers)]
    n_windows, length = windows.tokens.shape
    batches = list(range(0, n_windows, config.batch_size))
    half = len(batches) // 2
    counts = torch.bincount(windows.tokens[:, 1:].flatten(), minlength=d.d_vocab)
    done = 0
    if checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        if state.get("key") == key:
            done = int(state["batches_done"])
            for tracker, layer_state in zip(trackers, state["layers"], strict=True):
                tracker.load_state_dict(layer_state)
            echo(f"neurons: resuming after batch {done}/{len(batches)} from {checkpoint}")
    spec = CaptureSpec.of("neuron")
    meter = Meter(echo, "neurons: pass", (n_windows - done * config.batch_size) * length, "tokens")
    for number in range(done, len(batches)):
        if number == half:
            for tracker in trackers:
                tracker.start_selectivity(windows.tokens, counts, config)
        first = batches[number]
        tokens = windows.tokens[first : first + config.batch_size]
        ids = loaded.bos.prepend(tokens)
        skip = ids.shape[1] - length  # 1 when BOS was prepended
        got = capture(loaded.adapter, ids, spec, batch_size=config.batch_size)
        for layer, tracker in enumerate(trackers):
            tracker.update(got[("neuron", layer)][:, skip:], first * length, tokens)
        if (number + 1) % config.checkpoint_every == 0 and number + 1 < len(batches):
            states = [t.state_dict() for t in trackers]
            _save_atomically({"key": key, "batches_done": number + 1, "layers": states}, checkpoint)
        meter.advance(tokens.numel())
    return trackers
