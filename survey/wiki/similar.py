"""The heads most alike across models: each head's profile is its score on every head
classifier (missing scores count as 0, scores clipped to [-1, 1]); the nearest heads of *other*
models by Euclidean distance are its most similar heads. Brute force, in row chunks, so 20k
heads need no more than a chunk × heads distance block at once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHUNK = 2048


@dataclass(frozen=True)
class HeadRef:
    """A head of a model, addressed by model id, layer and head."""

    model_id: int
    layer: int
    head: int


def profiles(grids: dict[str, dict[int, np.ndarray]]) -> tuple[list[HeadRef], np.ndarray, list[str]]:
    """Every head of every model and its score profile ``[head, classifier]``."""
    classifiers = sorted(grids)
    shapes: dict[int, tuple[int, ...]] = {}
    for by_model in grids.values():
        for model_id, grid in by_model.items():
            shapes[model_id] = grid.shape
    heads = [
        HeadRef(m, layer, head)
        for m, (n_l, n_h) in sorted(shapes.items())
        for layer in range(n_l)
        for head in range(n_h)
    ]
    matrix = np.zeros((len(heads), len(classifiers)), dtype=np.float32)
    start = 0
    for model_id, (n_l, n_h) in sorted(shapes.items()):
        for c, name in enumerate(classifiers):
            scores = grids[name].get(model_id)
            if scores is not None:
                matrix[start : start + n_l * n_h, c] = np.nan_to_num(np.clip(scores, -1, 1), nan=0.0).ravel()
        start += n_l * n_h
    return heads, matrix, classifiers


def nearest_heads(
    heads: list[HeadRef], matrix: np.ndarray, k: int
) -> dict[HeadRef, list[tuple[HeadRef, float]]]:
    """For each head, the ``k`` closest heads of other models with their distances."""
    owners = np.array([h.model_id for h in heads])
    squared = (matrix**2).sum(1)
    result: dict[HeadRef, list[tuple[HeadRef, float]]] = {}
    for start in range(0, len(heads), CHUNK):
        block = matrix[start : start + CHUNK]
        distance = squared[start : start + CHUNK, None] + squared[None, :] - 2 * block @ matrix.T
        distance[owners[start : start + CHUNK, None] == owners[None, :]] = np.inf
        take = min(k, max(0, distance.shape[1] - 1))
        if take == 0:
            break
        picks = np.argpartition(distance, take - 1, axis=1)[:, :take]
        for row, candidates in enumerate(picks):
            order = candidates[np.argsort(distance[row, candidates], kind="stable")]
            result[heads[start + row]] = [
                (heads[j], float(np.sqrt(max(distance[row, j], 0.0))))
                for j in order
                if np.isfinite(distance[row, j])
            ]
    return result
