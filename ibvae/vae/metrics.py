"""Latent statistics that compare across latents: active units and total correlation.

Both are computed in **z-space**, the decoder's input, for every latent (``z = m + s eps``
for the Gaussian, ``z = f exp(alpha eps)`` for Information Dropout), so no floor enters: a
ReLU unit that is off gives ``z = 0`` exactly, and ``log 0`` is never taken.

**Active units (one rule for every latent).** Unit ``j`` is active when the input explains
more than 1% of its variance under the aggregate posterior::

    activity_j = Var_x(E_q[z_j | x]) / Var(z_j) > 0.01,
    Var(z_j)   = Var_x(E_q[z_j | x]) + E_x[Var_q(z_j | x)]      (law of total variance)

with the posterior moments in closed form (Gaussian: ``m``, ``s^2``; log-normal noise:
``f exp(alpha^2 / 2)``, ``f^2 exp(alpha^2) (exp(alpha^2) - 1)``). This is Burda et al.'s
``Var_x E_q[z] > 0.01`` divided by the unit's aggregate variance, which is 1 (the prior's)
for a Gaussian VAE whose aggregate posterior matches its prior; the division makes the rule
independent of the scale of ``z``, which the multiplicative latents do not fix. A unit whose
code never varies (a dead ReLU unit: 0 for every image) has activity 0.

**Total correlation.** ``TC = sum_j H(z_j) - H(z)`` of the aggregate posterior, estimated on
one posterior draw per image with a Gaussian copula: each unit's draws are replaced by their
normal scores ``Phi^-1(rank / (N + 1))`` (tied values, e.g. the exact zeros of an off ReLU
unit, share their average rank), and ``TC = -0.5 log det R`` with ``R`` the correlation matrix
of the scores. Ranks do not change under any increasing map of a unit, so the number is the
same in z-space and in log-space (and with any floor on ``log z``), and it is a lower bound on
the TC of continuous codes. Units with fewer than two distinct values (always off) are left
out. The estimator is biased upward by about ``d (d - 1) / (4 N)`` nats for ``d`` units and
``N`` draws; we report next to it the same estimate on the same scores with every column
shuffled independently (``total_correlation_shuffled``: the value for independent units with
the same marginals) and the difference (``total_correlation_excess``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import ndtri

from ibvae.vae.model import VAE

ACTIVITY_THRESHOLD = 0.01
TC_SHUFFLES = 5


def posterior_moments(model: VAE, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of ``q(z | x)`` per image and unit, in z-space, for the latent
    layer's inputs ``(a, b)`` (as :meth:`VAE.posterior` returns them)."""
    scale = model.noise_scale(b)
    if not model.multiplicative:
        return a, np.square(scale)
    var_log = np.square(scale)
    mean = a * np.exp(var_log / 2)
    return mean, np.square(a) * np.exp(var_log) * np.expm1(var_log)


def unit_activity(mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """``Var_x(E_q[z | x]) / (Var_x(E_q[z | x]) + E_x[Var_q(z | x)])`` per unit, from the
    posterior means and variances ``(N, d)``; 0 for a unit whose code never varies."""
    between = np.var(mean, axis=0)
    total = between + np.mean(var, axis=0)
    return np.divide(between, total, out=np.zeros_like(between), where=total > 0)


def count_active(activity: np.ndarray, threshold: float = ACTIVITY_THRESHOLD) -> int:
    """The number of units whose activity exceeds ``threshold``."""
    return int(np.sum(np.asarray(activity) > threshold))


def normal_scores(codes: np.ndarray) -> np.ndarray:
    """Each column of ``codes`` (N, d) replaced by ``Phi^-1(rank / (N + 1))``; tied values
    share their average rank."""
    codes = np.asarray(codes, dtype=np.float64)
    n = len(codes)
    scores = np.empty_like(codes)
    for j in range(codes.shape[1]):
        _, inverse, counts = np.unique(codes[:, j], return_inverse=True, return_counts=True)
        mid_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based average rank of each value
        scores[:, j] = ndtri(mid_rank / (n + 1))[inverse.reshape(-1)]
    return scores


def varying_units(codes: np.ndarray) -> np.ndarray:
    """Boolean mask of the columns of ``codes`` with at least two distinct values."""
    codes = np.asarray(codes)
    return np.any(codes != codes[:1], axis=0)


def gaussian_total_correlation(u: np.ndarray) -> float:
    """TC of a full-covariance Gaussian fitted to ``u`` (N, d):
    ``0.5 (sum log diag C - log det C)`` nats; 0 exactly when ``C`` is diagonal."""
    cov = np.atleast_2d(np.cov(u, rowvar=False))
    _, logdet = np.linalg.slogdet(cov)
    return float(0.5 * (np.sum(np.log(np.diag(cov))) - logdet))


def copula_total_correlation(
    codes: np.ndarray, seed: int = 0, shuffles: int = TC_SHUFFLES
) -> dict[str, Any]:
    """Gaussian-copula TC of codes ``(N, d)`` (see the module docstring): ``total_correlation``,
    ``total_correlation_shuffled`` (mean over ``shuffles`` independent column shuffles),
    ``total_correlation_excess`` (their difference), ``tc_units`` (the units used). None for
    ``N <= tc_units`` (too few codes for a covariance of full rank); ``N`` should be many times
    the number of units for the estimate to mean much (the bias is ~``d^2 / (4 N)``)."""
    codes = np.asarray(codes, dtype=np.float64)
    keep = varying_units(codes)
    if keep.sum() < 2:
        zero = {"total_correlation": 0.0, "total_correlation_shuffled": 0.0}
        return {**zero, "total_correlation_excess": 0.0, "tc_units": int(keep.sum())}
    if len(codes) <= keep.sum():  # a singular covariance: no estimate
        none = dict.fromkeys(("total_correlation", "total_correlation_shuffled"))
        return {**none, "total_correlation_excess": None, "tc_units": int(keep.sum())}
    scores = normal_scores(codes[:, keep])
    tc = gaussian_total_correlation(scores)
    rng = np.random.default_rng(seed)
    null = [gaussian_total_correlation(rng.permuted(scores, axis=0)) for _ in range(shuffles)]
    shuffled = float(np.mean(null)) if null else float("nan")
    return {
        "total_correlation": tc,
        "total_correlation_shuffled": shuffled,
        "total_correlation_excess": tc - shuffled,
        "tc_units": int(keep.sum()),
    }


def posterior_draws(model: VAE, a: np.ndarray, b: np.ndarray, seed: int = 0) -> np.ndarray:
    """One draw of ``z`` per image, as the latent layer draws it (exact zeros stay 0)."""
    return model.sample_posterior(a, b, np.random.default_rng(seed).standard_normal(a.shape))


def total_correlation(model: VAE, x: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """The Gaussian-copula TC of the aggregate posterior of ``model`` over images ``x`` (the
    evaluation targets): one posterior draw of ``z`` per image; see the module docstring."""
    a, b = model.posterior(x)
    return copula_total_correlation(posterior_draws(model, a, b, seed), seed=seed)


def unit_statistics(model: VAE, x: np.ndarray) -> dict[str, Any]:
    """Active units by the one rule of the module docstring (``active_units``,
    ``unit_activity``), and diagnostics that exist for one latent only, under their own
    names: ``burda_active_units`` (Gaussian: ``Var_x E_q[z] > 0.01``, the prior being
    ``N(0, 1)``) and ``mean_posterior_std``; for Information Dropout ``mean_alpha``,
    ``units_at_max_alpha``, ``zero_code_fraction`` and ``dead_units`` (code 0 for every
    image); for the log-normal latent the learned ``prior_mu``, ``prior_sigma``."""
    a, b = model.posterior(x)
    mean, var = posterior_moments(model, a, b)
    activity = unit_activity(mean, var)
    stats: dict[str, Any] = {
        "active_units": count_active(activity),
        "unit_activity": activity,
    }
    std = model.noise_scale(b)
    if model.multiplicative:
        top = model.latent_layer.alpha_top
        stats["mean_alpha"] = std.mean(axis=0)
        stats["units_at_max_alpha"] = int(np.sum(std.mean(axis=0) > 0.99 * top))
        stats["zero_code_fraction"] = np.mean(a <= 0, axis=0)
        stats["dead_units"] = int(np.sum(np.all(a <= 0, axis=0)))
    else:
        stats["burda_active_units"] = count_active(np.var(a, axis=0))
        stats["mean_posterior_std"] = std.mean(axis=0)
    prior = model.prior()
    if prior is not None and model.multiplicative:
        stats["prior_mu"], stats["prior_sigma"] = prior
    return stats
