"""Sampling and interpolation in the latent space of a trained VAE.

**Prior samples** exist for the Gaussian latent (``N(0, I)``) and the log-normal Information
Dropout latent (``log z ~ N(mu, sigma^2)`` with the learned scalars).

**The log-uniform latent has an improper prior**, so it cannot be sampled. Instead we sample
an *aggregate-posterior model* fitted on training codes (one posterior draw
``z = f * exp(alpha * eps)`` per training image, at most 10,000 images), with two parts:

1. the codes are moved to log space, ``y = log z``; a code that is exactly 0 (a ReLU unit that
   is off) is *censored*: it is replaced by a value below every positive code of its unit
   (the unit's smallest positive ``log z`` minus 1, :func:`censored_log_codes`);
2. a full-covariance Gaussian mixture (``mixture_components``, scikit-learn EM) is fitted on
   ``y``, so which units are on and how large they are stay jointly modelled; each unit gets a
   threshold, the quantile of its mixture marginal at its observed zero rate ``p0``. A sample
   is ``z = exp(y)`` where ``y`` is above the threshold and exactly 0 elsewhere, so every
   unit is 0 as often as in the training codes.

The same model (without the censoring and the log) is fitted for the other latents too, and
``--source aggregate`` samples it; it is saved as ``aggregate_posterior.npz`` in the run.

**Interpolation** runs between the deterministic codes (the posterior median: ``f`` for
Information Dropout, the mean for the Gaussian) of two images: geometric (linear in
``log z``) for units positive at both ends, linear in ``z`` for a unit that is 0 at one end
(``log 0`` does not exist; linear is continuous and ends exactly at 0), linear in ``z`` for
the Gaussian latent.
"""

from __future__ import annotations

import dataclasses
import typing
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ibvae import runs
from ibvae.config import Config, option, seed_option
from ibvae.data import load_dataset
from ibvae.errors import IbvaeError, one_of, require
from ibvae.vae.config import VAEConfig
from ibvae.vae.model import VAE, load_vae
from ibvae.vae.plots import image_grid, interpolation_grid

AGGREGATE_FILE = "aggregate_posterior.npz"
Source = Literal["auto", "prior", "aggregate"]
SOURCES: tuple[str, ...] = typing.get_args(Source)


def training_codes(model: VAE, x: np.ndarray, seed: int = 0, max_images: int = 10000) -> np.ndarray:
    """One posterior sample per image of (a seeded subset of) ``x``: draws of the aggregate
    posterior ``q(z) = mean_x q(z | x)``, flattened to ``(N, latent_dim)``."""
    rng = np.random.default_rng(seed)
    if len(x) > max_images:
        x = x[rng.choice(len(x), max_images, replace=False)]
    a, b = model.posterior(model.eval_targets(x))
    return model.sample_posterior(a, b, rng.standard_normal(a.shape))


def _fit_mixture(y: np.ndarray, n_components: int, seed: int):
    # scikit-learn is imported here, not with ibvae: it takes ~1 s and only this fit needs it.
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    mixture = GaussianMixture(
        n_components=min(n_components, len(y)),
        covariance_type="full",
        reg_covar=1e-4,
        random_state=seed,
        max_iter=200,
    )
    # One BLAS thread: on a busy 2-core CPU the default thread pool made this EM ~40x
    # slower (46 s against 1 s for 20 iterations on 5,000 x 40 codes).
    with threadpool_limits(1), warnings.catch_warnings():
        # A mixture that stops at max_iter, or codes with fewer distinct values than
        # components (a barely trained model), still give a usable density model.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return mixture.fit(y)


def censored_log_codes(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(y, zero)`` for codes ``z >= 0`` ``(N, d)``: ``y = log z`` where ``z > 0``; where
    ``z = 0`` (``zero``), the unit's smallest positive ``log z`` minus 1, so the censored
    value lies below every positive code of its unit (0 for a unit that is never positive)."""
    codes = np.asarray(codes, dtype=np.float64)
    zero = codes <= 0
    y = np.log(np.where(zero, 1.0, codes))
    for j in range(codes.shape[1]):
        positive = y[~zero[:, j], j]
        y[zero[:, j], j] = positive.min() - 1.0 if len(positive) else 0.0
    return y, zero


@dataclasses.dataclass
class AggregatePosterior:
    """A Gaussian mixture on (censored) log codes; see the module docstring."""

    log_space: bool
    weights: np.ndarray
    means: np.ndarray
    chols: np.ndarray
    thresholds: np.ndarray
    zero_rate: np.ndarray

    @classmethod
    def fit(
        cls, codes: np.ndarray, log_space: bool, n_components: int = 10, seed: int = 0
    ) -> AggregatePosterior:
        """Fit on codes ``(N, d)``; ``log_space`` for the multiplicative latents."""
        codes = np.asarray(codes, dtype=np.float64)
        d = codes.shape[1]
        if log_space:
            y, zero = censored_log_codes(codes)
        else:
            y, zero = codes.copy(), np.zeros_like(codes, dtype=bool)
        gmm = _fit_mixture(y, n_components, seed)
        model = cls(
            log_space=log_space,
            weights=gmm.weights_,
            means=gmm.means_,
            chols=np.linalg.cholesky(gmm.covariances_),
            thresholds=np.full(d, -np.inf),
            zero_rate=zero.mean(axis=0),
        )
        if log_space:
            y_model = model._sample_y(20000, np.random.default_rng(seed + 1))
            for j, p0 in enumerate(model.zero_rate):
                if p0 >= 1.0:
                    model.thresholds[j] = np.inf
                elif p0 > 0.0:
                    model.thresholds[j] = np.quantile(y_model[:, j], p0)
        return model

    def _sample_y(self, n: int, rng: np.random.Generator) -> np.ndarray:
        k = rng.choice(len(self.weights), size=n, p=self.weights / self.weights.sum())
        eps = rng.standard_normal((n, self.means.shape[1]))
        return self.means[k] + np.einsum("nij,nj->ni", self.chols[k], eps)

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` codes ``z`` (exact zeros where a unit is off)."""
        y = self._sample_y(n, np.random.default_rng(seed))
        if not self.log_space:
            return y
        return np.where(y > self.thresholds, np.exp(y), 0.0)

    def save(self, path: str | Path) -> None:
        np.savez(
            path, **{f.name: np.asarray(getattr(self, f.name)) for f in dataclasses.fields(self)}
        )

    @classmethod
    def load(cls, path: str | Path) -> AggregatePosterior:
        path = Path(path)
        if not path.is_file():
            raise IbvaeError(f"{path} not found; it is written at the end of training")
        with np.load(path) as f:
            values = {k: f[k] for k in f.files}
        values["log_space"] = bool(values["log_space"])
        return cls(**values)


def fit_aggregate(
    model: VAE, x_train: np.ndarray, n_components: int = 10, seed: int = 0
) -> AggregatePosterior:
    """The aggregate-posterior model of a trained VAE from its training images (what
    training saves as ``aggregate_posterior.npz``; the only way to sample the log-uniform
    latent)."""
    codes = training_codes(model, x_train, seed=seed)
    return AggregatePosterior.fit(codes, model.multiplicative, n_components, seed)


def resolve_source(model: VAE, source: str) -> str:
    """``auto`` means the prior where it is proper, the aggregate posterior otherwise."""
    one_of("source", source, SOURCES)
    if source == "auto":
        return "aggregate" if model.prior() is None else "prior"
    return source


def sample_codes(
    model: VAE,
    n: int,
    source: str = "auto",
    aggregate: AggregatePosterior | None = None,
    seed: int = 0,
) -> np.ndarray:
    """``n`` latent codes ``(n, latent_dim)`` from the prior or the aggregate posterior."""
    require(n >= 1, f"the number of samples must be >= 1, got {n}")
    if resolve_source(model, source) == "prior":
        return model.sample_prior(n, seed)
    if aggregate is None:
        raise IbvaeError("sampling the aggregate posterior needs the run's aggregate model")
    return aggregate.sample(n, seed)


def interpolate_codes(z0: np.ndarray, z1: np.ndarray, steps: int, log_space: bool) -> np.ndarray:
    """``steps`` codes from ``z0`` to ``z1`` (both ends included); see the module docstring."""
    require(steps >= 2, f"steps must be >= 2, got {steps}")
    t = np.linspace(0.0, 1.0, steps)[:, None]
    linear = (1 - t) * z0 + t * z1
    if not log_space:
        return linear
    both = (z0 > 0) & (z1 > 0)
    safe0, safe1 = np.where(both, z0, 1.0), np.where(both, z1, 1.0)
    geometric = np.exp((1 - t) * np.log(safe0) + t * np.log(safe1))
    return np.where(both, geometric, linear)


def interpolate(model: VAE, x_start: np.ndarray, x_end: np.ndarray, steps: int = 10) -> np.ndarray:
    """Decoded interpolations between pairs of images: ``(pairs, steps, H, W, C)`` in [0, 1]."""
    require(len(x_start) == len(x_end), "interpolate needs as many start as end images")
    z0 = model.encode(x_start).reshape(len(x_start), -1).astype(np.float64)
    z1 = model.encode(x_end).reshape(len(x_end), -1).astype(np.float64)
    codes = np.stack(
        [interpolate_codes(a, b, steps, model.multiplicative) for a, b in zip(z0, z1, strict=True)]
    )
    images = model.decode(codes.reshape(-1, model.latent_dim))
    return images.reshape(len(x_start), steps, *model.image_shape)


@dataclasses.dataclass
class SampleOptions(Config):
    """Options of :func:`sample_run` (and the flags of scripts/sample_vae.py)."""

    n: int = option(64, "number of samples", ge=1)
    source: Source = option(
        "auto",
        "auto: the prior where it is proper (log-normal, Gaussian), else the run's "
        "aggregate-posterior model; or prior / aggregate",
    )
    seed: int = seed_option(0, "seed of the samples")


@dataclasses.dataclass
class InterpolateOptions(Config):
    """Options of :func:`interpolate_run` (and the flags of scripts/interpolate_vae.py)."""

    pairs: int = option(8, "pairs of test images", ge=1)
    steps: int = option(10, "codes per pair, both ends included", ge=2)
    seed: int = seed_option(0, "which test pairs")
    data: str | None = option(None, "override the run's data path")


def sample_run(run_dir: str | Path, options: SampleOptions | None = None) -> dict[str, Any]:
    """Sample a run's model; writes ``samples.npy`` and ``figures/samples_<source>.png``."""
    options = options or SampleOptions()
    run_dir = runs.check_run_dir(run_dir)
    model = load_vae(run_dir / "model.keras")
    source = resolve_source(model, options.source)
    aggregate = AggregatePosterior.load(run_dir / AGGREGATE_FILE) if source == "aggregate" else None
    images = model.decode(sample_codes(model, options.n, source, aggregate, options.seed))
    npy = run_dir / "samples.npy"
    np.save(npy, images)
    png = run_dir / "figures" / f"samples_{source}.png"
    image_grid(images, png, title=f"{options.n} samples ({source}), {model.latent}")
    return {"source": source, "npy": npy, "png": png, "shape": images.shape}


def interpolate_run(
    run_dir: str | Path, options: InterpolateOptions | None = None
) -> dict[str, Any]:
    """Interpolate between random pairs of the run's test images; writes
    ``interpolations.npy`` and ``figures/interpolations.png``."""
    options = options or InterpolateOptions()
    config = runs.read_run_config(run_dir, VAEConfig)
    run_dir = Path(run_dir)
    model = load_vae(run_dir / "model.keras")
    path = runs.test_data_path(run_dir, config.train.data, options.data)
    dataset = load_dataset(config.train.dataset, path)
    x = model.eval_targets(dataset.x_test)
    pairs = options.pairs
    require(
        2 * pairs <= len(x),
        f"--pairs {pairs} needs {2 * pairs} distinct test images; the test set has {len(x)}",
    )
    idx = np.random.default_rng(options.seed).choice(len(x), size=(pairs, 2), replace=False)
    images = interpolate(model, x[idx[:, 0]], x[idx[:, 1]], options.steps)
    npy = run_dir / "interpolations.npy"
    np.save(npy, images)
    png = run_dir / "figures" / "interpolations.png"
    interpolation_grid(images, x[idx[:, 0]], x[idx[:, 1]], png, model.latent)
    return {"npy": npy, "png": png, "shape": images.shape, "data_source": dataset.source}
