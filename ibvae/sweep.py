"""A beta sweep: one or more training configs over a list of beta values (and seeds), one run
directory per point, then one table and its figures.

A sweep directory holds ``<label>/beta<beta>_seed<seed>/`` (an ordinary run directory of
:func:`~ibvae.vae.train.train_vae` or :func:`~ibvae.classifier.train.train_classifier`; the
label is the config's name, e.g. its YAML file's stem), ``sweep.csv`` (one row per point,
rewritten after every point) and ``figures/`` (``rate_distortion.png``,
``metrics_vs_beta.png``, see :mod:`ibvae.sweep_figures`).

It is resumable: a point whose run completed with the requested config is skipped; a point
interrupted mid-training, or whose config asks for more epochs than it ran (the config's
``resumable`` fields), is resumed from its Keras backup; a point whose training stopped on a
non-finite loss is reported as failed and skipped (delete its directory to retry). The
evaluations added here (the VAE's IW-NLL, the classifier's KL maps) are skipped when
``metrics.json`` already holds them.

Rows. VAE: ``rate`` = the test KL, ``distortion`` = the test reconstruction NLL, ``neg_elbo``,
``iw_nll`` (where the prior is proper), ``active_units``, ``total_correlation`` and
``total_correlation_excess`` (:mod:`ibvae.vae.metrics`), all in nats per example at beta 1
(for the log-uniform latent the rate is known only up to a constant, ``elbo_is_bound`` is
false). Classifier: ``test_error`` (%), ``kl_nats_<i>``, ``kl_lift_<i>`` and ``kl_auc_<i>``
for each information pool (:mod:`ibvae.classifier.kl_maps`), ``rate`` = their KL summed over
pools, and ``nuisance_error_<i>`` (``nuisance_error_noisy_<i>``: the probe of the noisy
representation) in % for each pool once :mod:`ibvae.classifier.probe` has probed the point (a
rerun of the sweep, every point skipped, collects it).
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ibvae import config as cfg
from ibvae import runs
from ibvae.classifier.config import ClassifierConfig
from ibvae.classifier.data import load_classification_npz
from ibvae.classifier.kl_maps import kl_maps, write_kl_maps
from ibvae.classifier.models import load_classifier
from ibvae.classifier.train import train_classifier
from ibvae.config import Config, option
from ibvae.errors import IbvaeError, TrainingFailed, one_of, require
from ibvae.sweep_figures import sweep_figures
from ibvae.vae.config import VAEConfig
from ibvae.vae.evaluate import EvaluateOptions, evaluate_run
from ibvae.vae.train import train_vae

CONFIG_KINDS: dict[str, type[Config]] = {"vae": VAEConfig, "classifier": ClassifierConfig}
SWEEP_CSV = "sweep.csv"
# classifier metrics with one value per pool, each a column <key>_<pool> of sweep.csv
# (nuisance_* / task_* [_noisy], mean_alpha, probe_kl_nats: written by
# scripts/probe_nuisance.py; rerun the sweep to collect)
PER_POOL_COLUMNS = ("kl_nats", "kl_lift", "kl_auc", "ink_lift", "ink_auc", "kl_auc_clutter",
                    "ink_auc_clutter", "nuisance_error", "nuisance_error_noisy",
                    "nuisance_info_nats", "nuisance_info_nats_noisy", "task_error",
                    "task_error_noisy", "task_info_nats", "task_info_nats_noisy", "mean_alpha",
                    "probe_kl_nats")


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


def kind_of(config: Config) -> str:
    """``"vae"`` or ``"classifier"`` for a config object."""
    for kind, cls in CONFIG_KINDS.items():
        if isinstance(config, cls):
            return kind
    raise IbvaeError(f"a sweep needs a VAEConfig or a ClassifierConfig, got {type(config)}")


def detect_kind(path: str | Path, kind: str | None = None) -> str:
    """The kind of a YAML config: ``kind`` if given (the file must fit it), else the one kind
    whose config accepts the file's sections and keys; one error if none or both do."""
    if kind is not None:
        one_of("kind", kind, CONFIG_KINDS)
    values = cfg.read_yaml(path)
    errors = {}
    for name in ([kind] if kind else CONFIG_KINDS):
        try:
            cfg.from_dict(CONFIG_KINDS[name], values)
        except IbvaeError as e:
            errors[name] = str(e)
    fits = [name for name in ([kind] if kind else CONFIG_KINDS) if name not in errors]
    if len(fits) == 1:
        return fits[0]
    if not fits:
        why = "; ".join(f"as a {name} config: {e}" for name, e in errors.items())
        raise IbvaeError(f"{path} is not a {kind or 'VAE or classifier'} config ({why})")
    raise IbvaeError(
        f"{path} fits both a VAE and a classifier config (no key of either model); pass "
        "--kind vae or --kind classifier"
    )


def point_name(beta: float, seed: int) -> str:
    """The run directory name of one point, e.g. ``beta0.1_seed0``."""
    return f"beta{beta:g}_seed{seed}"


def point_config(config: Config, beta: float, seed: int) -> Config:
    """``config`` with ``model.beta`` and ``train.seed`` set (checked again)."""
    values = cfg.apply_overrides(type(config), cfg.to_dict(config), {"beta": beta, "seed": seed})
    return cfg.from_dict(type(config), values)


def point_state(run_dir: Path, config: Config) -> str:
    """``new``, ``done`` (completed with ``config``), ``failed`` or ``resume``."""
    if not (run_dir / runs.CONFIG_FILE).is_file():
        require(
            not run_dir.exists() or not any(run_dir.iterdir()),
            f"{run_dir} exists but is not a run directory; move it out of the sweep",
        )
        return "new"
    metrics = runs.read_metrics(run_dir)
    if metrics.get("status") == "failed":
        return "failed"
    done = metrics.get("status") == "completed" and (run_dir / "model.keras").is_file()
    if done and runs.read_run_config(run_dir, type(config)) == config:
        return "done"
    return "resume"


def _evaluate_vae_point(run_dir: Path, config: VAEConfig, iw: int) -> str:
    metrics = runs.read_metrics(run_dir)
    if not iw or not metrics.get("test_elbo_is_bound") or metrics.get("test_iw_k") == iw:
        return ""
    evaluate_run(run_dir, EvaluateOptions(iw=iw, seed=config.train.seed), progress=False)
    return f"IW-NLL with k={iw}"


def _evaluate_classifier_point(run_dir: Path, config: ClassifierConfig) -> str:
    metrics = runs.read_metrics(run_dir)
    # done: the KL per pool, and the AUC wherever there is a lift (older runs lack the AUC)
    done = "kl_nats" in metrics and ("kl_lift" not in metrics or "kl_auc" in metrics)
    if config.model.dropout != "information" or done:
        return ""
    require(config.train.data is not None, f"{run_dir}: the config has no data path")
    test = load_classification_npz(config.train.data, splits=("test",))["test"]
    model = load_classifier(run_dir)
    if test.boxes is not None:
        write_kl_maps(model, test, run_dir)
    else:  # no digit boxes (e.g. CIFAR-10): the KL per pool, no lift
        nats = [float(m.sum(axis=(1, 2)).mean()) for m in kl_maps(model, test.x)]
        runs.update_metrics(run_dir, {"kl_nats": nats})
    return "KL maps"


def _number(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def point_row(kind: str, label: str, beta: float, seed: int, run_dir: Path) -> dict[str, Any]:
    """One row of ``sweep.csv`` from a point's ``config.yaml`` and ``metrics.json``."""
    m = runs.read_metrics(run_dir)
    config = runs.read_run_config(run_dir, CONFIG_KINDS[kind])
    row: dict[str, Any] = {"label": label, "beta": beta, "seed": seed}
    if kind == "vae":
        model = config.model
        row.update(latent=model.latent, prior_shape=model.prior_shape)
    else:
        row.update(arch=config.model.arch, dropout=config.model.dropout)
    row.update(epochs=config.train.epochs, status=m.get("status", "unfinished"))
    if kind == "vae":
        row.update(
            rate=m.get("test_kl"),
            distortion=m.get("test_reconstruction"),
            neg_elbo=m.get("test_neg_elbo"),
            elbo_is_bound=m.get("test_elbo_is_bound"),
            iw_nll=m.get("test_iw_nll"),
            iw_k=m.get("test_iw_k"),
            active_units=m.get("test_active_units"),
            latent_dim=config.model.latent_dim,
            total_correlation=m.get("test_total_correlation"),
            total_correlation_excess=m.get("test_total_correlation_excess"),
            tc_units=m.get("test_tc_units"),
        )
    else:
        nats = m.get("kl_nats") or []
        row.update(test_error=m.get("test_error"), rate=float(np.sum(nats)) if nats else None)
        for key in PER_POOL_COLUMNS:
            row.update({f"{key}_{i + 1}": v for i, v in enumerate(m.get(key) or [])})
    row["run_dir"] = str(run_dir)
    return {k: _number(v) for k, v in row.items()}


def write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    """``rows`` as CSV (columns in order of first appearance), written atomically."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows([{k: "" if v is None else v for k, v in row.items()} for row in rows])
    tmp.replace(path)
    return path


def sweep_beta(
    configs: Config | Mapping[str, Config],
    out: str | Path,
    options: SweepOptions | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    *,
    verbose: int | str = "auto",
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train every (config, beta, seed) point into ``out`` (resumably, see the module
    docstring), evaluate it, and write ``sweep.csv`` and the figures.

    Args:
        configs: one :class:`~ibvae.vae.config.VAEConfig` or
            :class:`~ibvae.classifier.config.ClassifierConfig`, or a mapping ``{label:
            config}`` of configs of the same kind (e.g. one per latent); the points take
            ``beta`` and ``seed`` from ``options``, everything else from the config.
        out: the sweep directory (created).
        options: betas, seeds and the IW-NLL's number of importance samples.
        callbacks, verbose, log: as for ``train_vae`` / ``train_classifier``.

    Returns ``{"rows": [...], "csv": path, "figures": [paths]}``.
    """
    options = cfg.from_dict(SweepOptions, cfg.to_dict(options or SweepOptions()))
    if not isinstance(configs, Mapping):
        configs = {kind_of(configs): configs}
    require(len(configs) >= 1, "a sweep needs at least one config")
    kinds = {label: kind_of(c) for label, c in configs.items()}
    require(len(set(kinds.values())) == 1, f"a sweep's configs must be of one kind, got {kinds}")
    kind = next(iter(kinds.values()))
    say = log or (lambda message: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    points = [(label, beta, seed) for label in configs for beta in options.betas
              for seed in options.seeds]
    rows = []
    for i, (label, beta, seed) in enumerate(points, 1):
        config = point_config(configs[label], beta, seed)
        run_dir = out / label / point_name(beta, seed)
        state = point_state(run_dir, config)
        say(f"[{i}/{len(points)}] {label} beta={beta:g} seed={seed}: "
            + {"new": "training", "resume": "resuming", "done": "finished, skipped",
               "failed": "failed before, skipped (delete the run directory to retry)"}[state]
            + f" ({run_dir})")
        if state in ("new", "resume"):
            train = train_vae if kind == "vae" else train_classifier
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            try:
                train(config, run_dir=run_dir, callbacks=callbacks, resume=state == "resume",
                      verbose=verbose)
            except TrainingFailed as e:
                say(f"  {e}")
        if runs.read_metrics(run_dir).get("status") == "completed":
            if kind == "vae":
                added = _evaluate_vae_point(run_dir, config, options.iw)
            else:
                added = _evaluate_classifier_point(run_dir, config)
            if added:
                say(f"  evaluated: {added}")
        rows.append(point_row(kind, label, beta, seed, run_dir))
        write_csv(rows, out / SWEEP_CSV)
    figures = sweep_figures(rows, kind, out / "figures")
    return {"rows": rows, "csv": out / SWEEP_CSV, "figures": figures}
