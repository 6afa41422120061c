"""Training-step time of small models with Information Dropout vs Keras GaussianDropout vs
no noise, side by side in one run (printed, never asserted).

Variants per model:
  id_pool   the paper's information pool: features projection + parallel alpha projection +
            InformationDropout (ibvae.InformationDense / InformationConv2D);
  id_layer  InformationDropout alone on the same features (alpha logits = the features), so
            the extra alpha projection is not counted: the noise + KL cost of the layer itself;
  gaussian  keras.layers.GaussianDropout(0.5) after the same projection;
  none      the projection alone.
Epochs of the variants are interleaved and the median is reported, so load from other
processes affects all variants alike.

    python benchmarks/bench_layers.py                    # TensorFlow (default backend)
    KERAS_BACKEND=jax python benchmarks/bench_layers.py
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import ibvae  # noqa: E402

VARIANTS = ("id_pool", "id_layer", "gaussian", "none")


def noisy(variant: str, project, pool, h_in, seed: int):
    """Apply ``variant`` to input ``h_in`` of a block whose plain projection is ``project``."""
    if variant == "id_pool":
        return pool(h_in)
    h = project(h_in)
    if variant == "id_layer":
        return ibvae.InformationDropout(seed=seed)([h, h])
    if variant == "gaussian":
        return keras.layers.GaussianDropout(0.5, seed=seed)(h)
    return h


def dense_model(variant: str) -> keras.Model:
    x = inputs = keras.Input((784,))
    for i, units in enumerate((512, 512)):
        x = noisy(
            variant,
            keras.layers.Dense(units, activation="relu"),
            ibvae.InformationDense(units, kl_weight=1e-4, seed=i),
            x,
            seed=i,
        )
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def conv_model(variant: str) -> keras.Model:
    x = inputs = keras.Input((32, 32, 3))
    for i, (filters, stride) in enumerate(((32, 1), (64, 2), (128, 2))):
        x = noisy(
            variant,
            keras.layers.Conv2D(filters, 3, strides=stride, padding="same", activation="relu"),
            ibvae.InformationConv2D(filters, 3, strides=stride, kl_weight=1e-4, seed=i),
            x,
            seed=i,
        )
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def bench(build, x, y, batch_size: int, repeats: int) -> dict[str, float]:
    models = {}
    for v in VARIANTS:
        m = build(v)
        m.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(True))
        m.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)  # compile + warm up
        models[v] = m
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    steps = len(x) // batch_size
    for _ in range(repeats):
        for v, m in models.items():
            t0 = time.perf_counter()
            m.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
            times[v].append((time.perf_counter() - t0) / steps * 1000)
    return {v: float(np.median(t)) for v, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20, help="training steps per timed epoch")
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs per variant")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.steps * args.batch_size
    cases = {
        "dense 784-512-512-10": (
            dense_model,
            rng.uniform(size=(n, 784)).astype("float32"),
        ),
        "conv 32x32x3 c32-c64/2-c128/2": (
            conv_model,
            rng.uniform(size=(n, 32, 32, 3)).astype("float32"),
        ),
    }
    y = rng.integers(0, 10, size=n)
    print(
        f"backend={keras.backend.backend()} batch={args.batch_size} steps/epoch={args.steps} "
        f"repeats={args.repeats} load={os.getloadavg()[0]:.2f}"
    )
    header = "model".ljust(32) + "".join(f"{v:>10}" for v in VARIANTS)
    print(header + f"{'pool/gauss':>12}{'layer/gauss':>12}{'gauss/none':>12}")
    print("(median ms per training step)")
    for name, (build, x) in cases.items():
        t = bench(build, x, y, args.batch_size, args.repeats)
        row = name.ljust(32) + "".join(f"{t[v]:10.2f}" for v in VARIANTS)
        print(
            row
            + f"{t['id_pool'] / t['gaussian']:12.3f}"
            + f"{t['id_layer'] / t['gaussian']:12.3f}"
            + f"{t['gaussian'] / t['none']:12.3f}"
        )


if __name__ == "__main__":
    main()
