#!/usr/bin/env python
"""Training speed of All-CNN-96: information vs binary pools, side by side, against this
machine's float32 matmul rate measured in the same run. Prints numbers; asserts nothing.

    KERAS_BACKEND=jax python benchmarks/bench_classifier.py --widths 1.0 0.25 --canvas 96

images/s is measured over ``--steps`` compiled training steps after ``--warmup`` steps (which
absorb compilation). Training FLOPs per image are taken as 3 x the forward FLOPs of the
convolutions and the dense layer (forward + two backward matmuls); the "matmul-bound rate" is
the measured matmul FLOP/s divided by that.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import keras
import numpy as np
from keras import ops

from ibvae.classifier.config import ClassifierModelConfig, ClassifierTrainConfig
from ibvae.classifier.models import AllCNN, build_classifier
from ibvae.classifier.train import compile_classifier
from ibvae.layers.pools import InformationPoolBN


def compute_layers(model: AllCNN) -> list[keras.layers.Layer]:
    """Every convolution (those of the conv-BN-ReLU blocks and the pools' alpha branches) and
    the dense logits: the layers whose multiply-adds are counted."""
    convs = [layer.conv for layer in model.conv_bn_layers()]
    convs += [p.alpha_logits for p in model.pools if isinstance(p, InformationPoolBN)]
    return [*convs, model.logits]


def forward_flops(model: AllCNN, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds x 2 of every Conv2D / Dense for one image: kernel sizes from the built
    layers, each convolution's output (h, w) from one probing forward pass."""
    out_hw = conv_output_sizes(model, input_shape)
    flops = 0
    for layer in compute_layers(model):
        k = int(np.prod(layer.kernel.shape))  # (kh, kw, cin, cout) or (in, out)
        h, w = out_hw.get(id(layer), (1, 1))
        flops += 2 * k * h * w
    return flops


def conv_output_sizes(model: AllCNN, input_shape) -> dict[int, tuple[int, int]]:
    """``{id(conv): (h, w)}`` of each convolution's output, from one forward pass with each
    convolution's ``call`` wrapped (and restored after)."""
    sizes: dict[int, tuple[int, int]] = {}
    convs = [layer for layer in compute_layers(model) if isinstance(layer, keras.layers.Conv2D)]
    for conv in convs:

        def wrapped(x, _conv=conv, _orig=conv.call):
            y = _orig(x)
            sizes[id(_conv)] = (int(y.shape[1]), int(y.shape[2]))
            return y

        conv.call = wrapped
    try:
        model(np.zeros((1, *input_shape), np.float32), training=False)
    finally:
        for conv in convs:
            del conv.call  # back to the class's method
    return sizes


def matmul_rate(n: int = 2048, reps: int = 10) -> float:
    """Measured float32 matmul FLOP/s on this backend (n x n @ n x n, best of ``reps``)."""
    a = ops.convert_to_tensor(np.random.default_rng(0).standard_normal((n, n), np.float32))
    b = ops.convert_to_tensor(np.random.default_rng(1).standard_normal((n, n), np.float32))
    float(ops.sum(ops.matmul(a, b)))
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        float(ops.sum(ops.matmul(a, b)))  # a scalar back waits for the product (n^2 extra work)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def train_rate(
    dropout: str, width: float, canvas: int, batch: int, steps: int, warmup: int
) -> tuple[float, int]:
    """(training images/s, forward FLOPs per image) of a freshly built model."""
    shape = (canvas, canvas, 1)
    model = build_classifier(
        ClassifierModelConfig(dropout=dropout, width=width), shape, n_train=50_000
    )
    compile_classifier(model, ClassifierTrainConfig(batch_size=batch), steps_per_epoch=100)
    flops = forward_flops(model, shape)
    rng = np.random.default_rng(0)
    n = batch * steps
    x = rng.random((n, *shape), dtype=np.float32)
    y = rng.integers(0, 10, n)
    model.fit(x[: batch * warmup], y[: batch * warmup], batch_size=batch, epochs=1, verbose=0)
    t0 = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
    seconds = time.perf_counter() - t0
    return n / seconds, flops


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--widths", type=float, nargs="+", default=[1.0, 0.25])
    p.add_argument("--canvas", type=int, default=96)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--json", help="also write the numbers to this file")
    args = p.parse_args()
    rate = matmul_rate()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"backend {keras.backend.backend()}, load average {load:.2f}, "
          f"float32 matmul {rate / 1e9:.1f} GFLOP/s")
    rows = []
    for width in args.widths:
        res = {}
        for dropout in ("information", "binary"):
            ips, fwd = train_rate(dropout, width, args.canvas, args.batch, args.steps, args.warmup)
            bound = rate / (3 * fwd)
            res[dropout] = ips
            rows.append(dict(width=width, dropout=dropout, images_per_s=ips,
                             forward_mflops=fwd / 1e6, matmul_bound_images_per_s=bound,
                             fraction_of_bound=ips / bound))
            print(f"width {width:<5} {dropout:<12} {ips:9.1f} img/s  forward {fwd / 1e6:8.1f} MFLOP"
                  f"  matmul-bound {bound:9.1f} img/s  fraction {ips / bound:.2f}")
        print(f"width {width:<5} information / binary = {res['information'] / res['binary']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(backend=keras.backend.backend(), matmul_flops=rate, canvas=args.canvas,
                           batch=args.batch, load=load, rows=rows), f, indent=2)


if __name__ == "__main__":
    main()
