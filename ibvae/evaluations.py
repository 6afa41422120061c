"""Evaluations of a finished run beyond its training report (the VAE's IW-NLL, the
classifier's KL maps, the nuisance probe, ...), each a small function registered by name, so
that experiments and sweeps name them in a spec and a new one is one function in its own
module.

An evaluation reads a run directory and merges its numbers into the run's ``metrics.json``;
its ``done`` check says from that file whether it has run with these parameters already, so
a rerun of an experiment skips it. Its parameters are a :class:`~ibvae.config.Config` (checked
like any config: an unknown or ill-typed parameter is one error line).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ibvae import config as cfg
from ibvae import runs
from ibvae.errors import IbvaeError, one_of


@dataclasses.dataclass
class NoParams(cfg.Config):
    """An evaluation without parameters."""


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """A registered evaluation: ``run(run_dir, config, params)`` writes its metrics;
    ``done(metrics, config, params)`` tells from ``metrics.json`` whether that is needed;
    ``tasks``, the task names it applies to (others skip it)."""

    name: str
    run: Callable[[Path, Any, Any], None]
    done: Callable[[dict[str, Any], Any, Any], bool]
    params: type[cfg.Config]
    tasks: tuple[str, ...]


EVALUATIONS: dict[str, Evaluation] = {}


def register_evaluation(
    name: str,
    tasks: tuple[str, ...],
    done: Callable[[dict[str, Any], Any, Any], bool],
    params: type[cfg.Config] = NoParams,
) -> Callable[[Callable[[Path, Any, Any], None]], Callable[[Path, Any, Any], None]]:
    """Decorator: register ``fn(run_dir, config, params)`` as the evaluation ``name``."""

    def apply(fn: Callable[[Path, Any, Any], None]) -> Callable[[Path, Any, Any], None]:
        EVALUATIONS[name] = Evaluation(name, fn, done, params, tasks)
        return fn

    return apply


def check_evaluation(name: str, params: dict[str, Any]) -> Any:
    """The checked parameters of the evaluation ``name`` (one error for an unknown name or
    parameter)."""
    one_of("evaluation", name, sorted(EVALUATIONS))
    try:
        return cfg.from_dict(EVALUATIONS[name].params, params)
    except IbvaeError as e:
        raise IbvaeError(f"evaluation {name}: {e}") from e


def evaluate_run(run_dir: Path, task: str, config: Any, name: str,
                 params: dict[str, Any]) -> bool:
    """Run the evaluation ``name`` on the finished run ``run_dir`` unless it does not apply
    to ``task`` or has run already; returns whether it ran."""
    evaluation = EVALUATIONS[one_of("evaluation", name, sorted(EVALUATIONS))]
    checked = check_evaluation(name, params)
    if task not in evaluation.tasks:
        return False
    if evaluation.done(runs.read_metrics(run_dir), config, checked):
        return False
    evaluation.run(Path(run_dir), config, checked)
    return True
