#!/usr/bin/env python
"""Generate Cluttered MNIST (96x96, 21 8x8 distractors by default) into one .npz.

    python scripts/make_cluttered_mnist.py --data /path/to/mnist.npz --out runs/cluttered.npz
"""

from __future__ import annotations

import time

import _cli  # first: starts Keras without TensorFlow's start-up lines

from ibvae import config as cfg
from ibvae import flags
from ibvae.classifier.cluttered import make_cluttered_mnist
from ibvae.classifier.config import ClutterConfig
from ibvae.files import write_npz


def main(argv: list[str] | None = None) -> None:
    p = _cli.parser(__doc__)
    p.add_argument("--out", required=True, help="output .npz (x_*, y_*, boxes_* per split)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    flags.add_flags(p, ClutterConfig, title="generator options")
    args = p.parse_args(argv)
    c = cfg.from_dict(ClutterConfig, flags.flag_overrides(args, ClutterConfig))
    t0 = time.perf_counter()
    path = write_npz(lambda: make_cluttered_mnist(c, _cli.progress), args.out, args.overwrite)
    print(
        f"wrote {path}: {c.train} train / {c.valid} valid / {c.test} test images of "
        f"{c.canvas}x{c.canvas}, {c.distractors} distractors of "
        f"{c.distractor_size}x{c.distractor_size}; generated {c.train + c.valid + c.test} images "
        f"in {time.perf_counter() - t0:.1f} s"
    )


if __name__ == "__main__":
    _cli.run(main)
