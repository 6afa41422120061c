#!/usr/bin/env python
"""Train a VAE with an Information Dropout (or Gaussian) latent.

    python scripts/train_vae.py --beta 0.5
    python scripts/train_vae.py --config configs/vae_mnist_lognormal.yaml --data /path/to/mnist.npz

Flags override the YAML config (--config, default configs/vae_mnist.yaml; with --resume, the
run's own config.yaml: see --resume for what may change). The backend
is Keras' choice: KERAS_BACKEND=jax trained 1.4-1.7x faster than TensorFlow on a 2-core CPU
(docs/results/earlier-vae.md).
"""

from __future__ import annotations

from pathlib import Path

import _cli  # first: starts Keras without TensorFlow's start-up lines

from ibvae import flags, runs
from ibvae.vae.config import VAEConfig
from ibvae.vae.model import LOG_UNIFORM_NOTE
from ibvae.vae.train import train_vae

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "vae_mnist.yaml"


def main(argv: list[str] | None = None) -> None:
    p = _cli.parser(__doc__)
    p.add_argument("--config", help=f"YAML config (default {DEFAULT_CONFIG.name})")
    _cli.add_run_flags(p, "vae", VAEConfig)
    _cli.add_process_flags(p)
    flags.add_flags(p, VAEConfig)
    args = p.parse_args(argv)
    _cli.start_processes(args)
    run_dir = runs.resolve_run_dir(args.out, "vae", args.resume, args.overwrite)
    config = _cli.run_config(args, VAEConfig, run_dir, DEFAULT_CONFIG)
    model, m = train_vae(
        config, run_dir=run_dir, resume=args.resume, overwrite=args.overwrite, log=print
    )
    bound = "" if m["test_elbo_is_bound"] else " (NOT a bound)"
    print(
        f"done: {model.latent} latent_dim={model.latent_dim} beta={model.beta} -- test "
        f"neg-ELBO {m['test_neg_elbo']:.2f}{bound} = reconstruction "
        f"{m['test_reconstruction']:.2f} + KL {m['test_kl']:.2f} nats/example; "
        f"active units {m['test_active_units']}/{model.latent_dim}"
    )
    if not m["test_elbo_is_bound"]:
        print(f"note: {LOG_UNIFORM_NOTE}")
    print(f"run directory: {run_dir}  (TensorBoard: tensorboard --logdir {run_dir / 'logs'})")


if __name__ == "__main__":
    _cli.run(main)
