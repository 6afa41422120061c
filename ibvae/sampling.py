"""Sampling and interpolation in the latent space of a trained VAE.

**Prior samples** exist for the Gaussian latent (``N(0, I)``) and the log-normal Information
Dropout latent (``log z ~ N(mu, sigma^2)`` with the learned scalars).

**The log-uniform latent has an improper prior**, so it cannot be sampled. Instead we sample
an *aggregate-posterior model* fitted on training codes (one posterior draw
``z = f * exp(alpha * eps)`` per training image, at most 10,000 images), with two parts:

1. the codes are moved to log space, ``y = log z``; a code that is exactly 0 (a ReLU unit that
   is off) is *censored*: it is replaced by a value below every positive code of its unit
   (the unit's 1% quantile of ``log z`` minus 1);
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
from pathlib import Path
from typing import Any

import numpy as np

from ibvae.errors import IbvaeError
from ibvae.vae import VAE

AGGREGATE_FILE = "aggregate_posterior.npz"
SOURCES = ("auto", "prior", "aggregate")


def decode(model: VAE, z: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Bernoulli means (pixel probabilities in [0, 1]) of codes ``z``."""
    logits = model.decoder.predict(z.astype(np.float32), batch_size=batch_size, verbose=0)
    return np.exp(-np.logaddexp(0.0, -logits.astype(np.float64))).astype(np.float32)


def median_codes(model: VAE, x: np.ndarray) -> np.ndarray:
    """The deterministic code of each image: what the latent layer outputs at inference."""
    a, _ = model.encoder.predict(x, batch_size=1000, verbose=0)
    return a.astype(np.float64)


def training_codes(model: VAE, x: np.ndarray, seed: int = 0, max_images: int = 10000) -> np.ndarray:
    """One posterior sample per image of (a seeded subset of) ``x``: draws of the aggregate
    posterior ``q(z) = mean_x q(z | x)``."""
    from ibvae.evaluate_vae import _sample_z, encode

    rng = np.random.default_rng(seed)
    if len(x) > max_images:
        x = x[rng.choice(len(x), max_images, replace=False)]
    a, b = encode(model, x)
    return _sample_z(model, a, b, rng.standard_normal(a.shape))


def _fit_mixture(mixture_cls, y: np.ndarray, n_components: int, seed: int):
    import warnings

    mixture = mixture_cls(
        n_components=min(n_components, len(y)),
        covariance_type="full",
        reg_covar=1e-4,
        random_state=seed,
        max_iter=200,
    )
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        # A mixture that stops at max_iter, or codes with fewer distinct values than
        # components (a barely trained model), still give a usable density model.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return mixture.fit(y)


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
        from sklearn.mixture import GaussianMixture
        from threadpoolctl import threadpool_limits

        codes = np.asarray(codes, dtype=np.float64)
        d = codes.shape[1]
        zero = codes <= 0 if log_space else np.zeros_like(codes, dtype=bool)
        y = codes.copy()
        if log_space:
            y = np.log(np.where(zero, 1.0, codes))
            for j in range(d):
                positive = y[~zero[:, j], j]
                low = np.quantile(positive, 0.01) - 1.0 if len(positive) else 0.0
                y[zero[:, j], j] = low
        # One BLAS thread: on a busy 2-core CPU the default thread pool made this EM ~40x
        # slower (46 s against 1 s for 20 iterations on 5,000 x 40 codes).
        with threadpool_limits(1):
            gmm = _fit_mixture(GaussianMixture, y, n_components, seed)
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


def sample_prior(model: VAE, n: int, seed: int = 0) -> np.ndarray:
    """``n`` codes from the prior; the log-uniform prior is improper and refuses."""
    from ibvae.evaluate_vae import prior_u, u_to_z

    prior = prior_u(model)
    if prior is None:
        raise IbvaeError(
            "the log-uniform prior is improper and cannot be sampled; use --source aggregate "
            "(the aggregate-posterior model saved with the run)"
        )
    u = prior[0] + prior[1] * np.random.default_rng(seed).standard_normal((n, model.latent_dim))
    return u_to_z(model, u)


def resolve_source(model: VAE, source: str) -> str:
    """``auto`` means the prior where it is proper, the aggregate posterior otherwise."""
    if source not in SOURCES:
        raise IbvaeError(f"source must be one of {list(SOURCES)}, got {source!r}")
    if source == "auto":
        return "aggregate" if model.latent == "information_dropout" else "prior"
    return source


def sample_codes(
    model: VAE,
    n: int,
    source: str = "auto",
    aggregate: AggregatePosterior | None = None,
    seed: int = 0,
) -> np.ndarray:
    """``n`` latent codes from the prior or the aggregate-posterior model."""
    if n < 1:
        raise IbvaeError(f"the number of samples must be >= 1, got {n}")
    if resolve_source(model, source) == "prior":
        return sample_prior(model, n, seed)
    if aggregate is None:
        raise IbvaeError("sampling the aggregate posterior needs the run's aggregate model")
    return aggregate.sample(n, seed)


def interpolate_codes(z0: np.ndarray, z1: np.ndarray, steps: int, log_space: bool) -> np.ndarray:
    """``steps`` codes from ``z0`` to ``z1`` (both ends included); see the module docstring."""
    if steps < 2:
        raise IbvaeError(f"steps must be >= 2, got {steps}")
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
    if len(x_start) != len(x_end):
        raise IbvaeError("interpolate needs as many start as end images")
    z0, z1 = median_codes(model, x_start), median_codes(model, x_end)
    codes = np.stack(
        [interpolate_codes(a, b, steps, model.multiplicative) for a, b in zip(z0, z1, strict=True)]
    )
    images = decode(model, codes.reshape(-1, model.latent_dim))
    return images.reshape(len(x_start), steps, *model.image_shape)


def _load_run(run_dir: str | Path):
    from ibvae import train
    from ibvae.vae import load_vae

    run_dir = train.check_run_dir(run_dir)
    return run_dir, load_vae(run_dir / "model.keras")


def sample_run(
    run_dir: str | Path, n: int = 64, source: str = "auto", seed: int = 0
) -> dict[str, Any]:
    """Sample a run's model; writes ``samples.npy`` and ``figures/samples_<source>.png``."""
    from ibvae import plots_vae

    run_dir, model = _load_run(run_dir)
    source = resolve_source(model, source)
    aggregate = AggregatePosterior.load(run_dir / AGGREGATE_FILE) if source == "aggregate" else None
    images = decode(model, sample_codes(model, n, source, aggregate, seed))
    npy = run_dir / "samples.npy"
    np.save(npy, images)
    png = run_dir / "figures" / f"samples_{source}.png"
    plots_vae.image_grid(images, png, title=f"{n} samples ({source}), {model.latent}")
    return {"source": source, "npy": npy, "png": png, "shape": images.shape}


def interpolate_run(
    run_dir: str | Path, pairs: int = 8, steps: int = 10, seed: int = 0, data: str | None = None
) -> dict[str, Any]:
    """Interpolate between random pairs of the run's test images; writes
    ``interpolations.npy`` and ``figures/interpolations.png``."""
    from ibvae import config as cfg
    from ibvae import data as data_module
    from ibvae import plots_vae, train
    from ibvae.vae import VAEConfig, eval_targets

    if pairs < 1:
        raise IbvaeError(f"--pairs must be >= 1, got {pairs}")
    run_dir, model = _load_run(run_dir)
    config = cfg.load(VAEConfig, run_dir / train.CONFIG_FILE)
    dataset = data_module.load_dataset(config.dataset, data or config.data)
    x = eval_targets(model, dataset.x_test)
    idx = np.random.default_rng(seed).choice(len(x), size=(pairs, 2), replace=len(x) < 2 * pairs)
    images = interpolate(model, x[idx[:, 0]], x[idx[:, 1]], steps)
    npy = run_dir / "interpolations.npy"
    np.save(npy, images)
    png = run_dir / "figures" / "interpolations.png"
    plots_vae.interpolation_grid(images, x[idx[:, 0]], x[idx[:, 1]], png, model.latent)
    return {"npy": npy, "png": png, "shape": images.shape, "data_source": dataset.source}
