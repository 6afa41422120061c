"""The VAE: any encoder -> a latent noise layer -> any decoder, with the ELBO terms tracked
as metrics, and what one needs to use a trained model (encode, decode, sample the prior).

Three latents (``latent=``):

* ``information_dropout``: ReLU of the encoder's first head are the features ``f``, its
  second head the alpha logits; :class:`~ibvae.layers.InformationDropout` with the
  log-uniform prior. Its KL depends only on alpha (``-log(alpha / alpha_top)``) and the prior
  is improper, so the "ELBO" is **not** a bound on ``-log p(x)`` (:data:`LOG_UNIFORM_NOTE`).
* ``information_dropout_lognormal``: softplus features, log-normal prior
  ``log z ~ N(mu, sigma^2)`` with learned scalars ``mu, sigma``: a proper prior, a real ELBO.
* ``gaussian``: the standard VAE (mean, log-variance, ``N(0, I)`` prior).

Loss per example: reconstruction NLL (Bernoulli logits, summed over pixels) + ``beta`` * KL
(summed over units), in nats, added with ``add_loss`` (so Keras scales it across replicas).
The latent layer runs with ``kl_weight=0``: the model computes the KL itself
(``latent_layer.kl``) so that ``compute_metrics`` can track its terms on every backend.

Targets: ``binarized`` draws a fresh binarization of every training batch (dynamic
binarization; a binary image is unchanged by it, so a test set binarized once with
:func:`ibvae.data.binarize_fixed` is evaluated deterministically); ``continuous`` scores the
grey levels in [0, 1] with the same Bernoulli cross-entropy, a common training loss but not a
normalised density, so its "NLL" is not a likelihood.

The NumPy view of the latent that evaluation and sampling use (posterior and prior in prior
space, ``u = z`` or ``u = log z``) is :class:`~ibvae.vae.prior_space.PriorSpace`; the model's
methods of the same names hand over to it.
"""

from __future__ import annotations

import os
from typing import Any

import keras
import numpy as np
from keras import ops

from ibvae import config as cfg
from ibvae.config import SEED_BOUNDS
from ibvae.data import as_images, binarize_fixed
from ibvae.errors import require
from ibvae.files import load_keras_model
from ibvae.layers import GaussianSampler, InformationDropout
from ibvae.vae.config import VAEModelConfig, check_prior_shape
from ibvae.vae.nets import build_decoder, build_encoder, check_networks
from ibvae.vae.prior_space import PriorSpace, as_numpy

LOG_UNIFORM_NOTE = (
    "the log-uniform prior is improper and its KL (-log(alpha/alpha_top)) ignores the size of "
    "the code f, so this 'ELBO' is defined only up to a constant and is not a bound on "
    "-log p(x): do not compare it with the ELBO / NLL of other latents"
)
# The model config's fields that are the VAE's own arguments (the rest build the networks).
VAE_OPTIONS = ("latent", "beta", "targets", "max_alpha", "min_alpha", "prior_shape")


def reconstruction_nll(target, logits):
    """Bernoulli NLL with logits, summed over every non-batch axis: nats per example."""
    per_pixel = ops.softplus(logits) - target * logits
    return ops.sum(ops.reshape(per_pixel, (ops.shape(per_pixel)[0], -1)), axis=-1)


@keras.saving.register_keras_serializable(package="ibvae")
class VAE(keras.Model):
    """``encoder -> latent layer -> decoder``; ``call`` returns ``{"logits", "target", "kl",
    "reconstruction"}`` (per example) and adds the loss, ``mean(reconstruction + beta * kl)``.

    Args:
        encoder: functional ``keras.Model``, images -> ``[a, b]`` of the latent shape (see
            :mod:`ibvae.vae.nets`); ``a`` is activated here (ReLU / softplus) for
            Information Dropout.
        decoder: functional ``keras.Model``, code -> image-shaped Bernoulli logits.
        latent: ``"information_dropout"``, ``"information_dropout_lognormal"`` or
            ``"gaussian"``, as :class:`~ibvae.vae.config.VAEModelConfig` (the same checks
            apply to this and the next arguments).
        beta: the weight of the KL per example (1: a VAE).
        targets: ``"binarized"`` (dynamic binarization) or ``"continuous"``.
        max_alpha: Information Dropout's largest noise scale.
        min_alpha: Information Dropout's smallest noise scale.
        prior_shape: ``"layer"`` or ``"unit"`` (one learned log-normal prior per latent
            unit).
        seed: seed of the latent noise and of the dynamic binarization (``None`` or an
            integer in [0, 2**32)).

    Every method that takes images (``fit``, ``encode``, ``posterior``, ``eval_targets``, and
    :func:`~ibvae.vae.evaluate.evaluate_vae`) checks them first on the host
    (:meth:`check_images`): uint8 grey levels are divided by 255 (0/1 integers are binary
    images), NaN / inf pixels, floats outside [0, 1] and images of another shape are refused
    with :class:`~ibvae.errors.IbvaeError`; ``decode`` checks its codes alike.

    ``compute_metrics`` tracks ``reconstruction``, ``kl`` and ``neg_elbo`` (the negative ELBO
    at beta = 1) in nats per example, for training and validation alike.
    """

    def __init__(
        self,
        encoder: keras.Model,
        decoder: keras.Model,
        latent: str = "information_dropout",
        beta: float = 1.0,
        targets: str = "binarized",
        max_alpha: float = 0.7,
        min_alpha: float = 0.001,
        prior_shape: str = "layer",
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hyperparameters = cfg.check_values(
            VAEModelConfig,
            latent=latent,
            beta=beta,
            targets=targets,
            max_alpha=max_alpha,
            min_alpha=min_alpha,
            prior_shape=prior_shape,
        )
        check_prior_shape(latent, prior_shape)
        require(
            seed is None or (isinstance(seed, int | np.integer) and not isinstance(seed, bool)
                             and SEED_BOUNDS["ge"] <= seed < SEED_BOUNDS["lt"]),
            f"seed must be None or an integer in [0, 2**32), got {seed!r}",
        )
        self.latent, self.beta, self.targets = latent, float(beta), targets
        self.seed = None if seed is None else int(seed)
        self.image_shape, self.latent_shape = check_networks(encoder, decoder)
        self.encoder, self.decoder = encoder, decoder
        latent_seed = None if seed is None else (int(seed) + 1) % SEED_BOUNDS["lt"]
        if latent == "gaussian":
            self.latent_layer = GaussianSampler(kl_weight=0.0, seed=latent_seed, name="latent")
        else:
            self.latent_layer = InformationDropout(
                prior="log_uniform" if latent == "information_dropout" else "log_normal",
                max_alpha=max_alpha,
                min_alpha=min_alpha,
                prior_shape=prior_shape,
                kl_weight=0.0,
                seed=latent_seed,
                name="latent",
            )
        # Build now so every variable exists before fit, save or load.
        self.latent_layer.build([(None, *self.latent_shape)] * 2)
        self.prior_space = PriorSpace(latent, self.latent_layer, self.latent_shape)
        self.binarize_seed = keras.random.SeedGenerator(seed)
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.neg_elbo_tracker = keras.metrics.Mean(name="neg_elbo")
        self.built = True

    # ------------------------------------------------------------------ properties

    @property
    def latent_dim(self) -> int:
        """Number of latent units (the product of the latent shape)."""
        return int(np.prod(self.latent_shape))

    @property
    def multiplicative(self) -> bool:
        """True for the Information Dropout latents (codes ``z >= 0``, prior in log space)."""
        return self.latent != "gaussian"

    @property
    def elbo_is_bound(self) -> bool:
        """Only proper priors give an ELBO that bounds ``log p(x)``."""
        return self.latent != "information_dropout"

    # ------------------------------------------------------------------ input checks

    def check_images(self, x: Any, name: str = "x") -> np.ndarray:
        """``x`` as the float32 ``(N, *image_shape)`` batch the networks take, checked on the
        host before any compiled call: uint8 / integer grey levels scaled as
        :func:`ibvae.data.as_images` does (0-255 -> [0, 1]; 0/1 integers are binary images),
        ``(N, H, W)`` given its channel; NaN / inf, floats outside [0, 1] and another image
        shape are one :class:`IbvaeError` (Keras would give a shape traceback, NaN losses or
        codes computed from 0-255 pixels)."""
        x = np.asarray(x)
        require(np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_,
                f"{name} must be numeric images, got dtype {x.dtype}")
        if x.dtype == np.bool_:
            x = x.astype(np.uint8)
        if self.image_shape[-1] == 1 and tuple(x.shape[1:]) == self.image_shape[:-1]:
            x = x[..., None]
        require(
            x.ndim >= 1 and tuple(x.shape[1:]) == self.image_shape and len(x) >= 1,
            f"{name}: images of shape {x.shape} but the model expects a non-empty batch "
            f"(N, {', '.join(map(str, self.image_shape))})",
        )
        require(bool(np.all(np.isfinite(x))),
                f"{name} contains NaN or inf pixels; clean the images first")
        if np.issubdtype(x.dtype, np.floating):
            lo, hi = float(x.min()), float(x.max())
            require(lo >= 0 and hi <= 1,
                    f"{name} pixels must lie in [0, 1] (or be uint8 grey levels 0-255), got "
                    f"floats in [{lo:g}, {hi:g}]; divide 0-255 floats by 255")
            return x.astype(np.float32, copy=False)
        return as_images(name, x, "the VAE's input")

    def check_codes(self, z: Any, name: str = "z") -> np.ndarray:
        """``z`` as the float32 ``(N, *latent_shape)`` codes the decoder takes (flattened
        ``(N, latent_dim)`` codes are given their shape), finite, or one :class:`IbvaeError`."""
        z = np.asarray(z)
        require(np.issubdtype(z.dtype, np.number),
                f"{name} must be numeric codes, got dtype {z.dtype}")
        shapes = (self.latent_shape, (self.latent_dim,))
        require(
            z.ndim >= 1 and len(z) >= 1 and tuple(z.shape[1:]) in shapes,
            f"{name}: codes of shape {z.shape} but the model expects a non-empty batch "
            + " or ".join(dict.fromkeys(f"(N, {', '.join(map(str, s))})" for s in shapes)),
        )
        require(bool(np.all(np.isfinite(z))), f"{name} contains NaN or inf values")
        return z.reshape(len(z), *self.latent_shape).astype(np.float32, copy=False)

    def _checked_arrays(self, value: Any, name: str) -> Any:
        """Images given as arrays are checked; datasets and generators go to Keras as is."""
        if value is None or not (hasattr(value, "__array__") or isinstance(value, list)):
            return value
        return self.check_images(value, name)

    def fit(self, x: Any = None, y: Any = None, *args: Any, validation_data: Any = None,
            **kwargs: Any) -> Any:
        """Keras' ``fit``, on images checked by :meth:`check_images` (arrays only)."""
        x = self._checked_arrays(x, "x")
        if isinstance(validation_data, list | tuple) and len(validation_data) >= 1:
            validation_data = (self._checked_arrays(validation_data[0], "validation_data"),
                               *validation_data[1:])
        elif validation_data is not None:
            validation_data = self._checked_arrays(validation_data, "validation_data")
        return super().fit(x, y, *args, validation_data=validation_data, **kwargs)

    # ------------------------------------------------------------------ training

    def build(self, input_shape=None) -> None:
        self.built = True

    def activate(self, a):
        """The latent layer's first input from the encoder's first head: ReLU features
        (log-uniform), softplus features (log-normal), or the Gaussian mean as is."""
        if self.latent == "information_dropout":
            return ops.relu(a)
        if self.latent == "information_dropout_lognormal":
            return ops.softplus(a)
        return a

    def target_of(self, x):
        """The image the likelihood scores: a fresh binarization (dynamic) or ``x`` itself."""
        if self.targets == "continuous":
            return x
        u = keras.random.uniform(ops.shape(x), seed=self.binarize_seed)
        return ops.cast(ops.less(u, x), x.dtype)

    def call(self, x, training=False):
        target = self.target_of(x)
        a, b = self.encoder(target, training=training)
        a = self.activate(a)
        # Always a posterior draw, so validation metrics are an ELBO estimate too (the
        # layer alone would return the median at inference).
        z = self.latent_layer([a, b], training=training, sample=True)
        logits = self.decoder(z, training=training)
        kl = self.latent_layer.kl(a, b)
        kl = ops.sum(ops.reshape(kl, (ops.shape(kl)[0], -1)), axis=-1)
        recon = reconstruction_nll(target, logits)
        # The loss goes through add_loss, so Keras scales it for tf.distribute replicas.
        self.add_loss(ops.mean(recon + self.beta * kl))
        return {"logits": logits, "target": target, "kl": kl, "reconstruction": recon}

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        recon = y_pred["reconstruction"]
        self.reconstruction_tracker.update_state(recon)
        self.kl_tracker.update_state(y_pred["kl"])
        self.neg_elbo_tracker.update_state(recon + y_pred["kl"])
        return self.get_metrics_result()

    # ------------------------------------------------------------------ using the model

    def posterior(self, x: np.ndarray, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """The latent layer's two inputs for images ``x`` (float64, flattened to
        ``(N, latent_dim)``): ``(features, alpha_logits)`` or ``(mean, log_var)``."""
        x = self.check_images(x)
        a, b = self.encoder.predict(x, batch_size=batch_size, verbose=0)
        a = as_numpy(self.activate(ops.convert_to_tensor(a)))
        return a.reshape(len(a), -1), np.asarray(b, np.float64).reshape(len(b), -1)

    def encode(self, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """The inference code of each image (the posterior median: what the latent layer
        outputs at inference), shaped ``(N, *latent_shape)``, float32."""
        a, _ = self.posterior(x, batch_size)
        return a.reshape(len(a), *self.latent_shape).astype(np.float32)

    def decode(self, z: np.ndarray, logits: bool = False, batch_size: int = 1000) -> np.ndarray:
        """Decoded codes: pixel means in [0, 1] (or the decoder's logits), float32."""
        z = self.check_codes(z)
        out = self.decoder.predict(z, batch_size=batch_size, verbose=0).astype(np.float64)
        return (out if logits else np.exp(-np.logaddexp(0.0, -out))).astype(np.float32)

    def eval_targets(self, x: np.ndarray) -> np.ndarray:
        """The fixed evaluation targets of images ``x``: binarized once with a fixed seed, or
        ``x`` itself for continuous targets."""
        x = self.check_images(x)
        return binarize_fixed(x) if self.targets == "binarized" else x

    def noise_scale(self, b: np.ndarray) -> np.ndarray:
        return self.prior_space.noise_scale(b)

    def posterior_u(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.prior_space.posterior_u(a, b)

    def u_to_z(self, u: np.ndarray) -> np.ndarray:
        return self.prior_space.u_to_z(u)

    def sample_posterior(self, a: np.ndarray, b: np.ndarray, eps: np.ndarray) -> np.ndarray:
        return self.prior_space.sample_posterior(a, b, eps)

    def kl_per_example(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self.prior_space.kl_per_example(a, b)

    def prior(self) -> tuple[Any, Any] | None:
        return self.prior_space.prior()

    def sample_prior(self, n: int, seed: int | None = None) -> np.ndarray:
        return self.prior_space.sample_prior(n, seed)

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        """``n`` images decoded from prior samples (pixel means in [0, 1]). The log-uniform
        prior is improper: a clear error points to the aggregate posterior."""
        return self.decode(self.sample_prior(n, seed))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            encoder=keras.saving.serialize_keras_object(self.encoder),
            decoder=keras.saving.serialize_keras_object(self.decoder),
            seed=self.seed,
            **dict(self.hyperparameters),
        )
        return config

    @classmethod
    def from_config(cls, config: dict) -> VAE:
        config = dict(config)
        encoder = keras.saving.deserialize_keras_object(config.pop("encoder"))
        decoder = keras.saving.deserialize_keras_object(config.pop("decoder"))
        return cls(encoder, decoder, **config)


def build_vae(config: VAEModelConfig, image_shape: tuple[int, ...], seed: int | None = None) -> VAE:
    """A :class:`VAE` with the built-in networks of ``config`` (not compiled)."""
    image_shape = tuple(int(s) for s in image_shape)
    return VAE(
        build_encoder(config, image_shape),
        build_decoder(config, image_shape),
        seed=seed,
        **{k: getattr(config, k) for k in VAE_OPTIONS},
    )


def load_vae(path: str | os.PathLike) -> VAE:
    """Reload a saved ``.keras`` VAE (no custom_objects needed)."""
    return load_keras_model(path, VAE, "an ibvae VAE")
