"""KL heatmaps of the information pools and the numbers that say whether they localise the digit.

Heatmap (the authors' plot): the per-unit KL of a pool summed over channels, minus its minimum
over the map. The target box is mapped to each pool's cells through their true receptive-field
centres, and scored by the localisation lift (``kl_lift``, with its ceiling ``kl_lift_max``)
and the localisation AUC (``kl_auc``: 0.5 chance, 1 perfect, comparable across pools and
canvas sizes); see :mod:`ibvae.classifier.localisation` for the definitions and the choice.
``kl_nats``: mean over images of the pool's KL summed over all units (no minimum subtracted).
``kl_border``: per pool, the heatmap's mean on the top / bottom / left / right border over its
interior mean (padding artifacts).

Beside them, per pool, the baseline a KL map has to beat: the same lift and AUC of the **ink
map** of the same images (``ink_lift``, ``ink_auc``: each cell's input pixel sum over its
receptive field, no model at all), and the **clutter-only AUC** of both maps
(``kl_auc_clutter``, ``ink_auc_clutter``: box cells against the cells whose receptive field
holds distractor ink, blank cells left out; ``clutter_cell_fraction`` is the share of a map's
cells that hold clutter). The clutter-only scores need the data's ``distractor_boxes_test``
(Cluttered MNIST files made before they were recorded have none: then they are ``null``).
See :mod:`ibvae.classifier.localisation`.

:func:`evaluate_kl_maps` does all of it for a finished run directory (``scripts/plot_kl_maps.py``),
with the options of :class:`KLMapOptions`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ibvae import runs
from ibvae.classifier.config import ClassifierConfig
from ibvae.classifier.data import Split, load_classification_npz
from ibvae.classifier.localisation import (
    auc_per_image,
    clutter_auc_per_image,
    clutter_cells,
    ink_maps,
    lift_ceiling_per_image,
    lift_per_image,
)
from ibvae.classifier.models import AllCNN, load_classifier
from ibvae.classifier.plots import plot_kl_maps
from ibvae.classifier.receptive_fields import pool_grids
from ibvae.config import Config, option
from ibvae.errors import IbvaeError, require


def border_ratios(maps: np.ndarray) -> list[float]:
    """Mean heatmap (minimum subtracted) on the top, bottom, left and right border rows /
    columns, each divided by the mean over the interior: a padding artifact shows up as one
    side larger than its opposite."""
    h = np.asarray(maps, np.float64)
    h = h - h.min(axis=(1, 2), keepdims=True)
    inner = h[:, 1:-1, 1:-1].mean() if min(h.shape[1:]) > 2 else h.mean()
    sides = (h[:, 0].mean(), h[:, -1].mean(), h[:, :, 0].mean(), h[:, :, -1].mean())
    return [float(v / inner) if inner > 0 else 1.0 for v in sides]


class _KLMapModel(keras.Model):
    """Wraps a classifier so ``predict`` (compiled, batched, any backend) returns its KL maps."""

    def __init__(self, classifier: AllCNN, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.classifier = classifier

    def call(self, x):
        return tuple(self.classifier.kl_maps(x))


def kl_maps(model: AllCNN, x: np.ndarray, batch_size: int = 256) -> list[np.ndarray]:
    """Per information pool, the KL summed over channels, ``(N, h, w)`` float32, shallow to deep."""
    if model.n_information_pools == 0:
        raise IbvaeError(
            "this model has no information pools (trained with --dropout binary or none); "
            "KL maps need --dropout information"
        )
    out = _KLMapModel(model, name="kl_maps").predict(x, batch_size=batch_size, verbose=0)
    return [np.asarray(m) for m in (out if isinstance(out, list | tuple) else [out])]


def _nanmean(values: np.ndarray) -> float | None:
    """The mean of the scored images (``None`` if none was)."""
    values = np.asarray(values, np.float64)
    return float(np.nanmean(values)) if np.isfinite(values).any() else None


def kl_statistics(
    model: AllCNN,
    x: np.ndarray,
    boxes: np.ndarray,
    batch_size: int = 256,
    distractor_boxes: np.ndarray | None = None,
) -> dict[str, Any]:
    """Per information pool (shallow to deep) over ``x``: ``kl_lift``, ``kl_lift_max`` (the
    mean ceiling of the lift), ``kl_auc`` (the normalised score) and ``kl_nats``; the ink
    baseline ``ink_lift``, ``ink_auc``; with ``distractor_boxes`` ``(N, k, 4)`` the
    clutter-only ``kl_auc_clutter``, ``ink_auc_clutter`` and ``clutter_cell_fraction`` (else
    ``None``); also ``kl_map_shapes``, ``kl_border``, ``kl_grids`` (each pool's
    receptive-field grids) and ``maps`` (the per-image maps, for plotting)."""
    require(boxes is not None, "the test split has no boxes_test; the lift needs the digit boxes")
    maps = kl_maps(model, x, batch_size)
    hw = x.shape[1:3]
    grids = pool_grids(model.pool_geometry(), hw)
    for m, (rows, cols) in zip(maps, grids, strict=True):
        if m.shape[1:] != (rows.size, cols.size):  # the geometry must describe the model
            raise RuntimeError(f"receptive-field grids {rows.size}x{cols.size} for a "
                               f"{m.shape[1]}x{m.shape[2]} KL map")
    inks = ink_maps(x, model.pool_geometry())
    pairs = list(zip(maps, inks, grids, strict=True))
    clutter: dict[str, Any] = dict.fromkeys(
        ("kl_auc_clutter", "ink_auc_clutter", "clutter_cell_fraction"))
    if distractor_boxes is not None:
        cells = clutter_cells(x, distractor_boxes, model.pool_geometry())
        clutter = {
            "kl_auc_clutter": [_nanmean(clutter_auc_per_image(m, boxes, c, hw, g))
                               for (m, _, g), c in zip(pairs, cells, strict=True)],
            "ink_auc_clutter": [_nanmean(clutter_auc_per_image(i, boxes, c, hw, g))
                                for (_, i, g), c in zip(pairs, cells, strict=True)],
            "clutter_cell_fraction": [float(c.mean()) for c in cells],
        }
    return {
        "kl_lift": [float(lift_per_image(m, boxes, hw, grids=g).mean())
                    for m, g in zip(maps, grids, strict=True)],
        "kl_lift_max": [float(lift_ceiling_per_image(boxes, hw, m.shape[1:], g).mean())
                        for m, g in zip(maps, grids, strict=True)],
        "kl_auc": [float(auc_per_image(m, boxes, hw, g).mean())
                   for m, g in zip(maps, grids, strict=True)],
        "kl_nats": [float(m.sum(axis=(1, 2)).mean()) for m in maps],
        "ink_lift": [float(lift_per_image(i, boxes, hw, grids=g).mean()) for _, i, g in pairs],
        "ink_auc": [float(auc_per_image(i, boxes, hw, g).mean()) for _, i, g in pairs],
        **clutter,
        "kl_map_shapes": [list(m.shape[1:]) for m in maps],
        "kl_border": [border_ratios(m) for m in maps],
        "kl_grids": grids,
        "maps": maps,
    }


@dataclasses.dataclass
class KLMapOptions(Config):
    """What :func:`evaluate_kl_maps` (``scripts/plot_kl_maps.py``) draws and reads."""

    n: int = option(6, "test images in the figure", ge=1)
    data: str | None = option(
        None, "override the run's data .npz (needs x_test, y_test, boxes_test)"
    )
    batch_size: int = option(256, "images per step of the KL pass", ge=1)


def write_kl_maps(
    model: AllCNN, test: Split, run_dir: str | Path, n: int = 6, batch_size: int = 256,
    source: str | None = None,
) -> dict[str, Any]:
    """KL statistics of ``model`` over the ``test`` split, the heatmap PNG of its first ``n``
    images (``figures/kl_maps.png``), and the statistics merged into ``metrics.json`` with
    ``kl_data_source`` (``source``: the data they came from, which need not be the run's;
    ``None``: the run's own, its ``data_source``)."""
    require(n >= 1, f"n must be >= 1, got {n}")
    require(
        test.boxes is not None, "the test split has no boxes_test; KL lift needs the digit boxes"
    )
    stats = kl_statistics(model, test.x, test.boxes, batch_size, test.distractor_boxes)
    n = min(n, len(test))
    c = model.model_config
    figure = plot_kl_maps(
        test.x[:n],
        test.boxes[:n],
        [m[:n] for m in stats["maps"]],
        Path(run_dir) / "figures" / "kl_maps.png",
        grids=stats["kl_grids"],
        lifts=stats["kl_lift"],
        aucs=stats["kl_auc"],
        title=f"{c.arch} beta={c.beta} width={c.width} padding={c.padding}",
    )
    keys = ("kl_lift", "kl_lift_max", "kl_auc", "kl_nats", "kl_map_shapes", "kl_border",
            "ink_lift", "ink_auc", "kl_auc_clutter", "ink_auc_clutter", "clutter_cell_fraction")
    if source is None:
        source = runs.read_metrics(Path(run_dir)).get("data_source")
    result = {**{k: stats[k] for k in keys}, "kl_data_source": source}
    runs.update_metrics(Path(run_dir), result)
    return {**result, "figure": str(figure)}


def evaluate_kl_maps(run_dir: str | Path, options: KLMapOptions | None = None) -> dict[str, Any]:
    """:func:`write_kl_maps` for a finished run directory (its config, model and test data)."""
    options = options or KLMapOptions()
    config = runs.read_run_config(run_dir, ClassifierConfig)
    run_dir = Path(run_dir)
    require(
        config.model.dropout == "information",
        f"{run_dir} was trained with dropout={config.model.dropout!r}; KL maps need "
        "--dropout information",
    )
    path = options.data or config.train.data
    require(path is not None, "the run's config has no data path; pass --data FILE.npz")
    test = load_classification_npz(path, splits=("test",))["test"]
    require(test.boxes is not None, f"{path} has no boxes_test; KL lift needs the digit boxes")
    return write_kl_maps(load_classifier(run_dir), test, run_dir, options.n, options.batch_size,
                         source=str(path))
