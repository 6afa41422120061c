"""The classifier's evaluations for experiments and sweeps (:mod:`ibvae.evaluations`): the
KL maps of the information pools (KL per pool; localisation where the test split has digit
boxes) and the nuisance probe (:mod:`ibvae.classifier.probe`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ibvae import runs
from ibvae.classifier.config import ClassifierConfig
from ibvae.classifier.data import load_classification_npz
from ibvae.classifier.kl_maps import kl_maps, write_kl_maps
from ibvae.classifier.models import load_classifier
from ibvae.classifier.probe import ProbeOptions, probe_nuisance
from ibvae.errors import require
from ibvae.evaluations import register_evaluation


def _kl_maps_done(metrics: dict[str, Any], config: ClassifierConfig, params: Any) -> bool:
    if config.model.dropout != "information":
        return True  # no information pool, no KL
    # done: the KL per pool, and wherever there is a lift its AUC and the ink baseline
    # (runs evaluated before those existed are evaluated again)
    scores = ("kl_auc", "ink_lift", "ink_auc", "kl_auc_clutter")
    return "kl_nats" in metrics and ("kl_lift" not in metrics or all(k in metrics for k in scores))


@register_evaluation("kl_maps", tasks=("classifier",), done=_kl_maps_done)
def kl_maps_of_run(run_dir: Path, config: ClassifierConfig, params: Any) -> None:
    """The KL per information pool over the run's test split; with digit boxes also the
    localisation scores and ``figures/kl_maps.png``."""
    require(config.train.data is not None, f"{run_dir}: the config has no data path")
    test = load_classification_npz(config.train.data, splits=("test",))["test"]
    model = load_classifier(run_dir)
    if test.boxes is not None:
        write_kl_maps(model, test, run_dir)
    else:  # no digit boxes (e.g. CIFAR-10): the KL per pool, no lift
        nats = [float(m.sum(axis=(1, 2)).mean()) for m in kl_maps(model, test.x)]
        runs.update_metrics(run_dir, {"kl_nats": nats})


def _probe_done(metrics: dict[str, Any], config: ClassifierConfig, params: ProbeOptions) -> bool:
    return ("nuisance_error" + ("_noisy" if params.noise else "")) in metrics


@register_evaluation("nuisance_probe", tasks=("classifier",), done=_probe_done,
                     params=ProbeOptions)
def nuisance_probe_of_run(run_dir: Path, config: ClassifierConfig, params: ProbeOptions) -> None:
    """:func:`~ibvae.classifier.probe.probe_nuisance` with the spec's options."""
    probe_nuisance(run_dir, params)
