#!/usr/bin/env python
"""Train All-CNN-96 / All-CNN-32 with information, binary or no dropout; recalibrate batch norm;
report the test error.

    python scripts/train_classifier.py --config configs/allcnn96_cluttered_cpu.yaml \
        --data runs/data/cl64.npz --out runs/allcnn96-cpu
"""

from __future__ import annotations

import argparse
import sys

from ibvae.train import script_entry


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", help="YAML config (default: the dataclass defaults)")
    p.add_argument("--data", help=".npz with x_/y_[/boxes_] train, [valid,] test")
    p.add_argument("--arch", help="allcnn96 | allcnn32")
    p.add_argument("--dropout", help="information | binary | none")
    p.add_argument("--beta", type=float)
    p.add_argument("--width", type=float, help="filter multiplier")
    p.add_argument("--padding", help="stride-2 padding: symmetric | same")
    p.add_argument("--optimizer", help="sgd (Nesterov 0.9) | adam")
    p.add_argument("--lr", type=float, dest="learning_rate")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--train-size", type=int, help="use the first N training images")
    p.add_argument("--seed", type=int)
    p.add_argument("--out", help="run directory (default runs/classifier-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from ibvae import config as cfg
    from ibvae import train as tr
    from ibvae.classifier import ClassifierConfig, load_data, train_classifier

    keys = ("data", "arch", "dropout", "beta", "width", "padding", "optimizer",
            "learning_rate", "epochs", "batch_size", "train_size", "seed")
    overrides = {k: getattr(args, k) for k in keys}
    run_dir = tr.resolve_run_dir(args.out, "classifier", args.resume, args.overwrite)
    if args.resume:
        config = cfg.load(ClassifierConfig, run_dir / tr.CONFIG_FILE, overrides)
    else:
        config = cfg.load(ClassifierConfig, args.config, overrides)
    load_data(config)  # fail on bad data before a run directory exists
    with tr.run_directory(run_dir, args.resume, args.overwrite):
        metrics = train_classifier(config, run_dir, resume=args.resume)
    print(
        f"{run_dir}: test error {metrics['test_error']:.2f} % "
        f"(before BN recalibration {metrics['test_error_no_recalibration']:.2f} %), "
        f"{metrics['train_images_per_second']:.0f} train images/s, "
        f"{metrics['train_seconds']:.0f} s training"
    )


if __name__ == "__main__":
    sys.exit(script_entry(main)())
