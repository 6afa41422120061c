"""All-CNN-96 (Cluttered MNIST) and All-CNN-32 (CIFAR-10) with information / binary / no-dropout
pools, as in the authors' ``cluttered.py`` and ``cifar.py``; training with the batch-norm
recalibration ("dry run") before testing.

Architecture (``allcnn96``; filters x ``width``): four blocks ``[32, 64, 96, 192]``, each
``conv3x3-BN-ReLU`` twice then a stride-2 *pool*; then ``conv3x3 192``, ``conv1x1 192``,
``conv1x1 10`` (each BN-ReLU), global average pool, linear logits. ``allcnn32``: binary dropout
(keep 0.8) on the input, two blocks ``[96, 192]``, the same head. The pool is one of

* ``information``: features = ``conv3x3/2-BN-ReLU`` (as the authors' pool), alpha logits from a
  parallel ``conv3x3/2`` of the same input, then :class:`ibvae.InformationDropout` with a
  log-uniform prior. Its KL is added with weight ``beta / N_train`` per pool, so the loss is
  ``CE + beta * sum_pools mean_batch(sum_units KL) / N_train`` (the paper's eq. 3 scaled by
  N_train, exactly the official code's loss);
* ``binary``: ``conv3x3/2-BN-ReLU`` + ``Dropout(1 - keep_prob)``;
* ``none``: ``conv3x3/2-BN-ReLU``.

BN sits *inside* the features branch before the noise, so in training BN normalises noise-free
features, but every later BN sees noisy inputs; its running statistics therefore do not match
a noise-free test pass. :func:`recalibrate_batchnorm` re-estimates them with the noise off.

Stride-2 padding (``padding``): Keras' ``"same"`` pads an even input only at the bottom/right;
``"symmetric"`` pads (k-1)//2 on every side and runs a valid conv. For k=3, stride 2 and an
even input the extra bottom/right row is never read, so this moves the one-sided border from
bottom/right to top/left (the output grid is centred on even instead of odd pixels).
``"valid"`` pads nothing at the stride-2 convs (96 -> 47 -> 23 -> 11 -> 5), so no pool output
ever reads a zero border there. docs/CLASSIFIER.md says what each does to the KL maps and lift.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import ops

from ibvae import config as cfg
from ibvae.errors import IbvaeError
from ibvae.layers import InformationPool

DROPOUTS = ("information", "binary", "none")
ARCHS = {
    # blocks, head filters, input keep-prob default
    "allcnn96": ((32, 64, 96, 192), 192),
    "allcnn32": ((96, 192), 192),
}
PADDINGS = ("same", "symmetric", "valid")
OPTIMIZERS = ("sgd", "adam")


@dataclasses.dataclass
class ClassifierConfig:
    """One training run. Defaults: the authors' Cluttered MNIST settings (All-CNN-96, beta 0.5,
    max_alpha 1.0, SGD-Nesterov 0.01 x0.1 at epochs 30 and 60, 80 epochs, batch 128)."""

    data: str | None = None
    arch: str = "allcnn96"
    dropout: str = "information"
    beta: float = 0.5
    width: float = 1.0
    max_alpha: float = 1.0
    min_alpha: float = 0.001
    keep_prob: float = 0.5
    input_keep_prob: float = 1.0
    padding: str = "symmetric"
    weight_decay: float = 0.0
    optimizer: str = "sgd"
    learning_rate: float = 0.01
    lr_drops: list[int] = dataclasses.field(default_factory=lambda: [30, 60])
    lr_drop_factor: float = 0.1
    epochs: int = 80
    batch_size: int = 128
    train_size: int | None = None
    recalibrate: bool = True
    seed: int = 0

    def validate(self) -> None:
        cfg.require(self.arch in ARCHS, f"arch must be one of {list(ARCHS)}, got {self.arch!r}")
        cfg.require(
            self.dropout in DROPOUTS,
            f"dropout must be one of {list(DROPOUTS)}, got {self.dropout!r}",
        )
        cfg.require(
            self.padding in PADDINGS,
            f"padding must be one of {list(PADDINGS)}, got {self.padding!r}",
        )
        cfg.require(
            self.optimizer in OPTIMIZERS,
            f"optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}",
        )
        cfg.require(self.width > 0, f"width must be > 0, got {self.width}")
        cfg.require(self.beta >= 0, f"beta must be >= 0, got {self.beta}")
        cfg.require(self.max_alpha > 0, f"max_alpha must be > 0, got {self.max_alpha}")
        cfg.require(
            self.min_alpha > 0,
            f"min_alpha must be > 0 (the KL is -log alpha), got {self.min_alpha}",
        )
        cfg.require(0 < self.keep_prob <= 1, f"keep_prob must be in (0, 1], got {self.keep_prob}")
        cfg.require(
            0 < self.input_keep_prob <= 1,
            f"input_keep_prob must be in (0, 1], got {self.input_keep_prob}",
        )
        cfg.require(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        cfg.require(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        cfg.require(
            0 < self.lr_drop_factor <= 1,
            f"lr_drop_factor must be in (0, 1], got {self.lr_drop_factor}",
        )
        cfg.require(
            all(d > 0 for d in self.lr_drops),
            f"lr_drops must be positive epochs, got {self.lr_drops}",
        )
        cfg.require(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        cfg.require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        cfg.require(
            self.train_size is None or self.train_size >= 1,
            f"train_size must be >= 1, got {self.train_size}",
        )


# --------------------------------------------------------------------------- layers


def _n_filters(base: int, width: float) -> int:
    return max(1, int(base * width))


def _check_mode(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise IbvaeError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


@keras.saving.register_keras_serializable(package="ibvae")
class ConvBNReLU(keras.layers.Layer):
    """``conv (no bias) -> BatchNorm -> ReLU``, the authors' ``conv`` with ``normalizer_fn``.
    ``padding="symmetric"`` zero-pads (k-1)//2 on every side, then a valid convolution."""

    def __init__(
        self,
        filters: int,
        kernel_size: int = 3,
        strides: int = 1,
        padding: str = "same",
        weight_decay: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides = int(filters), int(kernel_size), int(strides)
        self.padding = _check_mode("padding", padding, PADDINGS)
        self.weight_decay = float(weight_decay)
        pad = (self.kernel_size - 1) // 2
        self.pad = keras.layers.ZeroPadding2D(pad) if padding == "symmetric" and pad else None
        # tf.nn.l2_loss is sum(w^2) / 2, so the authors' ``wd * l2_loss`` is L2(wd / 2).
        reg = keras.regularizers.L2(self.weight_decay / 2) if self.weight_decay else None
        self.conv = keras.layers.Conv2D(
            self.filters,
            self.kernel_size,
            strides=self.strides,
            padding="same" if padding == "same" else "valid",
            use_bias=False,
            kernel_regularizer=reg,
            name="conv",
        )
        self.bn = keras.layers.BatchNormalization(name="bn")

    def padded(self, x):
        return self.pad(x) if self.pad is not None else x

    def build(self, input_shape) -> None:
        shape = self.pad.compute_output_shape(input_shape) if self.pad else input_shape
        self.conv.build(shape)
        self.bn.build(self.conv.compute_output_shape(shape))
        self.built = True

    def compute_output_shape(self, input_shape):
        shape = self.pad.compute_output_shape(input_shape) if self.pad else input_shape
        return self.conv.compute_output_shape(shape)

    # Set by :func:`recalibrate_batchnorm` while it traces a pass: each call reports
    # ``(self, batch mean, batch variance)`` of the BN input. A function, not a list, so
    # Keras' state tracking leaves it alone.
    moments_hook = None

    def call(self, x, training=None):
        h = self.conv(self.padded(x))
        if self.moments_hook is not None:
            self.moments_hook(self, ops.mean(h, axis=(0, 1, 2)), ops.var(h, axis=(0, 1, 2)))
        return ops.relu(self.bn(h, training=training))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            weight_decay=self.weight_decay,
        )
        return config


@keras.saving.register_keras_serializable(package="ibvae")
class InformationPoolBN(InformationPool):
    """The authors' information pool: features ``conv3x3/s-BN-ReLU``, alpha logits from a
    parallel ``conv3x3/s`` (with bias) of the same (padded) input, then
    :class:`InformationDropout` (log-uniform prior by default). The noise, the KL, ``kl(x)``
    and the config of the dropout come from :class:`ibvae.layers.InformationPool`."""

    def __init__(
        self,
        filters: int,
        strides: int = 2,
        padding: str = "same",
        weight_decay: float = 0.0,
        max_alpha: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(max_alpha=max_alpha, **kwargs)
        self.filters, self.strides = int(filters), int(strides)
        self.padding, self.weight_decay = padding, float(weight_decay)
        self.features = ConvBNReLU(filters, 3, strides, padding, weight_decay, name="features")
        self.alpha_conv = keras.layers.Conv2D(
            self.filters,
            3,
            strides=self.strides,
            padding="same" if padding == "same" else "valid",
            name="alpha_logits",
        )

    def build(self, input_shape) -> None:
        self.features.build(input_shape)
        pad = self.features.pad
        self.alpha_conv.build(pad.compute_output_shape(input_shape) if pad else input_shape)
        out = self.features.compute_output_shape(input_shape)
        self.dropout.build([out, out])
        self.built = True

    def project(self, x, training=None):
        """``(features, alpha_logits)`` before the noise."""
        return self.features(x, training=training), self.alpha_conv(self.features.padded(x))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            filters=self.filters,
            strides=self.strides,
            padding=self.padding,
            weight_decay=self.weight_decay,
        )
        return config


@keras.saving.register_keras_serializable(package="ibvae")
class AllCNN(keras.Model):
    """All-CNN-96 / All-CNN-32. ``model(x, training=True, noise=False)`` runs BN in training
    mode with every dropout switched off (the recalibration pass); ``kl_maps(x)`` returns the
    KL of each information pool summed over channels, shallow to deep."""

    def __init__(
        self,
        arch: str = "allcnn96",
        dropout: str = "information",
        width: float = 1.0,
        num_classes: int = 10,
        kl_weight: float = 0.0,
        max_alpha: float = 1.0,
        min_alpha: float = 0.001,
        keep_prob: float = 0.5,
        input_keep_prob: float = 1.0,
        padding: str = "symmetric",
        weight_decay: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _check_mode("arch", arch, tuple(ARCHS))
        _check_mode("dropout", dropout, DROPOUTS)
        _check_mode("padding", padding, PADDINGS)
        if not width > 0:
            raise IbvaeError(f"width must be > 0, got {width}")
        if kl_weight < 0:
            raise IbvaeError(f"kl_weight must be >= 0, got {kl_weight}")
        self.arch, self.dropout_mode, self.width = arch, dropout, float(width)
        self.num_classes, self.kl_weight = int(num_classes), float(kl_weight)
        self.max_alpha, self.min_alpha = float(max_alpha), float(min_alpha)
        self.keep_prob, self.input_keep_prob = float(keep_prob), float(input_keep_prob)
        self.padding, self.weight_decay = padding, float(weight_decay)
        blocks, head = ARCHS[arch]
        wd = self.weight_decay
        self.input_dropout = (
            keras.layers.Dropout(1 - self.input_keep_prob, name="input_dropout")
            if self.input_keep_prob < 1
            else None
        )
        self.convs: list = []
        self.pools: list = []
        self.pool_dropouts: list = []
        for i, base in enumerate(blocks, start=1):
            f = _n_filters(base, width)
            self.convs.append(
                [ConvBNReLU(f, 3, 1, "same", wd, name=f"block{i}_conv{j}") for j in (1, 2)]
            )
            if dropout == "information":
                pool = InformationPoolBN(
                    f,
                    strides=2,
                    padding=padding,
                    weight_decay=wd,
                    max_alpha=max_alpha,
                    min_alpha=min_alpha,
                    kl_weight=kl_weight,
                    name=f"block{i}_pool",
                )
            else:
                pool = ConvBNReLU(f, 3, 2, padding, wd, name=f"block{i}_pool")
            self.pools.append(pool)
            self.pool_dropouts.append(
                keras.layers.Dropout(1 - self.keep_prob, name=f"block{i}_dropout")
                if dropout == "binary"
                else None
            )
        h = _n_filters(head, width)
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
        return len(self.pools) if self.dropout_mode == "information" else 0

    def _forward(self, x, training=None, noise=None, collect_kl: bool = False):
        kls = []
        if self.input_dropout is not None and noise is not False:
            x = self.input_dropout(x, training=training)
        for convs, pool, drop in zip(self.convs, self.pools, self.pool_dropouts, strict=True):
            for conv in convs:
                x = conv(x, training=training)
            if isinstance(pool, InformationPoolBN):
                if collect_kl:
                    kls.append(ops.sum(pool.kl(x), axis=-1))
                x = pool(x, training=training, sample=False if noise is False else None)
            else:
                x = pool(x, training=training)
                if drop is not None and noise is not False:
                    x = drop(x, training=training)
        for conv in self.head:
            x = conv(x, training=training)
        return self.logits(ops.mean(x, axis=(1, 2))), kls

    def call(self, inputs, training=None, noise=None):
        return self._forward(inputs, training=training, noise=noise)[0]

    def kl_maps(self, x) -> list:
        """Per information pool, KL summed over channels, ``(batch, h, w)``, noise-free
        inference pass (what the authors plot, before subtracting the minimum)."""
        return self._forward(x, training=False, noise=False, collect_kl=True)[1]

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            arch=self.arch,
            dropout=self.dropout_mode,
            width=self.width,
            num_classes=self.num_classes,
            kl_weight=self.kl_weight,
            max_alpha=self.max_alpha,
            min_alpha=self.min_alpha,
            keep_prob=self.keep_prob,
            input_keep_prob=self.input_keep_prob,
            padding=self.padding,
            weight_decay=self.weight_decay,
        )
        return config

    @classmethod
    def from_config(cls, config: dict) -> AllCNN:
        return cls(**config)


def build_classifier(
    config: ClassifierConfig, input_shape: tuple[int, ...], n_train: int, num_classes: int = 10
) -> AllCNN:
    """An :class:`AllCNN` for ``config``, built for ``input_shape`` (H, W, C); the KL weight of
    each information pool is ``beta / n_train``."""
    if n_train < 1:
        raise IbvaeError(f"n_train must be >= 1, got {n_train}")
    model = AllCNN(
        arch=config.arch,
        dropout=config.dropout,
        width=config.width,
        num_classes=num_classes,
        kl_weight=config.beta / n_train,
        max_alpha=config.max_alpha,
        min_alpha=config.min_alpha,
        keep_prob=config.keep_prob,
        input_keep_prob=config.input_keep_prob,
        padding=config.padding,
        weight_decay=config.weight_decay,
        name=config.arch,
    )
    model.build((None, *input_shape))
    return model


# --------------------------------------------------------------------------- batch norm


class _BatchNormMoments(keras.Model):
    """Wraps a classifier so ``predict`` (compiled and batched on any backend) returns, per
    batch, the mean and variance of every BN input in a noise-free training-mode pass."""

    def __init__(self, classifier: AllCNN, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.classifier = classifier

    def conv_bn_layers(self) -> list[ConvBNReLU]:
        return [
            layer
            for layer in self.classifier._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, ConvBNReLU)
        ]

    def call(self, x):
        layers, sink = self.conv_bn_layers(), []

        def hook(layer, mean, var):
            sink.append((layer, mean, var))

        for layer in layers:
            layer.moments_hook = hook
        try:
            self.classifier(x, training=True, noise=False)
        finally:
            for layer in layers:
                layer.moments_hook = None
        found = {id(layer): (mean, var) for layer, mean, var in sink}
        missing = [layer.name for layer in layers if id(layer) not in found]
        if missing:
            raise RuntimeError(f"BN layers not reached by the forward pass: {missing}")
        return tuple(ops.expand_dims(ops.concatenate(found[id(layer)]), 0) for layer in layers)


def recalibrate_batchnorm(model: AllCNN, x: np.ndarray, batch_size: int = 128) -> int:
    """The authors' "dry run": a pass over ``x`` with BN in training mode (batch statistics)
    and every dropout off; each BN's running mean / variance becomes the *average* of its
    batch means / variances over the pass (so no statistic learned with noise survives).
    A last partial batch is dropped, as in the authors' loop. Returns the number of batches.
    Only the running statistics change."""
    n = len(x) - len(x) % batch_size if len(x) >= batch_size else len(x)
    wrapper = _BatchNormMoments(model, name="bn_moments")
    layers = wrapper.conv_bn_layers()
    out = wrapper.predict(x[:n], batch_size=batch_size, verbose=0)
    out = out if isinstance(out, list | tuple) else [out]
    for layer, moments in zip(layers, out, strict=True):
        moments = np.asarray(moments, np.float64)
        c = moments.shape[1] // 2
        layer.bn.moving_mean.assign(moments[:, :c].mean(axis=0).astype(np.float32))
        layer.bn.moving_variance.assign(moments[:, c:].mean(axis=0).astype(np.float32))
    return -(-n // batch_size)


# --------------------------------------------------------------------------- training


def lr_schedule(config: ClassifierConfig, steps_per_epoch: int):
    """Step schedule: ``learning_rate`` x ``lr_drop_factor`` at each epoch in ``lr_drops``."""
    drops = sorted(d for d in config.lr_drops if d < config.epochs)
    if not drops:
        return config.learning_rate
    # PiecewiseConstantDecay keeps values[i] while step <= boundary[i]; the optimizer reads it
    # at its iteration count before the update, so epoch d starts at step d * steps_per_epoch.
    boundaries = [d * steps_per_epoch - 1 for d in drops]
    values = [config.learning_rate * config.lr_drop_factor**i for i in range(len(drops) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def make_optimizer(config: ClassifierConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    lr = lr_schedule(config, steps_per_epoch)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(lr)
    return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True)


def compile_classifier(model: AllCNN, config: ClassifierConfig, steps_per_epoch: int) -> None:
    """Cross-entropy (+ the pools' KL losses, added by the layers) with accuracy and the bare
    cross-entropy as metrics, so ``loss - ce`` in the history is the weighted KL term."""
    model.compile(
        optimizer=make_optimizer(config, steps_per_epoch),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="ce"),
        ],
    )


def predict_logits(model: AllCNN, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))


def error_percent(logits: np.ndarray, y: np.ndarray) -> float:
    return float(100.0 * np.mean(np.argmax(logits, axis=1) != y))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    cm = np.zeros((n, n), np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def save_run_config(config: ClassifierConfig, run_dir: Path) -> None:
    """``config.yaml`` via :mod:`ibvae.config`; without PyYAML (the GPU machine) the same
    mapping as JSON, which is valid YAML and reloads with :func:`load_run_config`."""
    path = Path(run_dir) / "config.yaml"
    try:
        from ibvae import config as cfg
    except ImportError:
        path.write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")
        return
    cfg.save(config, path)


def load_run_config(run_dir: Path) -> ClassifierConfig:
    path = Path(run_dir) / "config.yaml"
    try:
        from ibvae import config as cfg
    except ImportError:
        return ClassifierConfig(**json.loads(path.read_text()))
    return cfg.load(ClassifierConfig, path)


def load_data(config: ClassifierConfig):
    """The run's splits (see :func:`ibvae.cluttered.load_classification_npz`), train cut to
    ``train_size``."""
    from ibvae.cluttered import load_classification_npz

    if config.data is None:
        raise IbvaeError(
            "no data: pass --data FILE.npz (e.g. from scripts/make_cluttered_mnist.py)"
        )
    splits = load_classification_npz(config.data)
    if config.train_size is not None:
        if config.train_size > len(splits["train"]):
            raise IbvaeError(
                f"train_size {config.train_size} exceeds the {len(splits['train'])} training "
                f"images in {config.data}"
            )
        splits["train"] = splits["train"].head(config.train_size)
    return splits


def save_model(model: AllCNN, run_dir: Path) -> str:
    """``model.keras``; where h5py is missing (Keras writes weights as HDF5) the weights go to
    ``model_weights.npz`` instead, so a long run is never lost at the last step. Returns the
    file name written."""
    path = Path(run_dir) / "model.keras"
    try:
        model.save(path)
        return "model.keras"
    except ImportError:
        path.unlink(missing_ok=True)  # Keras may have started the zip before failing
        weights = {f"{i:03d}:{w.path}": np.asarray(w) for i, w in enumerate(model.weights)}
        np.savez(Path(run_dir) / "model_weights.npz", **weights)
        return "model_weights.npz"


def fit_classifier(
    config: ClassifierConfig,
    splits: dict,
    run_dir: Path,
    resume: bool = False,
    verbose: int | str = "auto",
    callbacks: list | None = None,
    checkpoints: bool = True,
) -> tuple[AllCNN, dict[str, Any]]:
    """Build, compile and fit (history.csv; with ``checkpoints`` also Keras' resumable
    ``backup/`` and ``best_model.keras``). Returns the model and the timing metrics."""
    from ibvae import train as tr

    train, valid = splits["train"], splits.get("valid")
    y_all = np.concatenate([s.y for s in splits.values()])
    num_classes = max(10, int(y_all.max()) + 1)
    tr.set_seed(config.seed)
    model = build_classifier(config, train.x.shape[1:], len(train), num_classes)
    compile_classifier(model, config, -(-len(train) // config.batch_size))
    monitor = "val_accuracy" if valid is not None else "accuracy"
    if checkpoints:
        cbs = tr.fit_callbacks(run_dir, resume, monitor=monitor)
    else:
        cbs = [keras.callbacks.CSVLogger(str(Path(run_dir) / "history.csv"), append=resume)]
    t0 = time.perf_counter()
    history = model.fit(
        train.x,
        train.y,
        batch_size=config.batch_size,
        epochs=config.epochs,
        validation_data=(valid.x, valid.y) if valid is not None else None,
        callbacks=cbs + list(callbacks or []),
        verbose=verbose,
    )
    seconds = time.perf_counter() - t0
    epochs_run = max(1, len(history.epoch))
    return model, {
        "n_train": len(train),
        "epochs_run": len(history.epoch),
        "train_seconds": round(seconds, 1),
        "train_images_per_second": round(len(train) * epochs_run / seconds, 1),
        "backend": keras.backend.backend(),
    }


def finish_classifier(
    model: AllCNN, config: ClassifierConfig, splits: dict, run_dir: Path, metrics: dict
) -> dict[str, Any]:
    """Test error before and after the BN recalibration, the saved model, the confusion-matrix
    PNG; everything merged into ``metrics.json``."""
    from ibvae import train as tr
    from ibvae.plots_classifier import plot_confusion

    train, test, valid = splits["train"], splits["test"], splits.get("valid")
    metrics = dict(metrics)
    metrics["test_error_no_recalibration"] = error_percent(predict_logits(model, test.x), test.y)
    if config.recalibrate:
        t1 = time.perf_counter()
        recalibrate_batchnorm(model, train.x, config.batch_size)
        metrics["recalibration_seconds"] = round(time.perf_counter() - t1, 1)
    logits = predict_logits(model, test.x)
    metrics["test_error"] = error_percent(logits, test.y)
    if valid is not None:
        metrics["valid_error"] = error_percent(predict_logits(model, valid.x), valid.y)
    metrics["model_file"] = save_model(model, run_dir)
    n = model.num_classes
    cm = confusion_matrix(test.y, np.argmax(logits, axis=1), n)
    plot_confusion(cm, Path(run_dir) / "figures" / "confusion.png", metrics["test_error"])
    return tr.update_metrics(run_dir, metrics)


def train_classifier(
    config: ClassifierConfig, run_dir: Path, resume: bool = False, verbose: int | str = "auto"
) -> dict[str, Any]:
    """Fit, recalibrate batch norm, test; write ``config.yaml``, ``model.keras``,
    ``history.csv``, ``metrics.json`` (``test_error`` in %) and ``figures/confusion.png``."""
    config.validate()
    splits = load_data(config)
    run_dir = Path(run_dir)
    save_run_config(config, run_dir)
    model, metrics = fit_classifier(config, splits, run_dir, resume, verbose)
    return finish_classifier(model, config, splits, run_dir, metrics)


def load_classifier(run_dir: Path) -> AllCNN:
    """The recalibrated ``model.keras`` of a run directory."""
    path = Path(run_dir) / "model.keras"
    if not path.is_file():
        raise IbvaeError(f"{path} not found; the run has not finished training")
    return keras.saving.load_model(path)
