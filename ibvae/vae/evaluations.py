"""The VAE's evaluations for experiments and sweeps (:mod:`ibvae.evaluations`): the
importance-weighted NLL of the test set."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ibvae.config import Config, option
from ibvae.evaluations import register_evaluation
from ibvae.vae.config import VAEConfig
from ibvae.vae.evaluate import EvaluateOptions, evaluate_run


@dataclasses.dataclass
class IWParams(Config):
    """The IW-NLL's parameters in a spec."""

    k: int = option(1000, "importance samples per test image", ge=1)
    n_test: int | None = option(None, "only the first N test images", ge=1)


def _iw_done(metrics: dict[str, Any], config: VAEConfig, params: IWParams) -> bool:
    # an improper prior has no IW-NLL: nothing to do
    return not metrics.get("test_elbo_is_bound") or metrics.get("test_iw_k") == params.k


@register_evaluation("iw_nll", tasks=("vae",), done=_iw_done, params=IWParams)
def iw_nll_of_run(run_dir: Path, config: VAEConfig, params: IWParams) -> None:
    """``test_iw_nll`` (and the ELBO again) of the run's test set, seeded by the run's seed."""
    evaluate_run(run_dir, EvaluateOptions(iw=params.k, n_test=params.n_test,
                                          seed=config.train.seed), progress=False)
