#!/usr/bin/env python
"""Generate Occluded Fashion-MNIST (the paper's Occluded CIFAR, offline) into one .npz: each
task image with an MNIST digit pasted over part of it.

    python scripts/make_occluded.py --task-data /path/to/fashion-mnist \
        --occluder-data /path/to/mnist.npz --out runs/data/occluded.npz

--task-data and --occluder-data: an .npz (x_train, y_train, x_test, y_test) or a folder of the
four IDX files (gzip'd or not). Writes x_*, y_* (the task labels) and nuisance_* (the pasted
digit's label), occluder_boxes_* per split: train_classifier.py reads it like any
classification .npz, probe_nuisance.py reads the nuisance labels.
"""

from __future__ import annotations

import time

import _cli  # first: starts Keras without TensorFlow's start-up lines

from ibvae import config as cfg
from ibvae import flags
from ibvae.classifier.config import OccludedConfig
from ibvae.classifier.occluded import make_occluded
from ibvae.files import write_npz


def main(argv: list[str] | None = None) -> None:
    p = _cli.parser(__doc__)
    p.add_argument("--out", required=True, help="output .npz (x_*, y_*, nuisance_* per split)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    flags.add_flags(p, OccludedConfig, title="generator options")
    args = p.parse_args(argv)
    c = cfg.from_dict(OccludedConfig, flags.flag_overrides(args, OccludedConfig))
    t0 = time.perf_counter()
    path = write_npz(lambda: make_occluded(c, _cli.progress), args.out, args.overwrite)
    occluder = "no occluder" if c.occluder_size == 0 else (
        f"{c.occluder_size}x{c.occluder_size} digits ({c.blend})")
    print(f"wrote {path}: {c.train} train / {c.valid} valid / {c.test} test images, {occluder}; "
          f"generated in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    _cli.run(main)
