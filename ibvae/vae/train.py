"""Training a VAE from a config: data -> model -> Keras ``fit`` -> test report -> aggregate
posterior -> figures, into a run directory or into nothing (``run_dir=None``).

A run directory holds ``config.yaml``, ``model.keras``, ``best_model.keras``, ``history.csv``,
``logs/`` (TensorBoard), ``metrics.json`` (run facts and the test report, keys ``test_*``),
``aggregate_posterior.npz`` and ``figures/``; see :mod:`ibvae.runs`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

from ibvae.data import as_dataset, load_dataset, split_validation
from ibvae.training import Loaded, Log, Task, register_task
from ibvae.vae.config import VAEConfig
from ibvae.vae.evaluate import as_test_metrics, evaluate_vae
from ibvae.vae.model import VAE, build_vae
from ibvae.vae.plots import training_figures
from ibvae.vae.sampling import AGGREGATE_FILE, fit_aggregate, resolve_source, sample_codes


class VAETask(Task):
    """The VAE as a :class:`~ibvae.training.Task`: Adam on the ELBO's loss, validated on a
    held-out fraction of the training images (binarized once, like the test set)."""

    name = "vae"
    config_class = VAEConfig

    def load(self, config: VAEConfig, data: Any, log: Log) -> Loaded:
        t = config.train
        dataset = load_dataset(t.dataset, t.data) if data is None else as_dataset(data)
        if dataset.notice:
            log(dataset.notice)
        log(dataset.describe())
        x_train, _, x_val = split_validation(dataset.x_train, dataset.y_train, t.val_fraction,
                                             t.seed)
        return Loaded(dataset, dataset.source, x_train, x_valid=x_val)

    def build(self, config: VAEConfig, loaded: Loaded) -> VAE:
        return build_vae(config.model, loaded.data.image_shape, seed=config.train.seed)

    def compile(self, model: VAE, config: VAEConfig, steps_per_epoch: int) -> None:
        model.compile(
            optimizer=keras.optimizers.Adam(config.train.learning_rate),
            steps_per_execution=config.train.steps_per_execution,
        )

    def validation_data(self, model: VAE, x: np.ndarray, y: np.ndarray | None) -> tuple:
        return (model.eval_targets(x),)

    def report(
        self, model: VAE, config: VAEConfig, loaded: Loaded, run_dir: Path | None
    ) -> dict[str, Any]:
        """The test report; with a run directory also the model, the aggregate posterior and
        the figures."""
        t, dataset = config.train, loaded.data
        metrics = as_test_metrics(evaluate_vae(model, dataset.x_test, iw=None, seed=t.seed))
        if run_dir is None:
            return metrics
        model.save(run_dir / "model.keras")
        aggregate = fit_aggregate(model, loaded.x_train, t.mixture_components, t.seed)
        aggregate.save(run_dir / AGGREGATE_FILE)
        source = resolve_source(model, "auto")
        samples = model.decode(sample_codes(model, 64, source, aggregate, t.seed))
        x_test = model.eval_targets(dataset.x_test)
        training_figures(model, run_dir, x_test, dataset.y_test, samples, source)
        return metrics

    def describe(self, config: VAEConfig) -> dict[str, Any]:
        return {"latent": config.model.latent, "prior_shape": config.model.prior_shape}

    def row(self, config: VAEConfig, metrics: dict[str, Any]) -> dict[str, Any]:
        m = metrics
        return {
            "rate": m.get("test_kl"),
            "distortion": m.get("test_reconstruction"),
            "neg_elbo": m.get("test_neg_elbo"),
            "elbo_is_bound": m.get("test_elbo_is_bound"),
            "iw_nll": m.get("test_iw_nll"),
            "iw_k": m.get("test_iw_k"),
            "active_units": m.get("test_active_units"),
            "latent_dim": config.model.latent_dim,
            "total_correlation": m.get("test_total_correlation"),
            "total_correlation_excess": m.get("test_total_correlation_excess"),
            "tc_units": m.get("test_tc_units"),
        }


VAE_TASK = register_task(VAETask())


def train_vae(
    config: VAEConfig,
    data: Any = None,
    run_dir: str | Path | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    **options: Any,
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
            refused if it holds another run, unless ``resume`` or ``overwrite``). The config,
            the data and the model are checked before anything there is created or deleted.
        callbacks: extra Keras callbacks for ``fit``.
        **options: keyword-only, as for :func:`ibvae.training.train`: ``resume`` (continue
            the run in ``run_dir``; only the config's ``resumable`` fields may differ from its
            ``config.yaml``), ``overwrite`` (replace what ``run_dir`` holds), ``verbose``
            (Keras' ``fit`` verbosity; ``"auto"``: a progress bar on a terminal, one line per
            epoch otherwise), ``log`` (receives the few lines a user must see).
    """
    return VAE_TASK.train(config, data, run_dir, callbacks, **options)
