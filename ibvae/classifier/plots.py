"""Figures of the supervised path: the test confusion matrix and the KL heatmaps, saved
through :func:`ibvae.figures.save_figure`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ibvae.figures import pyplot, save_figure


def plot_confusion(cm: np.ndarray, path: str | Path, test_error: float | None = None) -> Path:
    """Counts of (true, predicted) test labels, numbers written in the cells."""
    plt = pyplot()
    n = len(cm)
    fig, ax = plt.subplots(figsize=(0.55 * n + 2, 0.55 * n + 1.5))
    ax.imshow(np.log1p(cm), cmap="Blues")
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                colour = "white" if cm[i, j] > cm.max() / 2 else "black"
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    title = "test confusion matrix"
    if test_error is not None:
        title += f" (error {test_error:.2f} %)"
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110, tight=False)


def plot_kl_maps(
    images: np.ndarray,
    boxes: np.ndarray,
    maps: Sequence[np.ndarray],
    path: str | Path,
    lifts: Sequence[float] | None = None,
    title: str | None = None,
    grids: Sequence[tuple[Any, Any]] | None = None,
    aucs: Sequence[float] | None = None,
) -> Path:
    """One row per image: the input with its digit box outlined, then one heatmap per
    information pool (KL summed over channels minus its minimum, the authors' plot) with the
    box drawn in that map's cells. ``grids``: per pool the ``(rows, cols)``
    :class:`~ibvae.classifier.receptive_fields.Grid` of its receptive-field centres (``start``,
    ``step``); without them the box is scaled by ``h / H`` (centred cells)."""
    plt = pyplot()
    from matplotlib.patches import Rectangle  # with pyplot: matplotlib is imported on first use

    n, L = len(images), len(maps)
    H, W = images.shape[1:3]
    fig, axes = plt.subplots(n, L + 1, figsize=(2.1 * (L + 1), 2.1 * n + 0.4), squeeze=False)
    for r in range(n):
        top, left, h, w = (float(v) for v in boxes[r])
        ax = axes[r, 0]
        ax.imshow(images[r, ..., 0] if images.shape[-1] == 1 else images[r], cmap="gray",
                  vmin=0, vmax=1, interpolation="none")
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), w, h, fill=False, ec="red", lw=1.2))
        for c, m in enumerate(maps, start=1):
            ax = axes[r, c]
            hm = m[r] - m[r].min()
            ax.imshow(hm, cmap="Blues", interpolation="none")
            if grids is not None:
                rows, cols = grids[c - 1]
                # input pixel p (centre p) sits at map coordinate (p - start) / step
                y0 = (top - 0.5 - rows.start) / rows.step
                x0 = (left - 0.5 - cols.start) / cols.step
                dy, dx = h / rows.step, w / cols.step
            else:
                sy, sx = m.shape[1] / H, m.shape[2] / W
                y0, x0, dy, dx = top * sy - 0.5, left * sx - 0.5, h * sy, w * sx
            ax.add_patch(Rectangle((x0, y0), dx, dy, fill=False, ec="red", lw=0.8, ls="--"))
            if r == 0:
                label = f"pool {c} ({m.shape[1]}x{m.shape[2]})"
                scores = [f"{name} {values[c - 1]:.2f}"
                          for name, values in (("lift", lifts), ("AUC", aucs)) if values]
                if scores:
                    label += "\n" + ", ".join(scores)
                ax.set_title(label, fontsize=9)
        if r == 0:
            axes[r, 0].set_title("input + digit box", fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100, tight=False)
