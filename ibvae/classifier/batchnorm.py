"""The authors' batch-norm "dry run" before testing: re-estimate every BN's running statistics
in a noise-free pass, so that no statistic learned with the dropout noise on survives.

Every BN after the first pool is trained on noisy inputs (the noise multiplies the pools'
outputs), so its running mean / variance do not fit a noise-free test pass. The pass runs
compiled (``predict`` of a small wrapper model) on any backend.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from ibvae.classifier.models import AllCNN


class BatchNormMoments(keras.Model):
    """Wraps a classifier so ``predict`` (compiled and batched on any backend) returns, per
    batch and per :meth:`AllCNN.conv_bn_layers` layer, the concatenated mean and variance of
    the BN input in a noise-free training-mode pass."""

    def __init__(self, classifier: AllCNN, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.classifier = classifier

    def call(self, x):
        layers, sink = self.classifier.conv_bn_layers(), []

        def hook(layer, mean, var):
            sink.append((layer, mean, var))

        for layer in layers:
            layer.moments_hook = hook
        try:
            self.classifier(x, training=True, noise=False)
        finally:
            for layer in layers:
                layer.moments_hook = None
        found = {id(layer): (mean, var) for layer, mean, var in sink}
        missing = [layer.name for layer in layers if id(layer) not in found]
        if missing:
            raise RuntimeError(f"BN layers not reached by the forward pass: {missing}")
        return tuple(ops.expand_dims(ops.concatenate(found[id(layer)]), 0) for layer in layers)


def recalibrate_batchnorm(model: AllCNN, x: np.ndarray, batch_size: int = 128) -> int:
    """A pass over ``x`` with BN in training mode (batch statistics) and every dropout off;
    each BN's running mean / variance becomes the *average* of its batch means / variances
    over the pass (the authors let the running averages drift with momentum; an exact average
    leaves nothing learned with noise). A last partial batch is dropped, as in the authors'
    loop. Returns the number of batches. Only the running statistics change."""
    n = len(x) - len(x) % batch_size if len(x) >= batch_size else len(x)
    layers = model.conv_bn_layers()
    out = BatchNormMoments(model, name="bn_moments").predict(
        x[:n], batch_size=batch_size, verbose=0
    )
    out = out if isinstance(out, list | tuple) else [out]
    for layer, moments in zip(layers, out, strict=True):
        moments = np.asarray(moments, np.float64)
        c = moments.shape[1] // 2
        layer.bn.moving_mean.assign(moments[:, :c].mean(axis=0).astype(np.float32))
        layer.bn.moving_variance.assign(moments[:, c:].mean(axis=0).astype(np.float32))
    return -(-n // batch_size)
