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

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ibvae import config as cfg
from ibvae import distribute, runs
from ibvae.callbacks import TrainingCallbacks, epoch_seconds, training_callbacks
from ibvae.classifier.batchnorm import recalibrate_batchnorm
from ibvae.classifier.config import ClassifierConfig, ClassifierTrainConfig
from ibvae.classifier.data import Split, classification_splits, data_origin, num_classes
from ibvae.classifier.models import MODEL_FILE, AllCNN, build_classifier
from ibvae.classifier.plots import plot_confusion
from ibvae.errors import require


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


def fit_classifier(
    model: AllCNN,
    train: ClassifierTrainConfig,
    splits: dict[str, Split],
    fit: TrainingCallbacks,
    run_dir: Path | None = None,
    verbose: int | str = "auto",
) -> dict[str, Any]:
    """Compile and fit ``model`` on the splits' ``train`` (validated on ``valid`` if there is
    one) with the run's callbacks; stops with :class:`~ibvae.errors.TrainingFailed` on a
    non-finite loss; returns the timing metrics (over every epoch of the run, resumes too)."""
    tr, valid = splits["train"], splits.get("valid")
    processes = distribute.process_count()
    batch_size = train.batch_size // processes  # this process's share of every batch
    compile_classifier(model, train, -(-len(tr) // batch_size))
    if verbose == "auto" and not sys.stdout.isatty():
        verbose = 2  # one line per epoch in logs and pipes, not a progress bar
    history = model.fit(
        tr.x,
        tr.y,
        batch_size=batch_size,
        epochs=train.epochs,
        validation_data=(valid.x, valid.y) if valid is not None else None,
        callbacks=fit.all,
        verbose=verbose,
    )
    if fit.guard.failure:
        runs.fail_run(run_dir, fit.guard.failure, "try a smaller --learning-rate or --beta")
    seconds = epoch_seconds(run_dir, fit.timer)
    total = max(sum(seconds), 1e-9)
    return {
        "status": "completed",
        "n_train": len(tr) * processes,
        "epochs_run": len(history.epoch),
        "epoch_seconds": seconds,
        "train_seconds": round(total, 1),
        "train_images_per_second": round(len(tr) * processes * len(seconds) / total, 1),
        "backend": keras.backend.backend(),
    }


def finish_classifier(
    model: AllCNN,
    train: ClassifierTrainConfig,
    splits: dict[str, Split],
    run_dir: Path | None,
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """Test error before and after the batch-norm recalibration (``train.recalibrate``) and
    the valid error; with a ``run_dir``, also ``model.keras``, ``figures/confusion.png`` and
    everything merged into ``metrics.json``."""
    tr, test, valid = splits["train"], splits["test"], splits.get("valid")
    metrics = dict(metrics)
    metrics["test_error_no_recalibration"] = error_percent(predict_logits(model, test.x), test.y)
    if train.recalibrate:
        t1 = time.perf_counter()
        recalibrate_batchnorm(model, tr.x, train.batch_size)
        metrics["recalibration_seconds"] = round(time.perf_counter() - t1, 1)
    logits = predict_logits(model, test.x)
    metrics["test_error"] = error_percent(logits, test.y)
    if valid is not None:
        metrics["valid_error"] = error_percent(predict_logits(model, valid.x), valid.y)
    if run_dir is None:
        return runs.jsonable(metrics)
    model.save(run_dir / MODEL_FILE)
    cm = confusion_matrix(test.y, np.argmax(logits, axis=1), model.num_classes)
    plot_confusion(cm, run_dir / "figures" / "confusion.png", metrics["test_error"])
    return {**runs.update_metrics(run_dir, metrics), "run_dir": str(run_dir)}


def train_classifier(
    config: ClassifierConfig,
    data: Any = None,
    run_dir: str | Path | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    verbose: int | str = "auto",
    log: Callable[[str], None] | None = None,
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
        run_dir: ``None`` writes nothing; a path gets the full run directory (created;
            refused if it holds another run, unless ``resume`` or ``overwrite``). The config,
            the data and the model are checked before anything there is created or deleted.
        callbacks: extra Keras callbacks for ``fit``.
        resume: continue the run in ``run_dir`` from its Keras backup (only the config's
            ``resumable`` fields, e.g. ``epochs``, may differ from its ``config.yaml``).
        overwrite: replace whatever ``run_dir`` holds.
        verbose: Keras' ``fit`` verbosity (``"auto"``: a progress bar on a terminal, one
            line per epoch otherwise).
        log: receives the few lines a user must see (data, run directory).
    """
    config = cfg.from_dict(ClassifierConfig, cfg.to_dict(config))  # re-check edited fields
    say = log or (lambda message: None)
    out = runs.plan_run(run_dir, "classifier", config, resume, overwrite)
    t = config.train
    splits = classification_splits(t, data)
    source = data_origin(t.data if data is None else data)
    shape = splits["train"].x.shape[1:]
    say(
        f"data: {source} -- "
        + " / ".join(f"{len(s)} {name}" for name, s in splits.items())
        + f" images of shape {shape}"
    )
    runs.set_seed(t.seed)
    plan = distribute.Plan(t.distribution, t.batch_size)
    with plan.scope():  # the model is built before anything in `out` is touched
        model = build_classifier(config.model, shape, len(splits["train"]), num_classes(splits))
    with runs.run_directory(out, config, resume, overwrite) as here:
        if out is not None:
            say(f"run directory: {out}  (backend: {keras.backend.backend()}, "
                f"{plan.replicas} device(s), {distribute.process_count()} process(es))")
        monitor = "val_accuracy" if "valid" in splits else "accuracy"
        fit = training_callbacks(here, resume, monitor, callbacks)
        with plan.scope():
            metrics = fit_classifier(model, t, fit_splits(plan, splits, t.batch_size), fit,
                                     here, verbose)
        metrics.update(data_source=source, devices=plan.replicas,
                       processes=distribute.process_count())
        return model, finish_classifier(model, t, splits, here, metrics)


def fit_splits(plan: distribute.Plan, splits: dict[str, Split], batch_size: int) -> dict:
    """The train and valid splits as this process feeds them to ``fit`` under ``plan``
    (whole batches, this process's block of each; see :meth:`ibvae.distribute.Plan.batches`)."""
    out = {}
    for name in ("train", "valid"):
        if name in splits:
            (x, _), (y, _) = (plan.batches(a, batch_size) for a in (splits[name].x, splits[name].y))
            if x is not None:
                out[name] = Split(x, y)
    require("train" in out, f"{len(splits['train'])} training images are fewer than one batch "
            f"of {batch_size}; data_parallel trains on whole batches")
    return out
