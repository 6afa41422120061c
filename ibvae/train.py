"""What every training script shares: the run directory, seeding, callbacks, metrics.json,
and the entry-point wrapper that turns :class:`IbvaeError` into one line and exit code 2.

A run directory holds ``config.yaml`` (fully resolved), ``model.keras``, ``best_model.keras``,
``history.csv``, ``metrics.json``, ``figures/`` and, while training, ``backup/`` (Keras'
``BackupAndRestore`` state, used by ``--resume``).
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ibvae.errors import IbvaeError

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


@contextlib.contextmanager
def run_directory(run_dir: Path, resume: bool, overwrite: bool) -> Iterator[Path]:
    """Create (or reuse, with ``resume``) ``run_dir`` for the body; if the body raises, a
    directory this call created is removed again, so a failed start leaves nothing behind.
    A run interrupted during training keeps its directory for ``--resume``."""
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


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and the backend once per run."""
    keras.utils.set_random_seed(int(seed))


def fit_callbacks(run_dir: Path, resume: bool, monitor: str = "val_loss") -> list:
    """History CSV, best-epoch checkpoint and resumable backup, as Keras callbacks."""
    return [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), delete_checkpoint=False),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=resume),
        keras.callbacks.ModelCheckpoint(
            str(run_dir / "best_model.keras"), monitor=monitor, save_best_only=True
        ),
    ]


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


def read_metrics(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / METRICS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def update_metrics(run_dir: Path, new: dict[str, Any]) -> dict[str, Any]:
    """Merge ``new`` into ``metrics.json`` (written atomically) and return the whole dict."""
    metrics = read_metrics(run_dir)
    metrics.update(_jsonable(new))
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
