"""Evaluation of a trained VAE: ELBO, importance-weighted NLL, and the latent statistics of
:mod:`ibvae.vae.metrics` (active units, total correlation, defined alike for every latent).

Everything is computed from the model's parts (``encoder``, ``latent_layer``, ``decoder``, see
:class:`ibvae.VAE`) with noise drawn from a fixed seed, so the numbers do not depend on the
state of the layers' seed generators: a reloaded model gives the same test ELBO as the one
that was saved. The ELBO draws NumPy noise; the importance-weighted NLL, thousands of decoder
passes per image, runs as one compiled function per chunk of (image, code) pairs that draws
its own noise (``keras.random``, seeded) and returns one log-sum-exp per image
(:class:`ImportanceWeights`). It takes the posterior in prior space (``u = z`` for the
Gaussian latent, ``u = log z`` for Information Dropout); the log-uniform prior is improper,
so that latent has no ``log p(u)`` and no importance-weighted NLL.
"""

from __future__ import annotations

import dataclasses
import math
import weakref
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import ops

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


class ImportanceWeights(keras.Model):
    """``log sum_j w_j`` over a block of ``k`` importance samples for each of a batch of
    images, in one compiled function: the noise is drawn inside it (``keras.random`` with a
    seed generator that :meth:`reset` rewinds), each image is broadcast against its ``k``
    codes instead of being repeated, and the log-sum-exp is taken in the graph, so only one
    number per image leaves the device.

    Inputs (one row per image): the targets ``x``; the posterior in prior space ``mean``,
    ``std`` ``(B, latent_dim)``; ``centred = (mean - mu) / sigma`` and ``ratio = std / sigma``
    with the prior's ``mu``, ``sigma``; ``log_ratio = sum log(std / sigma)`` ``(B,)``; and
    ``n_valid`` ``(B,)``, how many of the ``k`` codes count (the rest are masked: the last
    block of a ``k`` split into blocks)."""

    def __init__(self, model: VAE, k: int, seed: int = 0) -> None:
        super().__init__()
        self.decoder = model.decoder
        self.k = int(k)
        self.latent_shape = model.latent_shape
        self.latent_dim = model.latent_dim
        self.multiplicative = model.multiplicative
        self.noise = keras.random.SeedGenerator(seed)
        self.built = True

    def reset(self, seed: int) -> None:
        """Rewind the noise to the stream of ``seed`` (what a fresh generator would draw)."""
        self.noise.state.assign(keras.random.SeedGenerator(seed).state.value)

    def call(self, inputs):
        x, mean, std, centred, ratio, log_ratio, n_valid = inputs
        n, k, d = ops.shape(mean)[0], self.k, self.latent_dim
        eps = keras.random.normal((n, k, d), seed=self.noise)
        u = mean[:, None, :] + std[:, None, :] * eps
        z = ops.exp(u) if self.multiplicative else u
        logits = self.decoder(ops.reshape(z, (n * k, *self.latent_shape)))
        logits = ops.reshape(logits, (n, k, -1))
        target = ops.reshape(x, (n, 1, -1))
        # Bernoulli log-likelihood, softplus(l) - x l written as relu(l) - x l + log1p(e^-|l|):
        # the same numbers, but on JAX ops.softplus (a logaddexp with inf/nan guards) took
        # three times as long as this form and a third of the decoder's matmul time.
        per_pixel = ops.relu(logits) - target * logits + ops.log1p(ops.exp(-ops.abs(logits)))
        log_lik = -ops.sum(per_pixel, axis=-1)
        # log p(u) - log q(u | x) with (u - mu) / sigma = centred + ratio * eps.
        standardised = centred[:, None, :] + ratio[:, None, :] * eps
        log_pq = 0.5 * ops.sum(ops.square(eps) - ops.square(standardised), axis=-1)
        log_w = log_lik + log_pq + log_ratio[:, None]
        valid = ops.arange(k, dtype=log_w.dtype)[None, :] < n_valid[:, None]
        return ops.logsumexp(ops.where(valid, log_w, -np.inf), axis=1)


# Compiled importance-weight functions, per model and block shape, so that a second call
# (another seed, another test set) does not compile again. Weak keys: nothing here keeps a
# model alive, and nothing is attached to the model (which would change what it saves).
_IW_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

# (image, code) pairs per compiled call. For a 784-400-40 MLP the decoder's activations of
# 4,096 pairs (6.6 + 12.8 MB float32) fit a 32 MB L3 cache, and the call overhead (~0.3 ms
# on JAX) is a few percent. benchmarks/bench_iw_nll.py --chunks: on 2 cores the time per pair
# was flat within the noise from 1,024 to 8,192 pairs on JAX and TensorFlow and higher at
# 16,384 (77 MB of activations).
IW_CHUNK = 4096


def _iw_function(model: VAE, k: int, seed: int) -> ImportanceWeights:
    functions = _IW_FUNCTIONS.setdefault(model, {})
    if k not in functions:
        functions[k] = ImportanceWeights(model, k, seed)
    fn = functions[k]
    fn.reset(seed)
    return fn


def iw_nll(
    model: VAE,
    x: np.ndarray,
    k: int = 1000,
    seed: int = 0,
    chunk: int = IW_CHUNK,
    progress: bool = False,
) -> float:
    """Importance-weighted estimate of ``-log p(x)`` (Burda et al.) with ``k`` samples from
    the posterior, averaged over ``x`` (nats per example). ``k = 1`` is a one-sample ELBO;
    the estimate tightens towards ``-log p(x)`` as ``k`` grows.

    The proposal is the posterior in prior space, ``u ~ N(mean, std^2)`` (``z = u``, or
    ``z = exp(u)`` for Information Dropout). Each compiled call scores about ``chunk``
    (image, code) pairs: ``chunk // k`` images with all their codes, or, for ``k > chunk``,
    one image and a block of its codes (the blocks are combined with ``logaddexp``). The
    noise comes from ``keras.random`` seeded by ``seed``: the same seed gives the same
    estimate on one backend; backends draw different streams."""
    prior = model.prior()
    if prior is None:
        raise IbvaeError(IW_UNDEFINED)
    require(k >= 1, f"the number of importance samples must be >= 1, got {k}")
    require(chunk >= 1, f"chunk must be >= 1, got {chunk}")
    a, b = model.posterior(x)
    mean, std = model.posterior_u(a, b)
    mu, sigma = (np.asarray(p, np.float64) for p in prior)
    centred, ratio = (mean - mu) / sigma, std / sigma
    log_ratio = np.sum(np.log(ratio), axis=-1)
    x = np.asarray(x, np.float32)

    n_blocks = -(-k // chunk)  # ceil: blocks of codes per image
    block = -(-k // n_blocks)  # codes per block; the last may count fewer
    per_call = max(1, min(chunk // block, len(x)))  # images per call
    fn = _iw_function(model, block, seed)
    log_sum = np.full(len(x), -np.inf)
    bar = keras.utils.Progbar(len(x)) if progress else None
    for idx in _batches(len(x), per_call):
        pad = _padded(idx, per_call)
        inputs = [x[pad]] + [v[pad].astype(np.float32) for v in (mean, std, centred, ratio)]
        inputs.append(log_ratio[pad].astype(np.float32))
        for start in range(0, k, block):
            n_valid = np.full(len(pad), min(block, k - start), np.float32)
            out = np.asarray(fn.predict_on_batch([*inputs, n_valid]), np.float64)
            log_sum[idx] = np.logaddexp(log_sum[idx], out[: len(idx)])
        if bar is not None:
            bar.add(len(idx))
    return float(np.mean(math.log(k) - log_sum))


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
