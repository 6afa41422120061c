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
one posterior draw per image. Codes may have a **point mass** (a ReLU unit that is off gives
``z = 0`` exactly, for a large share of the images), and a plain Gaussian copula overstates the
dependence of such units: tied values get one normal score, so two binary units at correlation
0.9 (true mutual information 0.495 nats) come out at 0.827. So each unit's point mass (its most
frequent value, when it holds at least ``point_mass`` of the draws, 1% by default) is split
off as an indicator ``b_j = [z_j == atom_j]``, and ::

    TC(z) = TC(b) + sum_j H(z_j | b_j) - H(z | b)                                  (exact)

is estimated in its two parts (``total_correlation_discrete``, ``..._continuous``):

* ``TC(b)``, the dependence of the zero patterns: the discrete TC ``sum_j H(b_j) - H(b)``
  from the counts of the patterns (plug-in entropies; biased upward by about (patterns seen -
  1) / (2 N) nats) while the patterns are well sampled (distinct patterns at most 5% of the
  draws); with many units they are not (2^d patterns: 32 independent units and 10,000 draws
  give a plug-in "TC" of 13 nats), and then the Chow-Liu bound: the sum of the pairwise
  mutual informations over the maximum spanning tree, a lower bound on ``TC(b)``
  (``tc_discrete_estimator``: ``"counts"`` or ``"tree"``);
* the rest, the dependence of the values where units are *on*: a Gaussian copula of the
  continuous parts. Each unit's off-atom values are replaced by their normal scores
  ``Phi^-1(rank / (n_j + 1))`` among themselves (remaining ties share their average rank), the
  correlation matrix ``R`` of the scores is taken pairwise over the draws where both units are
  on (projected to the nearest positive-definite correlation matrix), and the term is the mean
  over draws of ``-0.5 log det R[on, on]`` over that draw's on units: exact when, given the
  pattern, the on-values follow that copula with the marginals they have when on.

A unit without a point mass is on everywhere, so for continuous codes the estimate is the plain
Gaussian copula, ``-0.5 log det R``, exactly as before; a unit with two values is all point
masses and enters through ``TC(b)`` only (the binary example: 0.495 nats, from the counts).
Ranks do not change under any increasing map of a unit, so the number is the same in z-space
and in log-space (and with any floor on ``log z``), and for continuous codes it is a lower
bound on their TC. Units with fewer than two distinct values (always off) are left out. The
copula part is biased upward by about ``d (d - 1) / (4 N)`` nats for ``d`` units and ``N``
draws; we report next to it the same estimate on the codes with every column shuffled
independently (``total_correlation_shuffled``: the value for independent units with the same
marginals, point masses included) and the difference (``total_correlation_excess``).
``tc_point_mass_units`` counts the units with a point mass.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.special import ndtri

from ibvae.errors import one_of
from ibvae.vae.model import VAE

ACTIVITY_THRESHOLD = 0.01
TC_SHUFFLES = 5
POINT_MASS = 0.01  # a value held by >= 1% of a unit's draws is a point mass
MAX_PATTERN_SHARE = 0.05  # zero patterns from counts while distinct patterns <= 5% of draws


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


def point_masses(
    codes: np.ndarray, point_mass: float = POINT_MASS
) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``codes`` (N, d): its most frequent value (the atom) and whether that value
    holds at least ``point_mass`` of the draws (and at least two of them)."""
    codes = np.asarray(codes, dtype=np.float64)
    atoms = np.zeros(codes.shape[1])
    has = np.zeros(codes.shape[1], bool)
    for j in range(codes.shape[1]):
        values, counts = np.unique(codes[:, j], return_counts=True)
        k = int(np.argmax(counts))
        atoms[j] = values[k]
        has[j] = counts[k] >= max(2, point_mass * len(codes))
    return atoms, has


def _entropy(counts: np.ndarray) -> float:
    p = np.asarray(counts, np.float64) / np.sum(counts)
    return float(-np.sum(p * np.log(p)))


def discrete_total_correlation(
    patterns: np.ndarray, max_patterns: float = MAX_PATTERN_SHARE, method: str | None = None
) -> tuple[float, str]:
    """TC (nats) of binary codes ``(N, d)`` and how it was estimated: ``"counts"``, the
    plug-in ``sum_j H(b_j) - H(b)`` from the counts of the patterns, while the distinct
    patterns seen are at most ``max_patterns`` of ``N`` (its upward bias is about (patterns -
    1) / (2 N) nats); beyond that the joint is undersampled (2^d patterns for ``N`` draws) and
    the plug-in mostly measures its own bias, so ``"tree"``: the sum of the pairwise mutual
    informations (from 2x2 counts) over the Chow-Liu maximum spanning tree, a lower bound on
    the TC (the best tree's TC), as the copula is for continuous codes. ``method``
    (``"counts"`` / ``"tree"``) forces one (the shuffled baseline uses the estimate's). 0 for
    fewer than two columns."""
    b = np.asarray(patterns, bool)
    n, d = b.shape
    if d < 2:
        return 0.0, "counts"
    joint_counts = np.unique(b, axis=0, return_counts=True)[1]
    marginal = sum(_entropy(np.bincount(col, minlength=2)[np.bincount(col, minlength=2) > 0])
                   for col in b.T.astype(np.int64))
    if method is None:
        method = "counts" if len(joint_counts) <= max_patterns * n else "tree"
    one_of("method", method, ("counts", "tree"))
    if method == "counts":
        return float(max(marginal - _entropy(joint_counts), 0.0)), "counts"
    f = b.astype(np.float64)
    n11 = f.T @ f
    n1 = np.diag(n11)
    cells = [n11, n1[:, None] - n11, n1[None, :] - n11, n - n1[:, None] - n1[None, :] + n11]
    pj = [n1[:, None], n1[:, None], n - n1[:, None], n - n1[:, None]]
    pk = [n1[None, :], n - n1[None, :], n1[None, :], n - n1[None, :]]
    mi = np.zeros((d, d))
    with np.errstate(invalid="ignore", divide="ignore"):
        for c, a, bb in zip(cells, pj, pk, strict=True):
            mi += np.where(c > 0, c / n * np.log(c * n / (a * bb)), 0.0)
    np.fill_diagonal(mi, 0.0)
    tree = minimum_spanning_tree(-np.triu(np.maximum(mi, 0.0), 1))
    return float(-tree.sum()), "tree"


def _pairwise_correlation(scores: np.ndarray, on: np.ndarray) -> np.ndarray:
    """Correlations of the columns of ``scores`` (N, d), each pair over the rows where both
    are ``on``; 0 where a pair shares fewer than 3 rows or one of them is constant there."""
    m = on.astype(np.float64)
    s = np.where(on, scores, 0.0)
    n = m.T @ m
    sx = s.T @ m  # [j, k]: sum of unit j's scores over the rows where k is on too
    sxx = (s * s).T @ m
    sxy = s.T @ s
    with np.errstate(invalid="ignore", divide="ignore"):
        num = n * sxy - sx * sx.T
        den = np.sqrt((n * sxx - sx**2) * (n * sxx.T - sx.T**2))
        r = num / den
    r = np.where((n >= 3) & (den > 1e-12), r, 0.0)
    np.fill_diagonal(r, 1.0)
    return np.clip(r, -1.0, 1.0)


def _nearest_correlation(r: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """``r`` with its eigenvalues raised to ``floor`` and rescaled to a unit diagonal (a
    pairwise correlation matrix need not be positive definite)."""
    w, v = np.linalg.eigh((r + r.T) / 2)
    if w.min() >= floor:
        return r
    c = (v * np.maximum(w, floor)) @ v.T
    d = np.sqrt(np.diag(c))
    return c / np.outer(d, d)


def _continuous_total_correlation(codes: np.ndarray, atoms: np.ndarray, has: np.ndarray,
                                  chunk: int = 2048) -> float:
    """The copula part (module docstring): mean over draws of ``-0.5 log det R[on, on]``."""
    n, d = codes.shape
    on = ~(has & (codes == atoms))
    scores = np.full((n, d), np.nan)
    for j in range(d):
        rows = on[:, j]
        scores[rows, j] = normal_scores(codes[rows, j : j + 1])[:, 0]
    # a unit whose on-values do not vary (e.g. binary) has no continuous part
    varies = np.array([len(np.unique(codes[on[:, j], j])) >= 2 for j in range(d)])
    if varies.sum() < 2:
        return 0.0
    scores, on = scores[:, varies], on[:, varies]
    r = _nearest_correlation(_pairwise_correlation(scores, on))
    patterns, counts = np.unique(on, axis=0, return_counts=True)
    total = 0.0
    eye = np.eye(r.shape[0])
    for a in range(0, len(patterns), chunk):
        m = patterns[a : a + chunk].astype(np.float64)
        sub = r[None] * (m[:, :, None] * m[:, None, :]) + eye[None] * (1.0 - m[:, :, None])
        _, logdet = np.linalg.slogdet(sub)
        total += float(np.sum(counts[a : a + chunk] * -0.5 * logdet))
    return total / n


def mixed_total_correlation(
    codes: np.ndarray, point_mass: float = POINT_MASS, discrete_method: str | None = None
) -> dict[str, Any]:
    """TC of codes ``(N, d)`` whose units may have a point mass (module docstring):
    ``total_correlation`` = ``total_correlation_discrete`` (the zero patterns', by
    :func:`discrete_total_correlation` with ``discrete_method``) +
    ``total_correlation_continuous`` (the copula of the on-values); ``tc_point_mass_units``,
    ``tc_discrete_estimator``."""
    codes = np.asarray(codes, dtype=np.float64)
    atoms, has = point_masses(codes, point_mass)
    discrete, how = discrete_total_correlation(codes[:, has] == atoms[has],
                                               method=discrete_method)
    continuous = _continuous_total_correlation(codes, atoms, has)
    return {
        "total_correlation": discrete + continuous,
        "total_correlation_discrete": discrete,
        "total_correlation_continuous": continuous,
        "tc_point_mass_units": int(has.sum()),
        "tc_discrete_estimator": how,
    }


def copula_total_correlation(
    codes: np.ndarray, seed: int = 0, shuffles: int = TC_SHUFFLES, point_mass: float = POINT_MASS
) -> dict[str, Any]:
    """TC of codes ``(N, d)`` by :func:`mixed_total_correlation` (a Gaussian copula, with each
    unit's point mass split off; see the module docstring): ``total_correlation`` with its
    ``_discrete`` and ``_continuous`` parts, ``total_correlation_shuffled`` (mean over
    ``shuffles`` independent column shuffles), ``total_correlation_excess`` (their difference),
    ``tc_units`` (the units used), ``tc_point_mass_units``. None for ``N <= tc_units`` (too few
    codes for a covariance of full rank); ``N`` should be many times the number of units for
    the estimate to mean much (the copula's bias is ~``d^2 / (4 N)``)."""
    codes = np.asarray(codes, dtype=np.float64)
    keep = varying_units(codes)
    keys = ("total_correlation", "total_correlation_discrete", "total_correlation_continuous",
            "total_correlation_shuffled", "total_correlation_excess")
    if keep.sum() < 2:
        return {**dict.fromkeys(keys, 0.0), "tc_units": int(keep.sum()),
                "tc_point_mass_units": int(point_masses(codes[:, keep], point_mass)[1].sum()),
                "tc_discrete_estimator": "counts"}
    if len(codes) <= keep.sum():  # a singular covariance: no estimate
        return {**dict.fromkeys(keys), "tc_units": int(keep.sum()), "tc_point_mass_units": None,
                "tc_discrete_estimator": None}
    codes = codes[:, keep]
    report = mixed_total_correlation(codes, point_mass)
    rng = np.random.default_rng(seed)
    how = report["tc_discrete_estimator"]  # the baseline estimates the same way
    null = [mixed_total_correlation(rng.permuted(codes, axis=0), point_mass, how)
            ["total_correlation"] for _ in range(shuffles)]
    shuffled = float(np.mean(null)) if null else float("nan")
    tc = report["total_correlation"]
    return {
        **report,
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
