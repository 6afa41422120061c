"""All-CNN-96 (Cluttered MNIST) and All-CNN-32 (CIFAR-10) with information / binary / no-dropout
pools, as in the authors' ``cluttered.py`` and ``cifar.py``, built from a
:class:`~ibvae.classifier.config.ClassifierModelConfig` (the one place its hyperparameters live).

Architecture (``allcnn96``; filters x ``width``): four blocks ``[32, 64, 96, 192]``, each
``conv3x3-BN-ReLU`` twice then a stride-2 *pool*; then ``conv3x3 192``, ``conv1x1 192``,
``conv1x1 10`` (each BN-ReLU), global average pool, linear logits. ``allcnn32``: two blocks
``[96, 192]``, the same head (the authors' CIFAR-10 run adds binary dropout, keep 0.8, on the
input: ``input_keep_prob``). The pool is one of

* ``information``: :class:`~ibvae.layers.InformationPoolBN` (features ``conv3x3/2-BN-ReLU``,
  alpha logits from a parallel ``conv3x3/2`` of the same input, log-uniform prior). Its KL is
  added with weight ``beta / N_train`` per pool, so the loss is
  ``CE + beta * sum_pools mean_batch(sum_units KL) / N_train`` (the paper's eq. 3 scaled by
  N_train, exactly the official code's loss);
* ``lognormal``: ``conv3x3/2-BN-ReLU`` + :class:`~ibvae.layers.LogNormalDropout` (``x exp(
  fixed_alpha eps)``: information dropout's noise at one fixed alpha, not learned, no KL; the
  control for what learning alpha adds);
* ``binary``: ``conv3x3/2-BN-ReLU`` + ``Dropout(1 - keep_prob)``;
* ``none``: ``conv3x3/2-BN-ReLU``.

BN sits *inside* the features branch before the noise, so in training BN normalises noise-free
features, but every later BN sees noisy inputs; its running statistics therefore do not match
a noise-free test pass: :func:`ibvae.classifier.batchnorm.recalibrate_batchnorm` re-estimates
them with the noise off (``model(x, training=True, noise=False)``).

Stride-2 padding (``padding``): see :mod:`ibvae.layers.conv`; docs/guide/classifier.md says
what each mode does to the KL maps and the lift.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
from keras import ops

from ibvae import config as cfg
from ibvae.classifier.config import ClassifierModelConfig
from ibvae.errors import require
from ibvae.files import load_keras_model
from ibvae.layers.conv import ConvBNReLU
from ibvae.layers.lognormal import LogNormalDropout
from ibvae.layers.pool_bn import InformationPoolBN

# arch -> (filters of the blocks, filters of the head), before the width multiplier
ARCHS: dict[str, tuple[tuple[int, ...], int]] = {
    "allcnn96": ((32, 64, 96, 192), 192),
    "allcnn32": ((96, 192), 192),
}
MODEL_FILE = "model.keras"


def pool_dropout(config: ClassifierModelConfig, name: str) -> keras.layers.Layer | None:
    """The noise after a plain pool: binary dropout, fixed-alpha log-normal noise, or none."""
    if config.dropout == "binary":
        return keras.layers.Dropout(1 - config.keep_prob, name=name)
    if config.dropout == "lognormal":
        return LogNormalDropout(config.fixed_alpha, name=name)
    return None


def as_model_config(
    config: ClassifierModelConfig | Mapping[str, Any] | None,
) -> ClassifierModelConfig:
    """A checked :class:`ClassifierModelConfig` from itself, a mapping of some of its fields
    (the rest default) or ``None`` (all defaults)."""
    if config is None:
        return ClassifierModelConfig()
    if isinstance(config, ClassifierModelConfig):
        return cfg.from_dict(ClassifierModelConfig, cfg.to_dict(config))  # re-check edits
    return cfg.from_dict(ClassifierModelConfig, config)


def n_filters(base: int, width: float) -> int:
    """Filters of a layer: ``base`` x ``width``, at least one."""
    return max(1, int(base * width))


@keras.saving.register_keras_serializable(package="ibvae")
class AllCNN(keras.Model):
    """All-CNN-96 / All-CNN-32 of a :class:`ClassifierModelConfig` (or a mapping of its fields).

    ``kl_weight`` is the weight of each information pool's KL in the loss (``beta / N_train``;
    :func:`build_classifier` sets it). ``model(x, training=True, noise=False)`` runs BN in
    training mode with every dropout switched off (the recalibration pass); ``kl_maps(x)``
    returns the KL of each information pool summed over channels, shallow to deep.
    """

    def __init__(
        self,
        config: ClassifierModelConfig | Mapping[str, Any] | None = None,
        num_classes: int = 10,
        kl_weight: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        c = as_model_config(config)
        require(int(num_classes) >= 2, f"num_classes must be >= 2, got {num_classes}")
        require(float(kl_weight) >= 0, f"kl_weight must be >= 0, got {kl_weight}")
        self.model_config = c
        self.num_classes, self.kl_weight = int(num_classes), float(kl_weight)
        blocks, head = ARCHS[c.arch]
        wd = c.weight_decay
        self.input_dropout = (
            keras.layers.Dropout(1 - c.input_keep_prob, name="input_dropout")
            if c.input_keep_prob < 1
            else None
        )
        self.convs: list = []
        self.pools: list = []
        self.pool_dropouts: list = []
        for i, base in enumerate(blocks, start=1):
            f = n_filters(base, c.width)
            self.convs.append(
                [ConvBNReLU(f, 3, 1, "same", wd, name=f"block{i}_conv{j}") for j in (1, 2)]
            )
            if c.dropout == "information":
                pool = InformationPoolBN(
                    f,
                    strides=2,
                    padding=c.padding,
                    weight_decay=wd,
                    max_alpha=c.max_alpha,
                    min_alpha=c.min_alpha,
                    kl_weight=self.kl_weight,
                    name=f"block{i}_pool",
                )
            else:
                pool = ConvBNReLU(f, 3, 2, c.padding, wd, name=f"block{i}_pool")
            self.pools.append(pool)
            self.pool_dropouts.append(pool_dropout(c, f"block{i}_dropout"))
        h = n_filters(head, c.width)
        self.head = [
            ConvBNReLU(h, 3, 1, "same", wd, name="head_conv1"),
            ConvBNReLU(h, 1, 1, "same", wd, name="head_conv2"),
            ConvBNReLU(self.num_classes, 1, 1, "same", wd, name="head_conv3"),
        ]
        reg = keras.regularizers.L2(wd / 2) if wd else None
        self.logits = keras.layers.Dense(self.num_classes, kernel_regularizer=reg, name="logits")

    def build(self, input_shape) -> None:
        # Build every sub-layer from shapes so a reloaded model has all its variables at once.
        shape = tuple(input_shape)
        for convs, pool in zip(self.convs, self.pools, strict=True):
            for layer in [*convs, pool]:
                layer.build(shape)
                shape = layer.compute_output_shape(shape)
        for conv in self.head:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
        self.logits.build((shape[0], shape[-1]))
        self.built = True

    @property
    def n_information_pools(self) -> int:
        """How many pools are information pools (0 with binary or no dropout)."""
        return len(self.pools) if self.model_config.dropout == "information" else 0

    def conv_bn_layers(self) -> list[ConvBNReLU]:
        """Every ``conv-BN-ReLU`` of the network (the features of the information pools
        included), in the order of the forward pass: the layers whose batch-norm statistics
        :func:`~ibvae.classifier.batchnorm.recalibrate_batchnorm` re-estimates."""
        layers: list[ConvBNReLU] = []
        for convs, pool in zip(self.convs, self.pools, strict=True):
            layers.extend(convs)
            layers.append(pool.features if isinstance(pool, InformationPoolBN) else pool)
        return [*layers, *self.head]

    def pool_geometry(self) -> list[list[tuple[int, int, str]]]:
        """Per pool, shallow to deep, ``(kernel, stride, padding)`` of every convolution from
        the previous pool's output to this pool's output, in order (the two block convs, then
        the pool's own; an information pool's alpha convolution has the same geometry as its
        features). What the receptive-field centres of the pools' cells are derived from
        (:mod:`ibvae.classifier.localisation`)."""
        out = []
        for convs, pool in zip(self.convs, self.pools, strict=True):
            features = pool.features if isinstance(pool, InformationPoolBN) else pool
            out.append([(c.kernel_size, c.strides, c.padding) for c in [*convs, features]])
        return out

    def _forward(self, x, training=None, noise=None, collect: str | None = None):
        """Logits, and per pool what ``collect`` asks for: ``"kl"`` (the KL summed over
        channels), ``"pools"`` (the pool's output, after its dropout) or ``"parts"`` (the
        pool's output before its noise and, for an information pool, its alpha: ``(f,
        alpha)``, ``(f, None)`` otherwise; the pass continues with ``f``). ``noise``: None, the
        dropouts follow ``training``; False, none; True, every dropout samples (batch norm
        still follows ``training``)."""
        collected = []
        if self.input_dropout is not None and noise is not False:
            x = self.input_dropout(x, training=True if noise else training)
        for convs, pool, drop in zip(self.convs, self.pools, self.pool_dropouts, strict=True):
            for conv in convs:
                x = conv(x, training=training)
            if collect == "parts":
                if isinstance(pool, InformationPoolBN):
                    x, logits = pool.project(x, training=training)
                    collected.append((x, pool.dropout.alpha(logits)))
                else:
                    x = pool(x, training=training)
                    collected.append((x, None))
                continue
            if isinstance(pool, InformationPoolBN):
                if collect == "kl":
                    collected.append(ops.sum(pool.kl(x), axis=-1))
                x = pool(x, training=training, sample=noise)
            else:
                x = pool(x, training=training)
                if drop is not None and noise is not False:
                    x = drop(x, training=True if noise else training)
            if collect == "pools":
                collected.append(x)
        for conv in self.head:
            x = conv(x, training=training)
        return self.logits(ops.mean(x, axis=(1, 2))), collected

    def call(self, inputs, training=None, noise=None):
        return self._forward(inputs, training=training, noise=noise)[0]

    def kl_maps(self, x) -> list:
        """Per information pool, KL summed over channels, ``(batch, h, w)``, noise-free
        inference pass (what the authors plot, before subtracting the minimum)."""
        return self._forward(x, training=False, noise=False, collect="kl")[1]

    def pool_outputs(self, x, noise: bool = False) -> list:
        """Per pool (information, binary or plain), its output ``(batch, h, w, filters)`` in
        an inference pass (batch norm with its moving statistics): noise-free, or with
        ``noise`` one draw of every dropout's noise, i.e. the ``z = f(x) eps`` the next layer
        receives in training. What a nuisance probe reads (:mod:`ibvae.classifier.probe`)."""
        return self._forward(x, training=False, noise=bool(noise), collect="pools")[1]

    def pool_parts(self, x) -> list:
        """Per pool, ``(f, alpha)`` in a noise-free inference pass: the pool's output before
        its noise (batch norm with its moving statistics) and an information pool's noise
        scale (``None`` for a binary or plain pool). ``f * exp(alpha eps)`` is then one draw
        of the pool's noise on a noise-free input, every batch norm up to it seeing the
        noise-free statistics it was recalibrated on (:mod:`ibvae.classifier.probe`)."""
        return self._forward(x, training=False, noise=False, collect="parts")[1]

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            config=cfg.to_dict(self.model_config),
            num_classes=self.num_classes,
            kl_weight=self.kl_weight,
        )
        return config

    @classmethod
    def from_config(cls, config: dict) -> AllCNN:
        return cls(**config)


def build_classifier(
    model_config: ClassifierModelConfig,
    input_shape: tuple[int, ...],
    n_train: int,
    num_classes: int = 10,
) -> AllCNN:
    """An :class:`AllCNN` for ``model_config``, built for ``input_shape`` (H, W, C); the KL
    weight of each information pool is ``beta / n_train``."""
    require(n_train >= 1, f"n_train must be >= 1, got {n_train}")
    c = as_model_config(model_config)
    model = AllCNN(c, num_classes=num_classes, kl_weight=c.beta / n_train, name=c.arch)
    model.build((None, *input_shape))
    return model


def load_classifier(path: str | Path) -> AllCNN:
    """A saved :class:`AllCNN`: a ``.keras`` file, or a run directory (its ``model.keras``,
    the model after the batch-norm recalibration)."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    return load_keras_model(path, AllCNN, "an AllCNN classifier")
