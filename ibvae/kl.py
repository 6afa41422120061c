"""Closed-form KL divergences, per unit, in nats, written with ``keras.ops`` only.

This is the one place the maths lives; the layers and the evaluation code call these.

* Information Dropout, ReLU features, log-uniform prior on z (Achille & Soatto, eq. 7):
  ``KL = -log(alpha) + const``. We use the official constant, ``log(alpha_top)`` with
  ``alpha_top = max_alpha + min_alpha`` (the largest alpha the layer can emit), so the KL is
  0 at the largest alpha and positive below it.
* Information Dropout, softplus features, log-normal prior ``log z ~ N(mu, sigma^2)``: the
  posterior is ``log z ~ N(log f, alpha^2)`` so the KL is between two Gaussians. ``f`` is
  clamped to ``FEATURE_FLOOR`` (the official code's ``max(f, 1e-4)``) so ``log f`` is finite.
* Gaussian sampler (standard VAE): ``KL(N(m, s^2) || N(0, 1))`` with ``s^2 = exp(log_var)``.
"""

from __future__ import annotations

from keras import ops

FEATURE_FLOOR = 1e-4


def log_uniform_kl(alpha, alpha_top: float):
    """Per-unit KL for the log-uniform prior: ``-log(alpha / alpha_top)`` (0 at ``alpha_top``)."""
    return -ops.log(alpha / alpha_top)


def gaussian_kl(mean_q, std_q, mean_p, std_p):
    """``KL(N(mean_q, std_q^2) || N(mean_p, std_p^2))``, elementwise, with broadcasting."""
    var_ratio = ops.square(std_q / std_p)
    return 0.5 * (var_ratio + ops.square((mean_q - mean_p) / std_p) - 1.0 - ops.log(var_ratio))


def log_normal_kl(features, alpha, mu, sigma):
    """Per-unit KL for the log-normal prior: ``KL(N(log f, alpha^2) || N(mu, sigma^2))``."""
    log_f = ops.log(ops.maximum(features, FEATURE_FLOOR))
    return gaussian_kl(log_f, alpha, mu, sigma)


def standard_normal_kl(mean, log_var):
    """Per-unit KL of the VAE sampler: ``KL(N(mean, exp(log_var)) || N(0, 1))``."""
    return 0.5 * (ops.square(mean) + ops.exp(log_var) - 1.0 - log_var)
