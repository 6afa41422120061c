"""Log-normal dropout with a fixed scale: Information Dropout's noise without the learned
alpha or the KL, the control for what learning alpha adds."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from ibvae.layers.noise import check_nonnegative, sampling_on


@keras.saving.register_keras_serializable(package="ibvae")
class LogNormalDropout(keras.layers.Layer):
    """Multiplicative log-normal noise with a fixed scale: Information Dropout's noise with
    ``alpha`` a constant instead of a learned function of the input, and no KL term.

    The control that separates what Information Dropout gains by *learning* where to put its
    noise from what noise of that size alone does: in training the output is
    ``x * exp(alpha * eps)``, ``eps ~ N(0, 1)``; at inference ``x`` (the median), unless
    sampling is asked for. It adds no loss and has no weights.

    Args:
        alpha: Float > 0, the standard deviation of ``log eps`` (the noise's log-scale).
        sample_at_inference: Bool, draw noise at inference too.
        seed: Integer or ``None``, the seed of the layer's own ``SeedGenerator``.

    Call arguments:
        inputs: A tensor of any shape.
        training: Python boolean, whether to add the noise (training) or return ``inputs``.
        sample: Python boolean or ``None``; overrides ``training`` when given.

    Input shape:
        Arbitrary, the first axis the batch.

    Output shape:
        The shape of the input.

    Example:

    >>> import numpy as np
    >>> from ibvae.layers import LogNormalDropout
    >>> noise = LogNormalDropout(alpha=0.5, seed=0)
    >>> x = np.ones((2000, 50), "float32")
    >>> z = np.asarray(noise(x, training=True))
    >>> round(float(np.log(z).std()), 1)  # the log-scale is alpha
    0.5
    >>> bool((np.asarray(noise(x)) == x).all())  # inference: the median, x itself
    True
    """

    def __init__(
        self,
        alpha: float = 0.7,
        sample_at_inference: bool = False,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.alpha = check_nonnegative("alpha", alpha, strict=True)
        self.sample_at_inference = bool(sample_at_inference)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def compute_output_shape(self, input_shape):
        return input_shape

    def draw(self, x, seed_generator=None):
        """One draw of ``x * exp(alpha * eps)`` (the layer's own seed unless one is given)."""
        eps = keras.random.normal(ops.shape(x), dtype=self.compute_dtype,
                                  seed=seed_generator or self.seed_generator)
        return x * ops.exp(ops.cast(self.alpha, self.compute_dtype) * eps)

    def call(self, inputs, training=None, sample=None):
        on = sampling_on(training, sample, self.sample_at_inference)
        return self.draw(inputs) if on else inputs

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(alpha=self.alpha, sample_at_inference=self.sample_at_inference,
                      seed=self.seed)
        return config
