#!/usr/bin/env python
"""Evaluate a trained VAE on its test set and merge the numbers into its metrics.json.

    python scripts/evaluate_vae.py RUN_DIR --iw 1000

Reports the test negative ELBO (beta = 1), the importance-weighted NLL with --iw samples
(log-normal and Gaussian latents only: the log-uniform prior is improper), active units and
the Gaussian total correlation of the latent, all in nats per example.
"""

from __future__ import annotations

import argparse
import sys

from ibvae import train
from ibvae.evaluate_vae import evaluate_run


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run_dir", help="a training run's --out directory")
    p.add_argument("--iw", type=int, default=1000, help="importance samples per image")
    p.add_argument("--n-test", type=int, help="evaluate only the first N test images")
    p.add_argument("--elbo-samples", type=int, default=1, help="posterior draws for the ELBO")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", help="override the run's data path")
    args = p.parse_args(argv)
    m = evaluate_run(
        args.run_dir,
        iw=args.iw,
        n_test=args.n_test,
        n_samples=args.elbo_samples,
        data=args.data,
        seed=args.seed,
        progress=sys.stdout.isatty(),
    )
    print(f"data: {m['data_source']} ({m['n_test']} test images)")
    if m["elbo_is_bound"]:
        print(
            f"test neg-ELBO {m['test_neg_elbo']:.2f} = reconstruction "
            f"{m['test_reconstruction']:.2f} + KL {m['test_kl']:.2f} nats/example"
        )
        print(f"test IW-NLL (k={m['iw_k']}) {m['test_iw_nll']:.2f} nats/example")
    else:
        print(
            f"test neg-ELBO up to its constant {m['test_neg_elbo']:.2f} = reconstruction "
            f"{m['test_reconstruction']:.2f} + KL {m['test_kl']:.2f} (NOT a bound)"
        )
        print(f"note: {m['iw_note']}")
    print(
        f"active units {m['active_units']}; total correlation {m['total_correlation']:.2f} "
        f"nats over {m['tc_units']} units; merged into {args.run_dir}/metrics.json"
    )


if __name__ == "__main__":
    sys.exit(train.script_entry(main)())
