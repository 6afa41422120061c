"""Run directories and what every training pipeline shares: seeding, Keras callbacks,
``metrics.json``, reading a run's config back, and the scripts' entry-point wrapper that turns
:class:`IbvaeError` into one line and exit code 2.

A run directory holds ``config.yaml`` (fully resolved), ``model.keras``, ``best_model.keras``,
``history.csv``, ``logs/`` (TensorBoard: ``tensorboard --logdir RUN/logs``), ``metrics.json``,
``figures/`` and ``backup/`` (Keras' ``BackupAndRestore`` state, used by ``--resume``).
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import importlib.util
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import keras
import numpy as np

from ibvae import config as cfg
from ibvae.errors import IbvaeError

C = TypeVar("C", bound=cfg.Config)
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"


def default_run_dir(prefix: str) -> Path:
    """``runs/<prefix>-YYYYmmdd-HHMMSS`` under the current directory."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{prefix}-{stamp}"


def check_run_dir(run_dir: str | Path) -> Path:
    """An existing run directory (one that holds ``config.yaml``), or :class:`IbvaeError`."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise IbvaeError(
            f"{run_dir} is not a run directory (no {CONFIG_FILE}); pass the --out directory of "
            "a training run"
        )
    return run_dir


def resolve_run_dir(out: str | Path | None, prefix: str, resume: bool, overwrite: bool) -> Path:
    """Decide where a run goes, refusing to clobber an existing run. Creates nothing."""
    if resume and overwrite:
        raise IbvaeError("--resume and --overwrite exclude each other; pick one")
    if out is None:
        if resume:
            raise IbvaeError("--resume needs --out RUN_DIR, the run to continue")
        return default_run_dir(prefix)
    run_dir = Path(out)
    if resume:
        return check_run_dir(run_dir)
    if run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise IbvaeError(
            f"{run_dir} already exists; pass --resume to continue it, --overwrite to replace it, "
            "or choose another --out"
        )
    return run_dir


def plan_run(
    run_dir: str | Path | None, prefix: str, config: cfg.Config, resume: bool, overwrite: bool
) -> Path | None:
    """Where a training run of the Python API goes, checked before any work: ``None`` (write
    nothing), or a path that is free, or the run to resume with a compatible ``config``."""
    if run_dir is None:
        if resume:
            raise IbvaeError("resume=True needs run_dir, the run to continue")
        return None
    out = resolve_run_dir(run_dir, prefix, resume, overwrite)
    if resume:
        check_resume(out, config)
    return out


@contextlib.contextmanager
def run_directory(run_dir: Path | None, resume: bool, overwrite: bool) -> Iterator[Path | None]:
    """Create (or reuse, with ``resume``) ``run_dir`` for the body; if the body raises, a
    directory this call created is removed again, so a failed start leaves nothing behind.
    A run interrupted during training keeps its directory for ``--resume``. ``None``: a run
    that writes nothing (the Python API's ``run_dir=None``)."""
    if run_dir is None:
        yield None
        return
    created = not run_dir.exists() or overwrite
    if overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
    (run_dir / "figures").mkdir(parents=True, exist_ok=True)
    try:
        yield run_dir
    except (IbvaeError, KeyboardInterrupt) as e:
        if created and not (isinstance(e, KeyboardInterrupt) and (run_dir / "backup").exists()):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def read_run_config(run_dir: str | Path, cls: type[C]) -> C:
    """The complete config a run was trained with; an empty, truncated or partial
    ``config.yaml`` is an error naming the file, never "all defaults"."""
    path = check_run_dir(run_dir) / CONFIG_FILE
    try:
        return cfg.load(cls, path, complete=True)
    except IbvaeError as e:
        raise IbvaeError(f"{path} is not a complete {cls.__name__} ({e}); restore it") from e


def check_resume(run_dir: Path, config: cfg.Config) -> None:
    """Refuse to resume a run with a config that differs from its ``config.yaml`` in a field
    that changes the model or the data (all but the class's ``resumable`` fields, e.g.
    ``epochs`` to extend a run), naming the fields."""
    saved = read_run_config(run_dir, type(config))
    may_change = set(getattr(config, "resumable", ()))
    old, new = cfg.flat_values(saved), cfg.flat_values(config)
    changed = sorted(k for k in new if new[k] != old[k] and k not in may_change)
    if changed:
        diffs = ", ".join(f"{k} {old[k]!r} -> {new[k]!r}" for k in changed)
        raise IbvaeError(
            f"cannot resume {run_dir} with a different {diffs}; only "
            f"{', '.join(sorted(may_change)) or 'nothing'} may change on resume (start a new run "
            "with another --out instead)"
        )


def save_config(config: cfg.Config, run_dir: Path) -> Path:
    """The fully resolved config as the run's ``config.yaml``."""
    return cfg.save(config, Path(run_dir) / CONFIG_FILE)


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and the backend once per run."""
    keras.utils.set_random_seed(int(seed))


def has_tensorboard() -> bool:
    """Keras' TensorBoard callback writes through TensorFlow's summary ops (on any backend)
    and needs the tensorboard package."""
    return all(importlib.util.find_spec(m) is not None for m in ("tensorflow", "tensorboard"))


def fit_callbacks(run_dir: Path, resume: bool, monitor: str = "val_loss") -> list:
    """History CSV, TensorBoard logs (where TensorBoard is installed), best-epoch checkpoint
    and resumable backup, as Keras callbacks."""
    callbacks = [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), delete_checkpoint=False),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=resume),
        keras.callbacks.ModelCheckpoint(
            str(run_dir / "best_model.keras"), monitor=monitor, save_best_only=True
        ),
    ]
    if has_tensorboard():
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "logs"), write_graph=False))
    return callbacks


class EpochTimer(keras.callbacks.Callback):
    """Wall-clock seconds per epoch, for the run's metrics."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def jsonable(value: Any) -> Any:
    """NumPy values and arrays as plain Python, recursively (for ``metrics.json``)."""
    return _jsonable(value)


def read_metrics(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / METRICS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def update_metrics(run_dir: Path, new: dict[str, Any]) -> dict[str, Any]:
    """Merge ``new`` into ``metrics.json`` (written atomically) and return the whole dict."""
    metrics = read_metrics(run_dir)
    metrics.update(jsonable(new))
    path = Path(run_dir) / METRICS_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return metrics


def script_entry(main: Callable[[list[str] | None], Any]) -> Callable[[list[str] | None], int]:
    """Wrap a script's ``main(argv)``: user errors -> ``error: ...`` on stderr, exit code 2."""

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None) -> int:
        try:
            main(argv)
        except IbvaeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0

    return wrapper
