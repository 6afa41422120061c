#!/usr/bin/env python
"""Evaluate a trained VAE run on its test set and merge the numbers into its metrics.json.

    python scripts/evaluate_vae.py RUN_DIR --iw 1000

Reports the test negative ELBO (reconstruction + KL), the importance-weighted NLL (log-normal
and Gaussian latents; undefined for the log-uniform prior), all in nats per example, and the
active units and total correlation of the latent, defined alike for every latent (see
ibvae/vae/metrics.py): TC in nats, next to its value on shuffled codes and the difference.
"""

from __future__ import annotations

import sys

import _cli  # first: starts Keras without TensorFlow's start-up lines

from ibvae.vae.evaluate import EvaluateOptions, evaluate_run


def main(argv: list[str] | None = None) -> None:
    args, options = _cli.options(argv, __doc__, EvaluateOptions, _cli.RUN_DIR)
    m = evaluate_run(args.run_dir, options, progress=sys.stdout.isatty())
    print(f"data: {m['data_source']} ({m['n']} test images)")
    if m["elbo_is_bound"]:
        print(
            f"test neg-ELBO {m['neg_elbo']:.2f} = reconstruction "
            f"{m['reconstruction']:.2f} + KL {m['kl']:.2f} nats/example"
        )
        print(f"test IW-NLL (k={m['iw_k']}) {m['iw_nll']:.2f} nats/example")
    else:
        print(
            f"test neg-ELBO up to its constant {m['neg_elbo']:.2f} = reconstruction "
            f"{m['reconstruction']:.2f} + KL {m['kl']:.2f} (NOT a bound)"
        )
        print(f"note: {m['iw_note']}")
    print(f"active units {m['active_units']} (input explains > 1% of a unit's variance)")
    if m["total_correlation"] is None:
        print(f"total correlation: too few test images for {m['tc_units']} units")
    else:
        print(
            f"total correlation {m['total_correlation']:.3f} nats over {m['tc_units']} units "
            f"({m['total_correlation_shuffled']:.3f} on shuffled codes, excess "
            f"{m['total_correlation_excess']:.3f})"
        )
    print(f"merged into {args.run_dir}/metrics.json")


if __name__ == "__main__":
    _cli.run(main)
