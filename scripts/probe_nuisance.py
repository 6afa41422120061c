#!/usr/bin/env python
"""Probe a trained classifier for a nuisance: how well does a logistic regression read the
occluding digit back from each pool's representation (inference, noise off; with --noise,
one draw of the dropout noise: z = f(x) eps, what the next layer receives in training)?

    python scripts/probe_nuisance.py RUN_DIR --data runs/data/occluded.npz [--noise]

The data is an .npz from scripts/make_occluded.py (x_* and nuisance_* of train and test;
default: the run's own data). Adds nuisance_error (per pool, shallow to deep, in %),
nuisance_train_error, nuisance_chance_error and nuisance_probe (the settings) to
RUN_DIR/metrics.json (with --noise the same keys ending in _noisy, so both probes are kept).
Works for information, binary and no-dropout runs alike.
"""

from __future__ import annotations

import _cli  # first: starts Keras without TensorFlow's start-up lines

from ibvae.classifier.probe import ProbeOptions, probe_nuisance


def main(argv: list[str] | None = None) -> None:
    args, options = _cli.options(argv, __doc__, ProbeOptions, "a train_classifier.py run directory")
    r = probe_nuisance(args.run_dir, options)
    suffix = "_noisy" if options.noise else ""
    r = {k.removesuffix(suffix): v for k, v in r.items()}
    p = r["nuisance_probe"]
    errors = " / ".join(f"{v:.2f}" for v in r["nuisance_error"])
    print(f"nuisance_error{suffix} {errors} % (pools shallow -> deep; chance "
          f"{r['nuisance_chance_error']:.2f} %); logistic regression on {p['grid']}x{p['grid']}"
          f"-pooled features, {p['n_train']} train / {p['n_test']} test images, {p['seconds']} s")
    if not all(p["converged"]):
        print(f"note: the probe did not converge in --max-iter {p['max_iter']} for pool(s) "
              + ", ".join(str(i + 1) for i, ok in enumerate(p["converged"]) if not ok))
    print(f"updated {args.run_dir}/metrics.json")


if __name__ == "__main__":
    _cli.run(main)
