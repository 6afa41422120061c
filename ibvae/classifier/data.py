"""Classification data as checked splits: ``train``, ``test`` and an optional ``valid``, each
float32 NHWC images in [0, 1], int64 labels and optional digit boxes ``(top, left, height,
width)`` (what the KL-map lift needs), and optional distractor boxes (``(N, k, 4)``, the same
convention: what the clutter-only localisation score needs; files made before they were
recorded have none).

From a file: :func:`load_classification_npz` (Cluttered MNIST from
:mod:`ibvae.classifier.cluttered`, or your own CIFAR-10 ``.npz``). From memory:
:func:`as_splits`. A run's splits: :func:`classification_splits` (either, then ``train_size``).
Arrays get the same checks as a file, and every error names where the data came from.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from ibvae.classifier.config import ClassifierTrainConfig
from ibvae.data import Dataset, as_images, as_labels, pixel_scale
from ibvae.errors import IbvaeError, require
from ibvae.files import read_npz

SPLITS = ("train", "valid", "test")
#: the most classes a run may have: labels are class indices 0 .. K-1, and a stray raw code
#: (say 500000) would otherwise build a 500,001-way head and ask for a terabyte
MAX_CLASSES = 1000
DATA_FORMS = (
    "data must be a .npz path, ((x_train, y_train), (x_test, y_test)), a mapping "
    "{'train': ..., 'test': ..., ['valid': ...]} of Split or (x, y[, boxes]), or a labelled "
    "ibvae.data.Dataset"
)


@dataclasses.dataclass
class Split:
    """One split of a classification set: float32 NHWC images in [0, 1], labels, optional
    digit boxes ``(N, 4)`` and distractor boxes ``(N, k, 4)``."""

    x: np.ndarray
    y: np.ndarray
    boxes: np.ndarray | None = None
    distractor_boxes: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)

    def head(self, n: int | None) -> Split:
        """The first ``n`` examples (all of them for ``None``)."""
        if n is None:
            return self
        b = None if self.boxes is None else self.boxes[:n]
        d = None if self.distractor_boxes is None else self.distractor_boxes[:n]
        return Split(self.x[:n], self.y[:n], b, d)


def _check_boxes(origin: str, name: str, boxes: Any, x: np.ndarray, per_image: bool = False
                 ) -> np.ndarray:
    """Integer boxes inside the images: ``(N, 4)``, or with ``per_image`` ``(N, k, 4)``."""
    boxes = np.asarray(boxes)
    shape = "(N, k, 4)" if per_image else "(N, 4)"
    if boxes.ndim != (3 if per_image else 2) or boxes.shape[-1] != 4:
        raise IbvaeError(
            f"{origin}: {name} must have shape {shape} rows (top, left, height, width), got "
            f"{boxes.shape}"
        )
    if len(boxes) != len(x):
        raise IbvaeError(f"{origin}: {name} has {len(boxes)} boxes for {len(x)} images")
    if not np.issubdtype(boxes.dtype, np.integer):
        raise IbvaeError(f"{origin}: {name} must hold integer pixel coordinates")
    top, left, h, w = boxes.reshape(-1, 4).T
    H, W = x.shape[1:3]
    if (top < 0).any() or (left < 0).any() or (h < 1).any() or (w < 1).any() or (
        (top + h > H).any() or (left + w > W).any()
    ):
        raise IbvaeError(f"{origin}: {name} has boxes outside the {H}x{W} images")
    return boxes.astype(np.int64)


def make_split(
    split: str, x: Any, y: Any, boxes: Any, origin: str, scale: float | None = None,
    distractor_boxes: Any = None,
) -> Split:
    """A checked :class:`Split` named ``split`` (for the messages) from raw arrays, with the
    dataset's pixel ``scale`` (:func:`ibvae.data.pixel_scale`)."""
    x = as_images(f"x_{split}", x, origin, scale)
    require(y is not None, f"{origin}: x_{split} has no labels y_{split}")
    y = as_labels(f"y_{split}", y, len(x), origin)
    require(y.min() >= 0, f"{origin}: y_{split} has negative labels")
    require(
        y.max() < MAX_CLASSES,
        f"{origin}: y_{split} has a label {int(y.max())}; labels must be class indices "
        f"0 .. K-1 with K <= {MAX_CLASSES} (remap raw codes, e.g. with "
        "np.unique(y, return_inverse=True))",
    )
    if boxes is not None:
        boxes = _check_boxes(origin, f"boxes_{split}", boxes, x)
    if distractor_boxes is not None:
        distractor_boxes = _check_boxes(
            origin, f"distractor_boxes_{split}", distractor_boxes, x, per_image=True
        )
    return Split(x, y, boxes, distractor_boxes)


def check_splits(splits: dict[str, Split], origin: str) -> dict[str, Split]:
    """Known split names, and one image shape for all of them."""
    unknown = sorted(set(splits) - set(SPLITS))
    require(not unknown, f"{origin}: unknown split(s) {unknown}; splits are {list(SPLITS)}")
    shapes = {s.x.shape[1:] for s in splits.values()}
    require(len(shapes) <= 1, f"{origin}: splits have different image shapes {sorted(shapes)}")
    return splits


def load_classification_npz(
    path: str | os.PathLike, splits: tuple[str, ...] = SPLITS
) -> dict[str, Split]:
    """A classification ``.npz`` (Cluttered MNIST from
    :func:`~ibvae.classifier.cluttered.make_cluttered_mnist`, or a user's CIFAR-10):
    ``x_train``, ``y_train``, ``x_test``, ``y_test`` are required (of those in ``splits``); a
    valid split, ``boxes_*`` and ``distractor_boxes_*`` are optional, but when present must
    match their images."""
    required = tuple(f"{k}_{s}" for s in ("train", "test") for k in ("x", "y") if s in splits)
    arrays = read_npz(path, required)
    origin = str(path)
    present = [s for s in splits if f"x_{s}" in arrays]
    scale = pixel_scale({f"x_{s}": arrays[f"x_{s}"] for s in present}, origin)
    out = {
        s: make_split(
            s, arrays[f"x_{s}"], arrays.get(f"y_{s}"), arrays.get(f"boxes_{s}"), origin, scale,
            arrays.get(f"distractor_boxes_{s}"),
        )
        for s in present
    }
    return check_splits(out, origin)


def _parts(split: str, value: Any, origin: str) -> tuple[Any, Any, Any]:
    """``(x, y, boxes)`` of a split given as a :class:`Split` or ``(x, y[, boxes])``."""
    if isinstance(value, Split):
        return value.x, value.y, value.boxes
    if isinstance(value, list | tuple) and len(value) in (2, 3):
        x, y, *boxes = value
        return x, y, boxes[0] if boxes else None
    raise IbvaeError(f"{origin}: split {split!r} must be a Split or (x, y[, boxes]); {DATA_FORMS}")


def as_splits(data: Any, origin: str = "arrays") -> dict[str, Split]:
    """Checked splits from what a Python user has:

    * a path to a classification ``.npz`` (:func:`load_classification_npz`);
    * Keras' ``((x_train, y_train), (x_test, y_test))`` (each pair may add its boxes);
    * a mapping ``{"train": ..., "test": ..., "valid": ...}`` (``valid`` optional) whose values
      are :class:`Split` or ``(x, y[, boxes])``;
    * a labelled :class:`ibvae.data.Dataset`.

    Images are (N, H, W[, C]) uint8 or floats in [0, 1]; labels non-negative integers.
    """
    if isinstance(data, str | os.PathLike):
        return load_classification_npz(data)
    if isinstance(data, Dataset):
        data = {"train": (data.x_train, data.y_train), "test": (data.x_test, data.y_test)}
    elif isinstance(data, list | tuple) and len(data) == 2:
        data = {"train": data[0], "test": data[1]}
    if not isinstance(data, Mapping):
        raise IbvaeError(DATA_FORMS)
    missing = [s for s in ("train", "test") if s not in data]
    require(not missing, f"{origin}: no {' or '.join(missing)} split; {DATA_FORMS}")
    parts = {s: _parts(s, v, origin) for s, v in data.items()}
    # A Split is already checked (floats in [0, 1]); the raw arrays share one pixel scale.
    raw = {f"x_{s}": p[0] for s, p in parts.items() if not isinstance(data[s], Split)}
    scale = pixel_scale(raw, origin)
    splits = {
        s: make_split(s, *p, origin, 1.0 if isinstance(data[s], Split) else scale,
                      getattr(data[s], "distractor_boxes", None))
        for s, p in parts.items()
    }
    return check_splits(splits, origin)


def data_origin(data: Any) -> str:
    """How errors and metrics name ``data``: its path, or ``arrays``."""
    return str(data) if isinstance(data, str | os.PathLike) else "arrays"


def classification_splits(train: ClassifierTrainConfig, data: Any = None) -> dict[str, Split]:
    """A run's splits: ``data`` (see :func:`as_splits`), or with ``None`` the file
    ``train.data``; the training split cut to ``train.train_size``."""
    if data is None:
        require(
            train.data is not None,
            "no data: pass --data FILE.npz (e.g. from scripts/make_cluttered_mnist.py), or "
            "data=... from Python",
        )
        data = train.data
    origin = data_origin(data)
    splits = as_splits(data, origin)
    if train.train_size is not None:
        require(
            train.train_size <= len(splits["train"]),
            f"train_size {train.train_size} exceeds the {len(splits['train'])} training images "
            f"in {origin}",
        )
        splits["train"] = splits["train"].head(train.train_size)
    return splits


def num_classes(splits: dict[str, Split]) -> int:
    """Classes of a run: at least 10, else one more than the largest label."""
    return max(10, int(max(s.y.max() for s in splits.values())) + 1)


def split_pools(
    x_train: np.ndarray, y_train: np.ndarray, seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """MNIST train -> disjoint train (5/6) and valid (1/6) digit pools, by a seeded shuffle."""
    order = np.random.default_rng([seed, 99]).permutation(len(x_train))
    n_valid = len(x_train) // 6
    tr, va = order[n_valid:], order[:n_valid]
    return {"train": (x_train[tr], y_train[tr]), "valid": (x_train[va], y_train[va])}


def generated_splits(
    config: Any, progress: Callable[[str, int, int], None] | None = None
) -> Iterator[tuple[int, str, int, Callable[[int, int], None] | None]]:
    """``(index, split, n, report)`` for each split of a generator config that asks for images
    (an empty split is left out of the file, not stored with zero rows); ``report(done,
    total)`` forwards to ``progress(split, done, total)``."""
    for i, split in enumerate(SPLITS):
        n = int(getattr(config, split))
        if n > 0:
            report = (lambda done, total, _s=split: progress(_s, done, total)) if progress else None
            yield i, split, n, report
