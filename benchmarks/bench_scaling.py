"""Images/s of data-parallel training on 1 and N devices, and the scaling efficiency.

    python benchmarks/bench_scaling.py --devices 2                     # N virtual CPU devices
    python benchmarks/bench_scaling.py --backends jax --model classifier
    python benchmarks/bench_scaling.py --data /path/to/mnist.npz      # real MNIST for the VAE

Each (backend, device count) runs in a fresh process (devices are fixed when the backend
starts): on a machine without accelerators it makes N virtual CPU devices (JAX:
``--xla_force_host_platform_device_count``; TensorFlow: logical CPU devices); with GPUs it
uses the first N of them. The model (the default VAE 784-400-40, or All-CNN-96 width 0.25 on
64 x 64 inputs) trains a few epochs through ``ibvae.distribute.Plan`` with the same global
batch; the first epoch (compilation) is dropped. Efficiency = (images/s on N) / (N x images/s
on 1). On a shared 2-core CPU the virtual devices share the same cores, so there the number
measures the overhead of data parallelism, not a speed-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from _worker import report, worker_result


def worker(args: argparse.Namespace) -> None:
    backend = os.environ["KERAS_BACKEND"]
    if backend == "tensorflow":
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            cpu = tf.config.list_physical_devices("CPU")[0]
            config = [tf.config.LogicalDeviceConfiguration()] * args.n
            tf.config.set_logical_device_configuration(cpu, config)
    import keras
    import numpy as np

    from ibvae import distribute
    from ibvae.classifier.config import ClassifierModelConfig
    from ibvae.classifier.models import build_classifier
    from ibvae.data import load_dataset
    from ibvae.vae.config import VAEModelConfig
    from ibvae.vae.model import build_vae

    plan = distribute.Plan("data_parallel" if args.n > 1 else "none", args.batch)
    if args.n > 1 and plan.replicas != args.n:  # use the first N devices of a bigger machine
        sys.exit(f"asked for {args.n} devices, found {plan.replicas}")
    keras.utils.set_random_seed(0)
    with plan.scope():
        if args.model == "vae":
            x = load_dataset("mnist", args.data, allow_download=False).x_train[: args.images]
            y = None
            model = build_vae(VAEModelConfig(), (28, 28, 1), seed=0)
            model.compile(optimizer=keras.optimizers.Adam(1e-3))
        else:
            rng = np.random.default_rng(0)
            x = rng.random((args.images, 64, 64, 1)).astype("float32")
            y = rng.integers(0, 10, args.images)
            model = build_classifier(ClassifierModelConfig(width=0.25), (64, 64, 1), len(x))
            model.compile(optimizer=keras.optimizers.Adam(1e-3),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = x[: len(x) - len(x) % args.batch]
    y = None if y is None else y[: len(x)]
    seconds = []
    for _ in range(args.epochs):
        with plan.scope():
            start = time.perf_counter()
            model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0)
            seconds.append(time.perf_counter() - start)
    report({"n": len(x), "replicas": plan.replicas, "seconds": seconds})


def run(backend: str, n: int, args: argparse.Namespace) -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    if backend == "jax" and n > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n}"
    cmd = [sys.executable, __file__, "--worker", "--n", str(n), "--model", args.model,
           "--batch", str(args.batch), "--epochs", str(args.epochs), "--images",
           str(args.images)]
    if args.data:
        cmd += ["--data", args.data]
    return worker_result(cmd, env, f"{backend} on {n} device(s)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backends", nargs="+", default=["jax", "tensorflow"])
    p.add_argument("--devices", type=int, default=2, help="N (compared with 1)")
    p.add_argument("--model", choices=["vae", "classifier"], default="vae")
    p.add_argument("--data", help="mnist.npz for the VAE (default: the offline 5k digits)")
    p.add_argument("--images", type=int, default=60000, help="training images per epoch")
    p.add_argument("--batch", type=int, default=100, help="global batch size")
    p.add_argument("--epochs", type=int, default=4, help="epochs per run, the first dropped")
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.epochs < 2:
        p.error("--epochs must be at least 2: the first epoch (compilation) is dropped")
    if args.worker:
        worker(args)
        return
    print(f"load before: {os.getloadavg()}; model {args.model}, global batch {args.batch}")
    print(f"{'backend':<11}{'devices':>8}{'images/s':>11}{'efficiency':>12}")
    for backend in args.backends:
        rates = {}
        for n in (1, args.devices):
            result = run(backend, n, args)
            rates[n] = result["n"] / statistics.median(result["seconds"][1:])
            efficiency = rates[n] / (n * rates[1])
            print(f"{backend:<11}{result['replicas']:>8}{rates[n]:>11.0f}{efficiency:>12.3f}")
    print(f"load after: {os.getloadavg()}")
    print("(virtual CPU devices share the same cores: on a CPU this is the overhead of data "
          "parallelism, not a speed-up; run it on a machine with several GPUs for that)")


if __name__ == "__main__":
    main()
