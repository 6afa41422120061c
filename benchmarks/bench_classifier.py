#!/usr/bin/env python
"""Training speed of All-CNN-96: information vs binary pools, side by side, against this
machine's float32 matmul rate measured in the same run. Prints numbers; asserts nothing.

    PYTHONPATH=. KERAS_BACKEND=jax python benchmarks/bench_classifier.py --widths 0.25 1.0

Both models are built in one process and timed in alternating blocks of ``--seconds`` each
(``--rounds`` per model, the order flipping every round), after untimed warm-up steps that
absorb compilation; images/s is the median over a model's blocks and the ratio the median of
the per-round information / binary ratios, printed with the load average (``os.getloadavg``),
since other processes on a shared machine move the absolute numbers. The same ratio per CPU
second of this process is printed beside it: with the cores shared it moves less (it counts
work, not waiting), but it does not see a model that uses the cores less in parallel. Training FLOPs per image
are taken as 3 x the forward FLOPs of the convolutions and the dense layer (forward + two
backward matmuls); the "matmul-bound rate" is the measured matmul FLOP/s divided by that.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import keras
import numpy as np
from keras import ops

import ibvae
from ibvae.classifier.config import ClassifierModelConfig, ClassifierTrainConfig
from ibvae.classifier.models import AllCNN, build_classifier
from ibvae.classifier.train import compile_classifier
from ibvae.layers.pool_bn import InformationPoolBN

POOLS = ("information", "binary")


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
    convolution's ``call`` wrapped (and restored after). An information pool runs its two
    convolutions as one, without calling them, so its own output size is recorded for both."""
    sizes: dict[int, tuple[int, int]] = {}

    def record(layer, targets):
        def wrapped(*args, _orig=layer.call, **kwargs):
            y = _orig(*args, **kwargs)
            sizes.update({id(t): (int(y.shape[1]), int(y.shape[2])) for t in targets})
            return y

        layer.call = wrapped

    wrapped_layers = []
    for conv in compute_layers(model):
        if isinstance(conv, keras.layers.Conv2D):
            record(conv, [conv])
            wrapped_layers.append(conv)
    for pool in model.pools:
        if isinstance(pool, InformationPoolBN):
            record(pool, [pool.features.conv, pool.alpha_logits])
            wrapped_layers.append(pool)
    try:
        model(np.zeros((1, *input_shape), np.float32), training=False)
    finally:
        for layer in wrapped_layers:
            del layer.call  # back to the class's method
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


def build(dropout: str, width: float, canvas: int, batch: int) -> tuple[AllCNN, int]:
    """A compiled All-CNN-96 (``dropout`` pools) for ``canvas`` x ``canvas`` x 1 inputs and
    its forward FLOPs per image."""
    shape = (canvas, canvas, 1)
    model = build_classifier(
        ClassifierModelConfig(dropout=dropout, width=width), shape, n_train=50_000
    )
    compile_classifier(model, ClassifierTrainConfig(batch_size=batch), steps_per_epoch=100)
    return model, forward_flops(model, shape)


def fit_seconds(
    model: AllCNN, x: np.ndarray, y: np.ndarray, batch: int, steps: int
) -> tuple[float, float]:
    """(wall, CPU) seconds of one ``fit`` over the first ``steps`` batches (``fit`` returns
    after the epoch's logs are read back, i.e. after the last step). CPU seconds are this
    process's, all threads: on a machine shared with other jobs they count the work done,
    where the wall time also counts the time other processes held the cores."""
    n = batch * steps
    t0, c0 = time.perf_counter(), time.process_time()
    model.fit(x[:n], y[:n], batch_size=batch, epochs=1, verbose=0, shuffle=False)
    return time.perf_counter() - t0, time.process_time() - c0


def block_steps(models: list[AllCNN], canvas: int, batch: int, seconds: float) -> int:
    """Steps of a block that lasts about ``seconds`` on the slowest model, from three rounds
    of untimed blocks (each model's step time is the best it showed, so a load spike in one
    block does not shrink the timed blocks; each round's blocks are sized on the last)."""
    steps, step_s = 3, [float("inf")] * len(models)
    for _ in range(3):
        x = np.zeros((batch * steps, canvas, canvas, 1), np.float32)
        y = np.zeros(len(x), np.int64)
        for i, m in enumerate(models):
            step_s[i] = min(step_s[i], fit_seconds(m, x, y, batch, steps)[0] / steps)
        steps = max(3, round(seconds / max(step_s)))
    return steps


def compare(
    width: float, canvas: int, batch: int, seconds: float, rounds: int, warmup: int
) -> dict:
    """Images/s of the information and the binary model, built side by side in this process
    and timed in alternating blocks (the order flips every round, so a load change on a
    shared machine hits both): ``rounds`` blocks each, ``seconds`` long, after ``warmup``
    untimed steps (compilation) and the untimed blocks that size them (:func:`block_steps`)."""
    models = {d: build(d, width, canvas, batch) for d in POOLS}
    rng = np.random.default_rng(0)
    x = rng.random((batch * warmup, canvas, canvas, 1), dtype=np.float32)
    y = rng.integers(0, 10, len(x))
    for model, _ in models.values():
        fit_seconds(model, x, y, batch, warmup)  # compilation
    steps = block_steps([m for m, _ in models.values()], canvas, batch, seconds)
    x = rng.random((batch * steps, canvas, canvas, 1), dtype=np.float32)
    y = rng.integers(0, 10, len(x))
    rates: dict[str, list[float]] = {d: [] for d in POOLS}
    cpu_rates: dict[str, list[float]] = {d: [] for d in POOLS}
    for r in range(rounds):
        for d in POOLS if r % 2 == 0 else POOLS[::-1]:
            wall, cpu = fit_seconds(models[d][0], x, y, batch, steps)
            rates[d].append(batch * steps / wall)
            cpu_rates[d].append(batch * steps / cpu)
    ratios = [i / b for i, b in zip(rates["information"], rates["binary"], strict=True)]
    cpu_ratios = [i / b for i, b in zip(cpu_rates["information"], cpu_rates["binary"], strict=True)]
    return dict(
        width=width,
        steps_per_block=steps,
        images_per_s={d: float(np.median(v)) for d, v in rates.items()},
        images_per_cpu_s={d: float(np.median(v)) for d, v in cpu_rates.items()},
        blocks_images_per_s=rates,
        blocks_images_per_cpu_s=cpu_rates,
        forward_flops={d: f for d, (_, f) in models.items()},
        ratio=float(np.median(ratios)),
        ratio_range=(float(min(ratios)), float(max(ratios))),
        cpu_ratio=float(np.median(cpu_ratios)),
        cpu_ratio_range=(float(min(cpu_ratios)), float(max(cpu_ratios))),
    )


def load_average() -> tuple[float, float, float]:
    """``os.getloadavg()`` (NaNs where the platform has none)."""
    return os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--widths", type=float, nargs="+", default=[0.25, 1.0])
    p.add_argument("--canvas", type=int, default=64)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seconds", type=float, default=5.0, help="length of one timed block")
    p.add_argument("--rounds", type=int, default=7, help="timed blocks per model")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps (compilation)")
    p.add_argument("--json", help="also write the numbers to this file")
    args = p.parse_args()
    rate = matmul_rate()
    load0 = load_average()
    # Which checkout is timed: ``python benchmarks/...`` imports an installed ibvae unless
    # PYTHONPATH names this one.
    print(f"ibvae from {os.path.dirname(ibvae.__file__)}")
    print(f"backend {keras.backend.backend()}, canvas {args.canvas}, batch {args.batch}, "
          f"float32 matmul {rate / 1e9:.1f} GFLOP/s, load average {fmt_load(load0)}")
    results = []
    for width in args.widths:
        res = compare(width, args.canvas, args.batch, args.seconds, args.rounds, args.warmup)
        load = load_average()
        for d in POOLS:
            ips, fwd = res["images_per_s"][d], res["forward_flops"][d]
            bound = rate / (3 * fwd)
            blocks = " ".join(f"{v:.1f}" for v in res["blocks_images_per_s"][d])
            print(f"width {width:<5} {d:<12} {ips:9.1f} img/s (median of {blocks}; "
                  f"{res['steps_per_block']} steps a block)  forward {fwd / 1e6:8.1f} MFLOP  "
                  f"matmul-bound {bound:9.1f} img/s  fraction {ips / bound:.2f}")
            cpu = res["images_per_cpu_s"][d]
            print(f"width {width:<5} {d:<12} {cpu:9.1f} img per CPU-s (median of "
                  + " ".join(f"{v:.1f}" for v in res["blocks_images_per_cpu_s"][d]) + ")")
        lo, hi = res["ratio_range"]
        print(f"width {width:<5} information / binary = {res['ratio']:.3f} wall (median of "
              f"{args.rounds} rounds, range {lo:.3f}-{hi:.3f}), load average {fmt_load(load)}")
        lo, hi = res["cpu_ratio_range"]
        print(f"width {width:<5} information / binary = {res['cpu_ratio']:.3f} per CPU second "
              f"(range {lo:.3f}-{hi:.3f})")
        results.append(dict(res, load=load))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(backend=keras.backend.backend(), matmul_flops=rate, canvas=args.canvas,
                           batch=args.batch, seconds=args.seconds, rounds=args.rounds,
                           load_start=load0, results=results), f, indent=2)


def fmt_load(load: tuple[float, float, float]) -> str:
    """The three load averages, 2 decimals."""
    return " ".join(f"{v:.2f}" for v in load)


if __name__ == "__main__":
    main()
