"""The NumPy view of a VAE's latent that evaluation, metrics and sampling share: the posterior
and the prior in *prior space*, ``u = z`` for the Gaussian latent and ``u = log z ~
N(log max(f, 1e-4), alpha^2)`` for Information Dropout, where both are Gaussian.

It reads the latent layer's own maths (alpha, the closed-form KL), so a draw here is exactly
what the layer draws in training."""

from __future__ import annotations

from typing import Any

import numpy as np
from keras import ops

from ibvae import kl as klf
from ibvae.errors import IbvaeError

IMPROPER_PRIOR = (
    "the log-uniform prior is improper and cannot be sampled; sample the aggregate posterior "
    "instead (ibvae.vae.sampling.AggregatePosterior, or scripts/sample_vae.py --source "
    "aggregate)"
)


def as_numpy(x: Any) -> np.ndarray:
    """A backend tensor as a float64 NumPy array."""
    return np.asarray(ops.convert_to_numpy(x), dtype=np.float64)


class PriorSpace:
    """Posterior and prior of one VAE latent (``latent`` as in
    :class:`~ibvae.vae.config.VAEModelConfig`) as NumPy maths over flattened codes."""

    def __init__(self, latent: str, latent_layer: Any, latent_shape: tuple[int, ...]) -> None:
        self.latent, self.latent_layer, self.latent_shape = latent, latent_layer, latent_shape
        self.latent_dim = int(np.prod(latent_shape))
        self.multiplicative = latent != "gaussian"

    def noise_scale(self, b: np.ndarray) -> np.ndarray:
        """Posterior std in prior space: alpha for Information Dropout, ``exp(log_var / 2)``."""
        if self.multiplicative:
            return as_numpy(self.latent_layer.alpha(ops.convert_to_tensor(b, "float32")))
        return np.exp(0.5 * b)

    def posterior_u(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of the posterior in prior space (see the module docstring)."""
        if self.multiplicative:
            return np.log(np.maximum(a, klf.FEATURE_FLOOR)), self.noise_scale(b)
        return a, self.noise_scale(b)

    def u_to_z(self, u: np.ndarray) -> np.ndarray:
        """Decoder input of a prior-space code."""
        return np.exp(u) if self.multiplicative else u

    def sample_posterior(self, a: np.ndarray, b: np.ndarray, eps: np.ndarray) -> np.ndarray:
        """A posterior draw for standard normal ``eps``, exactly as the latent layer draws it
        (``z = f * exp(alpha * eps)`` keeps the ReLU zeros at 0)."""
        if self.multiplicative:
            return a * np.exp(self.noise_scale(b) * eps)
        return a + np.exp(0.5 * b) * eps

    def kl_per_example(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Closed-form KL per example (summed over units), from the latent layer's maths; the
        flattened codes are given back their latent shape first, which a per-unit prior needs."""
        shape = (len(a), *self.latent_shape)
        kl = self.latent_layer.kl(
            ops.convert_to_tensor(np.reshape(a, shape), "float32"),
            ops.convert_to_tensor(np.reshape(b, shape), "float32"),
        )
        return as_numpy(ops.sum(ops.reshape(kl, (len(a), -1)), axis=-1))

    def prior(self) -> tuple[Any, Any] | None:
        """``(mu, sigma)`` of the prior in prior space: floats, or arrays of ``latent_dim``
        (flattened) for a per-unit prior; None for the improper log-uniform prior."""
        if self.latent == "gaussian":
            return 0.0, 1.0
        if self.latent == "information_dropout_lognormal":
            layer = self.latent_layer
            mu = as_numpy(layer.prior_mu).reshape(-1)
            sigma = as_numpy(layer.prior_sigma).reshape(-1)
            return (float(mu[0]), float(sigma[0])) if mu.size == 1 else (mu, sigma)
        return None

    def sample_prior(self, n: int, seed: int | None = None) -> np.ndarray:
        """``n`` codes from the prior, ``(n, latent_dim)``; the log-uniform prior refuses."""
        prior = self.prior()
        if prior is None:
            raise IbvaeError(IMPROPER_PRIOR)
        if n < 1:
            raise IbvaeError(f"the number of samples must be >= 1, got {n}")
        eps = np.random.default_rng(seed).standard_normal((n, self.latent_dim))
        return self.u_to_z(prior[0] + prior[1] * eps)
