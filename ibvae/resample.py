"""Resampling square images by area: what the occluder generator shrinks digits with and what
the nuisance probe pools a feature map to its grid with."""

from __future__ import annotations

import numpy as np


def area_weights(size: int, new_size: int) -> np.ndarray:
    """``(new_size, size)`` weights that average a line of ``size`` cells into ``new_size``
    equal spans, each cell counted by its overlap with the span (rows sum to 1): resampling
    by area, ``W @ image @ W.T`` for a square image."""
    edges = np.arange(new_size + 1) * size / new_size
    cells = np.arange(size)[None, :]
    overlap = np.minimum(edges[1:, None], cells + 1) - np.maximum(edges[:-1, None], cells)
    return np.clip(overlap, 0, None) * new_size / size


def resize_square(images: np.ndarray, size: int) -> np.ndarray:
    """(N, S, S[, 1]) grey images -> (N, size, size) uint8, resampled by area."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    side = images.shape[1]
    if size == side:
        return images.astype(np.uint8)
    w = area_weights(side, size)
    out = np.einsum("ij,njk,lk->nil", w, images.astype(np.float32), w)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
