#!/usr/bin/env python
"""Interpolate between the codes of pairs of test images and decode (PNG grid and .npy).

    python scripts/interpolate_vae.py RUN_DIR --pairs 8 --steps 10

Information Dropout codes are interpolated geometrically (linearly in log z); a unit that is
exactly 0 at one end is interpolated linearly in z. Gaussian codes are interpolated linearly.
"""

from __future__ import annotations

import _cli  # first: starts Keras without TensorFlow's start-up lines

from ibvae.vae.sampling import InterpolateOptions, interpolate_run


def main(argv: list[str] | None = None) -> None:
    args, options = _cli.options(argv, __doc__, InterpolateOptions, _cli.RUN_DIR)
    result = interpolate_run(args.run_dir, options)
    print(f"data: {result['data_source']}")
    print(f"interpolations {result['shape']} -> {result['png']}, {result['npy']}")


if __name__ == "__main__":
    _cli.run(main)
