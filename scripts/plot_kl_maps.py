#!/usr/bin/env python
"""KL heatmaps of a trained information-dropout classifier, and the localisation lift.

    python scripts/plot_kl_maps.py RUN_DIR --n 6

Writes RUN_DIR/figures/kl_maps.png and adds kl_lift / kl_nats (one value per information pool,
shallow to deep) to RUN_DIR/metrics.json.
"""

from __future__ import annotations

import argparse
import sys

from ibvae.train import script_entry


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run_dir", help="a train_classifier.py run directory")
    p.add_argument("--n", type=int, default=6, help="test images in the figure")
    p.add_argument("--data", help="override the run's data .npz (needs x_test, y_test, boxes_test)")
    p.add_argument("--batch-size", type=int, default=256)
    args = p.parse_args(argv)
    from ibvae.kl_maps import evaluate_kl_maps

    r = evaluate_kl_maps(args.run_dir, n=args.n, data=args.data, batch_size=args.batch_size)
    fmt = lambda vs: " / ".join(f"{v:.2f}" for v in vs)  # noqa: E731
    print(f"kl_lift {fmt(r['kl_lift'])}; kl_nats {fmt(r['kl_nats'])} (pools shallow -> deep)")
    print(f"wrote {r['figure']}")


if __name__ == "__main__":
    sys.exit(script_entry(main)())
