"""The nuisance probe of the paper's Occluded CIFAR experiment: how much does a trained
classifier's representation still say about a nuisance (the occluding digit) it was never
asked about? As beta grows, Information Dropout should drop it (probe error toward chance,
90 % for ten digits) while the task error stays nearly flat.

:func:`probe_nuisance` (``scripts/probe_nuisance.py RUN --data OCCLUDED.npz``):

1. load the run's model, frozen (``model.keras``: after the batch-norm recalibration);
2. for the first ``n_train`` images of the train split and the test split of an ``.npz`` with
   ``nuisance_train`` / ``nuisance_test`` (:mod:`ibvae.classifier.occluded`), compute every
   pool's output in a noise-free inference pass (an information pool gives its features
   ``f(x)``, the posterior median; a binary pool has its dropout off), or with ``noise``
   one draw of the dropout noise, ``z = f(x) eps`` (keys with the suffix ``_noisy``). The two
   ask different questions: is the nuisance in what the layer computes, or in what passes
   its noise? Information Dropout can hide a nuisance either way: ``f`` can drop it, or a
   large ``alpha`` on the units that carry it can drown it;
3. average each output over a ``grid`` x ``grid`` partition of its map (area weights; ``grid``
   1 is global average pooling; at most the map's size) and flatten: ``grid^2 x filters``
   features per pool;
4. standardise them (mean and deviation of the probe's training features) and fit a
   multinomial logistic regression (scikit-learn, L-BFGS, L2 penalty ``1 / probe_c``) to the
   nuisance labels; report its test error in % per pool (``nuisance_error``), with its train
   error, the chance error (always the most frequent training nuisance) and the settings, all
   merged into the run's ``metrics.json``.

Why a logistic regression on pooled features: the probe is convex, so it has no schedule,
seed or early stopping of its own, and differences between runs are the representation's,
not the probe's training; it is standard (a "linear probe") and fits in seconds to minutes on
a CPU. Pooling keeps the features few enough for that (pool 1 of All-CNN-32 on 28x28 has
14 x 14 x 96 outputs at width 1) while a 4x4 grid keeps where things are, which a digit at a
random place needs. What it measures is what a linear read-out of those features gets: a
lower bound on the nuisance information the representation holds (a non-linear probe could
read more).
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import ops
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from ibvae import runs
from ibvae.classifier.config import ClassifierConfig
from ibvae.classifier.models import AllCNN, load_classifier
from ibvae.config import Config, option
from ibvae.data import as_images, as_labels, pixel_scale
from ibvae.errors import IbvaeError, require
from ibvae.files import read_npz
from ibvae.resample import area_weights


@dataclasses.dataclass
class ProbeOptions(Config):
    """What :func:`probe_nuisance` (``scripts/probe_nuisance.py``) reads and fits."""

    data: str | None = option(
        None, ".npz with x_/nuisance_ train and test (scripts/make_occluded.py); default: the "
        "run's data"
    )
    n_train: int | None = option(
        10_000, "probe training images: the first N of the train split (all if fewer; none: all)",
        ge=1,
    )
    n_test: int | None = option(
        None, "probe test images: the first N of the test split (all if fewer; none: all)", ge=1
    )
    grid: int = option(4, "average each pool's map over grid x grid cells (1: global)", ge=1)
    probe_c: float = option(1.0, "inverse L2 strength of the logistic regression (C)", gt=0)
    max_iter: int = option(500, "L-BFGS iterations of the logistic regression", ge=1)
    batch_size: int = option(256, "images per step of the representation pass", ge=1)
    noise: bool = option(
        False, "probe one draw of the dropout noise, z = f(x) eps (what the next layer "
        "receives in training), instead of the noise-free f(x); the results get the suffix "
        "_noisy"
    )


class PooledFeatures(keras.Model):
    """Wraps a classifier so ``predict`` (compiled, batched, any backend) returns, per pool,
    its inference output averaged over a ``grid`` x ``grid`` partition and flattened."""

    def __init__(self, classifier: AllCNN, grid: int, noise: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.classifier, self.grid, self.noise = classifier, int(grid), bool(noise)

    def call(self, x):
        features = []
        for out in self.classifier.pool_outputs(x, noise=self.noise):
            h, w = int(out.shape[1]), int(out.shape[2])
            rows = ops.convert_to_tensor(area_weights(h, min(self.grid, h)), out.dtype)
            cols = ops.convert_to_tensor(area_weights(w, min(self.grid, w)), out.dtype)
            pooled = ops.einsum("nhwc,ih,jw->nijc", out, rows, cols)
            features.append(ops.reshape(pooled, (-1, int(np.prod(pooled.shape[1:])))))
        return tuple(features)


def pool_features(model: AllCNN, x: np.ndarray, grid: int = 4, batch_size: int = 256,
                  noise: bool = False) -> list[np.ndarray]:
    """Per pool, shallow to deep, ``(N, grid^2 x filters)`` float32 features of ``x``
    (``noise``: of one draw of the dropout noise)."""
    out = PooledFeatures(model, grid, noise, name="pooled_features").predict(
        x, batch_size=batch_size, verbose=0)
    return [np.asarray(f) for f in (out if isinstance(out, list | tuple) else [out])]


def fit_probe(
    train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray,
    c: float = 1.0, max_iter: int = 500,
) -> dict[str, Any]:
    """Standardise, fit the logistic regression on ``train``, score it: ``train_error`` and
    ``test_error`` in %, ``converged``."""
    scaler = StandardScaler().fit(train)
    probe = LogisticRegression(C=c, max_iter=max_iter)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        probe.fit(scaler.transform(train), y_train)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    def error(features: np.ndarray, y: np.ndarray) -> float:
        return float(100.0 * np.mean(probe.predict(scaler.transform(features)) != y))

    return {"train_error": error(train, y_train), "test_error": error(test, y_test),
            "converged": converged}


def load_nuisance_splits(path: str | Path, n_train: int | None, n_test: int | None):
    """``(x_train, nuisance_train), (x_test, nuisance_test)`` of an occluded ``.npz``, cut
    to the first ``n_train`` / ``n_test`` images (all of a split with fewer); float32 NHWC
    in [0, 1]."""
    origin = str(path)
    arrays = read_npz(path, ("x_train", "x_test"))
    missing = [k for k in ("nuisance_train", "nuisance_test") if k not in arrays]
    require(not missing, f"{origin} has no {' / '.join(missing)} (the occluding digit's "
            "labels); make it with scripts/make_occluded.py")
    scale = pixel_scale({k: arrays[k] for k in ("x_train", "x_test")}, origin)
    out = []
    for split, n in (("train", n_train), ("test", n_test)):
        x = arrays[f"x_{split}"]
        y = as_labels(f"nuisance_{split}", arrays[f"nuisance_{split}"], len(x), origin)
        out.append((as_images(f"x_{split}", x[:n], origin, scale), y[:n]))
    require(len(np.unique(out[0][1])) >= 2,
            f"{origin}: the probe's training images have one nuisance class only")
    return tuple(out)


def probe_nuisance(run_dir: str | Path, options: ProbeOptions | None = None) -> dict[str, Any]:
    """Probe every pool of the run in ``run_dir`` for the nuisance (see the module
    docstring); merges ``nuisance_error`` (per pool, %), ``nuisance_train_error``,
    ``nuisance_chance_error`` and ``nuisance_probe`` (the settings) into its
    ``metrics.json`` and returns them; with ``options.noise`` the same keys with the suffix
    ``_noisy``."""
    options = options or ProbeOptions()
    config = runs.read_run_config(run_dir, ClassifierConfig)
    run_dir = Path(run_dir)
    path = options.data or config.train.data
    require(path is not None, "the run's config has no data path; pass --data OCCLUDED.npz")
    (x_train, y_train), (x_test, y_test) = load_nuisance_splits(path, options.n_train,
                                                                options.n_test)
    model = load_classifier(run_dir)
    channels = int(model.convs[0][0].conv.kernel.shape[2])
    if x_train.shape[-1] != channels:
        raise IbvaeError(f"{path} has {x_train.shape[-1]}-channel images; the model of "
                         f"{run_dir} takes {channels}")
    t0 = time.perf_counter()
    train_f = pool_features(model, x_train, options.grid, options.batch_size, options.noise)
    test_f = pool_features(model, x_test, options.grid, options.batch_size, options.noise)
    fits = [fit_probe(a, y_train, b, y_test, options.probe_c, options.max_iter)
            for a, b in zip(train_f, test_f, strict=True)]
    classes, counts = np.unique(y_train, return_counts=True)
    which = "one draw of the dropout noise" if options.noise else "noise-free"
    result = {
        "nuisance_error": [f["test_error"] for f in fits],
        "nuisance_train_error": [f["train_error"] for f in fits],
        "nuisance_chance_error": float(100.0 * np.mean(y_test != classes[np.argmax(counts)])),
        "nuisance_probe": {
            "model": "multinomial logistic regression (scikit-learn, L-BFGS), standardised "
                     "features",
            "features": f"each pool's inference output ({which}) averaged over a "
                        f"{options.grid}x{options.grid} grid of its map, flattened",
            "noise": options.noise,
            "grid": options.grid,
            "feature_dims": [int(f.shape[1]) for f in train_f],
            "C": options.probe_c,
            "max_iter": options.max_iter,
            "converged": [f["converged"] for f in fits],
            "n_train": len(x_train),
            "n_test": len(x_test),
            "data": str(path),
            "seconds": round(time.perf_counter() - t0, 1),
        },
    }
    if options.noise:  # kept beside the noise-free probe's keys
        result = {f"{k}_noisy": v for k, v in result.items()}
    runs.update_metrics(run_dir, result)
    return result
