#!/usr/bin/env python
"""KL heatmaps of a trained information-dropout classifier, the localisation lift and AUC.

    python scripts/plot_kl_maps.py RUN_DIR --n 6

Writes RUN_DIR/figures/kl_maps.png and adds kl_lift / kl_lift_max / kl_auc / kl_nats /
kl_map_shapes / kl_border (one value per information pool, shallow to deep) to
RUN_DIR/metrics.json. The digit box is mapped to each pool's cells through their true
receptive-field centres; kl_auc (0.5 = chance, 1 = every box cell above every other) compares
across pools and canvas sizes, kl_lift only up to its ceiling kl_lift_max. Beside them the
baseline to beat: ink_lift / ink_auc (the same scores of each cell's input ink, no model), and
kl_auc_clutter / ink_auc_clutter (box cells against clutter-bearing cells only, blank canvas
left out; needs the data's distractor_boxes_test, else null).
"""

from __future__ import annotations

import _cli  # first: starts Keras without TensorFlow's start-up lines

from ibvae.classifier.kl_maps import KLMapOptions, evaluate_kl_maps


def main(argv: list[str] | None = None) -> None:
    args, options = _cli.options(argv, __doc__, KLMapOptions, "a train_classifier.py run directory")
    r = evaluate_kl_maps(args.run_dir, options)
    fmt = lambda vs: " / ".join(f"{v:.2f}" for v in vs)  # noqa: E731
    print(f"kl_auc {fmt(r['kl_auc'])}; kl_lift {fmt(r['kl_lift'])} (ceiling "
          f"{fmt(r['kl_lift_max'])}); kl_nats {fmt(r['kl_nats'])} (pools shallow -> deep)")
    print(f"ink baseline: ink_auc {fmt(r['ink_auc'])}; ink_lift {fmt(r['ink_lift'])}")
    if r["kl_auc_clutter"] is not None:
        fmt_ = lambda vs: " / ".join("-" if v is None else f"{v:.2f}" for v in vs)  # noqa: E731
        print(f"against clutter only: kl_auc_clutter {fmt_(r['kl_auc_clutter'])}; "
              f"ink_auc_clutter {fmt_(r['ink_auc_clutter'])}")
    print(f"wrote {r['figure']}")


if __name__ == "__main__":
    _cli.run(main)
