"""A beta sweep: the experiment runner (:mod:`ibvae.experiments`) over a one-axis grid,
``model.beta`` x ``train.seed``, for one or more training configs of one kind.

A sweep directory is an experiment directory: ``<label>/beta=<beta>,seed=<seed>/`` (an
ordinary run directory; the label is the config's name, e.g. its YAML file's stem),
``results.csv`` (one row per point), ``tables/sweep.md`` (mean ± sd over the seeds) and
``figures/`` (``rate_distortion.png``, ``metrics_vs_beta.png``, see
:mod:`ibvae.sweep_figures`). It resumes like any experiment: finished points and evaluations
are skipped, interrupted ones resume, more epochs extend, a failed point is reported and
skipped (delete its directory to retry).

Each point is evaluated beyond its training report with the VAE's IW-NLL (k =
``options.iw``; not for the log-uniform latent) or the classifier's KL maps
(:mod:`ibvae.evaluations`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import keras

from ibvae import config as cfg
from ibvae.config import Config, option
from ibvae.errors import require
from ibvae.experiments import run_experiment
from ibvae.experiments.results import read_results
from ibvae.experiments.spec import Arm, Spec, Table
from ibvae.sweep_figures import sweep_figures
from ibvae.training import get_task, task_for_values, task_of

TABLE_COLUMNS = {
    "vae": ["rate", "distortion", "neg_elbo", "iw_nll", "active_units", "total_correlation"],
    "classifier": ["test_error", "rate", "kl_lift_2", "kl_auc_2"],
}


@dataclasses.dataclass
class SweepOptions(Config):
    """What a sweep varies and evaluates (the flags of scripts/sweep_beta.py)."""

    betas: list[float] = option([0.1, 1.0, 10.0], "values of beta: one run per beta and seed", ge=0)
    seeds: list[int] = option([0], "training seeds: one run per beta and seed")
    iw: int = option(
        100, "VAE: importance samples per test image for the IW-NLL (0: none)", ge=0
    )

    def validate(self) -> None:
        for name in ("betas", "seeds"):
            values = getattr(self, name)
            require(len(values) >= 1, f"{name} must list at least one value")
            require(len(set(values)) == len(values), f"{name} lists a value twice: {values}")


def detect_kind(path: str | Path, kind: str | None = None) -> str:
    """The kind of a YAML config: ``kind`` if given (the file must fit it), else the one
    registered task whose config accepts the file's sections and keys."""
    if kind is not None:
        get_task(kind)  # an unknown kind is named before the file is read
    return task_for_values(cfg.read_yaml(path), path, kind).name


def sweep_spec(configs: Mapping[str, Config], options: SweepOptions) -> Spec:
    """The experiment of a sweep: ``configs`` x ``options.betas`` x ``options.seeds``."""
    kinds = {label: task_of(c).name for label, c in configs.items()}
    require(len(configs) >= 1, "a sweep needs at least one config")
    require(len(set(kinds.values())) == 1, f"a sweep's configs must be of one kind, got {kinds}")
    kind = next(iter(kinds.values()))
    arms = [Arm(label, get_task(kind), cfg.to_dict(c), {}) for label, c in configs.items()]
    evaluate = ([{"name": "iw_nll", "k": options.iw}] if kind == "vae" and options.iw
                else [{"name": "kl_maps"}] if kind == "classifier" else [])
    table = Table("sweep", ["config", "model.beta"], TABLE_COLUMNS.get(kind, ["rate"]),
                  "train.seed")
    return Spec("sweep", f"beta sweep of {', '.join(configs)}", arms,
                {"model.beta": list(options.betas), "train.seed": list(options.seeds)},
                evaluate, [table], [])


def sweep_beta(
    configs: Config | Mapping[str, Config],
    out: str | Path,
    options: SweepOptions | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    *,
    verbose: int | str = "auto",
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train every (config, beta, seed) point into ``out`` in this process (resumably, see
    the module docstring), evaluate it, and write ``results.csv``, the table and the figures.

    Args:
        configs: one config (a :class:`~ibvae.vae.config.VAEConfig`, a
            :class:`~ibvae.classifier.config.ClassifierConfig`, or any registered task's), or
            a mapping ``{label: config}`` of configs of one kind; the points take ``beta`` and
            ``seed`` from ``options``, everything else from the config.
        out: the sweep directory (created; an existing one must be an experiment's).
        options: betas, seeds and the IW-NLL's number of importance samples.
        callbacks: extra Keras callbacks for every point's ``fit``.
        verbose: Keras' ``fit`` verbosity, as for ``train_vae`` / ``train_classifier``.
        log: receives one line per point as it starts and ends.

    Returns ``{"rows": [...], "csv": path, "tables": [paths], "figures": [paths]}`` (rows as
    read back from ``results.csv``).
    """
    options = cfg.from_dict(SweepOptions, cfg.to_dict(options or SweepOptions()))
    if not isinstance(configs, Mapping):
        configs = {task_of(configs).name: configs}
    spec = sweep_spec(configs, options)
    result = run_experiment(spec, out, callbacks=callbacks, verbose=verbose, log=log)
    rows = read_results(result["csv"])
    done = [{**r, "label": r["config"]} for r in rows if r.get("status") == "completed"]
    figures = sweep_figures(done, spec.arms[0].task.name, Path(out) / "figures")
    return {**result, "rows": rows, "figures": figures}
