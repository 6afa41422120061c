"""The config fields that several configs share, each declared once: what every training run
has (:class:`TrainingSection`, the base of the VAE's and the classifier's ``train`` sections)
and what every dataset generator has (:class:`GeneratorSection`). A config that inherits
one sets its own defaults with :func:`ibvae.config.config_class`."""

from __future__ import annotations

import dataclasses

from ibvae.config import Config, option, seed_option
from ibvae.distribute import Distribution


@dataclasses.dataclass
class TrainingSection(Config):
    """Length, batches, step size, seed and devices of one training run."""

    epochs: int = option(20, "training epochs", ge=1)
    batch_size: int = option(100, "images per step", ge=1)
    learning_rate: float = option(
        0.001, "learning rate (the initial one under a schedule)", gt=0, aliases=("--lr",)
    )
    seed: int = seed_option(
        0, "seed of the weights, the noise and any split drawn from the training set"
    )
    distribution: Distribution = option(
        "none", "none (one device) or data_parallel (one replica per visible device)"
    )
    steps_per_execution: int = option(
        1, "training steps per compiled call: fewer host round trips, the same numbers", ge=1
    )


@dataclasses.dataclass
class GeneratorSection(Config):
    """How many images each split of a generated dataset holds, and its seed."""

    train: int = option(50_000, "training images", ge=0)
    valid: int = option(
        10_000, "validation images (from a part of the source's training set disjoint from train's)",
        ge=0,
    )
    test: int = option(10_000, "test images (from the source's test set)", ge=0)
    seed: int = seed_option(0, "seed; each split has its own generator")
