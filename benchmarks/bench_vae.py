"""Training speed of the ID-VAE against the Gaussian VAE of the same architecture.

    python benchmarks/bench_vae.py --data /path/to/mnist.npz

For each backend (a fresh process each, since KERAS_BACKEND is fixed at import) the default
config (MLP 784-400-40, batch 100) is built for every latent; the models then train one epoch
each in turn (the order rotating every round), round after round, so that load from other
processes hits them alike. The first
round (compilation) is dropped; the table shows the median epoch seconds of the others,
samples/s, and the ratio to the Gaussian VAE (target: ID / Gaussian >= 0.95).
Numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

LATENTS = ("information_dropout", "information_dropout_lognormal", "gaussian")


def worker(args: argparse.Namespace) -> None:
    import keras

    from ibvae.data import load_dataset
    from ibvae.vae.config import VAEModelConfig
    from ibvae.vae.model import build_vae

    data = load_dataset("mnist", args.data)
    x = data.x_train[: args.n] if args.n else data.x_train
    keras.utils.set_random_seed(0)
    models = {lat: build_vae(VAEModelConfig(latent=lat), data.image_shape) for lat in LATENTS}
    for model in models.values():
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
    seconds: dict[str, list[float]] = {lat: [] for lat in LATENTS}
    for r in range(args.rounds):
        order = LATENTS[r % 3 :] + LATENTS[: r % 3]  # rotate, so no latent always goes first
        for lat in order:
            start = time.perf_counter()
            models[lat].fit(x, epochs=1, batch_size=100, verbose=0)
            seconds[lat].append(time.perf_counter() - start)
    result = {
        "backend": keras.backend.backend(),
        "n": len(x),
        "source": data.source,
        "seconds": seconds,
    }
    print("RESULT " + json.dumps(result))


def run_backend(backend: str, args: argparse.Namespace) -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [sys.executable, __file__, "--worker", "--rounds", str(args.rounds), "--n", str(args.n)]
    if args.data:
        cmd += ["--data", args.data]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"{backend} worker failed:\n{proc.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", help="mnist.npz (default: the MNIST resolution order)")
    p.add_argument("--backends", nargs="+", default=["tensorflow", "jax"])
    p.add_argument("--rounds", type=int, default=6, help="epochs per model, the first dropped")
    p.add_argument("--n", type=int, default=0, help="train on the first N images (0: all)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.rounds < 2:
        sys.exit("--rounds must be >= 2 (the first round is compilation)")
    if args.worker:
        worker(args)
        return
    print(f"load before: {os.getloadavg()}")
    print(f"{'backend':<11} {'latent':<31} {'s/epoch':>8} {'samples/s':>10} {'vs gaussian':>12}")
    for backend in args.backends:
        result = run_backend(backend, args)
        median = {k: statistics.median(v[1:]) for k, v in result["seconds"].items()}
        for lat in LATENTS:
            rate = result["n"] / median[lat]
            ratio = median["gaussian"] / median[lat]
            print(f"{backend:<11} {lat:<31} {median[lat]:>8.2f} {rate:>10.0f} {ratio:>12.3f}")
        print(
            f"  ({result['n']} images from {result['source']}; every epoch: "
            f"{json.dumps({k: [round(s, 2) for s in v] for k, v in result['seconds'].items()})})"
        )
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
