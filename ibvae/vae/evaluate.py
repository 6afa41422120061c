"""Evaluation of a trained VAE: ELBO, importance-weighted NLL, and the latent statistics of
:mod:`ibvae.vae.metrics` (active units, total correlation, defined alike for every latent).

Everything is computed from the model's parts (``encoder``, ``latent_layer``, ``decoder``, see
:class:`ibvae.VAE`) with NumPy noise drawn from a fixed seed, so the numbers do not depend on
the state of the layers' seed generators: a reloaded model gives the same test ELBO as the
one that was saved. The importance-weighted NLL takes the posterior in prior space (``u = z``
for the Gaussian latent, ``u = log z`` for Information Dropout); the log-uniform prior is
improper, so that latent has no ``log p(u)`` and no importance-weighted NLL.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ibvae import runs
from ibvae.config import Config, option, seed_option
from ibvae.data import load_dataset
from ibvae.errors import IbvaeError, require
from ibvae.vae.config import VAEConfig
from ibvae.vae.metrics import total_correlation, unit_statistics
from ibvae.vae.model import LOG_UNIFORM_NOTE, VAE, load_vae, reconstruction_nll

IW_UNDEFINED = (
    "iw_nll is undefined for the log-uniform latent: its prior is improper (no density "
    "log p(z)), so importance weights p(x|z) p(z) / q(z|x) do not exist; use "
    "information_dropout_lognormal for likelihoods"
)
_LOG_2PI = math.log(2 * math.pi)


class LogLikelihood:
    """``log p(x | z)`` for many ``(z, x)`` pairs (codes flattened to ``latent_dim``), with
    one compiled function per shape."""

    def __init__(self, model: VAE) -> None:
        z_in = keras.Input(model.latent_shape)
        x_in = keras.Input(model.image_shape)
        logits = model.decoder(z_in)
        ll = keras.layers.Lambda(lambda t: -reconstruction_nll(t[0], t[1]))([x_in, logits])
        self.fn = keras.Model([z_in, x_in], ll)

        self.latent_shape = model.latent_shape

    def __call__(self, z: np.ndarray, x: np.ndarray) -> np.ndarray:
        z = z.reshape(len(z), *self.latent_shape).astype(np.float32)
        out = self.fn.predict_on_batch([z, x.astype(np.float32)])
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
    a, b = model.posterior(x)
    kl = model.kl_per_example(a, b)
    loglik = LogLikelihood(model)
    recon = np.zeros(len(x))
    for _ in range(n_samples):
        for idx in _batches(len(x), batch_size):
            pad = _padded(idx, batch_size)
            eps = rng.standard_normal(a[pad].shape)
            z = model.sample_posterior(a[pad], b[pad], eps)
            recon[idx] -= loglik(z, x[pad])[: len(idx)] / n_samples
    return {
        "neg_elbo": float(np.mean(recon + kl)),
        "reconstruction": float(np.mean(recon)),
        "kl": float(np.mean(kl)),
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
    prior = model.prior()
    if prior is None:
        raise IbvaeError(IW_UNDEFINED)
    require(k >= 1, f"the number of importance samples must be >= 1, got {k}")
    rng = np.random.default_rng(seed)
    a, b = model.posterior(x)
    mean, std = model.posterior_u(a, b)
    loglik = LogLikelihood(model)
    per_batch = max(1, chunk // k)
    nll = np.zeros(len(x))
    bar = keras.utils.Progbar(len(x)) if progress else None
    for idx in _batches(len(x), per_batch):
        pad = _padded(idx, per_batch)
        m, s = mean[pad][:, None, :], std[pad][:, None, :]
        u = m + s * rng.standard_normal((len(pad), k, model.latent_dim))
        x_rep = np.repeat(x[pad], k, axis=0)
        ll = loglik(model.u_to_z(u).reshape(-1, model.latent_dim), x_rep).reshape(len(pad), k)
        log_w = ll + _log_normal(u, prior[0], prior[1]) - _log_normal(u, m, s)
        top = log_w.max(axis=1, keepdims=True)
        log_mean_w = top[:, 0] + np.log(np.mean(np.exp(log_w - top), axis=1))
        nll[idx] = -log_mean_w[: len(idx)]
        if bar is not None:
            bar.add(len(idx))
    return float(np.mean(nll))


def _check_count(name: str, value: Any, low: int, allow_none: bool = False) -> None:
    """A whole number >= ``low`` (a float such as 2.5 would fail deep inside NumPy)."""
    if value is None and allow_none:
        return
    require(
        isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= low,
        f"{name} must be an integer >= {low}{' or None' if allow_none else ''}, got {value!r}",
    )


def evaluate_vae(
    model: VAE,
    x: np.ndarray,
    iw: int | None = 100,
    n_samples: int = 1,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Test-set report of a VAE on images ``x`` in [0, 1] (binarized once with a fixed seed
    for binarized targets), in nats per example: ``neg_elbo`` = ``reconstruction`` + ``kl``
    (``n_samples`` posterior draws), ``iw_nll`` (``iw`` importance samples; ``None`` with an
    ``iw_note`` for the log-uniform latent, or when ``iw`` is 0 / None), ``active_units`` and
    the per-unit statistics, the Gaussian-copula ``total_correlation`` with its shuffled
    baseline and excess (:mod:`ibvae.vae.metrics`), ``elbo_is_bound``."""
    _check_count("iw", iw, allow_none=True, low=0)
    _check_count("n_samples", n_samples, low=1)
    targets = model.eval_targets(x)  # checks the images (model.check_images)
    report: dict[str, Any] = neg_elbo(model, targets, n_samples=n_samples, seed=seed)
    report["iw_nll"], report["iw_k"] = None, None
    if not model.elbo_is_bound:
        report["iw_note"] = IW_UNDEFINED
        report["elbo_note"] = LOG_UNIFORM_NOTE
    elif iw:
        report["iw_nll"] = iw_nll(model, targets, k=iw, seed=seed, progress=progress)
        report["iw_k"] = iw
    report.update(unit_statistics(model, targets))
    report.update(total_correlation(model, targets, seed=seed))
    report.update(elbo_is_bound=model.elbo_is_bound, n=len(targets))
    return report


def as_test_metrics(report: dict[str, Any]) -> dict[str, Any]:
    """A report as ``metrics.json`` keeps it: every key prefixed ``test_``."""
    return {f"test_{k}": v for k, v in report.items()}


@dataclasses.dataclass
class EvaluateOptions(Config):
    """Options of :func:`evaluate_run` (and the flags of scripts/evaluate_vae.py)."""

    iw: int = option(1000, "importance samples per image for the IW-NLL", ge=1)
    n_test: int | None = option(None, "evaluate only the first N test images", ge=1)
    elbo_samples: int = option(1, "posterior draws for the ELBO", ge=1)
    seed: int = seed_option(0, "seed of the evaluation noise")
    data: str | None = option(None, "override the run's data path")


def evaluate_run(
    run_dir: str | Path, options: EvaluateOptions | None = None, progress: bool = True
) -> dict[str, Any]:
    """Re-evaluate a run directory's ``model.keras`` on its test set and merge the report
    (keys prefixed ``test_``) into its ``metrics.json``; returns the report."""
    options = options or EvaluateOptions()
    config = runs.read_run_config(run_dir, VAEConfig)
    model = load_vae(Path(run_dir) / "model.keras")
    path = runs.test_data_path(run_dir, config.train.data, options.data)
    dataset = load_dataset(config.train.dataset, path)
    x = dataset.x_test[: options.n_test]
    report = evaluate_vae(
        model, x, iw=options.iw, n_samples=options.elbo_samples, seed=options.seed,
        progress=progress,
    )
    report["data_source"] = dataset.source
    runs.update_metrics(Path(run_dir), as_test_metrics(report))
    return report
