"""Training a VAE from a config: data -> model -> Keras ``fit`` -> test report -> aggregate
posterior -> figures, into a run directory or into nothing (``run_dir=None``).

A run directory holds ``config.yaml``, ``model.keras``, ``best_model.keras``, ``history.csv``,
``logs/`` (TensorBoard), ``metrics.json`` (run facts and the test report, keys ``test_*``),
``aggregate_posterior.npz`` and ``figures/``; see :mod:`ibvae.runs`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ibvae import config as cfg
from ibvae import distribute, runs
from ibvae.callbacks import epoch_seconds, training_callbacks
from ibvae.data import Dataset, as_dataset, load_dataset, split_validation
from ibvae.errors import require
from ibvae.vae.config import VAEConfig
from ibvae.vae.evaluate import as_test_metrics, evaluate_vae
from ibvae.vae.model import VAE, build_vae
from ibvae.vae.plots import training_figures
from ibvae.vae.sampling import AGGREGATE_FILE, fit_aggregate, resolve_source, sample_codes


def _dataset(config: VAEConfig, data: Any) -> Dataset:
    if data is None:
        return load_dataset(config.train.dataset, config.train.data)
    return as_dataset(data)


def train_vae(
    config: VAEConfig,
    data: Any = None,
    run_dir: str | Path | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    verbose: int | str = "auto",
    log: Callable[[str], None] | None = None,
) -> tuple[VAE, dict[str, Any]]:
    """Train one VAE with the built-in networks of ``config``; returns the trained model and
    its metrics (run facts, and the test report of :func:`~ibvae.vae.evaluate.evaluate_vae`
    with keys prefixed ``test_``).

    Args:
        config: a :class:`~ibvae.vae.config.VAEConfig` (checked again here).
        data: ``None`` loads ``config.train`` (``dataset`` / ``data``); else a
            :class:`~ibvae.data.Dataset`, ``(x_train, x_test)`` or Keras'
            ``((x_train, y_train), (x_test, y_test))`` (images in [0, 1] or uint8).
        run_dir: ``None`` writes nothing; a path gets the full run directory (created;
            refused if it holds another run, unless ``resume`` or ``overwrite``).
        callbacks: extra Keras callbacks for ``fit``.
        verbose: Keras' ``fit`` verbosity (``"auto"``: a progress bar on a terminal, one
            line per epoch otherwise).
        log: receives the few lines a user must see (data source, run directory).
    """
    config = cfg.from_dict(VAEConfig, cfg.to_dict(config))  # re-checks fields edited since
    say = log or (lambda message: None)
    out = runs.plan_run(run_dir, "vae", config, resume, overwrite)
    dataset = _dataset(config, data)
    if dataset.notice:
        say(dataset.notice)
    say(dataset.describe())
    t = config.train
    runs.set_seed(t.seed)
    x_train, _, x_val = split_validation(dataset.x_train, dataset.y_train, t.val_fraction, t.seed)
    plan = distribute.Plan(t.distribution, t.batch_size)
    with plan.scope():  # the model is built before anything in `out` is touched
        model = build_vae(config.model, dataset.image_shape, seed=t.seed)
        model.compile(
            optimizer=keras.optimizers.Adam(t.learning_rate),
            steps_per_execution=t.steps_per_execution,
        )
    x_fit, batch_size = plan.batches(x_train, t.batch_size)
    require(x_fit is not None, f"{len(x_train)} training images are fewer than one batch of "
            f"{t.batch_size}; data_parallel trains on whole batches")
    x_val_fit, _ = plan.batches(x_val, t.batch_size)
    with runs.run_directory(out, config, resume, overwrite) as here:
        if out is not None:
            say(f"run directory: {out}  (backend: {keras.backend.backend()}, "
                f"{plan.replicas} device(s), {distribute.process_count()} process(es))")
        validation = None if x_val_fit is None else (model.eval_targets(x_val_fit),)
        monitor = "val_loss" if validation else "loss"
        fit = training_callbacks(here, resume, monitor, callbacks)
        if verbose == "auto" and not sys.stdout.isatty():
            verbose = 2  # one line per epoch in logs and pipes, not a progress bar
        with plan.scope():
            model.fit(
                x_fit,
                epochs=t.epochs,
                batch_size=batch_size,
                validation_data=validation,
                callbacks=fit.all,
                verbose=verbose,
            )
        if fit.guard.failure:
            runs.fail_run(here, fit.guard.failure, "try a smaller --learning-rate or --beta")
        metrics: dict[str, Any] = {
            "status": "completed",
            "backend": keras.backend.backend(),
            "devices": plan.replicas,
            "processes": distribute.process_count(),
            "data_source": dataset.source,
            "n_train": len(x_fit) * distribute.process_count(),
            "n_val": 0 if x_val is None else len(x_val),
            "epoch_seconds": epoch_seconds(here, fit.timer),
        }
        return model, _report(model, config, dataset, x_train, here, metrics)


def _report(
    model: VAE,
    config: VAEConfig,
    dataset: Dataset,
    x_train: np.ndarray,
    out: Path | None,
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """The test report; with a run directory also the model, the aggregate posterior, the
    figures and ``metrics.json``."""
    t = config.train
    report = evaluate_vae(model, dataset.x_test, iw=None, seed=t.seed)
    metrics.update(as_test_metrics(report))
    if out is None:
        return runs.jsonable(metrics)
    model.save(out / "model.keras")
    aggregate = fit_aggregate(model, x_train, t.mixture_components, t.seed)
    aggregate.save(out / AGGREGATE_FILE)
    source = resolve_source(model, "auto")
    samples = model.decode(sample_codes(model, 64, source, aggregate, t.seed))
    x_test = model.eval_targets(dataset.x_test)
    training_figures(model, out, x_test, dataset.y_test, samples, source)
    return {**runs.update_metrics(out, metrics), "run_dir": str(out)}
