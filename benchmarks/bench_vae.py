"""Training speed of the VAE: each latent through the public entry point (``ibvae.train_vae``
with a run directory, so with every callback it uses) next to a bare ``model.fit`` of the same
model in the same process, and the ID-VAE against the Gaussian VAE.

    python benchmarks/bench_vae.py --data /path/to/mnist.npz
    python benchmarks/bench_vae.py --data /path/to/mnist.npz --backends jax --rounds 6

For each backend (a fresh process each, since KERAS_BACKEND is fixed at import) the default
model (MLP 784-400-40, batch 100) is built for every latent; the bare models (Adam, no
callbacks, ``steps_per_execution`` 1: what a plain Keras loop does) train one epoch each in
turn (the order rotating every round); then each latent trains through ``ibvae.train_vae``
(the default config, ``val_fraction`` 0 so both see the same images) for as many epochs, and
its ``epoch_seconds`` are read from the run. The first epoch of each (compilation) is
dropped; the table shows median epoch seconds and images/s. Numbers are printed, never
asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from _worker import report, worker_result

LATENTS = ("information_dropout", "information_dropout_lognormal", "gaussian")


def worker(args: argparse.Namespace) -> None:
    import tempfile

    import keras

    import ibvae
    from ibvae.data import load_dataset
    from ibvae.vae.config import VAEModelConfig
    from ibvae.vae.model import build_vae

    data = load_dataset("mnist", args.data, allow_download=False)
    x = data.x_train[: args.n] if args.n else data.x_train
    keras.utils.set_random_seed(0)
    models = {lat: build_vae(VAEModelConfig(latent=lat), data.image_shape) for lat in LATENTS}
    for model in models.values():
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
    bare: dict[str, list[float]] = {lat: [] for lat in LATENTS}
    for r in range(args.rounds):
        order = LATENTS[r % 3 :] + LATENTS[: r % 3]  # rotate, so no latent always goes first
        for lat in order:
            start = time.perf_counter()
            models[lat].fit(x, epochs=1, batch_size=100, verbose=0)
            bare[lat].append(time.perf_counter() - start)
    public: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for lat in LATENTS:
            config = ibvae.VAEConfig(
                model={"latent": lat}, train={"epochs": args.rounds, "val_fraction": 0.0}
            )
            _, metrics = ibvae.train_vae(
                config, data=(x, data.x_test[:1000]), run_dir=f"{tmp}/{lat}", verbose=0
            )
            public[lat] = metrics["epoch_seconds"]
    result = {
        "backend": keras.backend.backend(),
        "n": len(x),
        "source": data.source,
        "bare": bare,
        "public": public,
    }
    report(result)


def run_backend(backend: str, args: argparse.Namespace) -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [sys.executable, __file__, "--worker", "--rounds", str(args.rounds), "--n", str(args.n)]
    if args.data:
        cmd += ["--data", args.data]
    return worker_result(cmd, env, f"{backend} worker")


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
    print(f"{'backend':<11} {'latent':<31} {'bare s/ep':>10} {'bare img/s':>11} "
          f"{'train_vae s/ep':>15} {'train_vae img/s':>16} {'vs gaussian':>12}")
    for backend in args.backends:
        result = run_backend(backend, args)
        bare = {k: statistics.median(v[1:]) for k, v in result["bare"].items()}
        public = {k: statistics.median(v[1:]) for k, v in result["public"].items()}
        for lat in LATENTS:
            print(
                f"{backend:<11} {lat:<31} {bare[lat]:>10.2f} {result['n'] / bare[lat]:>11.0f} "
                f"{public[lat]:>15.2f} {result['n'] / public[lat]:>16.0f} "
                f"{public['gaussian'] / public[lat]:>12.3f}"
            )
        rounded = {part: {k: [round(s, 2) for s in v] for k, v in result[part].items()}
                   for part in ("bare", "public")}
        print(f"  ({result['n']} images from {result['source']}; every epoch: "
              f"{json.dumps(rounded)})")
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
