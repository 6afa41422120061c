"""Information "pools": two parallel projections of one input, features (>= 0) and alpha
logits, followed by :class:`~ibvae.layers.noise.InformationDropout`. One line per layer:
``InformationDense(64)(x)``, ``InformationConv2D(32, 3, strides=2)(x)``; the authors'
All-CNN pool with batch-norm features is :mod:`ibvae.layers.pool_bn`.

A pool is its two sub-layers: a subclass only makes ``self.features`` and
``self.alpha_logits`` (any Keras layers mapping the input to the same shape; ``features``
may take ``training``) and adds its own arguments to ``get_config``. Building, the noise,
the KL and the KL map come from :class:`InformationPool`.

The pools here (and :class:`~ibvae.layers.pool_bn.InformationPoolBN`) compute their two
projections as one matmul / convolution with the two kernels concatenated at call time
(:func:`~ibvae.layers.conv.fused_linear`, by overriding ``project``): the kernels stay two
variables with their own names and shapes, the saved layout of two separate projections.
"""

from __future__ import annotations

from typing import Any

import keras

from ibvae.errors import require
from ibvae.layers.conv import PaddedConv2D, fused_linear
from ibvae.layers.noise import InformationDropout

DEFAULT_ACTIVATION = {"log_uniform": "relu", "log_normal": "softplus"}


class InformationPool(keras.layers.Layer):
    """Base of the information pools: two projections of one input, then the noise.

    A pool computes ``features`` and ``alpha_logits`` of the same input with two layers
    and applies :class:`InformationDropout` to them. A subclass only sets
    ``self.features`` and ``self.alpha_logits`` in its constructor (any two Keras layers
    mapping the input to the same shape; ``features`` may take ``training``) and adds its own
    arguments to ``get_config``; building, the noise, the KL term and the KL map
    (:meth:`kl`) come from this class.

    Args:
        prior: ``"log_uniform"`` (ReLU features by default) or ``"log_normal"`` (softplus
            features by default); see :class:`InformationDropout`.
        max_alpha: Float > 0, the largest noise scale (see :class:`InformationDropout`).
        min_alpha: Float >= 0, the floor on the noise scale.
        kl_weight: Float >= 0, the weight of the KL term added with ``add_loss``
            (``beta / N_train`` for the paper's classifier scaling).
        sample_at_inference: Bool, draw noise at inference too.
        seed: Integer or ``None``, the seed of the noise.

    Call arguments:
        inputs: The input tensor.
        training: Python boolean, whether to draw the noise (and, for batch-norm features,
            use the batch's statistics).
        sample: Python boolean or ``None``; overrides ``training`` for the noise.

    Input shape:
        Whatever ``features`` and ``alpha_logits`` accept.

    Output shape:
        ``features``' output shape.

    Example:

    >>> import keras, numpy as np
    >>> from ibvae.layers import InformationPool
    >>> class DensePool(InformationPool):
    ...     def __init__(self, units, **kwargs):
    ...         super().__init__(**kwargs)
    ...         self.units = units
    ...         self.features = keras.layers.Dense(units, activation="relu")
    ...         self.alpha_logits = keras.layers.Dense(units)
    ...     def get_config(self):
    ...         return {**super().get_config(), "units": self.units}
    >>> pool = DensePool(4, seed=0)
    >>> x = np.random.rand(2, 8).astype("float32")
    >>> tuple(pool(x, training=True).shape), tuple(pool.kl(x).shape)
    ((2, 4), (2, 4))
    """

    features: keras.layers.Layer
    alpha_logits: keras.layers.Layer

    def __init__(
        self,
        prior: str = "log_uniform",
        max_alpha: float = 0.7,
        min_alpha: float = 0.001,
        kl_weight: float = 1.0,
        sample_at_inference: bool = False,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dropout = InformationDropout(
            prior=prior,
            max_alpha=max_alpha,
            min_alpha=min_alpha,
            kl_weight=kl_weight,
            sample_at_inference=sample_at_inference,
            seed=seed,
            name="information_dropout",
            dtype=self.dtype_policy,
        )

    @property
    def prior(self) -> str:
        return self.dropout.prior

    @property
    def kl_weight(self) -> float:
        return self.dropout.kl_weight

    def build(self, input_shape) -> None:
        # Build the sub-layers explicitly so a reloaded model has their variables at once.
        self.features.build(input_shape)
        self.alpha_logits.build(input_shape)
        out = self.compute_output_shape(input_shape)
        self.dropout.build([out, out])
        self.built = True

    def compute_output_shape(self, input_shape):
        return self.features.compute_output_shape(input_shape)

    def project(self, inputs, training=None):
        """``(features, alpha_logits)`` of an input, before the noise; ``training`` reaches
        a features layer that cares (batch norm)."""
        if not self.built:
            self.build(tuple(inputs.shape))
        return self.features(inputs, training=training), self.alpha_logits(inputs)

    def kl(self, inputs):
        """Per-unit KL (nats) of the pool's output for ``inputs`` at inference: what a KL
        heatmap shows."""
        return self.dropout.kl(*self.project(inputs, training=False))

    def call(self, inputs, training=None, sample=None):
        features, alpha_logits = self.project(inputs, training=training)
        return self.dropout([features, alpha_logits], training=training, sample=sample)

    def get_config(self) -> dict:
        config = super().get_config()
        d = self.dropout
        config.update(
            prior=d.prior,
            max_alpha=d.max_alpha,
            min_alpha=d.min_alpha,
            kl_weight=d.kl_weight,
            sample_at_inference=d.sample_at_inference,
            seed=d.seed,
        )
        return config


def _activation(activation: str | None, prior: str) -> str:
    return activation or DEFAULT_ACTIVATION.get(prior, "relu")


@keras.saving.register_keras_serializable(package="ibvae")
class InformationDense(InformationPool):
    """Dense Information Dropout: ``Dense`` features and ``Dense`` alpha logits, then noise.

    Features ``Dense(units, activation)`` (ReLU for the log-uniform prior, softplus for the
    log-normal one, unless ``activation`` says otherwise) and alpha logits ``Dense(units)``
    (linear) of the same input, then :class:`InformationDropout`.

    Args:
        units: Integer >= 1, the number of output units.
        activation: Activation of the features, or ``None`` for the prior's default.
        use_bias: Bool, whether the features' ``Dense`` has a bias.
        **kwargs: :class:`InformationPool`'s arguments: ``prior`` (``"log_uniform"``,
            ReLU features by default, or ``"log_normal"``, softplus features), ``max_alpha``
            (default 0.7), ``min_alpha``, ``kl_weight`` (``beta / N_train`` for the paper's
            classifier scaling), ``sample_at_inference``, ``seed``; and Keras' layer
            arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: The input tensor.
        training: Python boolean, whether to draw the noise (and, for batch-norm features,
            use the batch's statistics).
        sample: Python boolean or ``None``; overrides ``training`` for the noise.

    Input shape:
        N-D tensor ``(batch, ..., input_dim)``.

    Output shape:
        N-D tensor ``(batch, ..., units)``.

    Example:

    >>> import numpy as np
    >>> from ibvae.layers import InformationDense
    >>> pool = InformationDense(16, kl_weight=1.0 / 60000, seed=0)
    >>> x = np.random.rand(8, 784).astype("float32")
    >>> tuple(pool(x, training=True).shape)
    (8, 16)
    >>> tuple(pool.kl(x).shape)  # per-unit KL in nats, at inference
    (8, 16)
    >>> len(pool.losses)  # the weighted KL of the last call
    1
    """

    def __init__(
        self, units: int, activation: str | None = None, use_bias: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        require(int(units) >= 1, f"units must be >= 1, got {units!r}")
        self.units, self.use_bias = int(units), bool(use_bias)
        self.activation = _activation(activation, self.prior)
        # the sub-layers share this layer's dtype policy (a per-layer mixed_float16 too)
        self.features = keras.layers.Dense(
            self.units, activation=self.activation, use_bias=use_bias, name="features",
            dtype=self.dtype_policy,
        )
        self.alpha_logits = keras.layers.Dense(self.units, name="alpha_logits",
                                               dtype=self.dtype_policy)

    def project(self, inputs, training=None):
        """Both projections as one matmul (:func:`~ibvae.layers.conv.fused_linear`)."""
        if not self.built:
            self.build(tuple(inputs.shape))
        features, alpha_logits = fused_linear(inputs, [self.features, self.alpha_logits])
        return features, alpha_logits

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(units=self.units, activation=self.activation, use_bias=self.use_bias)
        return config


@keras.saving.register_keras_serializable(package="ibvae")
class InformationConv2D(InformationPool):
    """Convolutional Information Dropout (the paper's "information pool").

    Features ``PaddedConv2D(filters, kernel_size, strides, activation)`` and alpha logits
    from a parallel convolution of the same input with the same kernel size and stride,
    then :class:`InformationDropout`. :meth:`kl` of an input is its KL map (what the KL
    heatmaps show).

    Args:
        filters: Integer >= 1, the number of output channels.
        kernel_size: Integer, the side of the square kernel of both convolutions.
        strides: Integer, their stride.
        padding: ``"same"``, ``"valid"`` or ``"symmetric"`` (see :class:`PaddedConv2D`).
        activation: Activation of the features, or ``None`` for the prior's default.
        use_bias: Bool, whether the features' convolution has a bias.
        **kwargs: :class:`InformationPool`'s arguments: ``prior`` (``"log_uniform"``,
            ReLU features by default, or ``"log_normal"``, softplus features), ``max_alpha``
            (default 0.7), ``min_alpha``, ``kl_weight`` (``beta / N_train`` for the paper's
            classifier scaling), ``sample_at_inference``, ``seed``; and Keras' layer
            arguments (``name``, ``dtype``, ...).

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
    >>> from ibvae.layers import InformationConv2D
    >>> pool = InformationConv2D(8, 3, strides=2, padding="symmetric", seed=0)
    >>> x = np.random.rand(2, 32, 32, 3).astype("float32")
    >>> tuple(pool(x, training=True).shape)
    (2, 16, 16, 8)
    >>> kl_map = np.asarray(pool.kl(x)).sum(axis=-1)  # KL per position, summed over channels
    >>> kl_map.shape
    (2, 16, 16)
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int = 3,
        strides: int = 1,
        padding: str = "same",
        activation: str | None = None,
        use_bias: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        require(int(filters) >= 1, f"filters must be >= 1, got {filters!r}")
        self.filters, self.kernel_size, self.strides = int(filters), int(kernel_size), int(strides)
        self.activation = _activation(activation, self.prior)
        self.use_bias = bool(use_bias)
        conv = dict(kernel_size=self.kernel_size, strides=self.strides, padding=padding)
        conv["dtype"] = self.dtype_policy  # the sub-layers share this layer's dtype policy
        self.features = PaddedConv2D(
            self.filters, activation=self.activation, use_bias=use_bias, name="features", **conv
        )
        self.alpha_logits = PaddedConv2D(self.filters, name="alpha_logits", **conv)
        self.padding = padding

    def project(self, inputs, training=None):
        """Both projections as one convolution with twice the filters, padded once
        (:func:`~ibvae.layers.conv.fused_linear`)."""
        if not self.built:
            self.build(tuple(inputs.shape))
        features, alpha_logits = fused_linear(inputs, [self.features, self.alpha_logits])
        return features, alpha_logits

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            activation=self.activation,
            use_bias=self.use_bias,
        )
        return config
