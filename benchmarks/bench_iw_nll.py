"""Speed of the importance-weighted NLL (``ibvae.vae.evaluate.iw_nll``) next to the former
NumPy-driven algorithm (kept below as the reference) and to the floor of the same number of
decoder passes done as two plain matmuls, in one process per backend.

    python benchmarks/bench_iw_nll.py --data /path/to/mnist.npz
    python benchmarks/bench_iw_nll.py --data /path/to/mnist.npz --backends jax --n 200 --k 1000
    python benchmarks/bench_iw_nll.py --data /path/to/mnist.npz --backends jax --n 1000 \\
        --k 5000 --rounds 1 --skip-old --skip-profile

The model is the default MLP VAE (784-400-40, ``--latent``), trained ``--epochs`` epochs on
the first ``--train-n`` training images (0 epochs: random weights; the timing does not depend
on the weights). ``--n`` binarized test images are scored with ``--k`` importance samples.

Each round (the order rotating) times: ``new``, the library's ``iw_nll`` (warm: its compiled
function is kept per model; the first call, with compilation, is shown apart); ``old``, the
former algorithm (NumPy noise, ``np.repeat``, float64 log-weights, ``predict_on_batch`` per
20,000 pairs, a new compiled model per call as before); ``blas``, the floor: ``n k`` rows
through the decoder's two kernels as plain NumPy/BLAS float32 matmuls (40 -> 400 -> 784, no
bias, activation, noise or likelihood) in blocks of 20,000 rows; ``backend``, the same two
matmuls compiled by the backend (a bias-free Keras model whose rows are summed, so that one
number per row comes back, as from iw_nll; blocks of the library's chunk), to tell the
backend's matmul from the rest. Ratios are medians of the per-round ratios. Each
round uses its own seed, so the rounds also give the Monte-Carlo spread of both estimates.

``--chunks`` times the warm ``iw_nll`` at several chunk sizes (pairs per compiled call).
The profile times, on ``--profile-n`` test images, the ELBO, the active-unit statistics, the
total correlation and the aggregate-posterior fit (on ``--train-n`` training images), split
into their parts. Numbers are printed, never asserted; the machine's load average is printed
with them (a shared CPU makes every time noisy: compare the ratios within one round).

Measured on 2 shared cores (load average 5-7), default settings, one epoch of training
(medians of 5 rounds; new, old and the BLAS floor in seconds for 200,000 pairs):

    jax         new 2.72  old 9.00  blas 3.03  new/blas 0.88x  old/blas 2.97x  old/new 3.35x
    tensorflow  new 3.87  old 5.42  blas 3.50  new/blas 1.17x  old/blas 1.51x  old/new 1.42x

new - old estimate: +0.016 nats (jax), +0.032 (tensorflow), standard errors 0.045 and 0.037
(the sd over the 5 seeds: 0.07 nats for either algorithm).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from _worker import report, worker_result

OLD_CHUNK = 20000
BLAS_BLOCK = 20000


def _old_iw_nll(model, x, k: int = 1000, seed: int = 0, chunk: int = OLD_CHUNK) -> float:
    """The former ``iw_nll``, verbatim but for its helpers inlined: the reference."""
    import math

    import keras
    import numpy as np

    from ibvae.vae.model import reconstruction_nll

    log_2pi = math.log(2 * math.pi)

    def log_normal(u, mean, std):
        return np.sum(-0.5 * np.square((u - mean) / std) - np.log(std) - 0.5 * log_2pi, axis=-1)

    z_in = keras.Input(model.latent_shape)
    x_in = keras.Input(model.image_shape)
    logits = model.decoder(z_in)
    ll_out = keras.layers.Lambda(lambda t: -reconstruction_nll(t[0], t[1]))([x_in, logits])
    fn = keras.Model([z_in, x_in], ll_out)

    def loglik(z, xs):
        z = z.reshape(len(z), *model.latent_shape).astype(np.float32)
        return np.asarray(fn.predict_on_batch([z, xs.astype(np.float32)]), dtype=np.float64)

    prior = model.prior()
    rng = np.random.default_rng(seed)
    a, b = model.posterior(x)
    mean, std = model.posterior_u(a, b)
    per_batch = max(1, chunk // k)
    nll = np.zeros(len(x))
    for start in range(0, len(x), per_batch):
        idx = np.arange(start, min(start + per_batch, len(x)))
        pad = np.concatenate([idx, np.full(per_batch - len(idx), idx[-1])])
        m, s = mean[pad][:, None, :], std[pad][:, None, :]
        u = m + s * rng.standard_normal((len(pad), k, model.latent_dim))
        x_rep = np.repeat(x[pad], k, axis=0)
        ll = loglik(model.u_to_z(u).reshape(-1, model.latent_dim), x_rep).reshape(len(pad), k)
        log_w = ll + log_normal(u, prior[0], prior[1]) - log_normal(u, m, s)
        top = log_w.max(axis=1, keepdims=True)
        log_mean_w = top[:, 0] + np.log(np.mean(np.exp(log_w - top), axis=1))
        nll[idx] = -log_mean_w[: len(idx)]
    return float(np.mean(nll))


def _timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def _profile(model, x_test, x_train, seed: int = 0) -> dict[str, float]:
    """Seconds of the other evaluation passes, split into their parts."""
    import numpy as np

    from ibvae.vae import evaluate as ev
    from ibvae.vae import metrics, sampling

    out: dict[str, float] = {}
    model.posterior(x_test[:10])  # the encoder's predict function compiled once
    out["encoder pass (model.posterior)"], (a, b) = _timed(model.posterior, x_test)
    out["ELBO: neg_elbo total"], _ = _timed(ev.neg_elbo, model, x_test, seed=seed)
    out["ELBO:   closed-form KL"], _ = _timed(model.kl_per_example, a, b)
    out["ELBO:   LogLikelihood build"], loglik = _timed(ev.LogLikelihood, model)
    rng = np.random.default_rng(seed)
    z = model.sample_posterior(a[:1000], b[:1000], rng.standard_normal(a[:1000].shape))
    out["ELBO:   first decoder call (compile)"], _ = _timed(loglik, z, x_test[:1000])
    out["ELBO:   one warm decoder call x1000"], _ = _timed(loglik, z, x_test[:1000])
    out["active units: unit_statistics total"], _ = _timed(metrics.unit_statistics, model, x_test)
    out["active units:   moments + activity"], _ = _timed(
        lambda: metrics.unit_activity(*metrics.posterior_moments(model, a, b))
    )
    out["TC: total_correlation total"], _ = _timed(metrics.total_correlation, model, x_test)
    draws = metrics.posterior_draws(model, a, b, seed)
    out["TC:   copula estimate (scores, 6 slogdet)"], _ = _timed(
        metrics.copula_total_correlation, draws, seed
    )
    out["aggregate: fit_aggregate total"], _ = _timed(
        sampling.fit_aggregate, model, x_train, 10, seed
    )
    out["aggregate:   training_codes (encoder + noise)"], codes = _timed(
        sampling.training_codes, model, x_train, seed
    )
    out["aggregate:   AggregatePosterior.fit (EM + thresholds)"], _ = _timed(
        sampling.AggregatePosterior.fit, codes, model.multiplicative, 10, seed
    )
    y = sampling.censored_log_codes(codes)[0] if model.multiplicative else codes
    out["aggregate:     GaussianMixture EM alone"], _ = _timed(sampling._fit_mixture, y, 10, seed)
    return out


def worker(args: argparse.Namespace) -> None:
    import keras
    import numpy as np

    from ibvae.data import load_dataset
    from ibvae.vae import evaluate as ev
    from ibvae.vae.config import VAEModelConfig
    from ibvae.vae.model import build_vae

    data = load_dataset("mnist", args.data, allow_download=False)
    keras.utils.set_random_seed(0)
    model = build_vae(VAEModelConfig(latent=args.latent), data.image_shape, seed=0)
    x_train = data.x_train[: args.train_n]
    train_s = 0.0
    if args.epochs:
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        train_s, _ = _timed(model.fit, x_train, epochs=args.epochs, batch_size=100, verbose=0)
    x = model.eval_targets(data.x_test[: args.n])
    pairs = len(x) * args.k

    dense = [layer for layer in model.decoder.layers if layer.get_weights()]
    kernels = [np.asarray(layer.get_weights()[0], np.float32) for layer in dense]
    z_block = np.random.default_rng(0).standard_normal((BLAS_BLOCK, kernels[0].shape[0]))
    z_block = z_block.astype(np.float32)

    def blas_floor() -> None:
        for start in range(0, pairs, BLAS_BLOCK):
            rows = z_block[: min(BLAS_BLOCK, pairs - start)]
            for kernel in kernels:
                rows = rows @ kernel

    z_in = keras.Input(model.latent_shape)
    h = z_in
    for kernel in kernels:
        layer = keras.layers.Dense(kernel.shape[1], use_bias=False)
        h = layer(h)
        layer.set_weights([kernel])
    # A sum at the end, so that (like iw_nll) one number per row comes back, not the
    # 784-wide output (a 12.8 MB copy to NumPy per call).
    h = keras.layers.Lambda(lambda t: keras.ops.sum(t, axis=-1))(h)
    backend_mm = keras.Model(z_in, h)
    z_chunk = z_block[: ev.IW_CHUNK]

    def backend_floor() -> None:
        for _ in range(0, pairs, ev.IW_CHUNK):
            backend_mm.predict_on_batch(z_chunk)

    backend_mm.predict_on_batch(z_chunk)  # compiled before the rounds
    first_s, _ = _timed(ev.iw_nll, model, x, k=args.k, seed=0)

    parts = ["new", "blas", "backend"] + ([] if args.skip_old else ["old"])
    rounds: list[dict] = []
    for r in range(args.rounds):
        row: dict = {"load": os.getloadavg()[0]}
        for part in parts[r % len(parts) :] + parts[: r % len(parts)]:
            if part == "new":
                row["new"], row["new_nll"] = _timed(ev.iw_nll, model, x, k=args.k, seed=r + 1)
            elif part == "old":
                row["old"], row["old_nll"] = _timed(_old_iw_nll, model, x, k=args.k, seed=r + 1)
            elif part == "blas":
                row["blas"], _ = _timed(blas_floor)
            else:
                row["backend"], _ = _timed(backend_floor)
        rounds.append(row)

    chunks: dict[str, list[float]] = {str(c): [] for c in args.chunks}
    x_sweep = x[: max(1, min(len(x), 40000 // args.k))]
    for c in args.chunks:
        ev.iw_nll(model, x_sweep, k=args.k, chunk=c)  # compiled before timing
    for r in range(args.chunk_rounds if args.chunks else 0):
        for c in args.chunks[r % len(args.chunks) :] + args.chunks[: r % len(args.chunks)]:
            seconds, _ = _timed(ev.iw_nll, model, x_sweep, k=args.k, seed=r, chunk=c)
            chunks[str(c)].append(seconds / (len(x_sweep) * args.k) * 1e6)

    profile = {} if args.skip_profile else _profile(
        model, model.eval_targets(data.x_test[: args.profile_n]), x_train
    )
    report({
        "backend": keras.backend.backend(),
        "source": data.source,
        "n": len(x),
        "pairs": pairs,
        "train_s": train_s,
        "first_s": first_s,
        "rounds": rounds,
        "chunks": chunks,
        "sweep_pairs": len(x_sweep) * args.k,
        "profile": profile,
    })


def _summary(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} +- {statistics.stdev(values):.4f} (sd of {len(values)})"


def print_result(result: dict, args: argparse.Namespace) -> None:
    rounds = result["rounds"]
    backend = result["backend"]
    print(f"\n== {backend}: {result['n']} test images x k = {args.k} = {result['pairs']:,} "
          f"decoder passes; {args.latent} 784-400-40, {args.epochs} epoch(s) on "
          f"{args.train_n} images ({result['train_s']:.0f} s); data {result['source']}")
    parts = [p for p in ("new", "old", "blas", "backend") if p in rounds[0]]
    print("round " + "".join(f"{p + ' s':>10}" for p in parts) + f"{'load':>8}")
    for i, row in enumerate(rounds):
        print(f"{i:>5} " + "".join(f"{row[p]:>10.2f}" for p in parts) + f"{row['load']:>8.2f}")
    med = {p: statistics.median(row[p] for row in rounds) for p in parts}
    best = {p: min(row[p] for row in rounds) for p in parts}
    print("median" + "".join(f"{med[p]:>10.2f}" for p in parts))
    print("min   " + "".join(f"{best[p]:>10.2f}" for p in parts))
    print(f"first new call (compilation included): {result['first_s']:.2f} s")
    ratios = [("new", "blas"), ("new", "backend"), ("backend", "blas")]
    if "old" in parts:
        ratios += [("old", "blas"), ("old", "new")]
    for top, bottom in ratios:
        per_round = statistics.median(row[top] / row[bottom] for row in rounds)
        print(f"  {top}/{bottom}: {per_round:.2f}x (median of rounds), "
              f"{best[top] / best[bottom]:.2f}x (min / min)")
    per_pair = med["new"] / result["pairs"]
    print(f"  new: {per_pair * 1e6:.2f} us per pair (median); k = 5000 on 10,000 images "
          f"projected {per_pair * 5e7 / 60:.1f} min (median), "
          f"{best['new'] / result['pairs'] * 5e7 / 60:.1f} min (min)")
    new_nll = [row["new_nll"] for row in rounds]
    print(f"  estimate, new: {_summary(new_nll)} nats")
    if "old" in parts:
        old_nll = [row["old_nll"] for row in rounds]
        print(f"  estimate, old: {_summary(old_nll)} nats")
        if len(rounds) > 1:
            diff = statistics.mean(new_nll) - statistics.mean(old_nll)
            se = (statistics.variance(new_nll) / len(new_nll)
                  + statistics.variance(old_nll) / len(old_nll)) ** 0.5
            print(f"  new - old: {diff:+.4f} nats, standard error {se:.4f} "
                  f"({diff / se if se else float('nan'):+.1f} se)")
    if result["chunks"] and any(result["chunks"].values()):
        print(f"chunk sweep ({result['sweep_pairs']:,} pairs per call of iw_nll), us per pair:")
        for c, values in result["chunks"].items():
            print(f"  chunk {int(c):>6}: median {statistics.median(values):6.2f}, "
                  f"min {min(values):6.2f}")
    if result["profile"]:
        print(f"profile ({args.profile_n} test images, {args.train_n} training images), s:")
        for name, seconds in result["profile"].items():
            print(f"  {name:<56} {seconds:8.2f}")


def run_backend(backend: str, args: argparse.Namespace) -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    return worker_result([sys.executable, __file__, "--worker", *sys.argv[1:]], env,
                         f"{backend} worker")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", help="mnist.npz (default: the MNIST resolution order)")
    p.add_argument("--backends", nargs="+", default=["jax", "tensorflow"])
    p.add_argument("--latent", default="gaussian",
                   choices=["gaussian", "information_dropout_lognormal"])
    p.add_argument("--n", type=int, default=200, help="test images scored")
    p.add_argument("--k", type=int, default=1000, help="importance samples per image")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds (each its own seed)")
    p.add_argument("--epochs", type=int, default=1, help="training epochs (0: random weights)")
    p.add_argument("--train-n", type=int, default=10000, help="training images")
    p.add_argument("--chunks", type=int, nargs="*", default=[1024, 2048, 4096, 8192, 16384],
                   help="chunk sizes of the sweep (none: no sweep)")
    p.add_argument("--chunk-rounds", type=int, default=3, help="rounds of the chunk sweep")
    p.add_argument("--profile-n", type=int, default=10000, help="test images of the profile")
    p.add_argument("--skip-old", action="store_true", help="do not time the former algorithm")
    p.add_argument("--skip-profile", action="store_true", help="no ELBO / TC / aggregate profile")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.rounds < 1:
        sys.exit("--rounds must be >= 1")
    if args.worker:
        worker(args)
        return
    print(f"load before: {os.getloadavg()}")
    for backend in args.backends:
        print_result(run_backend(backend, args), args)
        print(f"load: {os.getloadavg()}")
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
