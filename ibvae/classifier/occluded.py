"""Occluded Fashion-MNIST: the paper's Occluded CIFAR experiment built from data that is
available offline; the options are an :class:`~ibvae.classifier.config.OccludedConfig`.

Each image: a task image (Fashion-MNIST; any grey or colour images of one size work, so a user
with CIFAR-10 gets the paper's Occluded CIFAR) with an MNIST digit, resampled by area to
``occluder_size`` x ``occluder_size``, placed uniformly at random where it lies wholly inside
the image. ``blend="paste"`` (default): the digit's square, black background included,
replaces the pixels under it (an occlusion: what was there is gone); ``"max"``: the pixelwise
maximum, so only the digit's strokes cover the image. A colour image gets the grey digit in
every channel. ``occluder_size=0`` pastes nothing: the same task images, labels and drawn
digits without the occlusion (the control; the probe must then be at chance).

The labels of a split are ``y_<split>`` (the task, what the classifier learns) and
``nuisance_<split>`` (the occluding digit's class, what :mod:`ibvae.classifier.probe` tries to
read back from the representation); ``occluder_boxes_<split>`` holds each digit's square
``(top, left, size, size)``. The task images of train and valid come from disjoint parts of
the task's training set (5/6 and 1/6, a seeded shuffle), those of test from its test set;
the digits likewise from MNIST train (disjoint train / valid parts) and MNIST test. A split
asks for as many images as it likes: each task image is used once while the pool lasts
(``n`` beyond the pool draws with replacement), each digit is drawn at random.

Arithmetic on uint8 grey levels, stored as uint8, as in :mod:`ibvae.classifier.cluttered`.
Every split draws from its own generator, ``default_rng([seed, 100 + split])``, so the test
set depends only on the seed and its size.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ibvae.classifier.config import OccludedConfig
from ibvae.classifier.data import generated_splits, split_pools
from ibvae.data import as_labels, labelled_arrays, pixel_scale
from ibvae.errors import IbvaeError, require
from ibvae.resample import resize_square

NO_TASK_DATA = (
    "no task data: pass --task-data FASHION.npz (x_train, y_train, x_test, y_test) or an IDX "
    "folder, e.g. /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist)"
)


def as_uint8_images(name: str, x: np.ndarray, origin: str) -> np.ndarray:
    """(N, H, W[, C]) uint8 grey levels, 0/1 integers or [0, 1] floats -> (N, H, W, C) uint8
    grey levels."""
    x = np.asarray(x)
    scale = pixel_scale({name: x}, origin)  # also checks shape, finiteness and range
    if x.ndim == 3:
        x = x[..., None]
    if x.dtype == np.uint8 and scale == 255:
        return x
    return np.clip(np.rint(x.astype(np.float64) * (255.0 / scale)), 0, 255).astype(np.uint8)


def occlude(
    images: np.ndarray,
    labels: np.ndarray,
    digits: np.ndarray,
    digit_labels: np.ndarray,
    n: int,
    rng: np.random.Generator,
    config: OccludedConfig | None = None,
    chunk: int = 4096,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``n`` occluded images from one split's task ``images`` (N, H, W, C) uint8 and grey
    ``digits`` (M, S, S) uint8, with ``config``'s ``occluder_size`` and ``blend`` (its data,
    sizes and seed are not used here). Returns ``x`` (n, H, W, C) uint8, ``y`` (n,) the task
    labels, ``nuisance`` (n,) the digits' labels and ``boxes`` (n, 4) int32 rows ``(top,
    left, size, size)`` of the digits."""
    config = config or OccludedConfig()
    require(n >= 0, f"the number of images must be >= 0, got {n}")
    require(len(images) > 0 and len(digits) > 0, "need at least one task image and one digit")
    require(len(labels) == len(images), f"{len(labels)} labels for {len(images)} task images")
    require(len(digit_labels) == len(digits),
            f"{len(digit_labels)} labels for {len(digits)} digits")
    H, W = images.shape[1:3]
    s = config.occluder_size
    require(s <= min(H, W), f"occluder_size must be <= the task images' side {min(H, W)}, got {s}")
    pool = len(images)
    targets = rng.permutation(pool)[:n] if n <= pool else rng.integers(0, pool, n)
    which = rng.integers(0, len(digits), n)
    tops, lefts = rng.integers(0, H - s + 1, n), rng.integers(0, W - s + 1, n)
    x = images[targets].copy()
    ar = np.arange(s)
    for start in range(0, n if s > 0 else 0, chunk):
        block = slice(start, min(n, start + chunk))
        patch = resize_square(digits[which[block]], s)[..., None]
        rows = np.arange(block.start, block.stop)[:, None, None]
        ys = tops[block, None, None] + ar[:, None]
        xs = lefts[block, None, None] + ar[None, :]
        x[rows, ys, xs] = patch if config.blend == "paste" else np.maximum(x[rows, ys, xs], patch)
        if progress is not None:
            progress(block.stop, n)
    if progress is not None and s == 0:
        progress(n, n)
    boxes = np.stack([tops, lefts, np.full(n, s), np.full(n, s)], axis=1).astype(np.int32)
    return x, np.asarray(labels)[targets], np.asarray(digit_labels)[which], boxes


def _labelled(path: str | None, what: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (x, y), "test": (x, y)}`` of a file or IDX folder (uint8 NHWC images)."""
    arrays, origin = labelled_arrays(path)
    origin = f"{what} {origin}"
    out = {}
    for split in ("train", "test"):
        x = as_uint8_images(f"x_{split}", arrays[f"x_{split}"], origin)
        out[split] = (x, as_labels(f"y_{split}", arrays[f"y_{split}"], len(x), origin))
    require(out["train"][0].shape[1:] == out["test"][0].shape[1:],
            f"{origin}: x_train images are {out['train'][0].shape[1:]} but x_test images are "
            f"{out['test'][0].shape[1:]}")
    return out


def _pools(path: str | None, what: str, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    sets = _labelled(path, what)
    return {**split_pools(*sets["train"], seed=seed), "test": sets["test"]}


def make_occluded(
    config: OccludedConfig,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Occluded splits of ``config`` (see the module docstring): the arrays to save,
    ``x_<split>`` (uint8, N x H x W x C), ``y_<split>``, ``nuisance_<split>``,
    ``occluder_boxes_<split>`` (an empty split is left out), plus the options.
    ``progress(split, done, total)`` is called as images are made."""
    require(config.task_data is not None, NO_TASK_DATA)
    tasks = _pools(config.task_data, "task data", config.seed)
    digits = _pools(config.occluder_data, "occluder data", config.seed + 1)
    side = digits["test"][0].shape[1:]
    if len(side) != 3 or side[0] != side[1] or side[2] != 1:
        raise IbvaeError(f"occluder digits must be square and grey, got images of {side}")
    out: dict[str, np.ndarray] = {}
    for i, split, n, report in generated_splits(config, progress):
        x, y, nuisance, boxes = occlude(
            *tasks[split], digits[split][0][..., 0], digits[split][1], n,
            np.random.default_rng([config.seed, 100 + i]), config, progress=report,
        )
        out.update({f"x_{split}": x, f"y_{split}": y, f"nuisance_{split}": nuisance,
                    f"occluder_boxes_{split}": boxes})
    out.update(occluder_size=np.int64(config.occluder_size), blend=np.array(config.blend),
               seed=np.int64(config.seed))
    return out
