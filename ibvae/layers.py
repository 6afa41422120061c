"""Noise layers with a closed-form KL: Information Dropout, its Dense / Conv2D "pools", and
the Gaussian VAE sampler.

All of them share one contract so a model can swap one latent for another:

* ``call([a, b], training=...)`` returns a noisy sample in training and the deterministic
  value (the median) at inference, unless Monte-Carlo sampling is asked for with
  ``sample=True`` in the call or ``sample_at_inference=True`` in the constructor;
* ``kl(a, b)`` returns the per-unit KL in nats (same shape as ``a``), in closed form;
* every call adds ``kl_weight * mean_over_batch(sum_over_units(KL))`` to the model's losses
  (``add_loss``). A VAE uses ``kl_weight = beta`` (KL per example); the paper's classifier uses
  ``kl_weight = beta / N_train``. ``kl_weight=0`` adds nothing.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from ibvae import kl as klf
from ibvae.errors import IbvaeError

PRIORS = ("log_uniform", "log_normal")
_DEFAULT_ACTIVATION = {"log_uniform": "relu", "log_normal": "softplus"}


def _check_positive(name: str, value: float, allow_zero: bool = False) -> float:
    ok = value >= 0 if allow_zero else value > 0
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise IbvaeError(f"{name} must be {bound}, got {value!r}")
    return float(value)


def _check_prior(prior: str) -> str:
    if prior not in PRIORS:
        raise IbvaeError(f"prior must be one of {PRIORS}, got {prior!r}")
    return prior


def _check_same_shape(a_name: str, a_shape, b_name: str, b_shape) -> None:
    if tuple(a_shape) != tuple(b_shape):
        raise IbvaeError(
            f"{a_name} and {b_name} must have the same shape, got {tuple(a_shape)} and "
            f"{tuple(b_shape)}"
        )


def _sum_units_mean_batch(per_unit):
    """Sum a per-unit KL over every non-batch axis, then average over the batch."""
    axes = tuple(range(1, len(per_unit.shape)))
    per_example = ops.sum(per_unit, axis=axes) if axes else per_unit
    return ops.mean(per_example)


class _KLNoiseLayer(keras.layers.Layer):
    """Shared plumbing: seed, KL weight, Monte-Carlo flag, two same-shaped inputs."""

    input_names = ("first", "second")

    def __init__(
        self,
        kl_weight: float = 1.0,
        sample_at_inference: bool = False,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.kl_weight = _check_positive("kl_weight", kl_weight, allow_zero=True)
        self.sample_at_inference = bool(sample_at_inference)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape) -> None:
        if not isinstance(input_shape, list | tuple) or len(input_shape) != 2:
            raise IbvaeError(
                f"{type(self).__name__} is called on a list [{self.input_names[0]}, "
                f"{self.input_names[1]}], got input shape {input_shape!r}"
            )
        _check_same_shape(self.input_names[0], input_shape[0], self.input_names[1], input_shape[1])
        self.built = True

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def _should_sample(self, training, sample) -> bool:
        if sample is not None:
            return bool(sample)
        return bool(training) or self.sample_at_inference

    def kl(self, a, b):
        """Per-unit KL (nats) of the layer's posterior for inputs ``[a, b]``."""
        raise NotImplementedError

    def _add_weighted_kl(self, per_unit) -> None:
        """``add_loss(kl_weight * mean_batch(sum_units KL))``; callers skip it at weight 0."""
        self.add_loss(self.kl_weight * _sum_units_mean_batch(per_unit))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            kl_weight=self.kl_weight, sample_at_inference=self.sample_at_inference, seed=self.seed
        )
        return config


@keras.saving.register_keras_serializable(package="ibvae")
class InformationDropout(_KLNoiseLayer):
    """Multiplicative log-normal noise whose scale alpha is learned per unit and per input.

    Called on ``[features, alpha_logits]`` (same shape, ``features >= 0``):
    ``alpha = min_alpha + max_alpha * sigmoid(alpha_logits)``; in training the output is
    ``features * exp(alpha * N(0, 1))`` (reparameterised), at inference it is ``features``.

    Args:
        prior: ``"log_uniform"`` (ReLU features; KL = -log(alpha / alpha_top), 0 at the
            largest alpha) or ``"log_normal"`` (softplus features; log z ~ N(mu, sigma^2)
            with trainable scalars mu, sigma initialised at 0 and 1).
        max_alpha: scale of the sigmoid; the paper uses 0.7 (1.0 for Cluttered MNIST).
        min_alpha: floor on alpha, keeps the KL finite (official 0.001).
        kl_weight: weight of ``mean_batch(sum_units KL)`` added with ``add_loss``.
        sample_at_inference: draw noise at inference too (Monte-Carlo prediction).
        seed: seed of the layer's own ``SeedGenerator``.
    """

    input_names = ("features", "alpha_logits")

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
        super().__init__(
            kl_weight=kl_weight, sample_at_inference=sample_at_inference, seed=seed, **kwargs
        )
        self.prior = _check_prior(prior)
        self.max_alpha = _check_positive("max_alpha", max_alpha)
        self.min_alpha = _check_positive("min_alpha", min_alpha, allow_zero=True)
        if self.prior == "log_uniform" and self.min_alpha == 0:
            raise IbvaeError("min_alpha must be > 0 with prior='log_uniform' (KL = -log alpha)")
        self.alpha_top = self.max_alpha + self.min_alpha

    def build(self, input_shape) -> None:
        super().build(input_shape)
        if self.prior == "log_normal":
            self.prior_mu = self.add_weight(shape=(), initializer="zeros", name="prior_mu")
            # sigma = exp(log_sigma) stays > 0 for any value of the trainable variable.
            self.prior_log_sigma = self.add_weight(
                shape=(), initializer="zeros", name="prior_log_sigma"
            )

    @property
    def prior_sigma(self):
        """The log-normal prior's sigma (a tensor); only for ``prior='log_normal'``."""
        return ops.exp(self.prior_log_sigma)

    def alpha(self, alpha_logits):
        """Noise scale: ``min_alpha + max_alpha * sigmoid(alpha_logits)``."""
        return self.min_alpha + self.max_alpha * ops.sigmoid(alpha_logits)

    def kl(self, features, alpha_logits):
        """Per-unit KL (nats), same shape as ``features``."""
        return self._kl_given_alpha(features, self.alpha(alpha_logits))

    def _kl_given_alpha(self, features, alpha):
        if self.prior == "log_uniform":
            return klf.log_uniform_kl(alpha, self.alpha_top)
        return klf.log_normal_kl(features, alpha, self.prior_mu, self.prior_sigma)

    def call(self, inputs, training=None, sample=None):
        features, alpha_logits = inputs
        alpha = self.alpha(alpha_logits)  # once, for both the KL and the noise
        if self.kl_weight > 0:
            self._add_weighted_kl(self._kl_given_alpha(features, alpha))
        if not self._should_sample(training, sample):
            return features
        eps = keras.random.normal(ops.shape(features), seed=self.seed_generator)
        return features * ops.exp(alpha * eps)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(prior=self.prior, max_alpha=self.max_alpha, min_alpha=self.min_alpha)
        return config


@keras.saving.register_keras_serializable(package="ibvae")
class GaussianSampler(_KLNoiseLayer):
    """The standard VAE sampler with the same contract as :class:`InformationDropout`.

    Called on ``[mean, log_var]``; training output ``mean + exp(log_var / 2) * N(0, 1)``,
    inference output ``mean``; ``kl(mean, log_var)`` is ``KL(N(mean, exp(log_var)) || N(0, 1))``.
    """

    input_names = ("mean", "log_var")

    def kl(self, mean, log_var):
        """Per-unit KL (nats), same shape as ``mean``."""
        return klf.standard_normal_kl(mean, log_var)

    def call(self, inputs, training=None, sample=None):
        mean, log_var = inputs
        if self.kl_weight > 0:
            self._add_weighted_kl(self.kl(mean, log_var))
        if not self._should_sample(training, sample):
            return mean
        eps = keras.random.normal(ops.shape(mean), seed=self.seed_generator)
        return mean + ops.exp(0.5 * log_var) * eps


class InformationPool(keras.layers.Layer):
    """Two parallel projections of one input (features with an activation, alpha logits
    without) followed by :class:`InformationDropout`. Subclasses make the projections."""

    def __init__(
        self,
        activation: str | None = None,
        prior: str = "log_uniform",
        max_alpha: float = 0.7,
        min_alpha: float = 0.001,
        kl_weight: float = 1.0,
        sample_at_inference: bool = False,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prior = _check_prior(prior)
        self.activation = activation or _DEFAULT_ACTIVATION[prior]
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
    def kl_weight(self) -> float:
        return self.dropout.kl_weight

    def project(self, inputs, training=None):
        """``(features, alpha_logits)`` of an input, before the noise. ``training`` reaches
        projections that care (batch norm in a subclass)."""
        self._ensure_built(inputs)
        return self.features(inputs), self.alpha_logits(inputs)

    def kl(self, inputs):
        """Per-unit KL (nats) of the pool's output for ``inputs`` at inference: what a KL
        heatmap shows."""
        return self.dropout.kl(*self.project(inputs, training=False))

    def call(self, inputs, training=None, sample=None):
        features_and_logits = list(self.project(inputs, training=training))
        return self.dropout(features_and_logits, training=training, sample=sample)

    def compute_output_shape(self, input_shape):
        return self.features.compute_output_shape(input_shape)

    def build(self, input_shape) -> None:
        # Build the sub-layers explicitly so a reloaded model has their variables at once.
        for projection in self._projections():
            if not projection.built:
                projection.build(self._projection_input_shape(input_shape))
        out = self.compute_output_shape(input_shape)
        if not self.dropout.built:
            self.dropout.build([out, out])
        self.built = True

    def _ensure_built(self, inputs) -> None:
        if not self.built:
            self.build(tuple(inputs.shape))

    def _projections(self) -> list:
        return [self.features, self.alpha_logits]

    def _projection_input_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        d = self.dropout
        config.update(
            activation=self.activation,
            prior=d.prior,
            max_alpha=d.max_alpha,
            min_alpha=d.min_alpha,
            kl_weight=d.kl_weight,
            sample_at_inference=d.sample_at_inference,
            seed=d.seed,
        )
        return config


@keras.saving.register_keras_serializable(package="ibvae")
class InformationDense(InformationPool):
    """Dense Information Dropout in one line: ``InformationDense(64)(x)``.

    Features ``Dense(units, activation)`` (ReLU for the log-uniform prior, softplus for the
    log-normal one unless ``activation`` says otherwise) and alpha logits ``Dense(units)`` of
    the same input, then :class:`InformationDropout`. Other keyword arguments as that layer.
    """

    def __init__(self, units: int, use_bias: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if int(units) < 1:
            raise IbvaeError(f"units must be >= 1, got {units!r}")
        self.units = int(units)
        self.use_bias = bool(use_bias)
        self.features = keras.layers.Dense(
            self.units, activation=self.activation, use_bias=use_bias, name="features"
        )
        self.alpha_logits = keras.layers.Dense(self.units, name="alpha_logits")

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(units=self.units, use_bias=self.use_bias)
        return config


@keras.saving.register_keras_serializable(package="ibvae")
class InformationConv2D(InformationPool):
    """Convolutional Information Dropout (the paper's "information pool").

    Features ``Conv2D(filters, kernel_size, strides, activation)`` and alpha logits from a
    parallel ``Conv2D`` of the same input with the same kernel size and stride, then
    :class:`InformationDropout`.

    ``padding``: ``"same"`` / ``"valid"`` as in Keras, or ``"symmetric"``: pad
    ``(kernel_size - 1) // 2`` zeros on every side, then a valid convolution (same output size
    as ``"same"`` for odd kernels). With stride 2 on an even input, Keras' ``"same"`` pads only
    the bottom and right, which shows up as a bright last row and column in KL heatmaps. Note
    that ``"symmetric"`` does not remove the border effect there: the extra bottom/right row is
    never read, so it moves the padded border to the top/left. Only ``"valid"`` has no output
    that reads padding (at the price of a smaller map).
    """

    paddings = ("same", "valid", "symmetric")

    def __init__(
        self,
        filters: int,
        kernel_size: int = 3,
        strides: int = 1,
        padding: str = "same",
        use_bias: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if int(filters) < 1:
            raise IbvaeError(f"filters must be >= 1, got {filters!r}")
        if padding not in self.paddings:
            raise IbvaeError(f"padding must be one of {self.paddings}, got {padding!r}")
        self.filters, self.kernel_size, self.strides = int(filters), int(kernel_size), int(strides)
        self.padding, self.use_bias = padding, bool(use_bias)
        conv_padding = "valid" if padding == "symmetric" else padding
        pad = (self.kernel_size - 1) // 2
        self.pad = keras.layers.ZeroPadding2D(pad) if padding == "symmetric" and pad else None
        conv = dict(kernel_size=self.kernel_size, strides=self.strides, padding=conv_padding)
        self.feature_conv = keras.layers.Conv2D(
            self.filters, activation=self.activation, use_bias=use_bias, name="features", **conv
        )
        self.alpha_conv = keras.layers.Conv2D(self.filters, name="alpha_logits", **conv)

    def _padded(self, inputs):
        return self.pad(inputs) if self.pad is not None else inputs

    def features(self, inputs):
        return self.feature_conv(self._padded(inputs))

    def alpha_logits(self, inputs):
        return self.alpha_conv(self._padded(inputs))

    def project(self, inputs, training=None):
        self._ensure_built(inputs)
        padded = self._padded(inputs)
        return self.feature_conv(padded), self.alpha_conv(padded)

    def _projections(self) -> list:
        return [self.feature_conv, self.alpha_conv]

    def _projection_input_shape(self, input_shape):
        return self.pad.compute_output_shape(input_shape) if self.pad is not None else input_shape

    def compute_output_shape(self, input_shape):
        return self.feature_conv.compute_output_shape(self._projection_input_shape(input_shape))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            use_bias=self.use_bias,
        )
        return config
