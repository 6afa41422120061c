"""What the nuisance probe reads of a classifier (:mod:`ibvae.classifier.probe`): each pool's
representation averaged over a grid of its map, noise-free (the features ``f(x)``) or with
draws of that pool's own noise on the noise-free pass (``z = f(x) eps``, read before the next
batch norm), with each information pool's mean alpha and KL beside it, in one compiled
``predict``."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from ibvae.classifier.models import AllCNN
from ibvae.layers.lognormal import LogNormalDropout
from ibvae.resample import area_weights


class PooledFeatures(keras.Model):
    """Wraps a classifier so ``predict`` (compiled, batched, any backend) returns, per pool,
    its representation averaged over a ``grid`` x ``grid`` partition and flattened: ``(N,
    dims)`` noise-free, ``(N, draws, dims)`` with ``noise`` (each pool's own noise drawn on
    the noise-free pass, see the module docstring); then, per information pool, each image's
    mean alpha and its KL summed over units, ``(N,)`` each."""

    def __init__(self, classifier: AllCNN, grid: int, noise: bool = False, draws: int = 1,
                 seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.classifier, self.grid, self.noise = classifier, int(grid), bool(noise)
        self.draws = int(draws) if noise else 1
        self.noise_seed = keras.random.SeedGenerator(seed)

    def _pooled(self, out):
        h, w = int(out.shape[1]), int(out.shape[2])
        rows = ops.convert_to_tensor(area_weights(h, min(self.grid, h)), out.dtype)
        cols = ops.convert_to_tensor(area_weights(w, min(self.grid, w)), out.dtype)
        pooled = ops.einsum("nhwc,ih,jw->nijc", out, rows, cols)
        return ops.reshape(pooled, (-1, int(np.prod(pooled.shape[1:]))))

    def _draw(self, f, alpha, drop):
        if alpha is not None:
            return f * ops.exp(alpha * keras.random.normal(ops.shape(f), dtype=f.dtype,
                                                           seed=self.noise_seed))
        if isinstance(drop, LogNormalDropout):
            return drop.draw(f, self.noise_seed)
        if drop is not None:
            return keras.random.dropout(f, drop.rate, seed=self.noise_seed)
        return f

    def call(self, x):
        features, alphas, kls = [], [], []
        parts = self.classifier.pool_parts(x)
        for (f, alpha), pool, drop in zip(parts, self.classifier.pools,
                                          self.classifier.pool_dropouts, strict=True):
            if not self.noise:
                features.append(self._pooled(f))
            else:
                features.append(ops.stack(
                    [self._pooled(self._draw(f, alpha, drop)) for _ in range(self.draws)], axis=1))
            if alpha is not None:
                alphas.append(ops.mean(alpha, axis=(1, 2, 3)))
                kl = pool.dropout.kl_given_alpha(f, alpha)
                kls.append(ops.sum(kl, axis=(1, 2, 3)))
        return (*features, *alphas, *kls)


def pool_representation(
    model: AllCNN, x: np.ndarray, grid: int = 4, batch_size: int = 256, noise: bool = False,
    draws: int = 1, seed: int | None = 0,
) -> dict[str, list[np.ndarray]]:
    """``features``: per pool, shallow to deep, float32 ``(N x draws, grid^2 x filters)``
    (image ``i``'s draws in rows ``i * draws ...``; ``draws`` is 1 without ``noise``);
    ``alpha``, ``kl``: per information pool, each image's mean alpha and summed KL."""
    wrapper = PooledFeatures(model, grid, noise, draws, seed, name="pooled_features")
    out = wrapper.predict(x, batch_size=batch_size, verbose=0)
    out = [np.asarray(o) for o in (out if isinstance(out, list | tuple) else [out])]
    n_pools, n_info = len(model.pools), model.n_information_pools
    features = [f.reshape(-1, f.shape[-1]) for f in out[:n_pools]]
    return {"features": features, "alpha": out[n_pools : n_pools + n_info],
            "kl": out[n_pools + n_info :]}


def pool_features(model: AllCNN, x: np.ndarray, grid: int = 4, batch_size: int = 256,
                  noise: bool = False, draws: int = 1, seed: int | None = 0) -> list[np.ndarray]:
    """Per pool, shallow to deep, ``(N x draws, grid^2 x filters)`` float32 features of ``x``
    (``noise``: ``draws`` draws per image of each pool's own noise; see the module
    docstring)."""
    return pool_representation(model, x, grid, batch_size, noise, draws, seed)["features"]
