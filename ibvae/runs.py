"""Run directories and what every training pipeline shares around them: where a run goes,
its lock, its config read back, ``metrics.json``, seeding.

A run directory holds ``config.yaml`` (fully resolved), ``model.keras``, ``best_model.keras``,
``history.csv``, ``logs/`` (TensorBoard: ``tensorboard --logdir RUN/logs``), ``metrics.json``,
``figures/``, ``backup/`` (Keras' ``BackupAndRestore`` state, used by ``--resume``) and
``.lock`` (held by the process training in it).

It is either complete enough to resume or not there at all: it appears in one rename, with
its ``config.yaml`` already inside; a start that fails before its first epoch ends removes
it again; a run that dies later keeps it for ``--resume``.

``--overwrite`` builds the new run beside the old one (``.NAME.new-PID``, the old run locked
meanwhile) and swaps it in with one rename when it can replace it: when it finishes, when it
stops on a non-finite loss (the failure is recorded there), or when it is interrupted or
crashes after at least one finished epoch (so it can be resumed). Interrupted or crashed
before its first epoch ends, it is removed and the old run stays as it was; a process killed
outright (SIGKILL) leaves the old run as it was too, and the new one's folder beside it.
A run directory given as a symbolic link is written where the link points, the link kept.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import keras
import numpy as np

from ibvae import config as cfg
from ibvae.distribute import is_main_process, worker_directory
from ibvae.errors import IbvaeError, TrainingFailed
from ibvae.files import write_text

try:  # POSIX; elsewhere runs are not locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

C = TypeVar("C", bound=cfg.Config)
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
LOCK_FILE = ".lock"


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
    if run_dir.exists() and not run_dir.is_dir():
        raise IbvaeError(f"--out {run_dir} is a file, not a directory; choose another --out")
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
    if not is_main_process():
        return Path(run_dir)  # process 0 checks it and writes it
    out = resolve_run_dir(run_dir, prefix, resume, overwrite)
    if resume:
        check_resume(out, config)
    return out


@contextlib.contextmanager
def lock(run_dir: Path, what: str = "training process") -> Iterator[None]:
    """Hold ``run_dir/.lock`` (an exclusive ``flock``) for the body; a directory in use by
    another process (``what``: what holds such a lock) is refused with one line naming its
    pid."""
    if fcntl is None:
        yield
        return
    path = Path(run_dir) / LOCK_FILE
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            raise IbvaeError(
                f"{run_dir} is in use by another {what} (pid {holder}); wait for it "
                "to finish or choose another --out"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def has_progress(run_dir: Path) -> bool:
    """At least one finished epoch (a row in the history CSV): enough to ``--resume``."""
    history = run_dir / "history.csv"
    return history.is_file() and len(history.read_text().strip().splitlines()) > 1


def _staging(run_dir: Path) -> Path:
    """A hidden sibling of ``run_dir`` for this process, empty, with ``figures/`` inside."""
    staging = run_dir.parent / f".{run_dir.name}.new-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "figures").mkdir(parents=True)
    return staging


def _create(run_dir: Path, config: cfg.Config) -> None:
    """Make ``run_dir`` appear in one rename, with its config and ``figures/`` inside."""
    staging = _staging(run_dir)
    save_config(config, staging)
    try:
        os.rename(staging, run_dir)  # replaces an empty directory, refuses a full one
    except OSError as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise IbvaeError(f"{run_dir} already exists (another run started there?); choose "
                         "another --out") from e


def _swap_in(new: Path, run_dir: Path) -> None:
    """Replace ``run_dir`` by ``new`` (a sibling): two renames, then the old one deleted."""
    old = run_dir.parent / f".{run_dir.name}.old-{os.getpid()}"
    shutil.rmtree(old, ignore_errors=True)
    os.rename(run_dir, old)
    os.rename(new, run_dir)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _replacing(run_dir: Path, config: cfg.Config) -> Iterator[Path]:
    """The body trains into a sibling of the existing run ``run_dir`` (which stays locked and
    untouched) that replaces it when it can (see the module docstring)."""
    with lock(run_dir):  # refuse to replace a run another process is training in; hold it
        new = _staging(run_dir)
        save_config(config, new)
        try:
            with lock(new):
                yield new
        except TrainingFailed:
            _swap_in(new, run_dir)
            raise
        except BaseException:
            if has_progress(new):
                _swap_in(new, run_dir)
            else:
                shutil.rmtree(new, ignore_errors=True)
            raise
        _swap_in(new, run_dir)


def real_run_dir(run_dir: Path) -> Path:
    """``run_dir`` with symbolic links resolved: a linked run directory is written where
    the link points, and the link stays."""
    return Path(os.path.realpath(run_dir))


@contextlib.contextmanager
def run_directory(
    run_dir: Path | None, config: cfg.Config, resume: bool, overwrite: bool
) -> Iterator[Path | None]:
    """The run directory for the body of a training, locked (see the module docstring).
    ``None``: a run that writes nothing (the Python API's ``run_dir=None``). In a
    multi-process job only process 0 gets it; the others get a private temporary folder.
    The body gets the folder it writes into: ``run_dir`` itself, or under ``overwrite`` of an
    existing run the new run's folder beside it, which becomes ``run_dir`` when the body ends."""
    if run_dir is None:
        yield None
        return
    if not is_main_process():
        with worker_directory(run_dir, resume) as private:
            yield private
        return
    run_dir = real_run_dir(run_dir)
    if resume:
        with lock(run_dir):
            yield run_dir
        return
    if overwrite and run_dir.exists() and any(run_dir.iterdir()):
        with _replacing(run_dir, config) as new:
            yield new
        return
    _create(run_dir, config)
    try:
        with lock(run_dir):
            yield run_dir
    except TrainingFailed:
        raise
    except BaseException:
        if not has_progress(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def fail_run(
    run_dir: Path | None, failure: str, what_to_try: str, shown: Path | None = None
) -> None:
    """Record a training that stopped on its own in ``metrics.json`` and raise
    :class:`TrainingFailed` with one line saying what happened and what to try (naming the
    run as ``shown``, where it will be once the body of :func:`run_directory` ends)."""
    where = ""
    if run_dir is not None:
        update_metrics(run_dir, {"status": "failed", "failure": failure})
        name = shown or run_dir
        kept = (f"the last finite weights are in {name}/best_model.keras"
                if (run_dir / "best_model.keras").is_file() else "no epoch ended with finite weights")
        where = f"; {kept}; {name}/metrics.json records the failure"
    raise TrainingFailed(f"training stopped: {failure}; {what_to_try}{where}")


def read_run_config(run_dir: str | Path, cls: type[C]) -> C:
    """The complete config a run was trained with; an empty, truncated or partial
    ``config.yaml`` is an error naming the file, never "all defaults"."""
    path = check_run_dir(run_dir) / CONFIG_FILE
    first = path.read_text(errors="replace").partition("\n")[0]
    kind, wanted = first.removeprefix("# ibvae ").strip(), cls.__name__
    if first.startswith("# ibvae ") and kind != wanted:
        raise IbvaeError(
            f"{run_dir} holds a {kind.removesuffix('Config')} run, not a "
            f"{wanted.removesuffix('Config')} run; pass a run of the right kind"
        )
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


def test_data_path(run_dir: str | Path, saved: str | None, override: str | None) -> str | None:
    """The data file a tool reloads a run's test set from: ``override`` (``--data``), else the
    file the run's config names. A run trained on data passed from Python has no such file
    (its config names none, and the default dataset would be another test set): refused,
    asking for ``--data``."""
    if override is not None:
        return override
    if read_metrics(Path(run_dir)).get("data_from_config") is False:
        raise IbvaeError(
            f"{run_dir} was trained on data passed from Python, which its config does not "
            "name; pass --data FILE.npz with its test images (x_test) to use this run"
        )
    return saved


def save_config(config: cfg.Config, run_dir: Path) -> Path:
    """The fully resolved config as the run's ``config.yaml``, its kind in a first comment
    line (so a tool given another kind of run can say so)."""
    return cfg.save(config, Path(run_dir) / CONFIG_FILE, header=f"ibvae {type(config).__name__}")


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and the backend once per run."""
    keras.utils.set_random_seed(int(seed))


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
    write_text(Path(run_dir) / METRICS_FILE, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics
