"""The authors' All-CNN information pool: batch-norm features (conv -> BN -> ReLU) beside a
plain alpha convolution, both read from one fused convolution."""

from __future__ import annotations

from typing import Any

import keras

from ibvae.layers.conv import ConvBNReLU, PaddedConv2D, fused_linear
from ibvae.layers.pools import InformationPool


@keras.saving.register_keras_serializable(package="ibvae")
class InformationPoolBN(InformationPool):
    """The authors' All-CNN information pool, with batch-norm features.

    Features ``conv3x3/s -> BN -> ReLU`` (:class:`ConvBNReLU`), alpha logits from a
    parallel ``conv3x3/s`` (with bias) of the same input, then :class:`InformationDropout`
    (log-uniform prior by default, ``max_alpha`` 1.0 as in the authors' Cluttered MNIST
    code).

    Args:
        filters: Integer, the number of output channels.
        strides: Integer, the stride of both convolutions (2: a pooling layer).
        padding: ``"same"``, ``"valid"`` or ``"symmetric"`` (see :class:`PaddedConv2D`).
        weight_decay: Float >= 0, the authors' weight decay on the features' kernel (see
            :class:`ConvBNReLU`).
        max_alpha: Float > 0, the largest noise scale (default 1.0).
        **kwargs: :class:`InformationPool`'s other arguments (``prior``, ``min_alpha``,
            ``kl_weight``, ``sample_at_inference``, ``seed``).

    Call arguments:
        inputs: The input tensor.
        training: Python boolean, whether to draw the noise (and, for batch-norm features,
            use the batch's statistics).
        sample: Python boolean or ``None``; overrides ``training`` for the noise.

    Input shape:
        4D tensor ``(batch, height, width, channels)``.

    Output shape:
        4D tensor ``(batch, new_height, new_width, filters)``.

    Example:

    >>> import numpy as np
    >>> from ibvae.layers import InformationPoolBN
    >>> pool = InformationPoolBN(32, strides=2, padding="symmetric", kl_weight=0.5 / 50000)
    >>> x = np.random.rand(2, 96, 96, 1).astype("float32")
    >>> tuple(pool(x, training=True).shape)
    (2, 48, 48, 32)
    """

    def __init__(
        self,
        filters: int,
        strides: int = 2,
        padding: str = "same",
        weight_decay: float = 0.0,
        max_alpha: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(max_alpha=max_alpha, **kwargs)
        self.filters, self.strides = int(filters), int(strides)
        self.padding, self.weight_decay = padding, float(weight_decay)
        self.features = ConvBNReLU(filters, 3, strides, padding, weight_decay, name="features",
                                   dtype=self.dtype_policy)
        self.alpha_logits = PaddedConv2D(
            self.filters, 3, strides=self.strides, padding=padding, name="alpha_logits",
            dtype=self.dtype_policy,
        )

    def project(self, inputs, training=None):
        """The features' convolution and the alpha convolution as one (twice the filters,
        padded once; :func:`~ibvae.layers.conv.fused_linear`), then BN-ReLU on the features'
        half only, so batch norm and its statistics see what they saw unfused."""
        if not self.built:
            self.build(tuple(inputs.shape))
        h, alpha_logits = fused_linear(inputs, [self.features.conv, self.alpha_logits])
        return self.features.normalize(h, training=training), alpha_logits

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            filters=self.filters,
            strides=self.strides,
            padding=self.padding,
            weight_decay=self.weight_decay,
        )
        return config


