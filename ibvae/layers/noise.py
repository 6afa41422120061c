"""The noise layers: Information Dropout and the Gaussian VAE sampler.

Both share one contract, so a model can swap one latent for the other:

* ``call([a, b], training=...)`` returns a noisy sample in training and the deterministic
  value (the median) at inference, unless Monte-Carlo sampling is asked for with
  ``sample=True`` in the call or ``sample_at_inference=True`` in the constructor;
* ``kl(a, b)`` returns the per-unit KL in nats (same shape as ``a``), in closed form;
* every call adds ``kl_weight * mean_over_batch(sum_over_units(KL))`` to the model's losses
  (``add_loss``). A VAE uses ``kl_weight = beta`` (KL per example); the paper's classifier uses
  ``kl_weight = beta / N_train``. ``kl_weight=0`` adds nothing.

Under a mixed-precision policy the noise is drawn in the layer's compute dtype (so the output
keeps that dtype in training and at inference) and the KL is computed in at least float32.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from ibvae import kl as klf
from ibvae.errors import IbvaeError, one_of, require

PRIORS = ("log_uniform", "log_normal")
PRIOR_SHAPES = ("layer", "unit")


def check_nonnegative(name: str, value: float, strict: bool = False) -> float:
    """``float(value)`` if it is ``> 0`` (``strict``) or ``>= 0``, else :class:`IbvaeError`."""
    ok = value > 0 if strict else value >= 0
    require(ok, f"{name} must be {'>' if strict else '>='} 0, got {value!r}")
    return float(value)


def sampling_on(training, sample, sample_at_inference: bool) -> bool:
    """Whether a noise layer draws its noise: ``sample`` when given, else in training or
    when the layer samples at inference too."""
    if sample is not None:
        return bool(sample)
    return bool(training) or sample_at_inference


def sum_units_mean_batch(per_unit):
    """Sum a per-unit KL over every non-batch axis, then average over the batch."""
    axes = tuple(range(1, len(per_unit.shape)))
    per_example = ops.sum(per_unit, axis=axes) if axes else per_unit
    return ops.mean(per_example)


class KLNoiseLayer(keras.layers.Layer):
    """Shared plumbing of the noise layers: seed, KL weight, Monte-Carlo flag, the check of
    the two same-shaped inputs. Subclasses define ``kl(a, b)`` and ``call``."""

    input_names = ("first", "second")

    def __init__(
        self,
        kl_weight: float = 1.0,
        sample_at_inference: bool = False,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.kl_weight = check_nonnegative("kl_weight", kl_weight)
        self.sample_at_inference = bool(sample_at_inference)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape) -> None:
        if not isinstance(input_shape, list | tuple) or len(input_shape) != 2:
            raise IbvaeError(
                f"{type(self).__name__} is called on a list [{self.input_names[0]}, "
                f"{self.input_names[1]}], got input shape {input_shape!r}"
            )
        a, b = (tuple(s) for s in input_shape)
        require(
            a == b,
            f"{self.input_names[0]} and {self.input_names[1]} must have the same shape, got "
            f"{a} and {b}",
        )
        self.built = True

    def build_for(self, a, b) -> None:
        """Build from two tensors, so ``kl`` works on a layer that was never called."""
        if not self.built:
            self.build([tuple(a.shape), tuple(b.shape)])

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def should_sample(self, training, sample) -> bool:
        return sampling_on(training, sample, self.sample_at_inference)

    def noise(self, like):
        """Standard normal noise shaped like ``like``, in the layer's compute dtype."""
        return keras.random.normal(ops.shape(like), dtype=self.compute_dtype, seed=self.seed_generator)

    def kl_dtype(self) -> str:
        """float32, or wider if the layer computes in a wider type."""
        return keras.backend.result_type(self.compute_dtype, "float32")

    def kl(self, a, b):
        """Per-unit KL (nats) of the layer's posterior for inputs ``[a, b]``."""
        raise NotImplementedError

    def add_weighted_kl(self, per_unit) -> None:
        """``add_loss(kl_weight * mean_batch(sum_units KL))``; callers skip it at weight 0."""
        self.add_loss(self.kl_weight * sum_units_mean_batch(per_unit))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            kl_weight=self.kl_weight, sample_at_inference=self.sample_at_inference, seed=self.seed
        )
        return config


@keras.saving.register_keras_serializable(package="ibvae")
class InformationDropout(KLNoiseLayer):
    """Information Dropout: multiplicative log-normal noise with a learned scale.

    The noise scale ``alpha = min_alpha + max_alpha * sigmoid(alpha_logits)`` is computed
    per unit and per input. In training the output is ``features * exp(alpha * eps)``,
    ``eps ~ N(0, 1)`` (reparameterised, so gradients reach both inputs); at inference it is
    ``features`` (the median of the noisy output), unless sampling is asked for. Every call
    adds ``kl_weight * mean_over_batch(sum_over_units(KL))`` to the layer's losses, so a
    compiled model adds it to its loss.

    Args:
        prior: ``"log_uniform"`` (for ReLU features; per-unit KL ``-log(alpha / alpha_top)``
            with ``alpha_top = max_alpha + min_alpha``, 0 at the largest alpha; improper,
            so the KL is known up to a constant) or ``"log_normal"`` (for softplus
            features; ``log z ~ N(mu, sigma^2)`` with trainable ``mu`` and ``sigma``,
            initialised at 0 and 1).
        max_alpha: Float > 0, scale of the sigmoid. The paper uses 0.7 (1.0 for Cluttered
            MNIST).
        min_alpha: Float >= 0 (> 0 for the log-uniform prior), floor on alpha that keeps
            the KL finite. Default 0.001, as in the authors' code.
        kl_weight: Float >= 0, the weight of the KL term added with ``add_loss``:
            ``beta`` for a VAE (KL per example), ``beta / N_train`` for the paper's
            classifier; 0 adds nothing (compute the KL with :meth:`kl`).
        sample_at_inference: Bool, draw noise at inference too (Monte-Carlo prediction).
        seed: Integer or ``None``, the seed of the layer's own ``SeedGenerator``.
        prior_shape: ``"layer"`` (one scalar ``mu`` and ``sigma`` for the layer) or
            ``"unit"`` (one per unit, shaped like the features without the batch axis,
            which must then be fully known). ``"unit"`` needs ``prior="log_normal"``.

    Call arguments:
        inputs: A list ``[features, alpha_logits]`` of two tensors of the same shape,
            ``features >= 0`` (ReLU or softplus outputs), ``alpha_logits`` unbounded.
        training: Python boolean, whether to draw the noise (training) or return
            ``features`` (inference).
        sample: Python boolean or ``None``; ``True`` draws the noise whatever ``training``
            says, ``False`` never draws it, ``None`` follows ``training`` and
            ``sample_at_inference``.

    Input shape:
        Two tensors of the same arbitrary shape, the first axis the batch.

    Output shape:
        The shape of ``features``.

    Example:

    >>> import numpy as np
    >>> from ibvae.layers import InformationDropout
    >>> layer = InformationDropout(max_alpha=0.7, seed=0)
    >>> features = np.ones((2, 3), "float32")
    >>> alpha_logits = np.zeros((2, 3), "float32")
    >>> z = layer([features, alpha_logits], training=True)  # features * exp(alpha * eps)
    >>> tuple(z.shape)
    (2, 3)
    >>> np.asarray(layer([features, alpha_logits]))  # inference: the features
    array([[1., 1., 1.],
           [1., 1., 1.]], dtype=float32)
    >>> np.asarray(layer.kl(features, alpha_logits)).round(3)  # nats per unit
    array([[0.692, 0.692, 0.692],
           [0.692, 0.692, 0.692]], dtype=float32)
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
        prior_shape: str = "layer",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            kl_weight=kl_weight, sample_at_inference=sample_at_inference, seed=seed, **kwargs
        )
        self.prior = one_of("prior", prior, PRIORS)
        self.prior_shape = one_of("prior_shape", prior_shape, PRIOR_SHAPES)
        require(
            self.prior == "log_normal" or self.prior_shape == "layer",
            "prior_shape='unit' needs prior='log_normal' (the log-uniform prior has no "
            "parameters)",
        )
        self.max_alpha = check_nonnegative("max_alpha", max_alpha, strict=True)
        self.min_alpha = check_nonnegative("min_alpha", min_alpha)
        require(
            self.prior != "log_uniform" or self.min_alpha > 0,
            "min_alpha must be > 0 with prior='log_uniform' (KL = -log alpha)",
        )
        self.alpha_top = self.max_alpha + self.min_alpha

    def build(self, input_shape) -> None:
        super().build(input_shape)
        if self.prior == "log_normal":
            shape = self.prior_parameter_shape(input_shape[0])
            self.prior_mu = self.add_weight(shape=shape, initializer="zeros", name="prior_mu")
            # sigma = exp(log_sigma) stays > 0 for any value of the trainable variable.
            self.prior_log_sigma = self.add_weight(
                shape=shape, initializer="zeros", name="prior_log_sigma"
            )

    def prior_parameter_shape(self, features_shape) -> tuple[int, ...]:
        """``()`` for one prior per layer; the features' shape without the batch axis for
        one per unit (broadcast against every example of a batch)."""
        if self.prior_shape == "layer":
            return ()
        unit_shape = tuple(features_shape)[1:]
        require(
            all(isinstance(s, int) for s in unit_shape),
            f"prior_shape='unit' needs the features' shape without the batch axis to be fully "
            f"known, got {tuple(features_shape)}",
        )
        return unit_shape

    @property
    def prior_sigma(self):
        """The log-normal prior's sigma (a tensor); only for ``prior='log_normal'``."""
        return ops.exp(self.prior_log_sigma)

    def alpha(self, alpha_logits):
        """Noise scale: ``min_alpha + max_alpha * sigmoid(alpha_logits)``."""
        return self.min_alpha + self.max_alpha * ops.sigmoid(alpha_logits)

    def kl(self, features, alpha_logits):
        """Per-unit KL (nats), same shape as ``features``; builds the layer if needed."""
        self.build_for(features, alpha_logits)
        return self.kl_given_alpha(features, self.alpha(alpha_logits))

    def kl_given_alpha(self, features, alpha):
        dtype = self.kl_dtype()
        alpha = ops.cast(alpha, dtype)
        if self.prior == "log_uniform":
            return klf.log_uniform_kl(alpha, self.alpha_top)
        mu, sigma = ops.cast(self.prior_mu, dtype), ops.cast(self.prior_sigma, dtype)
        return klf.log_normal_kl(ops.cast(features, dtype), alpha, mu, sigma)

    def call(self, inputs, training=None, sample=None):
        features, alpha_logits = inputs
        alpha = self.alpha(alpha_logits)  # once, for both the KL and the noise
        if self.kl_weight > 0:
            self.add_weighted_kl(self.kl_given_alpha(features, alpha))
        if not self.should_sample(training, sample):
            return features
        return features * ops.exp(alpha * self.noise(features))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            prior=self.prior,
            max_alpha=self.max_alpha,
            min_alpha=self.min_alpha,
            prior_shape=self.prior_shape,
        )
        return config


@keras.saving.register_keras_serializable(package="ibvae")
class GaussianSampler(KLNoiseLayer):
    """The standard VAE sampler, with the contract of :class:`InformationDropout`.

    In training the output is ``mean + exp(log_var / 2) * eps``, ``eps ~ N(0, 1)``
    (reparameterised); at inference it is ``mean``, unless sampling is asked for. Every call
    adds ``kl_weight * mean_over_batch(sum_over_units(KL))`` with
    ``KL = KL(N(mean, exp(log_var)) || N(0, 1))`` per unit, so a VAE can swap one latent
    for the other.

    Args:
        kl_weight: Float >= 0, the weight of the KL term added with ``add_loss`` (``beta``
            for a VAE); 0 adds nothing (compute the KL with :meth:`kl`).
        sample_at_inference: Bool, draw noise at inference too.
        seed: Integer or ``None``, the seed of the layer's own ``SeedGenerator``.

    Call arguments:
        inputs: A list ``[mean, log_var]`` of two tensors of the same shape.
        training: Python boolean, whether to sample (training) or return ``mean``.
        sample: Python boolean or ``None``; overrides ``training`` when given.

    Input shape:
        Two tensors of the same arbitrary shape, the first axis the batch.

    Output shape:
        The shape of ``mean``.

    Example:

    >>> import numpy as np
    >>> from ibvae.layers import GaussianSampler
    >>> sampler = GaussianSampler(kl_weight=1.0, seed=0)
    >>> mean, log_var = np.zeros((4, 2), "float32"), np.zeros((4, 2), "float32")
    >>> tuple(sampler([mean, log_var], training=True).shape)
    (4, 2)
    >>> float(np.asarray(sampler.kl(mean, log_var)).sum())  # N(0, 1) against N(0, 1)
    0.0
    """

    input_names = ("mean", "log_var")

    def kl(self, mean, log_var):
        """Per-unit KL (nats), same shape as ``mean``."""
        self.build_for(mean, log_var)
        dtype = self.kl_dtype()
        return klf.standard_normal_kl(ops.cast(mean, dtype), ops.cast(log_var, dtype))

    def call(self, inputs, training=None, sample=None):
        mean, log_var = inputs
        if self.kl_weight > 0:
            self.add_weighted_kl(self.kl(mean, log_var))
        if not self.should_sample(training, sample):
            return mean
        return mean + ops.exp(0.5 * log_var) * self.noise(mean)
