"""The nuisance probe of the paper's Occluded CIFAR experiment: how much does a trained
classifier's representation still say about a nuisance (the occluding digit) it was never
asked about, and how much about the task? As beta grows, Information Dropout should drop the
nuisance (its information toward 0 nats, the probe error toward chance, 90 % for ten digits)
while the task information stays nearly where it was.

:func:`probe_nuisance` (``scripts/probe_nuisance.py RUN --data OCCLUDED.npz``):

1. load the run's model, frozen (``model.keras``: after the batch-norm recalibration);
2. for the first ``n_train`` images of the train split and the test split of an ``.npz`` with
   ``y_*`` (the task) and ``nuisance_*`` (:mod:`ibvae.classifier.occluded`), compute every
   pool's representation: noise-free, the features ``f(x)`` (an information pool's posterior
   median; a binary pool with its dropout off), or with ``noise`` ``draws`` draws per image
   of the pool's noise, ``z = f(x) eps`` (keys with the suffix ``_noisy``). The two ask
   different questions: is the label in what the layer computes, or in what passes its
   noise? Information Dropout can hide a nuisance either way: ``f`` can drop it, or a large
   ``alpha`` on the units that carry it can drown it;
3. average each representation over a ``grid`` x ``grid`` partition of its map (area
   weights; ``grid`` 1 is global average pooling; at most the map's size) and flatten:
   ``grid^2 x filters`` features per pool;
4. for each label (the task ``y`` and the ``nuisance``) and pool: standardise the features
   (the probe's training features' mean and deviation) and fit a multinomial logistic
   regression (scikit-learn, L-BFGS, L2 penalty ``1 / C``), with ``C`` chosen from
   ``probe_c`` by the cross-entropy on a validation split (``valid_fraction`` of the probe's
   training *images*, all draws of an image on one side), then refit on all of them;
5. report, per pool, the test error in % (``<label>_error``) and the **information lower
   bound** in nats, ``<label>_info_nats = H(label) - CE``, ``CE`` the probe's test
   cross-entropy (``<label>_cross_entropy``) and ``H`` the entropy of the **test set's**
   label frequencies (``<label>_entropy_nats``; so a probe that predicts those frequencies
   scores 0, one that does worse than that scores below 0); with the train error, the chance
   error (always the most frequent training label), the chosen ``C`` and the settings, all
   merged into the run's ``metrics.json``. Also, per information pool over the test images:
   ``mean_alpha`` (over units and images) and ``probe_kl_nats`` (the KL summed over units,
   mean over images), the same for both probes.

The bound: for any probe ``q(y | z)``, ``I(y; z) = H(y) - H(y | z) >= H(y) - E[-log q(y |
z)]``, so a better probe can only raise it; it is estimated on the test set (the probe never
saw it), and its noise is about ``std(log q) / sqrt(n_test)``.

**The noisy read-out and batch norm.** The recalibrated batch norms hold noise-free
statistics (:mod:`ibvae.classifier.batchnorm`). Turning the noise on everywhere would send
noisy inputs through every later batch norm, which then normalises them with statistics that
do not fit, so pool ``k``'s ``z`` would carry a miscalibration as well as the noise. So the
noise is drawn **at the probed pool only**: one noise-free inference pass gives each pool's
``f`` and ``alpha`` (:meth:`~ibvae.classifier.models.AllCNN.pool_parts`), and ``z = f exp(alpha
eps)`` (a binary pool: its dropout mask) is read there, before the next batch norm; every
batch norm the read-out depends on sees exactly what it was calibrated on. The other option,
recalibrating the batch norms with the noise on, would change the model the noise-free probe
reads and mix every earlier pool's noise into pool ``k``'s; this one asks, pool by pool, what
passes that pool's own noise. (The input dropout of All-CNN-32 on CIFAR is upstream noise:
off.)

Why a logistic regression on pooled features: the probe is convex, so it has no schedule,
seed or early stopping of its own, and differences between runs are the representation's,
not the probe's training; it is standard (a "linear probe") and fits in seconds to minutes on
a CPU. Pooling keeps the features few enough for that (pool 1 of All-CNN-32 on 28x28 has
14 x 14 x 96 outputs at width 1) while a 4x4 grid keeps where things are, which a digit at a
random place needs. What it measures is what a linear read-out of those features gets: a
lower bound on the information the representation holds (a non-linear probe could read more).
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ibvae import runs
from ibvae.classifier.config import ClassifierConfig
from ibvae.classifier.models import AllCNN, load_classifier
from ibvae.classifier.representations import pool_representation
from ibvae.config import Config, option
from ibvae.data import as_images, as_labels, pixel_scale
from ibvae.errors import IbvaeError, require
from ibvae.files import read_npz

LABELS = ("task", "nuisance")  # what is probed: y_* and nuisance_* of the data
PROBABILITY_FLOOR = 1e-12  # a test label the probe never saw gets this probability


@dataclasses.dataclass
class ProbeOptions(Config):
    """What :func:`probe_nuisance` (``scripts/probe_nuisance.py``) reads and fits."""

    data: str | None = option(
        None, ".npz with x_/y_/nuisance_ train and test (scripts/make_occluded.py); default: "
        "the run's data"
    )
    n_train: int | None = option(
        10_000, "probe training images: the first N of the train split (all if fewer; none: all)",
        ge=1,
    )
    n_test: int | None = option(
        None, "probe test images: the first N of the test split (all if fewer; none: all)", ge=1
    )
    grid: int = option(4, "average each pool's map over grid x grid cells (1: global)", ge=1)
    probe_c: list[float] = option(
        [0.01, 0.1, 1.0], "inverse L2 strengths (C) of the logistic regression to choose from "
        "by the validation cross-entropy (one value: no choice)", gt=0
    )
    valid_fraction: float = option(
        0.2, "share of the probe's training images held out to choose C (then refit on all)",
        gt=0, lt=1,
    )
    max_iter: int = option(500, "L-BFGS iterations of the logistic regression", ge=1)
    batch_size: int = option(256, "images per step of the representation pass", ge=1)
    noise: bool = option(
        False, "probe z = f(x) eps, draws of each pool's own noise on the noise-free "
        "representation (read before the next batch norm), instead of f(x); the results get "
        "the suffix _noisy"
    )
    draws: int = option(5, "with --noise: noise draws per image, train and test", ge=1)
    seed: int = option(0, "seed of the noise draws and of the validation hold-out")

    def validate(self) -> None:
        require(len(self.probe_c) >= 1, "probe_c must list at least one value")


def label_entropy(y: np.ndarray) -> float:
    """Entropy in nats of the empirical frequencies of the labels ``y``."""
    _, counts = np.unique(np.asarray(y), return_counts=True)
    p = counts / counts.sum()
    return float(-np.sum(p * np.log(p)))


def _cross_entropy(probe: Any, features: np.ndarray, y: np.ndarray) -> float:
    """Mean ``-log q(y | features)`` in nats; a label the probe never saw gets
    :data:`PROBABILITY_FLOOR`."""
    proba = probe.predict_proba(features)
    col = np.searchsorted(probe.classes_, y)
    col = np.minimum(col, len(probe.classes_) - 1)
    seen = probe.classes_[col] == y
    p = np.where(seen, proba[np.arange(len(y)), col], 0.0)
    return float(np.mean(-np.log(np.maximum(p, PROBABILITY_FLOOR))))


def _fit(train: np.ndarray, y: np.ndarray, c: float, max_iter: int):
    # scikit-learn on first use: the rest of ibvae runs where it is not installed (a GPU box)
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    scaler = StandardScaler().fit(train)
    probe = LogisticRegression(C=c, max_iter=max_iter)
    # One BLAS thread: these products are small, and threaded BLAS made a fit 3x slower on 2
    # cores (2.42 vs 0.78 s), 10x with two probes at once (10.5 vs 1.1 s)
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(1, "blas"):
        warnings.simplefilter("always", ConvergenceWarning)
        probe.fit(scaler.transform(train), y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return scaler, probe, converged


def fit_probe(
    train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray,
    c: float = 1.0, max_iter: int = 500,
) -> dict[str, Any]:
    """Standardise, fit the logistic regression on ``train``, score it: ``train_error`` and
    ``test_error`` in %, ``train_cross_entropy`` and ``test_cross_entropy`` in nats,
    ``converged``."""
    scaler, probe, converged = _fit(train, y_train, c, max_iter)
    a, b = scaler.transform(train), scaler.transform(test)
    return {"train_error": float(100.0 * np.mean(probe.predict(a) != y_train)),
            "test_error": float(100.0 * np.mean(probe.predict(b) != y_test)),
            "train_cross_entropy": _cross_entropy(probe, a, y_train),
            "test_cross_entropy": _cross_entropy(probe, b, y_test),
            "converged": converged}


def probe_information(
    train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray,
    cs: tuple[float, ...] | list[float] = (1.0,), groups: np.ndarray | None = None,
    valid_fraction: float = 0.2, max_iter: int = 500, seed: int = 0,
) -> dict[str, Any]:
    """:func:`fit_probe` with ``C`` chosen from ``cs`` by the cross-entropy on a validation
    split (``valid_fraction`` of the ``groups``, one per training image, so all draws of an
    image fall on one side; default: each row its own image), refit on all of ``train``; adds
    ``C``, ``valid_cross_entropy`` (per C), ``entropy_nats`` (of ``y_test``'s frequencies)
    and ``info_nats``, the lower bound ``H(y) - test_cross_entropy``."""
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    cs = [float(c) for c in cs]
    require(len(cs) >= 1, "probe_c must list at least one value")
    valid_ce: list[float] = []
    if len(cs) > 1:
        groups = np.arange(len(train)) if groups is None else np.asarray(groups)
        ids = np.unique(groups)
        n_valid = max(1, int(round(valid_fraction * len(ids))))
        require(n_valid < len(ids), f"{len(ids)} probe training images are too few for a "
                "validation split; pass one --probe-c")
        held = np.isin(groups, np.random.default_rng(seed).permutation(ids)[:n_valid])
        require(len(np.unique(y_train[~held])) >= 2,
                "the probe's training part of the validation split has one class only")
        for c in cs:
            scaler, probe, _ = _fit(train[~held], y_train[~held], c, max_iter)
            valid_ce.append(_cross_entropy(probe, scaler.transform(train[held]), y_train[held]))
    best = cs[int(np.argmin(valid_ce))] if valid_ce else cs[0]
    result = fit_probe(train, y_train, test, y_test, best, max_iter)
    h = label_entropy(y_test)
    result.update(C=best, valid_cross_entropy=valid_ce, entropy_nats=h,
                  info_nats=h - result["test_cross_entropy"])
    return result


def load_probe_splits(
    path: str | Path, n_train: int | None, n_test: int | None
) -> dict[str, dict[str, np.ndarray]]:
    """``{"train": {"x", "task", "nuisance"}, "test": {...}}`` of an occluded ``.npz``, cut
    to the first ``n_train`` / ``n_test`` images (all of a split with fewer); float32 NHWC
    in [0, 1], the task labels ``y_*`` and the nuisance labels ``nuisance_*``."""
    origin = str(path)
    arrays = read_npz(path, ("x_train", "x_test"))
    missing = [k for k in ("nuisance_train", "nuisance_test") if k not in arrays]
    require(not missing, f"{origin} has no {' / '.join(missing)} (the occluding digit's "
            "labels); make it with scripts/make_occluded.py")
    missing = [k for k in ("y_train", "y_test") if k not in arrays]
    require(not missing, f"{origin} has no {' / '.join(missing)} (the task labels)")
    scale = pixel_scale({k: arrays[k] for k in ("x_train", "x_test")}, origin)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = arrays[f"x_{split}"]
        out[split] = {
            "x": as_images(f"x_{split}", x[:n], origin, scale),
            "task": as_labels(f"y_{split}", arrays[f"y_{split}"], len(x), origin)[:n],
            "nuisance": as_labels(f"nuisance_{split}", arrays[f"nuisance_{split}"], len(x),
                                  origin)[:n],
        }
    for label in LABELS:
        require(len(np.unique(out["train"][label])) >= 2,
                f"{origin}: the probe's training images have one {label} class only")
    return out


def load_nuisance_splits(path: str | Path, n_train: int | None, n_test: int | None):
    """``(x_train, nuisance_train), (x_test, nuisance_test)`` of :func:`load_probe_splits`."""
    s = load_probe_splits(path, n_train, n_test)
    return tuple((s[k]["x"], s[k]["nuisance"]) for k in ("train", "test"))


def _per_pool_info(model: AllCNN, values: list[np.ndarray]) -> list[float | None]:
    """Per pool, the mean of an information pool's per-image values; ``None`` elsewhere."""
    it = iter(values)
    info = model.n_information_pools > 0
    return [float(np.mean(next(it))) if info else None for _ in model.pools]


def probe_nuisance(run_dir: str | Path, options: ProbeOptions | None = None) -> dict[str, Any]:
    """Probe every pool of the run in ``run_dir`` for the task and the nuisance (see the
    module docstring); merges, per pool, ``nuisance_error`` (%), ``nuisance_info_nats``,
    ``nuisance_cross_entropy``, ``task_error``, ``task_info_nats``, ``task_cross_entropy``,
    the train errors, and ``nuisance_chance_error``, ``task_chance_error``,
    ``nuisance_entropy_nats``, ``task_entropy_nats``, ``nuisance_probe`` (the settings and
    chosen C) into its ``metrics.json`` and returns them, with ``options.noise`` under the
    suffix ``_noisy``; ``mean_alpha`` and ``probe_kl_nats`` (per pool, ``None`` for a pool
    without information dropout) without a suffix."""
    options = options or ProbeOptions()
    config = runs.read_run_config(run_dir, ClassifierConfig)
    run_dir = Path(run_dir)
    path = options.data or config.train.data
    require(path is not None, "the run's config has no data path; pass --data OCCLUDED.npz")
    splits = load_probe_splits(path, options.n_train, options.n_test)
    x_train, x_test = splits["train"]["x"], splits["test"]["x"]
    model = load_classifier(run_dir)
    channels = int(model.convs[0][0].conv.kernel.shape[2])
    if x_train.shape[-1] != channels:
        raise IbvaeError(f"{path} has {x_train.shape[-1]}-channel images; the model of "
                         f"{run_dir} takes {channels}")
    t0 = time.perf_counter()
    draws = options.draws if options.noise else 1
    rep = {s: pool_representation(model, splits[s]["x"], options.grid, options.batch_size,
                                  options.noise, draws, options.seed + i)
           for i, s in enumerate(("train", "test"))}
    groups = np.repeat(np.arange(len(x_train)), draws)
    result: dict[str, Any] = {}
    chosen: dict[str, list[float]] = {}
    converged: dict[str, list[bool]] = {}
    for label in LABELS:
        y_train = np.repeat(splits["train"][label], draws)
        y_test = np.repeat(splits["test"][label], draws)
        fits = [probe_information(a, y_train, b, y_test, options.probe_c, groups,
                                  options.valid_fraction, options.max_iter, options.seed)
                for a, b in zip(rep["train"]["features"], rep["test"]["features"], strict=True)]
        classes, counts = np.unique(splits["train"][label], return_counts=True)
        result.update({
            f"{label}_error": [f["test_error"] for f in fits],
            f"{label}_train_error": [f["train_error"] for f in fits],
            f"{label}_info_nats": [f["info_nats"] for f in fits],
            f"{label}_cross_entropy": [f["test_cross_entropy"] for f in fits],
            f"{label}_entropy_nats": label_entropy(splits["test"][label]),
            f"{label}_chance_error": float(
                100.0 * np.mean(splits["test"][label] != classes[np.argmax(counts)])),
        })
        chosen[label] = [f["C"] for f in fits]
        converged[label] = [f["converged"] for f in fits]
    which = (f"{draws} draws per image of each pool's own noise on the noise-free pass"
             if options.noise else "noise-free")
    result["nuisance_probe"] = {
        "model": "multinomial logistic regression (scikit-learn, L-BFGS), standardised "
                 "features",
        "features": f"each pool's inference output ({which}) averaged over a "
                    f"{options.grid}x{options.grid} grid of its map, flattened",
        "information": "H(label) - test cross-entropy, nats; H from the test set's label "
                       "frequencies",
        "noise": options.noise,
        "draws": draws,
        "grid": options.grid,
        "feature_dims": [int(f.shape[1]) for f in rep["train"]["features"]],
        "C": chosen["nuisance"],
        "C_task": chosen["task"],
        "C_grid": list(options.probe_c),
        "valid_fraction": options.valid_fraction,
        "max_iter": options.max_iter,
        "converged": converged["nuisance"],
        "converged_task": converged["task"],
        "n_train": len(x_train),
        "n_test": len(x_test),
        "seed": options.seed,
        "data": str(path),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if options.noise:  # kept beside the noise-free probe's keys
        result = {f"{k}_noisy": v for k, v in result.items()}
    result["mean_alpha"] = _per_pool_info(model, rep["test"]["alpha"])
    result["probe_kl_nats"] = _per_pool_info(model, rep["test"]["kl"])
    runs.update_metrics(run_dir, result)
    return result
