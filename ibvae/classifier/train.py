"""Training a classifier from a :class:`~ibvae.classifier.config.ClassifierConfig`: data ->
All-CNN -> Keras ``fit`` -> batch-norm recalibration -> test error, into a run directory or
into nothing (``run_dir=None``).

A run directory holds ``config.yaml``, ``model.keras`` (the recalibrated model),
``best_model.keras``, ``history.csv`` (``loss`` = cross-entropy + the weighted KL, ``ce`` =
cross-entropy alone), ``logs/`` (TensorBoard), ``metrics.json`` (``test_error`` in %,
``test_error_no_recalibration``, ``valid_error``, timings) and ``figures/confusion.png``; see
:mod:`ibvae.runs`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ibvae.classifier.batchnorm import recalibrate_batchnorm
from ibvae.classifier.config import ClassifierConfig, ClassifierTrainConfig
from ibvae.classifier.data import Split, classification_splits, data_origin, num_classes
from ibvae.classifier.models import MODEL_FILE, AllCNN, build_classifier
from ibvae.classifier.plots import plot_confusion
from ibvae.training import Loaded, Log, Task, register_task


def lr_schedule(train: ClassifierTrainConfig, steps_per_epoch: int):
    """The learning rate of ``train.lr_schedule``: ``"step"``, ``learning_rate`` x
    ``lr_drop_factor`` at each epoch in ``lr_drops`` (a plain float when no drop falls inside
    the run); ``"cosine"``, half a cosine from ``learning_rate`` at the first step to 0 after
    the last step of ``epochs`` (why: on a short budget it ends at a small rate without
    choosing where to drop)."""
    if train.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            train.learning_rate, decay_steps=train.epochs * steps_per_epoch
        )
    drops = sorted(d for d in train.lr_drops if d < train.epochs)
    if not drops:
        return train.learning_rate
    # PiecewiseConstantDecay keeps values[i] while step <= boundary[i]; the optimizer reads it
    # at its iteration count before the update, so epoch d starts at step d * steps_per_epoch.
    boundaries = [d * steps_per_epoch - 1 for d in drops]
    values = [train.learning_rate * train.lr_drop_factor**i for i in range(len(drops) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def make_optimizer(train: ClassifierTrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """SGD with Nesterov momentum 0.9 (the authors') or Adam, on :func:`lr_schedule`."""
    lr = lr_schedule(train, steps_per_epoch)
    if train.optimizer == "adam":
        return keras.optimizers.Adam(lr)
    return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True)


def compile_classifier(model: AllCNN, train: ClassifierTrainConfig, steps_per_epoch: int) -> None:
    """Cross-entropy (+ the pools' KL losses, added by the layers) with accuracy and the bare
    cross-entropy as metrics, so ``loss - ce`` in the history is the weighted KL term."""
    model.compile(
        steps_per_execution=train.steps_per_execution,
        optimizer=make_optimizer(train, steps_per_epoch),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="ce"),
        ],
    )


def predict_logits(model: AllCNN, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Inference logits of ``x``, batched."""
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))


def error_percent(logits: np.ndarray, y: np.ndarray) -> float:
    """Percentage of examples whose arg-max logit is not the label."""
    return float(100.0 * np.mean(np.argmax(logits, axis=1) != y))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    """``cm[true, predicted]`` counts, ``n`` x ``n``."""
    cm = np.zeros((n, n), np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def finish_classifier(
    model: AllCNN,
    train: ClassifierTrainConfig,
    splits: dict[str, Split],
    run_dir: Path | None,
) -> dict[str, Any]:
    """Test error before and after the batch-norm recalibration (``train.recalibrate``) and
    the valid error; with a ``run_dir``, also ``model.keras`` and ``figures/confusion.png``."""
    tr, test, valid = splits["train"], splits["test"], splits.get("valid")
    metrics: dict[str, Any] = {}
    metrics["test_error_no_recalibration"] = error_percent(predict_logits(model, test.x), test.y)
    if train.recalibrate:
        t1 = time.perf_counter()
        recalibrate_batchnorm(model, tr.x, train.batch_size)
        metrics["recalibration_seconds"] = round(time.perf_counter() - t1, 1)
    logits = predict_logits(model, test.x)
    metrics["test_error"] = error_percent(logits, test.y)
    if valid is not None:
        metrics["valid_error"] = error_percent(predict_logits(model, valid.x), valid.y)
    if run_dir is not None:
        model.save(run_dir / MODEL_FILE)
        cm = confusion_matrix(test.y, np.argmax(logits, axis=1), model.num_classes)
        plot_confusion(cm, run_dir / "figures" / "confusion.png", metrics["test_error"])
    return metrics


class ClassifierTask(Task):
    """The All-CNN classifier as a :class:`~ibvae.training.Task`: cross-entropy plus the
    pools' KL, validated on the data's ``valid`` split, batch norm recalibrated at the end."""

    name = "classifier"
    config_class = ClassifierConfig

    def load(self, config: ClassifierConfig, data: Any, log: Log) -> Loaded:
        t = config.train
        splits = classification_splits(t, data)
        source = data_origin(t.data if data is None else data)
        log(f"data: {source} -- "
            + " / ".join(f"{len(s)} {name}" for name, s in splits.items())
            + f" images of shape {splits['train'].x.shape[1:]}")
        tr, valid = splits["train"], splits.get("valid")
        return Loaded(splits, source, tr.x, tr.y, *((valid.x, valid.y) if valid else ()))

    def build(self, config: ClassifierConfig, loaded: Loaded) -> AllCNN:
        splits = loaded.data
        return build_classifier(config.model, splits["train"].x.shape[1:], len(splits["train"]),
                                num_classes(splits))

    def compile(self, model: AllCNN, config: ClassifierConfig, steps_per_epoch: int) -> None:
        compile_classifier(model, config.train, steps_per_epoch)

    def monitor(self, has_validation: bool) -> str:
        return "val_accuracy" if has_validation else "accuracy"

    def report(
        self, model: AllCNN, config: ClassifierConfig, loaded: Loaded, run_dir: Path | None
    ) -> dict[str, Any]:
        return finish_classifier(model, config.train, loaded.data, run_dir)

    def describe(self, config: ClassifierConfig) -> dict[str, Any]:
        return {"arch": config.model.arch, "dropout": config.model.dropout}

    def row(self, config: ClassifierConfig, metrics: dict[str, Any]) -> dict[str, Any]:
        """The test error and the rate (the KL summed over the information pools); the
        per-pool metrics become columns ``<key>_<pool>`` of their own."""
        nats = metrics.get("kl_nats") or []
        return {"test_error": metrics.get("test_error"),
                "rate": float(np.sum(nats)) if nats else None}


CLASSIFIER_TASK = register_task(ClassifierTask())


def train_classifier(
    config: ClassifierConfig,
    data: Any = None,
    run_dir: str | Path | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    **options: Any,
) -> tuple[AllCNN, dict[str, Any]]:
    """Fit an All-CNN, recalibrate its batch norm, test it; returns the trained model and its
    metrics (``test_error`` and ``test_error_no_recalibration`` in %, ``valid_error`` with a
    valid split, ``n_train``, ``epochs_run``, timings, ``backend``, ``data_source``).

    Args:
        config: a :class:`~ibvae.classifier.config.ClassifierConfig` (checked again here).
        data: ``None`` loads the ``.npz`` file ``config.train.data``; else a path to such a
            file, Keras' ``((x_train, y_train), (x_test, y_test))``, a mapping
            ``{"train": ..., "test": ..., "valid": ...}`` (``valid`` optional) of
            :class:`~ibvae.classifier.data.Split` or ``(x, y[, boxes])``, or a labelled
            :class:`~ibvae.data.Dataset` (see :func:`~ibvae.classifier.data.as_splits`).
            Images (N, H, W[, C]) in [0, 1] or uint8; ``config.train.train_size`` applies.
        run_dir: ``None`` writes nothing; a path gets the full run directory, as for
            :func:`~ibvae.vae.train.train_vae`.
        callbacks: extra Keras callbacks for ``fit``.
        **options: keyword-only, as for :func:`~ibvae.vae.train.train_vae` (``resume``,
            ``overwrite``, ``verbose``, ``log``).
    """
    return CLASSIFIER_TASK.train(config, data, run_dir, callbacks, **options)
