"""Experiments as code: a spec (``configs/experiments/*.yaml``) -> points -> run directories
-> evaluations -> ``results.csv`` -> tables (mean ± sd over seeds) and figures, on this
process, local workers or a Ray cluster. See :mod:`ibvae.experiments.spec` for the format and
:func:`run_experiment` for the runner."""

from ibvae.experiments.runner import Execution, report, run_experiment
from ibvae.experiments.spec import Spec, load_spec

__all__ = ["Execution", "Spec", "load_spec", "report", "run_experiment"]
