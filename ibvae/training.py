"""The one training core: every kind of run (the VAE, the classifier, a user's own) is a
:class:`Task` that this module drives through the same skeleton.

:func:`train` checks the config again, decides where the run goes (:func:`ibvae.runs.plan_run`),
has the task load its data, seeds the run, builds and compiles the model under the
distribution plan, cuts the fit arrays to whole batches, and only then opens the run
directory (:func:`ibvae.runs.run_directory`), fits with the run callbacks, records a
training that stopped on a non-finite loss (:func:`ibvae.runs.fail_run`), and writes the run
facts beside the task's report in ``metrics.json``.

What a run directory knows from its start: the fingerprint of the data it trains on (the
sizes and a SHA-256 of the fit arrays, :func:`data_fingerprint`) and whether those data came
from the config (``data_from_config``; tools that reload the test set refuse a run trained on
arrays without ``--data``). A resume whose data differ is refused before anything is written,
and its ``config.yaml`` (e.g. more ``epochs``) is written once its first epoch has ended.

Ctrl-C (SIGINT) during ``fit`` does not raise a KeyboardInterrupt wherever Python happens
to be: in a compiled step or in the middle of a checkpoint write (JAX runs were seen to end
in a segmentation fault), or in Keras' ``model.save`` of an epoch's checkpoint, whose bare
``except:`` around opening the weights store (keras/src/saving/saving_lib.py) swallows it,
so the run went on to its last epoch. The first one is noted and the training stops at the
next step boundary with :class:`Interrupted` (a ``KeyboardInterrupt``), ``metrics.json``
saying ``interrupted`` and the run resumable from its last finished epoch; a second Ctrl-C
interrupts at once.

A task registers itself with :func:`register_task` under its ``name`` (the run directory
prefix, and the key that sweeps and experiments find it by), so a new kind of run is one new
module that subclasses :class:`Task`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import keras
import numpy as np

from ibvae import config as cfg
from ibvae import distribute, runs
from ibvae.callbacks import epoch_seconds, training_callbacks
from ibvae.errors import IbvaeError, one_of, require
from ibvae.interrupts import Interrupted, StopAtStep, sigint_stops_at_a_step

Log = Callable[[str], None]


@dataclasses.dataclass
class Loaded:
    """What a task's :meth:`Task.load` hands to the core: the data in the task's own form,
    where it came from (``metrics.json``'s ``data_source``), and the arrays to fit on (the
    core cuts them to whole batches under data parallelism)."""

    data: Any
    source: str
    x_train: np.ndarray
    y_train: np.ndarray | None = None
    x_valid: np.ndarray | None = None
    y_valid: np.ndarray | None = None


@dataclasses.dataclass
class Fitted:
    """The arrays ``fit`` saw (after the cut to whole batches) and this process's batch."""

    x: np.ndarray
    y: np.ndarray | None
    x_valid: np.ndarray | None
    y_valid: np.ndarray | None
    batch_size: int


class Task:
    """One kind of training. Subclasses set ``name`` and ``config_class`` and implement
    :meth:`load`, :meth:`build`, :meth:`compile` and :meth:`report`; the rest has defaults."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type[cfg.Config]]
    #: the second half of the one line printed when the loss stops being finite
    failure_hint: ClassVar[str] = "try a smaller --learning-rate or --beta"

    def load(self, config: Any, data: Any, log: Log) -> Loaded:
        """The run's data: ``data`` as the user passed it, or ``None`` to load what
        ``config`` names; say what was loaded through ``log``."""
        raise NotImplementedError

    def build(self, config: Any, loaded: Loaded) -> keras.Model:
        """The model, its weights drawn (called once, after seeding, under the plan)."""
        raise NotImplementedError

    def compile(self, model: keras.Model, config: Any, steps_per_epoch: int) -> None:
        """``model.compile(...)`` (under the plan; ``steps_per_epoch`` of this process)."""
        raise NotImplementedError

    def monitor(self, has_validation: bool) -> str:
        """The quantity the best-epoch checkpoint keeps the lowest (or highest) of."""
        return "val_loss" if has_validation else "loss"

    def validation_data(self, model: keras.Model, x: np.ndarray, y: np.ndarray | None) -> tuple:
        """What ``fit`` gets as ``validation_data`` from the cut validation arrays."""
        return (x,) if y is None else (x, y)

    def report(
        self, model: keras.Model, config: Any, loaded: Loaded, run_dir: Path | None
    ) -> dict[str, Any]:
        """The test metrics of the trained model; with a run directory also its files
        (``model.keras``, figures, ...). The core merges them into ``metrics.json``."""
        raise NotImplementedError

    # --- what sweeps and experiments read of a finished run

    def describe(self, config: Any) -> dict[str, Any]:
        """The columns that say what a point is, beside its grid values."""
        return {}

    def row(self, config: Any, metrics: dict[str, Any]) -> dict[str, Any]:
        """The metric columns of a finished run, from its ``metrics.json``."""
        return {}

    def train(self, config: cfg.Config, *args: Any, **options: Any) -> tuple[keras.Model, dict]:
        """:func:`train` with this task."""
        return train(self, config, *args, **options)


TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Make ``task`` known by its ``name`` (a later registration of the name replaces it)."""
    require(bool(task.name), f"a task needs a name, {type(task).__name__} has none")
    TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    """The registered task ``name``."""
    return TASKS[one_of("task", name, sorted(TASKS))]


def task_of(config: cfg.Config) -> Task:
    """The registered task whose ``config_class`` ``config`` is an instance of."""
    for task in TASKS.values():
        if isinstance(config, task.config_class):
            return task
    known = ", ".join(t.config_class.__name__ for t in TASKS.values())
    raise IbvaeError(f"no task trains a {type(config).__name__}; known configs: {known}")


def task_for_values(values: Any, source: Any, kind: str | None = None) -> Task:
    """The registered task whose config accepts ``values`` (a config file's mapping, read
    from ``source``): ``kind``'s if given (the values must fit it), else the only one that
    fits; one error naming the file if none or several do."""
    if kind is not None:
        get_task(kind)
    names = [kind] if kind else sorted(TASKS)
    errors = {}
    for name in names:
        try:
            cfg.from_dict(TASKS[name].config_class, values)
        except IbvaeError as e:
            errors[name] = str(e)
    fits = [name for name in names if name not in errors]
    if len(fits) == 1:
        return TASKS[fits[0]]
    if not fits:
        why = "; ".join(f"as a {name} config: {e}" for name, e in errors.items())
        raise IbvaeError(f"{source} is not a {kind or 'VAE or classifier'} config ({why})")
    raise IbvaeError(f"{source} fits the configs of {fits} (no key of either model); pass "
                     f"--kind {' or --kind '.join(fits)}")


def _fit_arrays(plan: distribute.Plan, loaded: Loaded, batch_size: int) -> Fitted:
    """The loaded arrays as this process feeds them to ``fit`` under ``plan``."""
    (x, per_process), (y, _) = (plan.batches(a, batch_size) for a in (loaded.x_train,
                                                                      loaded.y_train))
    require(x is not None, f"{len(loaded.x_train)} training images are fewer than one batch "
            f"of {batch_size}; data_parallel trains on whole batches")
    (x_valid, _), (y_valid, _) = (plan.batches(a, batch_size) for a in (loaded.x_valid,
                                                                        loaded.y_valid))
    return Fitted(x, y, x_valid, y_valid, per_process)


class _SaveConfigOnce(keras.callbacks.Callback):
    """Writes a resumed run's ``config.yaml`` when its first epoch has ended: a resume that
    fails before that leaves the run's config as it was."""

    def __init__(self, config: cfg.Config, run_dir: Path) -> None:
        super().__init__()
        self.config, self.run_dir, self.saved = config, run_dir, False

    def save(self) -> None:
        if not self.saved:
            runs.save_config(self.config, self.run_dir)
            self.saved = True

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.save()


def data_fingerprint(loaded: Loaded) -> dict[str, Any]:
    """The shapes, dtypes and one SHA-256 of the arrays a run fits on (before the cut to whole
    batches): what a resume compares, so data changed under the same path are noticed."""
    digest = hashlib.sha256()
    shapes = {}
    for name in ("x_train", "y_train", "x_valid", "y_valid"):
        a = getattr(loaded, name)
        if a is None:
            continue
        a = np.ascontiguousarray(a)
        shapes[name] = [list(a.shape), str(a.dtype)]
        digest.update(f"{name}{a.shape}{a.dtype}".encode())
        digest.update(memoryview(a.reshape(-1)).cast("B"))
    return {"arrays": shapes, "sha256": digest.hexdigest()}


def check_same_data(run_dir: Path, fingerprint: dict[str, Any]) -> None:
    """Refuse to resume ``run_dir`` on data other than those it started on (runs that predate
    the fingerprint are not checked)."""
    saved = runs.read_metrics(run_dir).get("data_fingerprint")
    if saved is None or saved == fingerprint:
        return
    if saved.get("arrays") != fingerprint["arrays"]:
        what = f"arrays {saved.get('arrays')} -> {fingerprint['arrays']}"
    else:
        what = f"same shapes, SHA-256 {saved['sha256'][:12]} -> {fingerprint['sha256'][:12]}"
    raise IbvaeError(
        f"cannot resume {run_dir}: its training data changed since it started ({what}); "
        "restore the data it was trained on, or start a new run with another --out"
    )


def _run_facts(
    plan: distribute.Plan, loaded: Loaded, fitted: Fitted, seconds: list[float]
) -> dict[str, Any]:
    processes = distribute.process_count()
    n_train = len(fitted.x) * processes
    n_val = 0 if fitted.x_valid is None else len(fitted.x_valid) * processes
    total = max(sum(seconds), 1e-9)
    return {
        "status": "completed",
        "backend": keras.backend.backend(),
        "devices": plan.replicas,
        "processes": processes,
        "data_source": loaded.source,
        "batch_size": fitted.batch_size * processes,
        "n_train": n_train,
        "n_val": n_val,
        # images left out by the cut to whole batches (data_parallel), so the counts add up
        "n_train_dropped": len(loaded.x_train) - n_train,
        "n_val_dropped": (0 if loaded.x_valid is None else len(loaded.x_valid)) - n_val,
        "epochs_run": len(seconds),
        "epoch_seconds": seconds,
        "train_seconds": round(total, 1),
        "train_images_per_second": round(n_train * len(seconds) / total, 1),
    }


def train(
    task: Task,
    config: cfg.Config,
    data: Any = None,
    run_dir: str | Path | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    verbose: int | str = "auto",
    log: Log | None = None,
) -> tuple[keras.Model, dict[str, Any]]:
    """Train ``task`` on ``config``; returns the model and its metrics (the run facts and the
    task's report). The config, the data and the model are checked before anything in
    ``run_dir`` is created or deleted.

    Args:
        task: the :class:`Task`; ``config`` must be its ``config_class``.
        data: ``None``, or the data in a form the task accepts (see its ``load``).
        run_dir: ``None`` writes nothing; a path gets the full run directory (created;
            refused if it holds another run, unless ``resume`` or ``overwrite``).
        callbacks: extra Keras callbacks for ``fit``.
        resume: continue the run in ``run_dir`` from its Keras backup (only the config's
            ``resumable`` fields may differ from its ``config.yaml``, and the data must be
            those it started on).
        overwrite: replace the run in ``run_dir``; the new run is built beside it and takes
            its place once it can (see :mod:`ibvae.runs`), so a crash or Ctrl-C before its
            first epoch ends leaves the old run as it was.
        verbose: Keras' ``fit`` verbosity (``"auto"``: a progress bar on a terminal, one
            line per epoch otherwise).
        log: receives the few lines a user must see (data, run directory).
    """
    require(isinstance(config, task.config_class),
            f"the {task.name} task trains a {task.config_class.__name__}, got "
            f"{type(config).__name__}")
    config = cfg.from_dict(type(config), cfg.to_dict(config))  # re-checks fields edited since
    say = log or (lambda message: None)
    t = config.train
    out = runs.plan_run(run_dir, task.name, config, resume, overwrite)
    loaded = task.load(config, data, say)
    fingerprint = None if out is None else data_fingerprint(loaded)
    if resume and distribute.is_main_process():
        check_same_data(out, fingerprint)
    runs.set_seed(t.seed)
    plan = distribute.Plan(t.distribution, t.batch_size)
    with plan.scope():  # the model is built before anything in `out` is touched
        model = task.build(config, loaded)
    fitted = _fit_arrays(plan, loaded, t.batch_size)
    with plan.scope():
        task.compile(model, config, -(-len(fitted.x) // fitted.batch_size))
    with runs.run_directory(out, config, resume, overwrite) as here:
        final = None if out is None else runs.real_run_dir(out)  # `here` until an overwrite ends
        if out is not None:
            say(f"run directory: {out}  (backend: {keras.backend.backend()}, "
                f"{plan.replicas} device(s), {distribute.process_count()} process(es))")
            # "started" until the run ends (completed / failed / interrupted): a resumed run
            # that dies is then never read as the completed run it was before
            runs.update_metrics(here, {"status": "started", "data_fingerprint": fingerprint,
                                       "data_from_config": data is None})
        validation = (None if fitted.x_valid is None
                      else task.validation_data(model, fitted.x_valid, fitted.y_valid))
        fit = training_callbacks(here, resume, task.monitor(validation is not None), callbacks)
        stopper = StopAtStep()
        ours = [stopper]
        config_writer = None
        if resume and here is not None:
            config_writer = _SaveConfigOnce(config, here)
            ours.append(config_writer)
        if verbose == "auto" and not sys.stdout.isatty():
            verbose = 2  # one line per epoch in logs and pipes, not a progress bar
        try:
            with plan.scope(), sigint_stops_at_a_step(stopper):
                model.fit(fitted.x, fitted.y, batch_size=fitted.batch_size, epochs=t.epochs,
                          validation_data=validation, callbacks=[*ours, *fit.all],
                          verbose=verbose)
        except Interrupted:
            if here is None:
                raise
            runs.update_metrics(here, {"status": "interrupted"})
            if runs.has_progress(here):
                raise Interrupted(
                    f"training interrupted (Ctrl-C); {final} keeps its last finished epoch: "
                    f"continue it with --resume --out {final} (Python: resume=True)"
                ) from None
            kept = (f"the run that was in {final} is unchanged" if overwrite and here != final
                    else "nothing was kept")
            raise Interrupted(
                f"training interrupted (Ctrl-C) before its first epoch ended; {kept}"
            ) from None
        if config_writer is not None:
            config_writer.save()
        if fit.guard.failure:
            runs.fail_run(here, fit.guard.failure, task.failure_hint, shown=final)
        metrics = _run_facts(plan, loaded, fitted, epoch_seconds(here, fit.timer))
        metrics.update(task.report(model, config, loaded, here))
        if here is None:
            return model, runs.jsonable(metrics)
        return model, {**runs.update_metrics(here, metrics), "run_dir": str(final)}
