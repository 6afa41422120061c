#!/usr/bin/env python
r"""Train All-CNN-96 / All-CNN-32 with information, binary or no dropout; recalibrate batch norm;
report the test error.

    python scripts/train_classifier.py --config configs/allcnn96_cluttered_cpu.yaml \
        --data runs/data/cl80.npz --out runs/allcnn96-cpu

Flags override the YAML config (--config, default: the dataclass defaults; with --resume, the
run's own config.yaml: see --resume for what may change).
"""

from __future__ import annotations

import _cli  # first: starts Keras without TensorFlow's start-up lines

from ibvae import flags, runs
from ibvae.classifier.config import ClassifierConfig
from ibvae.classifier.train import train_classifier


def main(argv: list[str] | None = None) -> None:
    p = _cli.parser(__doc__)
    p.add_argument("--config", help="YAML config (default: the dataclass defaults)")
    _cli.add_run_flags(p, "classifier", ClassifierConfig)
    _cli.add_process_flags(p)
    flags.add_flags(p, ClassifierConfig)
    args = p.parse_args(argv)
    _cli.start_processes(args)
    run_dir = runs.resolve_run_dir(args.out, "classifier", args.resume, args.overwrite)
    config = _cli.run_config(args, ClassifierConfig, run_dir)
    _, m = train_classifier(
        config, run_dir=run_dir, resume=args.resume, overwrite=args.overwrite, log=print
    )
    print(
        f"{run_dir}: test error {m['test_error']:.2f} % "
        f"(before BN recalibration {m['test_error_no_recalibration']:.2f} %), "
        f"{m['train_images_per_second']:.0f} train images/s, "
        f"{m['train_seconds']:.0f} s training"
    )
    print(f"TensorBoard: tensorboard --logdir {run_dir / 'logs'}")


if __name__ == "__main__":
    _cli.run(main)
