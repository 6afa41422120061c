#!/usr/bin/env python
"""Sample a trained VAE: decoded samples as a PNG grid and a .npy array in the run directory.

    python scripts/sample_vae.py RUN_DIR --n 64

``--source auto`` samples the prior for the log-normal and Gaussian latents and the run's
aggregate-posterior model for the log-uniform latent, whose prior is improper.
"""

from __future__ import annotations

import argparse
import sys

from ibvae import train
from ibvae.sampling import SOURCES, sample_run


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run_dir", help="a training run's --out directory")
    p.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--source", default="auto", choices=SOURCES)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    result = sample_run(args.run_dir, n=args.n, source=args.source, seed=args.seed)
    print(
        f"{result['shape'][0]} samples from the {result['source']} -> {result['png']}, "
        f"{result['npy']} (shape {result['shape']}, pixel probabilities in [0, 1])"
    )


if __name__ == "__main__":
    sys.exit(train.script_entry(main)())
