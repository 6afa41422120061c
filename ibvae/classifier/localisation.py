"""Whether a KL map sits on a box: the lift, the AUC, the ink baseline and the clutter-only
AUC, over the cells of :mod:`ibvae.classifier.receptive_fields`.

**Localisation lift** (``kl_lift``): (fraction of the heatmap's mass inside the box cells) /
(fraction of cells in the box), the heatmap being the KL map minus its minimum (the authors'
plot). 1 = no focus; its maximum is ``1 / area fraction``, which depends on how much of the
map the box covers (at pool 4 a 28-px box covers 2x2 or 3x3 of 6x6 cells: 9 or 4), so lifts
of different pools or canvases are not comparable. ``kl_lift_max`` reports that ceiling.

**Localisation AUC** (``kl_auc``, the normalised score): the area under the ROC curve of the
map's KL as a detector of the box, i.e. the probability that a cell of the box has more KL
than a cell outside it (ties count one half: the Mann-Whitney statistic), where a cell counts
as inside by its box fraction ``p`` and as outside by ``1 - p`` (a pair of different cells
``i, j`` weighs ``p_i (1 - p_j)``). Chosen over "lift / its maximum" (the mass fraction in the
box: its chance value is the area fraction, different for every pool and canvas) and over
"(lift - 1) / (max - 1)" (chance 0 and maximum 1, but it depends on the heatmap's zero, i.e.
on subtracting the minimum, and on how peaked the mass is) because

* its chance value is 0.5 and its maximum 1 whatever the number of cells and the box's share
  of them, so pools, paddings and canvas sizes compare directly;
* it depends only on the order of the cells' KL, so no choice of zero (minimum subtracted or
  not; the log-uniform KL is known only up to a constant) changes it, and a constant map is
  exactly 0.5 without a special case;
* it answers the question the heatmap asks ("is the KL higher on the digit than elsewhere?")
  without rewarding a map for the height of its peak.

The fractional weights matter on coarse maps, where most box cells straddle the box's edge:
with all-or-nothing box cells one smooth KL field scored 0.85-0.86 at 96x96 / 64x64 / 16x16
cells and 0.76 at 6x6 (the test's example); weighted, 0.849 / 0.849 / 0.850 / 0.843. What
the AUC does not see: by how much the box cells exceed the rest (a faint but consistent
excess scores 1; the lift keeps that), and, on a larger canvas, the extra far-away cells make
the same blob score higher (more easy negatives): compare canvases with that in mind. Where
the box's edges cut cells, pairs of cells with equal fractions cannot be ordered, so the best
possible score is a little under 1. A map wholly inside the box (or wholly outside) scores
0.5.

**The ink baseline** (``ink_lift``, ``ink_auc``). A high AUC does not by itself say the model
localises: on Cluttered MNIST most of the canvas is blank, and a map of where the *input* has
ink, made with no model at all, already scores high. :func:`ink_maps` is that map: per pool,
each cell's sum of input pixels over its receptive field (the ``receptive_field_size`` square
centred on the cell's receptive-field centre; outside the image counts 0, like the zero
padding), scored by the same lift and AUC. A KL map is worth something beyond "ink vs blank"
only where it beats its ink map.

**Clutter-only AUC** (``kl_auc_clutter``, ``ink_auc_clutter``). The same weighted AUC, but the
cells outside the box count only when their receptive field holds distractor ink (a lit pixel
inside a distractor's box, :func:`clutter_cells`): blank cells, which any ink-driven map beats
for free, are left out, so the score asks "is the KL higher on the digit than on clutter?".
The receptive field, not the cell's tile, decides, because a cell whose receptive field is
blank computes the same thing for every image (its input is zeros), so beating it says
nothing about the digit. Deep pools' fields cover most of a small canvas, so there few cells
are left out and the two AUCs are close. An image with no clutter-bearing cell outside the
box has no score (left out of the mean; ``nan`` per image).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from ibvae.classifier.receptive_fields import (
    Geometry,
    Grid,
    box_fractions,
    box_masks,
    pool_grids,
    receptive_field_size,
)
from ibvae.errors import IbvaeError


def _checked(maps: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    maps = np.asarray(maps, np.float64)
    if maps.ndim != 3 or len(maps) != len(boxes):
        raise IbvaeError(f"need (N, h, w) maps and N boxes, got {maps.shape} and {len(boxes)}")
    return maps


def lift_per_image(
    maps: np.ndarray,
    boxes: np.ndarray,
    image_hw: tuple[int, int],
    subtract_min: bool = True,
    grids: tuple[Grid, Grid] | None = None,
) -> np.ndarray:
    """Localisation lift of each ``(h, w)`` map in ``maps`` ``(N, h, w)``; a map with no
    mass (constant KL) counts as 1. See the module docstring."""
    maps = _checked(maps, boxes)
    if subtract_min:
        maps = maps - maps.min(axis=(1, 2), keepdims=True)
    mask = box_masks(boxes, image_hw, maps.shape[1:], grids)
    total = maps.sum(axis=(1, 2))
    inside = (maps * mask).sum(axis=(1, 2))
    area = mask.mean(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        lift = (inside / total) / area
    return np.where(total > 0, lift, 1.0)


def lift_ceiling_per_image(
    boxes: np.ndarray,
    image_hw: tuple[int, int],
    map_hw: tuple[int, int],
    grids: tuple[Grid, Grid] | None = None,
) -> np.ndarray:
    """The largest lift each map could have: 1 / (fraction of its cells in the box)."""
    area = box_masks(boxes, image_hw, map_hw, grids).mean(axis=(1, 2))
    with np.errstate(divide="ignore"):
        return np.where(area > 0, 1.0 / area, 1.0)


def auc_per_image(
    maps: np.ndarray,
    boxes: np.ndarray,
    image_hw: tuple[int, int],
    grids: tuple[Grid, Grid] | None = None,
    chunk: int = 1024,
) -> np.ndarray:
    """Localisation AUC of each map: the probability that a cell of the box has more KL than
    a cell outside it, ties one half, each cell counting as inside by the share ``p`` of its
    tile in the box and as outside by ``1 - p`` (pairs of two different cells ``i, j`` weigh
    ``p_i (1 - p_j)``). 0.5 = chance (and a constant map), 1 = every box cell above every
    other cell, 0 = below. 0.5 where the box holds all of the map or none of it. See the
    module docstring."""
    maps = _checked(maps, boxes)
    n, h, w = maps.shape
    out = np.empty(n)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        p = box_fractions(boxes[a:b], image_hw, (h, w), grids).reshape(b - a, -1)
        out[a:b] = _weighted_auc(maps[a:b].reshape(b - a, -1), p)
    return out


def _weighted_auc(
    scores: np.ndarray, p: np.ndarray, q: np.ndarray | None = None, empty: float = 0.5
) -> np.ndarray:
    """Row-wise ``sum_{i != j} p_i q_j [s_i > s_j] / sum_{i != j} p_i q_j`` with ``q = 1 - p``
    unless given (cell ``j``'s weight as a negative) and ties counting one half; ``empty``
    where no pair has weight."""
    m, cells = scores.shape
    q = 1.0 - p if q is None else q
    level = rankdata(scores, method="dense", axis=1).astype(np.int64) - 1  # 0 = lowest
    key = level + cells * np.arange(m)[:, None]
    q_at_level = np.bincount(key.ravel(), q.ravel(), m * cells).reshape(m, cells)
    below = np.cumsum(q_at_level, axis=1) - q_at_level  # q of the strictly lower cells
    rows = np.arange(m)[:, None]
    lower = below[rows, level]
    tied = q_at_level[rows, level] - q  # q of the other cells of the same level
    num = (p * (lower + 0.5 * tied)).sum(axis=1)
    den = p.sum(axis=1) * q.sum(axis=1) - (p * q).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = num / den
    return np.where(den > 1e-12, auc, empty)


def _field_weights(grid: Grid, field: int, n_pixels: int) -> np.ndarray:
    """``(size, n_pixels)``: the share of input pixel ``j`` (``[j, j + 1)``) inside the
    ``field``-pixel window centred on each cell's receptive-field centre (pixel ``c`` spans
    ``[c, c + 1)``, so the window is ``[c + 0.5 - field / 2, c + 0.5 + field / 2)``); pixels
    outside the image have no column, i.e. count 0 like zero padding."""
    centre = grid.centres()[:, None] + 0.5
    j = np.arange(n_pixels)[None, :]
    lo = np.maximum(centre - field / 2, j)
    hi = np.minimum(centre + field / 2, j + 1)
    return np.clip(hi - lo, 0, None)


def field_sums(images: np.ndarray, geometry: Geometry, chunk: int = 1024) -> list[np.ndarray]:
    """Per pool (shallow to deep), ``(N, h, w)``: the sum of ``images`` ``(N, H, W[, C])``
    (channels summed) over each cell's receptive field, from the model's
    :meth:`~ibvae.classifier.models.AllCNN.pool_geometry`."""
    x = np.asarray(images)
    if x.ndim not in (3, 4):
        raise IbvaeError(f"need (N, H, W[, C]) images, got shape {x.shape}")
    hw = x.shape[1:3]
    weights = []
    for pool, (rows, cols) in enumerate(pool_grids(geometry, hw)):
        field = receptive_field_size(geometry, pool)
        weights.append((_field_weights(rows, field, hw[0]), _field_weights(cols, field, hw[1])))
    out = [np.empty((len(x), wr.shape[0], wc.shape[0])) for wr, wc in weights]
    for a in range(0, len(x), chunk):
        block = np.asarray(x[a : a + chunk], np.float64)
        if block.ndim == 4:
            block = block.sum(axis=-1)
        for o, (wr, wc) in zip(out, weights, strict=True):
            o[a : a + chunk] = wr @ block @ wc.T
    return out


def ink_maps(images: np.ndarray, geometry: Geometry) -> list[np.ndarray]:
    """The no-model baseline of a KL map: per pool, each cell's input ink (pixel sum over its
    receptive field); see the module docstring."""
    return field_sums(images, geometry)


def clutter_cells(
    images: np.ndarray, distractor_boxes: np.ndarray, geometry: Geometry, chunk: int = 1024
) -> list[np.ndarray]:
    """Per pool, boolean ``(N, h, w)``: cells whose receptive field holds distractor ink (a
    pixel with ink inside one of the image's ``distractor_boxes`` ``(N, k, 4)``)."""
    x = np.asarray(images)
    d = np.asarray(distractor_boxes)
    if x.ndim not in (3, 4) or d.ndim != 3 or d.shape[-1] != 4 or len(d) != len(x):
        raise IbvaeError(f"need (N, k, 4) distractor boxes for {len(x)} (N, H, W[, C]) images, "
                         f"got {d.shape} for {x.shape}")
    H, W = x.shape[1:3]
    rr, cc = np.arange(H), np.arange(W)
    parts = []
    for a in range(0, len(x), chunk):
        block, boxes = x[a : a + chunk], d[a : a + chunk]
        lit = (block.max(axis=-1) if block.ndim == 4 else block) > 0
        in_rows = (rr >= boxes[..., :1]) & (rr < boxes[..., :1] + boxes[..., 2:3])  # (n, k, H)
        in_cols = (cc >= boxes[..., 1:2]) & (cc < boxes[..., 1:2] + boxes[..., 3:4])  # (n, k, W)
        # (n, H, W): some distractor's box holds the pixel, and the pixel has ink
        inside = np.einsum("nkh,nkw->nhw", in_rows.astype(np.float32),
                           in_cols.astype(np.float32)) > 0
        parts.append([s > 1e-9 for s in field_sums((inside & lit).astype(np.float32), geometry)])
    if not parts:
        return [np.zeros((0, r.size, c.size), bool) for r, c in pool_grids(geometry, (H, W))]
    return [np.concatenate(p) for p in zip(*parts, strict=True)]


def clutter_auc_per_image(
    maps: np.ndarray,
    boxes: np.ndarray,
    clutter: np.ndarray,
    image_hw: tuple[int, int],
    grids: tuple[Grid, Grid] | None = None,
    chunk: int = 1024,
) -> np.ndarray:
    """:func:`auc_per_image` with the negatives restricted to clutter-bearing cells: a cell
    counts as inside by its box fraction ``p`` and as outside by ``(1 - p)`` only where
    ``clutter`` ``(N, h, w)`` is true (:func:`clutter_cells`), else not at all; ``nan`` for
    an image with no such cell (see the module docstring)."""
    maps = _checked(maps, boxes)
    clutter = np.asarray(clutter, bool)
    if clutter.shape != maps.shape:
        raise IbvaeError(f"clutter cells {clutter.shape} for maps {maps.shape}")
    n, h, w = maps.shape
    out = np.empty(n)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        p = box_fractions(boxes[a:b], image_hw, (h, w), grids).reshape(b - a, -1)
        q = (1.0 - p) * clutter[a:b].reshape(b - a, -1)
        out[a:b] = _weighted_auc(maps[a:b].reshape(b - a, -1), p, q, empty=np.nan)
    return out
