"""The Keras callbacks every training run uses, in the order they must run: the epoch timer
(it writes ``epoch_seconds`` into the epoch's logs, so the history CSV keeps them across
resumes), the non-finite-loss guard, then the run directory's history, backup, best-epoch
checkpoint and logs."""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
import math
import shutil
import time
from pathlib import Path

import keras

from ibvae.files import write_text

HISTORY_FILE = "history.csv"


def has_tensorboard() -> bool:
    """Keras' TensorBoard callback writes through TensorFlow's summary ops (on any backend)
    and needs the tensorboard package."""
    return all(importlib.util.find_spec(m) is not None for m in ("tensorflow", "tensorboard"))


def _finite(logs: dict | None, key: str = "loss") -> bool:
    value = (logs or {}).get(key)
    return value is None or math.isfinite(float(value))


class EpochTimer(keras.callbacks.Callback):
    """Wall-clock seconds of each epoch, also put into the epoch's logs (``epoch_seconds``)
    for the callbacks after it (the CSV history, TensorBoard)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.seconds.append(time.perf_counter() - self._start)
        if logs is not None:
            logs["epoch_seconds"] = self.seconds[-1]


class StopOnNonFinite(keras.callbacks.Callback):
    """Keras' ``TerminateOnNaN`` that also says where: stops at the first step whose loss is
    NaN or infinite and keeps ``failure``, one line naming the epoch and step."""

    def __init__(self) -> None:
        super().__init__()
        self.failure: str | None = None
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None) -> None:
        if self.failure is None and not _finite(logs):
            self.failure = (
                f"the training loss became {float(logs['loss'])} in epoch {self.epoch} "
                f"(0-based, as in {HISTORY_FILE}) by step {batch}"
            )
            self.model.stop_training = True


class HistoryLogger(keras.callbacks.CSVLogger):
    """The run's ``history.csv``, one row per epoch exactly once across resumes, whatever
    moment a crash hit: it runs before the backup in every epoch (a row may be written for an
    epoch whose backup then never was), and at the start of a resumed fit drops the rows from
    the epoch the backup restarts at (that epoch is trained, and written, again)."""

    def __init__(self, path: str | Path, backup_dir: str | Path, append: bool) -> None:
        super().__init__(str(path), append=append)
        self.backup_dir = Path(backup_dir)

    def on_train_begin(self, logs=None) -> None:
        if self.append:
            keep_rows_before(Path(self.filename), restart_epoch(self.backup_dir))
        super().on_train_begin(logs)


def restart_epoch(backup_dir: Path) -> int:
    """The epoch a resumed fit starts at: the one after the backup's (0 without a backup)."""
    meta = Path(backup_dir) / "training_metadata.json"
    return int(json.loads(meta.read_text())["epoch"]) if meta.is_file() else 0


def discard_unfinished_backup(folder: Path) -> None:
    """Make a backup cut off in the middle of a save (``kill -9``, power loss) loadable: Keras
    falls back to its previous copy when the weights file is damaged, but not when the cut
    came in the first save or in the metadata file. Such a backup is replaced by the previous
    copy where there is one, else removed (the run then restarts from epoch 0)."""
    folder = Path(folder)
    weights, meta = folder / "latest.weights.h5", folder / "training_metadata.json"
    if not weights.exists() and not meta.exists():
        return
    try:
        int(json.loads(meta.read_text())["epoch"])
        if weights.exists():
            return
    except (OSError, ValueError, KeyError, TypeError):
        pass
    previous = [f.with_name(f.name + ".bkp") for f in (weights, meta)]
    if all(f.exists() for f in previous):
        for copy, f in zip(previous, (weights, meta), strict=True):
            shutil.copyfile(copy, f)
    else:
        for f in (weights, meta, *previous):
            f.unlink(missing_ok=True)


def keep_rows_before(path: Path, epoch: int) -> None:
    """Drop the rows of ``path`` (a history CSV) whose epoch is ``epoch`` or later."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = lines[:1] + [r for r in lines[1:] if r.strip() and int(r.split(",")[0]) < epoch]
    if kept != lines:
        write_text(path, "".join(kept))


class FiniteBackupAndRestore(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` that never saves an epoch whose loss is not finite, so the backup
    always holds the last finite state (what ``--resume`` restarts from)."""

    def on_epoch_end(self, epoch, logs=None) -> None:
        if _finite(logs):
            super().on_epoch_end(epoch, logs)


class FiniteModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """``ModelCheckpoint`` that never saves an epoch whose loss or monitored value is not
    finite: Keras saves the first epoch whatever its value, so a run that diverged in epoch 0
    would leave NaN weights under the name of the best model."""

    def on_epoch_end(self, epoch, logs=None) -> None:
        if _finite(logs) and _finite(logs, self.monitor):
            super().on_epoch_end(epoch, logs)


@dataclasses.dataclass
class TrainingCallbacks:
    """What a pipeline passes to ``fit`` (``all``) and reads afterwards (timer, guard)."""

    timer: EpochTimer
    guard: StopOnNonFinite
    all: list


def training_callbacks(
    run_dir: Path | None, resume: bool, monitor: str, extra: list | None = None
) -> TrainingCallbacks:
    """Timer and guard; with a run directory also the resumable backup, the history CSV, the
    best-epoch checkpoint and TensorBoard logs (where TensorBoard is installed); then the
    user's ``extra`` callbacks."""
    timer, guard = EpochTimer(), StopOnNonFinite()
    callbacks: list = [timer, guard]
    if run_dir is not None and resume:
        discard_unfinished_backup(run_dir / "backup")
    if run_dir is not None:
        callbacks += [
            HistoryLogger(run_dir / HISTORY_FILE, run_dir / "backup", append=resume),
            # double_checkpoint: a backup cut off mid-write (kill -9) falls back to the one before
            FiniteBackupAndRestore(str(run_dir / "backup"), delete_checkpoint=False,
                                   double_checkpoint=True),
            FiniteModelCheckpoint(
                str(run_dir / "best_model.keras"), monitor=monitor, save_best_only=True
            ),
        ]
        if has_tensorboard():
            callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "logs"), write_graph=False))
    return TrainingCallbacks(timer, guard, callbacks + list(extra or []))


def epoch_seconds(run_dir: Path | None, timer: EpochTimer) -> list[float]:
    """Seconds of every epoch of the run, across resumes (from the history CSV), or of this
    call's epochs when there is no run directory."""
    path = None if run_dir is None else Path(run_dir) / HISTORY_FILE
    if path is None or not path.is_file():
        return list(timer.seconds)
    with path.open() as f:
        rows = [r.get("epoch_seconds") for r in csv.DictReader(f)]
    return [float(s) for s in rows if s not in (None, "", "NA")]
