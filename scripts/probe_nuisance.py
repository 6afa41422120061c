#!/usr/bin/env python
"""Probe a trained classifier for the task and a nuisance: how much does a logistic
regression read the task label and the occluding digit back from each pool's representation
(inference, noise off; with --noise, --draws draws per image of each pool's own noise, z =
f(x) eps, on the noise-free pass)?

    python scripts/probe_nuisance.py RUN_DIR --data runs/data/occluded.npz [--noise]

The data is an .npz from scripts/make_occluded.py (x_*, y_* and nuisance_* of train and test;
default: the run's own data). Adds, per pool (shallow to deep), nuisance_error / task_error
(%), nuisance_info_nats / task_info_nats (the lower bound H(label) - test cross-entropy, H
from the test set's label frequencies) and their cross-entropies, the train and chance
errors, the label entropies, nuisance_probe (the settings and each pool's C, chosen from
--probe-c on a validation split of the probe's training images), and mean_alpha /
probe_kl_nats per information pool, to RUN_DIR/metrics.json (with --noise the probe's keys
end in _noisy, so both probes are kept). Works for information, binary and no-dropout runs.
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
    fmt = lambda vs: " / ".join(f"{v:.2f}" for v in vs)  # noqa: E731
    for label in ("nuisance", "task"):
        print(f"{label}_error{suffix} {fmt(r[f'{label}_error'])} % (pools shallow -> deep; "
              f"chance {r[f'{label}_chance_error']:.2f} %); {label}_info_nats{suffix} "
              f"{fmt(r[f'{label}_info_nats'])} of H = {r[f'{label}_entropy_nats']:.3f} nats")
    print(f"logistic regression on {p['grid']}x{p['grid']}-pooled features, {p['n_train']} "
          f"train / {p['n_test']} test images x {p['draws']} draw(s), C {p['C']} (nuisance) / "
          f"{p['C_task']} (task) from {p['C_grid']}, {p['seconds']} s")
    if any(v is not None for v in r["mean_alpha"]):
        print(f"mean_alpha {fmt(r['mean_alpha'])}; probe_kl_nats {fmt(r['probe_kl_nats'])}")
    for label, key in (("nuisance", "converged"), ("task", "converged_task")):
        if not all(p[key]):
            print(f"note: the {label} probe did not converge in --max-iter {p['max_iter']} for "
                  "pool(s) " + ", ".join(str(i + 1) for i, ok in enumerate(p[key]) if not ok))
    print(f"updated {args.run_dir}/metrics.json")


if __name__ == "__main__":
    _cli.run(main)
