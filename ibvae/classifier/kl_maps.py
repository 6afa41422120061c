"""KL heatmaps of the information pools and a number that says whether they localise the digit.

Heatmap (the authors' plot): the per-unit KL of a pool summed over channels, minus its minimum
over the map. **Localisation lift** of one map: (fraction of the heatmap's mass inside the
target box, mapped to the map's resolution) / (the box's area fraction at that resolution).
1 means no focus (mass spread like the area), ``1 / area_fraction`` means all mass in the box.
A map with no mass (constant KL) counts as 1. ``kl_nats``: mean over images of the pool's KL
summed over all units (no minimum subtracted). ``kl_border``: per pool, the heatmap's mean on
the top / bottom / left / right border over its interior mean (padding artifacts).

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
from ibvae.classifier.models import AllCNN, load_classifier
from ibvae.classifier.plots import plot_kl_maps
from ibvae.config import Config, option
from ibvae.errors import IbvaeError, require


def box_masks(boxes: np.ndarray, image_hw: tuple[int, int], map_hw: tuple[int, int]) -> np.ndarray:
    """Boolean ``(N, h, w)`` masks of the map cells that overlap each box ``(top, left, height,
    width)`` given in input pixels (scale ``h / H``; a cell covers ``[i / s, (i + 1) / s)``)."""
    boxes = np.asarray(boxes, np.float64)
    (H, W), (h, w) = image_hw, map_hw
    sy, sx = h / H, w / W
    top, left, bh, bw = boxes.T
    r0 = np.floor(top * sy).astype(int)
    r1 = np.ceil((top + bh) * sy).astype(int)
    c0 = np.floor(left * sx).astype(int)
    c1 = np.ceil((left + bw) * sx).astype(int)
    rows, cols = np.arange(h), np.arange(w)
    in_r = (rows[None, :] >= r0[:, None]) & (rows[None, :] < r1[:, None])
    in_c = (cols[None, :] >= c0[:, None]) & (cols[None, :] < c1[:, None])
    return in_r[:, :, None] & in_c[:, None, :]


def lift_per_image(
    maps: np.ndarray, boxes: np.ndarray, image_hw: tuple[int, int], subtract_min: bool = True
) -> np.ndarray:
    """Localisation lift of each ``(h, w)`` map in ``maps`` ``(N, h, w)``; see module doc."""
    maps = np.asarray(maps, np.float64)
    if maps.ndim != 3 or len(maps) != len(boxes):
        raise IbvaeError(f"need (N, h, w) maps and N boxes, got {maps.shape} and {len(boxes)}")
    if subtract_min:
        maps = maps - maps.min(axis=(1, 2), keepdims=True)
    mask = box_masks(boxes, image_hw, maps.shape[1:])
    total = maps.sum(axis=(1, 2))
    inside = (maps * mask).sum(axis=(1, 2))
    area = mask.mean(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        lift = (inside / total) / area
    return np.where(total > 0, lift, 1.0)


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


def kl_statistics(
    model: AllCNN, x: np.ndarray, boxes: np.ndarray, batch_size: int = 256
) -> dict[str, Any]:
    """``kl_lift`` and ``kl_nats`` (one value per information pool, shallow to deep) over
    ``x``, ``kl_map_shapes``, ``kl_border``, plus ``maps`` (the per-image maps, for plotting)."""
    require(boxes is not None, "the test split has no boxes_test; the lift needs the digit boxes")
    maps = kl_maps(model, x, batch_size)
    hw = x.shape[1:3]
    return {
        "kl_lift": [float(lift_per_image(m, boxes, hw).mean()) for m in maps],
        "kl_nats": [float(m.sum(axis=(1, 2)).mean()) for m in maps],
        "kl_map_shapes": [list(m.shape[1:]) for m in maps],
        "kl_border": [border_ratios(m) for m in maps],
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
    model: AllCNN, test: Split, run_dir: str | Path, n: int = 6, batch_size: int = 256
) -> dict[str, Any]:
    """KL statistics of ``model`` over the ``test`` split, the heatmap PNG of its first ``n``
    images (``figures/kl_maps.png``), and the statistics merged into ``metrics.json``."""
    require(n >= 1, f"n must be >= 1, got {n}")
    require(
        test.boxes is not None, "the test split has no boxes_test; KL lift needs the digit boxes"
    )
    stats = kl_statistics(model, test.x, test.boxes, batch_size)
    n = min(n, len(test))
    c = model.model_config
    figure = plot_kl_maps(
        test.x[:n],
        test.boxes[:n],
        [m[:n] for m in stats["maps"]],
        Path(run_dir) / "figures" / "kl_maps.png",
        lifts=stats["kl_lift"],
        title=f"{c.arch} beta={c.beta} width={c.width} padding={c.padding}",
    )
    result = {k: stats[k] for k in ("kl_lift", "kl_nats", "kl_map_shapes", "kl_border")}
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
    return write_kl_maps(load_classifier(run_dir), test, run_dir, options.n, options.batch_size)
