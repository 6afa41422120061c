"""Files that appear whole or not at all, the ``.npz`` archives ibvae reads and writes, and
its ``.keras`` models read back with one clear line for a missing or damaged file.

Every file a run, a sweep or a generator writes goes through :func:`atomic_path`: it is
written beside its final name and renamed onto it in one step, so a crash, a full disk or
Ctrl-C leaves the old file (or none), never half of a new one.
"""

from __future__ import annotations

import contextlib
import os
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ibvae.errors import IbvaeError, require


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary sibling of ``path`` for the body to write (``name.tmp.<suffix>``, so
    writers that add a suffix, like ``np.savez``, keep it); renamed onto ``path`` when the
    body returns, removed when it raises."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp{path.suffix}")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """``text`` into ``path``, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def check_output(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """An ``.npz`` output path that may be written (an existing file only with ``overwrite``;
    never a directory)."""
    path = Path(path)
    require(path.suffix == ".npz", f"output file must end in .npz, got {path}")
    require(not path.is_dir(), f"{path} is a directory; pass a file name ending in .npz")
    require(
        overwrite or not path.exists(), f"{path} already exists; pass --overwrite to replace it"
    )
    return path


def save_npz(arrays: dict[str, np.ndarray], path: str | os.PathLike) -> Path:
    """``arrays`` as an uncompressed ``.npz``, atomically (its folder is created)."""
    path = check_output(path, overwrite=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)
    return path


def write_npz(make: Callable[[], dict[str, np.ndarray]], out: str | os.PathLike,
              overwrite: bool = False) -> Path:
    """The arrays ``make()`` returns as the ``.npz`` ``out``: the path is checked before
    ``make`` runs (a generator's minutes are not spent on a path that cannot be written) and
    nothing is written if anything fails."""
    path = check_output(out, overwrite)
    return save_npz(make(), path)


def read_npz(path: str | os.PathLike, required: tuple[str, ...]) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file; a missing file or key raises :class:`IbvaeError`."""
    path = Path(path)
    if not path.is_file():
        raise IbvaeError(f"data file {path} not found; check the --data path")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise IbvaeError(f"cannot read {path} as .npz ({e}); pass a numpy .npz file") from e
    missing = [k for k in required if k not in arrays]
    if missing:
        raise IbvaeError(
            f"{path} lacks key(s) {missing}; it has {sorted(arrays)} and needs {list(required)}"
        )
    return arrays


def load_keras_model(path: str | Path, cls: type, what: str) -> Any:
    """A ``.keras`` file holding a ``cls`` (no custom_objects needed); a missing, truncated
    or foreign file is one line that names it (``what``: e.g. "an ibvae VAE")."""
    path = Path(path)
    if not path.is_file():
        raise IbvaeError(f"model file {path} not found; the run has not finished training")
    if not zipfile.is_zipfile(path):
        raise IbvaeError(
            f"{path} is not a readable .keras archive (truncated or another format); retrain, "
            "or load the run's best_model.keras"
        )
    try:
        model = keras.saving.load_model(path)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise IbvaeError(f"cannot read {path} as a .keras model ({e})".splitlines()[0]) from e
    if not isinstance(model, cls):
        raise IbvaeError(f"{path} holds a {type(model).__name__}, not {what}")
    return model
