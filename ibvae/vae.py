"""The IB-VAE: encoder -> latent sampler -> decoder, with the ELBO terms tracked as metrics.

Three latents share one model (``VAEConfig.latent``):

* ``information_dropout`` (default): ReLU features ``f`` and alpha logits from the encoder,
  :class:`~ibvae.layers.InformationDropout` with the log-uniform prior. Its KL depends only on
  alpha (``-log(alpha / alpha_top)``), the prior is improper, so the "ELBO" is **not** a
  bound on ``-log p(x)``; it is reported up to its constant and never next to real ELBOs.
* ``information_dropout_lognormal``: softplus features, log-normal prior
  ``log z ~ N(mu, sigma^2)`` with learned scalars ``mu, sigma``: a proper prior, a real ELBO.
* ``gaussian``: the standard VAE (mean, log-variance, ``N(0, I)`` prior).

The encoder, latent layer and decoder are separate objects (``model.encoder``,
``model.latent_layer``, ``model.decoder``) so sampling, interpolation and evaluation can use
them on their own. Loss per example: reconstruction NLL (Bernoulli logits, summed over
pixels) + ``beta`` * KL (summed over units), all in nats per example. The latent layer runs
with ``kl_weight=0``: the model computes the KL itself (``latent_layer.kl``) so that one
``compute_loss`` / ``compute_metrics`` pair works on every backend.

Likelihood targets: ``targets="binarized"`` (default) draws a fresh binarization of every
training batch (dynamic binarization; binarizing an already binary image changes nothing, so
a test set binarized once with :func:`binarize_fixed` is evaluated deterministically);
``targets="continuous"`` uses the grey levels in [0, 1] as Bernoulli cross-entropy targets,
which is a common training loss but not a normalised density of continuous data, so its
"NLL" is not a likelihood.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import ops

from ibvae import config as cfg
from ibvae.errors import IbvaeError
from ibvae.layers import GaussianSampler, InformationDropout

LATENTS = ("information_dropout", "information_dropout_lognormal", "gaussian")
ARCHS = ("mlp", "conv")
TARGETS = ("binarized", "continuous")
DATASETS = ("mnist", "fashion_mnist", "npz")
TEST_BINARIZE_SEED = 12345  # one fixed binarized test set, whatever the run's seed
LOG_UNIFORM_NOTE = (
    "the log-uniform prior is improper and its KL (-log(alpha/alpha_top)) ignores the size of "
    "the code f, so this 'ELBO' is defined only up to a constant and is not a bound on "
    "-log p(x): do not compare it with the ELBO / NLL of other latents"
)


@dataclasses.dataclass
class VAEConfig:
    """Everything a VAE run needs; saved as the run's ``config.yaml``."""

    latent: str = "information_dropout"
    latent_dim: int = 40
    arch: str = "mlp"
    hidden: list[int] = dataclasses.field(default_factory=lambda: [400])
    conv_filters: list[int] = dataclasses.field(default_factory=lambda: [32, 64])
    targets: str = "binarized"
    beta: float = 1.0
    max_alpha: float = 0.7
    min_alpha: float = 0.001
    epochs: int = 20
    batch_size: int = 100
    lr: float = 0.001
    seed: int = 0
    val_fraction: float = 0.05
    dataset: str = "mnist"
    data: str | None = None
    mixture_components: int = 10

    def validate(self) -> None:
        cfg.one_of("latent", self.latent, LATENTS)
        cfg.one_of("arch", self.arch, ARCHS)
        cfg.one_of("targets", self.targets, TARGETS)
        cfg.one_of("dataset", self.dataset, DATASETS)
        cfg.require(self.beta >= 0, f"beta must be >= 0, got {self.beta}")
        cfg.require(self.latent_dim >= 1, f"latent_dim must be >= 1, got {self.latent_dim}")
        cfg.require(all(h >= 1 for h in self.hidden), f"hidden sizes must be >= 1: {self.hidden}")
        cfg.require(
            len(self.conv_filters) >= 1 and all(f >= 1 for f in self.conv_filters),
            f"conv_filters must be a non-empty list of sizes >= 1, got {self.conv_filters}",
        )
        cfg.require(self.max_alpha > 0, f"max_alpha must be > 0, got {self.max_alpha}")
        cfg.require(self.min_alpha > 0, f"min_alpha must be > 0, got {self.min_alpha}")
        cfg.require(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        cfg.require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        cfg.require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        cfg.require(
            0 <= self.val_fraction < 0.5,
            f"val_fraction must be in [0, 0.5), got {self.val_fraction}",
        )
        cfg.require(
            self.mixture_components >= 1,
            f"mixture_components must be >= 1, got {self.mixture_components}",
        )


def binarize_fixed(x: np.ndarray, seed: int = TEST_BINARIZE_SEED) -> np.ndarray:
    """One stochastic binarization drawn with a fixed seed (the usual test-set protocol)."""
    rng = np.random.default_rng(seed)
    return (rng.random(x.shape, dtype=np.float32) < x).astype(np.float32)


def reconstruction_nll(target, logits):
    """Bernoulli NLL with logits, summed over every non-batch axis: nats per example."""
    per_pixel = ops.softplus(logits) - target * logits
    return ops.sum(ops.reshape(per_pixel, (ops.shape(per_pixel)[0], -1)), axis=-1)


def _trunk(image_shape, arch, hidden, conv_filters):
    x_in = keras.Input(image_shape, name="image")
    h = x_in
    if arch == "conv":
        for i, filters in enumerate(conv_filters):
            h = keras.layers.Conv2D(
                filters, 3, strides=2, padding="same", activation="relu", name=f"conv_{i}"
            )(h)
    h = keras.layers.Flatten()(h)
    for i, units in enumerate(hidden):
        h = keras.layers.Dense(units, activation="relu", name=f"hidden_{i}")(h)
    return x_in, h


def _check_conv_shape(image_shape, conv_filters) -> int:
    factor = 2 ** len(conv_filters)
    height, width = image_shape[0], image_shape[1]
    if height % factor or width % factor:
        raise IbvaeError(
            f"arch 'conv' with {len(conv_filters)} stride-2 layers needs image sides divisible "
            f"by {factor}, got {height}x{width}; use arch 'mlp' or fewer conv_filters"
        )
    return factor


def build_encoder(
    image_shape: tuple[int, ...],
    latent: str,
    latent_dim: int,
    arch: str = "mlp",
    hidden: list[int] | tuple[int, ...] = (400,),
    conv_filters: list[int] | tuple[int, ...] = (32, 64),
) -> keras.Model:
    """Image -> the latent layer's two inputs: ``[features, alpha_logits]`` for Information
    Dropout (ReLU or softplus features), ``[mean, log_var]`` for the Gaussian latent."""
    if arch == "conv":
        _check_conv_shape(image_shape, conv_filters)
    x_in, h = _trunk(image_shape, arch, hidden, conv_filters)
    if latent == "gaussian":
        a = keras.layers.Dense(latent_dim, name="mean")(h)
        b = keras.layers.Dense(latent_dim, name="log_var")(h)
    else:
        activation = "relu" if latent == "information_dropout" else "softplus"
        a = keras.layers.Dense(latent_dim, activation=activation, name="features")(h)
        b = keras.layers.Dense(latent_dim, name="alpha_logits")(h)
    return keras.Model(x_in, [a, b], name="encoder")


def build_decoder(
    image_shape: tuple[int, ...],
    latent_dim: int,
    arch: str = "mlp",
    hidden: list[int] | tuple[int, ...] = (400,),
    conv_filters: list[int] | tuple[int, ...] = (32, 64),
) -> keras.Model:
    """Latent code -> Bernoulli logits of every pixel, shaped like the image."""
    z_in = keras.Input((latent_dim,), name="z")
    h = z_in
    for i, units in enumerate(reversed(list(hidden))):
        h = keras.layers.Dense(units, activation="relu", name=f"hidden_{i}")(h)
    if arch == "mlp":
        h = keras.layers.Dense(int(np.prod(image_shape)), name="logits")(h)
        out = keras.layers.Reshape(image_shape, name="image_logits")(h)
        return keras.Model(z_in, out, name="decoder")
    factor = _check_conv_shape(image_shape, conv_filters)
    height, width, channels = image_shape
    small = (height // factor, width // factor, conv_filters[-1])
    h = keras.layers.Dense(int(np.prod(small)), activation="relu", name="project")(h)
    h = keras.layers.Reshape(small)(h)
    for i, filters in enumerate(reversed(list(conv_filters[:-1]))):
        h = keras.layers.Conv2DTranspose(
            filters, 3, strides=2, padding="same", activation="relu", name=f"deconv_{i}"
        )(h)
    out = keras.layers.Conv2DTranspose(channels, 3, strides=2, padding="same", name="image_logits")(
        h
    )
    return keras.Model(z_in, out, name="decoder")


@keras.saving.register_keras_serializable(package="ibvae")
class VAE(keras.Model):
    """Encoder, latent layer and decoder; ``call`` returns ``{"logits", "target", "kl"}``.

    ``target`` is the (possibly freshly binarized) image the logits are scored against and
    ``kl`` the KL per example (summed over units, nats). ``compute_loss`` adds them up with
    ``beta``; ``compute_metrics`` tracks ``reconstruction``, ``kl`` and ``neg_elbo`` (the
    negative ELBO at beta = 1) in nats per example, for training and validation alike.
    """

    def __init__(
        self,
        image_shape: tuple[int, ...] | list[int] = (28, 28, 1),
        latent: str = "information_dropout",
        latent_dim: int = 40,
        arch: str = "mlp",
        hidden: list[int] | tuple[int, ...] = (400,),
        conv_filters: list[int] | tuple[int, ...] = (32, 64),
        targets: str = "binarized",
        beta: float = 1.0,
        max_alpha: float = 0.7,
        min_alpha: float = 0.001,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if latent not in LATENTS:
            raise IbvaeError(f"latent must be one of {list(LATENTS)}, got {latent!r}")
        if arch not in ARCHS:
            raise IbvaeError(f"arch must be one of {list(ARCHS)}, got {arch!r}")
        if targets not in TARGETS:
            raise IbvaeError(f"targets must be one of {list(TARGETS)}, got {targets!r}")
        if beta < 0:
            raise IbvaeError(f"beta must be >= 0, got {beta}")
        if int(latent_dim) < 1:
            raise IbvaeError(f"latent_dim must be >= 1, got {latent_dim}")
        self.image_shape = tuple(int(s) for s in image_shape)
        self.latent, self.latent_dim, self.arch = latent, int(latent_dim), arch
        self.hidden = [int(h) for h in hidden]
        self.conv_filters = [int(f) for f in conv_filters]
        self.targets, self.beta = targets, float(beta)
        self.max_alpha, self.min_alpha, self.seed = float(max_alpha), float(min_alpha), seed
        self.encoder = build_encoder(
            self.image_shape, latent, self.latent_dim, arch, self.hidden, self.conv_filters
        )
        self.decoder = build_decoder(
            self.image_shape, self.latent_dim, arch, self.hidden, self.conv_filters
        )
        latent_seed = None if seed is None else int(seed) + 1
        if latent == "gaussian":
            self.latent_layer = GaussianSampler(kl_weight=0.0, seed=latent_seed, name="latent")
        else:
            self.latent_layer = InformationDropout(
                prior="log_uniform" if latent == "information_dropout" else "log_normal",
                max_alpha=self.max_alpha,
                min_alpha=self.min_alpha,
                kl_weight=0.0,
                seed=latent_seed,
                name="latent",
            )
        # Build now so every variable exists before fit, save or load.
        self.latent_layer.build([(None, self.latent_dim), (None, self.latent_dim)])
        self.binarize_seed = keras.random.SeedGenerator(seed)
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.neg_elbo_tracker = keras.metrics.Mean(name="neg_elbo")
        self.build((None, *self.image_shape))

    @property
    def multiplicative(self) -> bool:
        """True for the Information Dropout latents (codes ``z >= 0``, log space)."""
        return self.latent != "gaussian"

    @property
    def elbo_is_bound(self) -> bool:
        """Only proper priors give an ELBO that bounds ``log p(x)``."""
        return self.latent != "information_dropout"

    def build(self, input_shape=None) -> None:
        self.built = True

    def target_of(self, x, training: bool = False):
        """The image the likelihood scores: a fresh binarization (dynamic) or ``x`` itself."""
        if self.targets == "continuous":
            return x
        u = keras.random.uniform(ops.shape(x), seed=self.binarize_seed)
        return ops.cast(ops.less(u, x), x.dtype)

    def call(self, x, training=False):
        target = self.target_of(x, training)
        a, b = self.encoder(target, training=training)
        # Always a posterior draw, so validation metrics are an ELBO estimate too (the
        # layer alone would return the median at inference).
        z = self.latent_layer([a, b], training=training, sample=True)
        logits = self.decoder(z, training=training)
        kl = ops.sum(self.latent_layer.kl(a, b), axis=-1)
        return {"logits": logits, "target": target, "kl": kl}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        recon = reconstruction_nll(y_pred["target"], y_pred["logits"])
        return ops.mean(recon + self.beta * y_pred["kl"])

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        recon = reconstruction_nll(y_pred["target"], y_pred["logits"])
        self.reconstruction_tracker.update_state(recon)
        self.kl_tracker.update_state(y_pred["kl"])
        self.neg_elbo_tracker.update_state(recon + y_pred["kl"])
        return self.get_metrics_result()

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            image_shape=list(self.image_shape),
            latent=self.latent,
            latent_dim=self.latent_dim,
            arch=self.arch,
            hidden=list(self.hidden),
            conv_filters=list(self.conv_filters),
            targets=self.targets,
            beta=self.beta,
            max_alpha=self.max_alpha,
            min_alpha=self.min_alpha,
            seed=self.seed,
        )
        return config


def build_vae(config: VAEConfig, image_shape: tuple[int, ...]) -> VAE:
    """A compiled :class:`VAE` for ``config`` (Adam with ``config.lr``)."""
    model = VAE(
        image_shape=image_shape,
        latent=config.latent,
        latent_dim=config.latent_dim,
        arch=config.arch,
        hidden=config.hidden,
        conv_filters=config.conv_filters,
        targets=config.targets,
        beta=config.beta,
        max_alpha=config.max_alpha,
        min_alpha=config.min_alpha,
        seed=config.seed,
    )
    model.compile(optimizer=keras.optimizers.Adam(config.lr))
    return model


def load_vae(path: str | Path) -> VAE:
    """Reload a saved ``.keras`` VAE (no custom_objects needed)."""
    path = Path(path)
    if not path.is_file():
        raise IbvaeError(f"model file {path} not found")
    model = keras.saving.load_model(path)
    if not isinstance(model, VAE):
        raise IbvaeError(f"{path} holds a {type(model).__name__}, not an ibvae VAE")
    return model


def eval_targets(model: VAE, x: np.ndarray) -> np.ndarray:
    """The fixed evaluation targets of ``x``: binarized once with a fixed seed, or ``x``."""
    return binarize_fixed(x) if model.targets == "binarized" else x.astype(np.float32)


class _EpochTimer(keras.callbacks.Callback):
    """Wall-clock seconds per epoch, for the run's metrics."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def split_validation(
    x: np.ndarray, y: np.ndarray | None, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Hold out ``fraction`` of the training images (seeded) for the best-epoch checkpoint."""
    n_val = int(round(len(x) * fraction))
    if n_val == 0:
        return x, y, None
    order = np.random.default_rng(seed).permutation(len(x))
    val, train = order[:n_val], order[n_val:]
    return x[train], (None if y is None else y[train]), x[val]


def train_vae(
    config: VAEConfig,
    out: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """Train, save, evaluate and plot one VAE run; returns the run's metrics.

    ``log`` receives the few lines a user must see (data source, run directory); scripts pass
    ``print``. Everything lands in the run directory (see :mod:`ibvae.train`).
    """
    from ibvae import data as data_module
    from ibvae import evaluate_vae, plots_vae, sampling, train

    run_dir = train.resolve_run_dir(out, "vae", resume, overwrite)
    with train.run_directory(run_dir, resume, overwrite):
        dataset = data_module.load_dataset(config.dataset, config.data)
        if dataset.notice:
            log(dataset.notice)
        log(dataset.describe())
        log(f"run directory: {run_dir}  (backend: {keras.backend.backend()})")
        cfg.save(config, run_dir / train.CONFIG_FILE)
        train.set_seed(config.seed)
        x_train, y_train, x_val = split_validation(
            dataset.x_train, dataset.y_train, config.val_fraction, config.seed
        )
        model = build_vae(config, dataset.image_shape)
        validation = None if x_val is None else (eval_targets(model, x_val),)
        timer = _EpochTimer()
        callbacks = train.fit_callbacks(
            run_dir, resume, monitor="val_loss" if validation else "loss"
        )
        model.fit(
            x_train,
            epochs=config.epochs,
            batch_size=config.batch_size,
            validation_data=validation,
            callbacks=[*callbacks, timer],
            verbose=2 if not _is_tty() else "auto",
        )
        model.save(run_dir / "model.keras")

        x_test = eval_targets(model, dataset.x_test)
        metrics = evaluate_vae.summary_metrics(model, x_test, seed=config.seed)
        metrics.update(
            backend=keras.backend.backend(),
            data_source=dataset.source,
            n_train=len(x_train),
            n_val=0 if x_val is None else len(x_val),
            n_test=len(x_test),
            epoch_seconds=timer.seconds,
        )
        codes = sampling.training_codes(model, eval_targets(model, x_train), seed=config.seed)
        aggregate = sampling.AggregatePosterior.fit(
            codes,
            log_space=model.multiplicative,
            n_components=config.mixture_components,
            seed=config.seed,
        )
        aggregate.save(run_dir / sampling.AGGREGATE_FILE)
        plots_vae.training_figures(
            model, run_dir, x_test, dataset.y_test, aggregate, seed=config.seed
        )
        return {**train.update_metrics(run_dir, metrics), "run_dir": str(run_dir)}


def _is_tty() -> bool:
    import sys

    return sys.stdout.isatty()
