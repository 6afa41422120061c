#!/usr/bin/env python
r"""Sweep beta: train one config (or several, e.g. one per latent) for every beta and seed, one
run directory per point, then write SWEEP_DIR/results.csv, SWEEP_DIR/tables/sweep.md (mean ± sd
over the seeds) and SWEEP_DIR/figures/ (rate_distortion.png, metrics_vs_beta.png).

    python scripts/sweep_beta.py --config configs/vae_mnist.yaml --betas 0.1 1 10 \
        --out runs/sweep --epochs 5 --data /path/to/mnist.npz
    python scripts/sweep_beta.py --config configs/vae_mnist.yaml configs/vae_mnist_gaussian.yaml \
        --betas 0.1 1 10 --seeds 0 1 --out runs/sweep --iw 1000
    python scripts/sweep_beta.py --config configs/allcnn96_cluttered_cpu.yaml \
        --betas 0.01 0.1 1 --out runs/sweep_cls

The config's kind (VAE or classifier) comes from its keys, or from --kind. Every training
flag of train_vae.py / train_classifier.py (for that kind) applies to every point, except
--beta and --seed, which the sweep sets from --betas and --seeds. Points live in
SWEEP_DIR/<config name>/beta=<b>,seed=<s>. Run the same command again to continue: finished
points are skipped, an interrupted point resumes from its last epoch, a point asked for more
--epochs is extended. VAE rows hold rate (KL), distortion (reconstruction), neg-ELBO, IW-NLL
(k = --iw; not for the log-uniform latent), active units and total correlation; classifier
rows the test error and the KL (nats), localisation lift and localisation AUC of each
information pool (and the nuisance-probe error of each pool once
scripts/probe_nuisance.py has run on a point: run the sweep again to collect it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import _cli  # first: starts Keras without TensorFlow's start-up lines

from ibvae import config as cfg
from ibvae import flags
from ibvae.errors import IbvaeError
from ibvae.sweep import SweepOptions, detect_kind, sweep_beta
from ibvae.training import TASKS

SET_BY_THE_SWEEP = {"beta": "--betas", "seed": "--seeds"}


def config_kind(argv: list[str]) -> str | None:
    """The kind of the --config files (None for --help without a config)."""
    pre = _cli.Parser(add_help=False)
    pre.add_argument("--config", nargs="+")
    pre.add_argument("--kind", choices=sorted(TASKS))
    known, _ = pre.parse_known_args(argv)
    if not known.config:
        if {"-h", "--help"} & set(argv):
            return None
        raise IbvaeError("--config CONFIG.yaml [...] is required (see --help)")
    kinds = {path: detect_kind(path, known.kind) for path in known.config}
    if len(set(kinds.values())) > 1:
        raise IbvaeError(f"the configs of one sweep must be of one kind, got {kinds}")
    return next(iter(kinds.values()))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    kind = config_kind(argv)
    p = _cli.parser(__doc__)
    p.add_argument("--config", nargs="+", required=True, help="YAML config(s), one kind")
    p.add_argument("--kind", choices=sorted(TASKS),
                   help="vae or classifier (default: from the config's keys)")
    p.add_argument("--out", required=True, help="the sweep directory (created; reused to resume)")
    flags.add_flags(p, SweepOptions, title="SweepOptions (what the sweep varies)")
    if kind is None:
        p.epilog = "Pass --config to list the training flags of its kind as well."
    else:
        flags.add_flags(p, TASKS[kind].config_class, title=f"{kind} training flags (every point)")
    args = p.parse_args(argv)
    cls = TASKS[kind].config_class
    overrides = flags.flag_overrides(args, cls)
    for name, flag in SET_BY_THE_SWEEP.items():
        if name in overrides:
            raise IbvaeError(f"--{name} is set for each point by {flag}; drop --{name}")
    options = cfg.from_dict(SweepOptions, flags.flag_overrides(args, SweepOptions))
    configs = {}
    for path in args.config:
        label = Path(path).stem
        if label in configs:
            raise IbvaeError(f"two configs are named {label!r}; rename one (the name labels "
                             "its runs and curves)")
        configs[label] = cfg.load(cls, path, overrides)
    result = sweep_beta(configs, args.out, options, log=print)
    done = sum(r["status"] == "completed" for r in result["rows"])
    print(f"{done}/{len(result['rows'])} points completed; table: {result['csv']}")
    for figure in result["figures"]:
        print(f"figure: {figure}")


if __name__ == "__main__":
    _cli.run(main)
