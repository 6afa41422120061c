"""Evaluation of a trained VAE: ELBO, importance-weighted NLL, active units, total correlation.

Everything is computed from the model's parts (``encoder``, ``latent_layer``, ``decoder``)
with NumPy noise drawn from a fixed seed, so the numbers do not depend on the state of the
layers' seed generators: a reloaded model gives the same test ELBO as the one that was saved.

The posterior in the space where the prior lives ("u-space"):

* ``gaussian``: ``u = z ~ N(mean, exp(log_var))``, prior ``N(0, 1)``;
* ``information_dropout_lognormal``: ``u = log z ~ N(log max(f, 1e-4), alpha^2)``, prior
  ``N(mu, sigma^2)``; the decoder sees ``z = exp(u)``;
* ``information_dropout`` (log-uniform): the same posterior, but the prior is improper, so
  there is no ``log p(u)`` and no importance-weighted NLL (:data:`ibvae.vae.LOG_UNIFORM_NOTE`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import ops

from ibvae import config as cfg
from ibvae import kl as klf
from ibvae.errors import IbvaeError
from ibvae.vae import LOG_UNIFORM_NOTE, VAE, VAEConfig, load_vae, reconstruction_nll

IW_UNDEFINED = (
    "test_iw_nll is undefined for the log-uniform latent: its prior is improper (no density "
    "log p(z)), so importance weights p(x|z) p(z) / q(z|x) do not exist; use "
    "information_dropout_lognormal for likelihoods"
)
_LOG_2PI = math.log(2 * math.pi)


def _np(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x), dtype=np.float64)


def encode(model: VAE, x: np.ndarray, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """The latent layer's two inputs for ``x``: ``(features, alpha_logits)`` or
    ``(mean, log_var)``, as float64 arrays."""
    a, b = model.encoder.predict(x, batch_size=batch_size, verbose=0)
    return a.astype(np.float64), b.astype(np.float64)


def noise_scale(model: VAE, b: np.ndarray) -> np.ndarray:
    """Posterior std in u-space: alpha for Information Dropout, ``exp(log_var / 2)`` else."""
    if model.multiplicative:
        return _np(model.latent_layer.alpha(ops.convert_to_tensor(b, "float32")))
    return np.exp(0.5 * b)


def posterior_u(model: VAE, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the posterior in u-space (see the module docstring)."""
    if model.multiplicative:
        return np.log(np.maximum(a, klf.FEATURE_FLOOR)), noise_scale(model, b)
    return a, noise_scale(model, b)


def u_to_z(model: VAE, u: np.ndarray) -> np.ndarray:
    """Decoder input of a u-space code."""
    return np.exp(u) if model.multiplicative else u


def prior_u(model: VAE) -> tuple[float, float] | None:
    """``(mu, sigma)`` of the prior in u-space, or None for the improper log-uniform prior."""
    if model.latent == "gaussian":
        return 0.0, 1.0
    if model.latent == "information_dropout_lognormal":
        layer = model.latent_layer
        return float(_np(layer.prior_mu)), float(_np(layer.prior_sigma))
    return None


def kl_per_example(model: VAE, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Closed-form KL per example (summed over units), from the latent layer's own maths."""
    kl = model.latent_layer.kl(
        ops.convert_to_tensor(a, "float32"), ops.convert_to_tensor(b, "float32")
    )
    return _np(ops.sum(kl, axis=-1))


def _sample_z(model: VAE, a, b, eps):
    """A posterior sample, exactly as the latent layer draws it (``z = f * exp(alpha * eps)``
    keeps the ReLU zeros at 0)."""
    if model.multiplicative:
        return a * np.exp(noise_scale(model, b) * eps)
    return a + np.exp(0.5 * b) * eps


class _LogLikelihood:
    """``log p(x | z)`` for many ``(z, x)`` pairs, with one compiled function per shape."""

    def __init__(self, model: VAE) -> None:
        z_in = keras.Input((model.latent_dim,))
        x_in = keras.Input(model.image_shape)
        logits = model.decoder(z_in)
        ll = keras.layers.Lambda(lambda t: -reconstruction_nll(t[0], t[1]))([x_in, logits])
        self.fn = keras.Model([z_in, x_in], ll)

    def __call__(self, z: np.ndarray, x: np.ndarray) -> np.ndarray:
        out = self.fn.predict_on_batch([z.astype(np.float32), x.astype(np.float32)])
        return np.asarray(out, dtype=np.float64)


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield np.arange(start, min(start + size, n))


def _padded(idx: np.ndarray, size: int) -> np.ndarray:
    """Indices padded to ``size`` by repeating the last one, so shapes stay constant."""
    return np.concatenate([idx, np.full(size - len(idx), idx[-1])]) if len(idx) < size else idx


def neg_elbo(
    model: VAE, x: np.ndarray, n_samples: int = 1, seed: int = 0, batch_size: int = 1000
) -> dict[str, float]:
    """Test negative ELBO at beta = 1 (nats per example): Monte-Carlo reconstruction NLL with
    ``n_samples`` posterior draws + closed-form KL. ``x`` are the evaluation targets."""
    rng = np.random.default_rng(seed)
    a, b = encode(model, x)
    kl = kl_per_example(model, a, b)
    loglik = _LogLikelihood(model)
    recon = np.zeros(len(x))
    for _ in range(n_samples):
        for idx in _batches(len(x), batch_size):
            pad = _padded(idx, batch_size)
            eps = rng.standard_normal(a[pad].shape)
            z = _sample_z(model, a[pad], b[pad], eps)
            recon[idx] -= loglik(z, x[pad])[: len(idx)] / n_samples
    return {
        "test_neg_elbo": float(np.mean(recon + kl)),
        "test_reconstruction": float(np.mean(recon)),
        "test_kl": float(np.mean(kl)),
    }


def _log_normal(u, mean, std):
    return np.sum(-0.5 * np.square((u - mean) / std) - np.log(std) - 0.5 * _LOG_2PI, axis=-1)


def iw_nll(
    model: VAE,
    x: np.ndarray,
    k: int = 1000,
    seed: int = 0,
    chunk: int = 20000,
    progress: bool = False,
) -> float:
    """Importance-weighted estimate of ``-log p(x)`` (Burda et al.) with ``k`` samples from
    the posterior, averaged over ``x`` (nats per example). ``k = 1`` is a one-sample ELBO;
    the estimate tightens towards ``-log p(x)`` as ``k`` grows."""
    prior = prior_u(model)
    if prior is None:
        raise IbvaeError(IW_UNDEFINED)
    if k < 1:
        raise IbvaeError(f"the number of importance samples must be >= 1, got {k}")
    rng = np.random.default_rng(seed)
    a, b = encode(model, x)
    mean, std = posterior_u(model, a, b)
    loglik = _LogLikelihood(model)
    per_batch = max(1, chunk // k)
    nll = np.zeros(len(x))
    bar = keras.utils.Progbar(len(x)) if progress else None
    for idx in _batches(len(x), per_batch):
        pad = _padded(idx, per_batch)
        m, s = mean[pad][:, None, :], std[pad][:, None, :]
        u = m + s * rng.standard_normal((len(pad), k, model.latent_dim))
        x_rep = np.repeat(x[pad], k, axis=0)
        ll = loglik(u_to_z(model, u).reshape(-1, model.latent_dim), x_rep).reshape(len(pad), k)
        log_w = ll + _log_normal(u, prior[0], prior[1]) - _log_normal(u, m, s)
        top = log_w.max(axis=1, keepdims=True)
        log_mean_w = top[:, 0] + np.log(np.mean(np.exp(log_w - top), axis=1))
        nll[idx] = -log_mean_w[: len(idx)]
        if bar is not None:
            bar.add(len(idx))
    return float(np.mean(nll))


def unit_statistics(model: VAE, x: np.ndarray) -> dict[str, Any]:
    """Active units and per-unit noise.

    A unit is *active* when its posterior mean in u-space varies over the data by more than
    1% of a reference variance (Burda et al.'s criterion, ``Var_x E_q[u] > 0.01``): the prior
    variance (1 for the Gaussian, ``sigma^2`` for the log-normal prior) or, for the improper
    log-uniform prior, the unit's own mean noise variance ``E_x[alpha^2]``.
    """
    a, b = encode(model, x)
    mean, std = posterior_u(model, a, b)
    activity = mean.var(axis=0)
    prior = prior_u(model)
    reference = np.full(model.latent_dim, prior[1] ** 2) if prior else np.mean(std**2, axis=0)
    stats: dict[str, Any] = {
        "active_units": int(np.sum(activity > 0.01 * reference)),
        "unit_activity": activity,
    }
    if model.multiplicative:
        alpha = std
        top = model.latent_layer.alpha_top
        stats["mean_alpha"] = alpha.mean(axis=0)
        stats["units_at_max_alpha"] = int(np.sum(alpha.mean(axis=0) > 0.99 * top))
        stats["zero_code_fraction"] = np.mean(a <= 0, axis=0)
    else:
        stats["mean_posterior_std"] = std.mean(axis=0)
    if prior is not None and model.latent == "information_dropout_lognormal":
        stats["prior_mu"], stats["prior_sigma"] = prior
    return stats


def gaussian_total_correlation(u: np.ndarray) -> float:
    """TC of a full-covariance Gaussian fitted to ``u`` (N, d):
    ``0.5 (sum log diag C - log det C)`` nats; 0 exactly when ``C`` is diagonal."""
    cov = np.atleast_2d(np.cov(u, rowvar=False))
    _, logdet = np.linalg.slogdet(cov)
    return float(0.5 * (np.sum(np.log(np.diag(cov))) - logdet))


def total_correlation(model: VAE, x: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Gaussian total correlation of the aggregate posterior in u-space (``log z`` for the
    multiplicative latents): one posterior sample per image, a full-covariance Gaussian fit,
    ``TC = 0.5 (sum log diag C - log det C)`` in nats. Units that never vary are left out."""
    a, b = encode(model, x)
    mean, std = posterior_u(model, a, b)
    u = mean + std * np.random.default_rng(seed).standard_normal(mean.shape)
    keep = u.var(axis=0) > 1e-8
    tc = gaussian_total_correlation(u[:, keep]) if keep.sum() >= 2 else 0.0
    return {"total_correlation": float(tc), "tc_units": int(keep.sum())}


def summary_metrics(model: VAE, x: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """What every training run records: test ELBO terms, active units, alphas."""
    metrics: dict[str, Any] = neg_elbo(model, x, seed=seed)
    metrics.update(unit_statistics(model, x))
    metrics["elbo_is_bound"] = model.elbo_is_bound
    if not model.elbo_is_bound:
        metrics["elbo_note"] = LOG_UNIFORM_NOTE
    return metrics


def evaluate_run(
    run_dir: str | Path,
    iw: int = 1000,
    n_test: int | None = None,
    n_samples: int = 1,
    data: str | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Re-evaluate a run directory's ``model.keras`` on its test set and merge the numbers
    into its ``metrics.json``; returns the new numbers."""
    from ibvae import data as data_module
    from ibvae import train
    from ibvae.vae import eval_targets

    run_dir = train.check_run_dir(run_dir)
    config = cfg.load(VAEConfig, run_dir / train.CONFIG_FILE)
    model = load_vae(run_dir / "model.keras")
    dataset = data_module.load_dataset(config.dataset, data or config.data)
    x = eval_targets(model, dataset.x_test)
    if n_test is not None:
        if n_test < 1:
            raise IbvaeError(f"--n-test must be >= 1, got {n_test}")
        x = x[:n_test]
    if x.shape[1:] != model.image_shape:
        raise IbvaeError(
            f"test images have shape {x.shape[1:]} but the model expects {model.image_shape}"
        )
    new: dict[str, Any] = neg_elbo(model, x, n_samples=n_samples, seed=seed)
    new.update(unit_statistics(model, x))
    new.update(total_correlation(model, x, seed=seed))
    new.update(n_test=len(x), data_source=dataset.source, elbo_is_bound=model.elbo_is_bound)
    if model.elbo_is_bound:
        new["test_iw_nll"] = iw_nll(model, x, k=iw, seed=seed, progress=progress)
        new["iw_k"] = iw
    else:
        new["test_iw_nll"] = None
        new["iw_note"] = IW_UNDEFINED
        new["elbo_note"] = LOG_UNIFORM_NOTE
    train.update_metrics(run_dir, new)
    return new
