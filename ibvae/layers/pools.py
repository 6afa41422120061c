"""Information "pools": two parallel projections of one input, features (>= 0) and alpha
logits, followed by :class:`~ibvae.layers.noise.InformationDropout`. One line per layer:
``InformationDense(64)(x)``, ``InformationConv2D(32, 3, strides=2)(x)``.

A pool is its two sub-layers: a subclass only makes ``self.features`` and
``self.alpha_logits`` (any Keras layers mapping the input to the same shape; ``features``
may take ``training``) and adds its own arguments to ``get_config``. Building, the noise,
the KL and the KL map come from :class:`InformationPool`.

The pools here compute their two projections as one matmul / convolution with the two
kernels concatenated at call time (:func:`~ibvae.layers.conv.fused_linear`, by overriding
``project``): the kernels stay two variables with the names and shapes they always had, so
``.keras`` files saved before the fusion load unchanged.
"""

from __future__ import annotations

from typing import Any

import keras

from ibvae.errors import require
from ibvae.layers.conv import ConvBNReLU, PaddedConv2D, fused_linear
from ibvae.layers.noise import InformationDropout

DEFAULT_ACTIVATION = {"log_uniform": "relu", "log_normal": "softplus"}


class InformationPool(keras.layers.Layer):
    """Features and alpha logits of one input, then :class:`InformationDropout`.

    The keyword arguments are :class:`InformationDropout`'s (``prior``, ``max_alpha``,
    ``min_alpha``, ``kl_weight``, ``sample_at_inference``, ``seed``). Subclasses set
    ``self.features`` and ``self.alpha_logits`` in their constructor.
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
    """Dense Information Dropout: features ``Dense(units, activation)`` (ReLU for the
    log-uniform prior, softplus for the log-normal one, unless ``activation`` says otherwise)
    and alpha logits ``Dense(units)`` of the same input. Other keyword arguments as
    :class:`InformationPool`."""

    def __init__(
        self, units: int, activation: str | None = None, use_bias: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        require(int(units) >= 1, f"units must be >= 1, got {units!r}")
        self.units, self.use_bias = int(units), bool(use_bias)
        self.activation = _activation(activation, self.prior)
        self.features = keras.layers.Dense(
            self.units, activation=self.activation, use_bias=use_bias, name="features"
        )
        self.alpha_logits = keras.layers.Dense(self.units, name="alpha_logits")

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
    """Convolutional Information Dropout (the paper's "information pool"): features
    ``Conv2D(filters, kernel_size, strides, activation)`` and alpha logits from a parallel
    convolution of the same input with the same kernel size and stride. ``padding``:
    ``"same"``, ``"valid"`` or ``"symmetric"`` (see :mod:`ibvae.layers.conv`)."""

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


@keras.saving.register_keras_serializable(package="ibvae")
class InformationPoolBN(InformationPool):
    """The authors' information pool: features ``conv3x3/s-BN-ReLU`` (:class:`ConvBNReLU`),
    alpha logits from a parallel ``conv3x3/s`` (with bias) of the same input, then
    :class:`InformationDropout` (log-uniform prior by default, ``max_alpha`` 1.0 as in the
    authors' Cluttered MNIST code)."""

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
        self.features = ConvBNReLU(filters, 3, strides, padding, weight_decay, name="features")
        self.alpha_logits = PaddedConv2D(
            self.filters, 3, strides=self.strides, padding=padding, name="alpha_logits"
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


