"""Where a pool's cells look on the input: each cell's receptive-field centre, step and
field size, derived from the model's own layers, and how much of each cell's tile lies
inside a box. :mod:`ibvae.classifier.localisation` scores KL maps with these.

**Receptive-field centres.** Cell ``i`` of a conv map does not look at the input pixels
``[i * J, (i + 1) * J)`` (``J`` = the product of the strides, the cell's *step* in pixels): it
looks at a window centred on input pixel ``start + J * i`` (pixel ``j``'s centre is ``j``).
Each convolution of kernel ``k``, stride ``s`` and ``before`` zeros padded at the top / left
maps the grid ``(start, J)`` of its input to ::

    start' = start + J * ((k - 1) / 2 - before),   J' = J * s

with ``before = 0`` for ``valid``, ``(k - 1) // 2`` for ``symmetric`` and, for Keras' ``same``
(TensorFlow's and JAX's rule), ``before = total // 2`` where ``total = max((ceil(n / s) - 1) *
s + k - n, 0)`` for an input of ``n`` cells: 0 for a 3x3 stride-2 conv on an even input, 1 on
an odd one. Stride-1 ``same`` convolutions with odd kernels leave the grid unchanged. So for
All-CNN-96 on a 64x64 or 96x96 input the centres sit ``+0.5 / +1.5 / +3.5 / +7.5`` px
(pools 1 -> 4) from the naive ``(i + 0.5) * J - 0.5`` with ``same`` or ``valid``, and
``-0.5 / -1.5 / -3.5 / -7.5`` with ``symmetric``. :func:`pool_grids` derives them from the
model's own layers (:meth:`~ibvae.classifier.models.AllCNN.pool_geometry`); a test checks them
against an impulse propagated through the real model.

**Box cells.** Each cell owns the ``J x J`` pixels centred on its receptive-field centre (the
cells tile the input); the share of that tile inside a box ``(top, left, height, width)`` is
the cell's *box fraction* (:func:`box_fractions`: 1 inside, 0 outside, in between on the
box's edges). The box cells of the lift are those with a fraction above 0 (:func:`box_masks`;
with the naive centres this is the old "cells that overlap the box at scale h / H").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ibvae.errors import IbvaeError, one_of
from ibvae.layers.conv import PADDINGS

Geometry = Sequence[Sequence[tuple[int, int, str]]]


@dataclasses.dataclass(frozen=True)
class Grid:
    """The cells of a map along one axis: cell ``i``'s receptive field is centred on input
    pixel ``start + step * i`` (pixel ``j``'s centre is ``j``); ``size`` cells."""

    start: float
    step: float
    size: int

    def centres(self) -> np.ndarray:
        return self.start + self.step * np.arange(self.size)


def input_grid(size: int) -> Grid:
    """The input itself: one cell per pixel."""
    return Grid(0.0, 1.0, int(size))


def uniform_grid(image_size: int, map_size: int) -> Grid:
    """The naive grid: cell ``i`` covers ``[i / s, (i + 1) / s)`` at scale ``s = h / H``,
    centred on the middle of that span."""
    step = image_size / map_size
    return Grid((step - 1) / 2, step, int(map_size))


def same_padding_before(size: int, kernel: int, stride: int) -> int:
    """Zeros Keras' ``same`` (TensorFlow's and JAX's ``SAME``) pads before the first cell."""
    out = -(-size // stride)
    return max((out - 1) * stride + kernel - size, 0) // 2


def conv_grid(grid: Grid, kernel: int, stride: int, padding: str) -> Grid:
    """The grid of a convolution's output from its input's (see the module docstring)."""
    one_of("padding", padding, PADDINGS)
    n = grid.size
    if padding == "valid":
        before, out = 0, (n - kernel) // stride + 1
    elif padding == "symmetric":
        before = (kernel - 1) // 2
        out = (n + 2 * before - kernel) // stride + 1
    else:
        before, out = same_padding_before(n, kernel, stride), -(-n // stride)
    if out < 1:
        raise IbvaeError(f"a {kernel}x{kernel} '{padding}' convolution of stride {stride} has "
                         f"no output on {n} cells; use a larger input")
    start = grid.start + grid.step * ((kernel - 1) / 2 - before)
    return Grid(start, grid.step * stride, out)


def receptive_field_size(geometry: Geometry, pool: int) -> int:
    """Side in pixels of the receptive field of one cell of pool ``pool`` (0-based)."""
    size, step = 1, 1
    for block in geometry[: pool + 1]:
        for kernel, stride, _ in block:
            size += (kernel - 1) * step
            step *= stride
    return size


def pool_grids(geometry: Geometry, image_hw: tuple[int, int]) -> list[tuple[Grid, Grid]]:
    """Per pool, the ``(rows, cols)`` grids of its cells for an ``image_hw`` input, from the
    model's :meth:`~ibvae.classifier.models.AllCNN.pool_geometry`."""
    rows, cols = input_grid(image_hw[0]), input_grid(image_hw[1])
    out = []
    for block in geometry:
        for kernel, stride, padding in block:
            rows = conv_grid(rows, kernel, stride, padding)
            cols = conv_grid(cols, kernel, stride, padding)
        out.append((rows, cols))
    return out


def _axis_fraction(grid: Grid, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """``(N, size)``: the share of each cell's ``step``-wide tile inside ``[start, start +
    length)``, in continuous coordinates (pixel ``j`` spans ``[j, j + 1)``)."""
    centre = grid.centres()[None, :] + 0.5
    half = grid.step / 2
    lo = np.maximum(centre - half, start[:, None])
    hi = np.minimum(centre + half, (start + length)[:, None])
    return np.clip(hi - lo, 0, None) / grid.step


def box_fractions(
    boxes: np.ndarray,
    image_hw: tuple[int, int],
    map_hw: tuple[int, int],
    grids: tuple[Grid, Grid] | None = None,
) -> np.ndarray:
    """``(N, h, w)`` share of each map cell's tile inside each box ``(top, left, height,
    width)`` given in input pixels (1 inside, 0 outside, in between on the box's edges).
    ``grids``: the map's ``(rows, cols)`` (:func:`pool_grids`); ``None``: the naive
    :func:`uniform_grid`."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    (H, W), (h, w) = image_hw, map_hw
    rows, cols = grids or (uniform_grid(H, h), uniform_grid(W, w))
    if (rows.size, cols.size) != (h, w):
        raise IbvaeError(f"grids of {rows.size}x{cols.size} cells for a {h}x{w} map")
    top, left, bh, bw = boxes.T
    return _axis_fraction(rows, top, bh)[:, :, None] * _axis_fraction(cols, left, bw)[:, None, :]


def box_masks(
    boxes: np.ndarray,
    image_hw: tuple[int, int],
    map_hw: tuple[int, int],
    grids: tuple[Grid, Grid] | None = None,
) -> np.ndarray:
    """Boolean ``(N, h, w)`` masks of the map cells whose tile overlaps each box (see
    :func:`box_fractions`): the box cells of the lift."""
    return box_fractions(boxes, image_hw, map_hw, grids) > 0
