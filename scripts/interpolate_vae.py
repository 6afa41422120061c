#!/usr/bin/env python
"""Interpolate between the codes of pairs of test images and decode (PNG grid and .npy).

    python scripts/interpolate_vae.py RUN_DIR --pairs 8 --steps 10

Information Dropout codes are interpolated geometrically (linearly in log z); a unit that is
exactly 0 at one end is interpolated linearly in z. Gaussian codes are interpolated linearly.
"""

from __future__ import annotations

import argparse
import sys

from ibvae import train
from ibvae.sampling import interpolate_run


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run_dir", help="a training run's --out directory")
    p.add_argument("--pairs", type=int, default=8)
    p.add_argument("--steps", type=int, default=10, help="codes per pair, both ends included")
    p.add_argument("--seed", type=int, default=0, help="which test pairs")
    p.add_argument("--data", help="override the run's data path")
    args = p.parse_args(argv)
    result = interpolate_run(args.run_dir, args.pairs, args.steps, args.seed, args.data)
    print(f"data: {result['data_source']}")
    print(f"interpolations {result['shape']} -> {result['png']}, {result['npy']}")


if __name__ == "__main__":
    sys.exit(train.script_entry(main)())
