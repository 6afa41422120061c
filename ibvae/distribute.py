"""Training on several devices (and, on JAX, several processes) with the engines Keras already
has, so that a user who outgrows one device needs no other tool.

``distribution: data_parallel`` puts one replica of the model on every visible device and
splits each global batch (the config's ``batch_size``, which must divide by the device count)
between them (:class:`Plan`); a last partial batch of an epoch is dropped:

* JAX: ``keras.distribution.DataParallel`` over ``keras.distribution.list_devices()``; the
  program is traced with global shapes, so a step on N devices computes what one device would
  (the same random draws too), up to the order of floating-point sums.
* TensorFlow: ``tf.distribute.MirroredStrategy`` over the visible GPUs (or, with none, the
  logical CPU devices), all-reduced through one device (NCCL is GPU-only); batch norm is
  synchronised across replicas (:func:`sync_batchnorm`), as JAX's global-shape program does.
* torch: not offered here (Keras 3's torch backend has no data-parallel ``fit``).

Several processes (JAX only): :func:`initialize` starts JAX's distributed runtime before any
device is used (``keras.distribution.initialize``); every process then runs the same training,
and only process 0 writes the run directory (:func:`is_main_process`).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import keras
import numpy as np

from ibvae.errors import IbvaeError, require

Distribution = Literal["none", "data_parallel"]
DISTRIBUTIONS: tuple[str, ...] = typing.get_args(Distribution)


def _tensorflow():
    # TensorFlow is imported only on its own backend: on JAX it may not be installed.
    import tensorflow as tf

    return tf


def devices() -> list[str]:
    """The devices ``data_parallel`` uses on the active backend (all processes' on JAX)."""
    backend = keras.backend.backend()
    if backend == "jax":
        return list(keras.distribution.list_devices())
    if backend == "tensorflow":
        tf = _tensorflow()
        gpus = tf.config.list_logical_devices("GPU")
        return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    raise IbvaeError(
        f"distribution 'data_parallel' is available on the jax and tensorflow backends, not "
        f"on {backend!r}; set KERAS_BACKEND=jax or tensorflow, or use distribution 'none'"
    )


class Plan:
    """How one training uses its devices: ``plan.replicas`` and ``plan.scope()``, entered
    to build and compile the model and again to fit it (evaluation and saving run outside:
    predictions of any batch size then work on every backend)."""

    def __init__(self, distribution: str, batch_size: int) -> None:
        self.distribution, self.replicas, self._engine = distribution, 1, None
        if distribution == "none":
            return
        found = devices()
        self.replicas = len(found)
        require(
            batch_size % self.replicas == 0,
            f"batch_size {batch_size} must divide by the {self.replicas} devices of "
            f"data_parallel; pick a multiple of {self.replicas}",
        )
        if keras.backend.backend() == "jax":
            self._engine = keras.distribution.DataParallel(devices=found)
            # Several processes: each feeds its own block of every batch (shard_batches).
            self._engine.auto_shard_dataset = process_count() == 1
        else:
            tf = _tensorflow()
            self._engine = tf.distribute.MirroredStrategy(
                found, cross_device_ops=tf.distribute.ReductionToOneDevice()
            )

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        if self._engine is None:
            yield
            return
        with self._engine.scope():
            yield

    def batches(self, x: np.ndarray | None, batch_size: int) -> tuple[np.ndarray | None, int]:
        """What this process feeds ``fit``: with data parallelism, whole batches only (a last
        partial batch would not split evenly between the devices), and with several processes
        this process's block of each (:func:`shard_batches`); otherwise ``x`` unchanged.
        Fewer rows than one batch give ``None``."""
        if self._engine is None or x is None:
            return x, batch_size
        if len(x) < batch_size:  # not one whole batch: a validation split this small is dropped
            return None, batch_size
        return shard_batches(x[: len(x) - len(x) % batch_size], batch_size)


def sync_batchnorm() -> bool:
    """Whether a batch-norm layer built now should synchronise its batch statistics across
    replicas: under a TensorFlow strategy with several replicas (JAX needs nothing: its
    data-parallel program already sees the global batch)."""
    if keras.backend.backend() != "tensorflow":
        return False
    tf = _tensorflow()
    return tf.distribute.has_strategy() and tf.distribute.get_strategy().num_replicas_in_sync > 1


def initialize(coordinator: str, num_processes: int, process_id: int) -> None:
    """Join a multi-process JAX job (``HOST:PORT`` of process 0) before any device is used.
    On CPU devices JAX needs its gloo collectives, which are switched on here."""
    require(
        keras.backend.backend() == "jax",
        "several processes (--coordinator) need KERAS_BACKEND=jax",
    )
    require(num_processes >= 1, f"num_processes must be >= 1, got {num_processes}")
    require(
        0 <= process_id < num_processes,
        f"process_id must be in [0, {num_processes}), got {process_id}",
    )
    import jax  # the backend is JAX here, so this is already loaded

    # Cross-process collectives on CPU devices go through gloo (no effect on accelerators).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    keras.distribution.initialize(coordinator, num_processes, process_id)


def process_count() -> int:
    """Processes of a multi-process JAX job (1 otherwise)."""
    if keras.backend.backend() != "jax":
        return 1
    import jax

    return jax.process_count()


def shard_batches(x: np.ndarray | None, batch_size: int) -> tuple[np.ndarray | None, int]:
    """This process's part of ``x`` and its batch size: every global batch of ``batch_size``
    rows is split into one contiguous block per process, so the processes together see the
    batches one process would (the last partial batch is dropped, so all take the same number
    of steps). One process: ``x`` and ``batch_size`` unchanged."""
    n = process_count()
    if n == 1 or x is None:
        return x, batch_size
    require(batch_size % n == 0, f"batch_size {batch_size} must divide by the {n} processes")
    import jax

    steps, per = len(x) // batch_size, batch_size // n
    blocks = x[: steps * batch_size].reshape(steps, n, per, *x.shape[1:])
    return blocks[:, jax.process_index()].reshape(steps * per, *x.shape[1:]), per


@contextlib.contextmanager
def worker_directory(run_dir: Path, resume: bool) -> Iterator[Path]:
    """What a process other than 0 writes into instead of ``run_dir``: a private temporary
    folder (removed at the end), seeded with the run's backup and history when resuming, so
    that every process takes the same steps in the same order (their collectives must match)
    while only process 0 writes the run directory. Resuming needs ``run_dir`` on a file system
    every process sees."""
    here = Path(tempfile.mkdtemp(prefix="ibvae-worker-"))
    try:
        (here / "figures").mkdir()
        if resume:
            for name in ("backup", "history.csv"):
                source = Path(run_dir) / name
                if source.is_dir():
                    shutil.copytree(source, here / name)
                elif source.is_file():
                    shutil.copy(source, here / name)
        yield here
    finally:
        shutil.rmtree(here, ignore_errors=True)


def is_main_process() -> bool:
    """Process 0 of a multi-process JAX job, or the only process."""
    if keras.backend.backend() != "jax":
        return True
    import jax

    return jax.process_index() == 0
