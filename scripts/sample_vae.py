#!/usr/bin/env python
"""Sample a trained VAE: decoded samples as a PNG grid and a .npy array in the run directory.

    python scripts/sample_vae.py RUN_DIR --n 64

--source auto samples the prior for the log-normal and Gaussian latents and the run's
aggregate-posterior model for the log-uniform latent, whose prior is improper.
"""

from __future__ import annotations

import _cli  # first: starts Keras without TensorFlow's start-up lines

from ibvae.vae.sampling import SampleOptions, sample_run


def main(argv: list[str] | None = None) -> None:
    args, options = _cli.options(argv, __doc__, SampleOptions, _cli.RUN_DIR)
    result = sample_run(args.run_dir, options)
    print(
        f"{result['shape'][0]} samples from the {result['source']} -> {result['png']}, "
        f"{result['npy']} (shape {result['shape']}, pixel probabilities in [0, 1])"
    )


if __name__ == "__main__":
    _cli.run(main)
