"""Where an experiment's points run: one after another in this process, ``N`` at once in
worker processes of this machine, or as tasks on a Ray cluster.

Every executor calls :func:`~ibvae.experiments.points.run_point` on each point and hands each
outcome to ``done(point, outcome)`` as it arrives. A point whose worker crashes (a segfault,
``kill -9``, out of memory) is reported with status ``crashed`` and the others go on; its run
directory is kept, so the next run of the experiment resumes it.

* Local workers are fresh interpreters (``python -m ibvae.experiments.worker JOB``), so that
  each imports its backend after its environment is set: with GPUs, worker ``i`` sees GPU
  ``i mod n`` alone (``CUDA_VISIBLE_DEVICES``), and workers that share a GPU split JAX's memory
  (``XLA_PYTHON_CLIENT_MEM_FRACTION``), see :func:`worker_env`.
* Ray (an optional extra, ``pip install -e ".[ray]"``): each point is a task with
  ``num_cpus`` / ``num_gpus`` (fractions allowed) that Ray retries if its worker process
  dies; the retry resumes from the run directory, which must be on storage every node sees.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ibvae.errors import IbvaeError, require
from ibvae.experiments.points import Point, run_point
from ibvae.files import write_text

Done = Callable[[Point, dict[str, Any]], None]
JOBS_FOLDER = ".jobs"


def run_serial(points: list[Point], done: Done, verbose: int | str = "auto",
               callbacks: list[Any] | None = None) -> None:
    """Each point in this process, in order (an exception other than a training failure
    stops the experiment, as it would stop a single training)."""
    for point in points:
        done(point, run_point(point, verbose=verbose, callbacks=callbacks))


def gpu_count() -> int:
    """GPUs ``nvidia-smi`` lists (0 without it), read without starting any backend."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        found = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in found.stdout.splitlines())


# Thread pools sized per worker on a CPU: TensorFlow's (read at its start) and the BLAS /
# OpenMP ones numpy and scikit-learn use; each only where the user has not set it.
THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "MKL_NUM_THREADS")


def worker_env(index: int, workers: int, gpus: int, base: dict[str, str],
               cpus: int | None = None) -> dict[str, str]:
    """The environment of local worker ``index`` of ``workers``: its GPU (``index mod
    gpus``) and, when several workers share a GPU, an equal share of it for JAX (unless the
    user set ``XLA_PYTHON_CLIENT_MEM_FRACTION``); on a CPU, its share of the ``cpus`` cores
    (default: this machine's) for each thread pool, so that workers do not oversubscribe the
    cores (unless the user set the pool's variable)."""
    env = dict(base)
    if gpus == 0 and workers > 1:
        share = str(max(1, (cpus or os.cpu_count() or 1) // workers))
        for name in THREAD_VARIABLES:
            env.setdefault(name, share)
    if gpus > 0:
        env["CUDA_VISIBLE_DEVICES"] = str(index % gpus)
        sharing = -(-workers // gpus)
        if sharing > 1 and "XLA_PYTHON_CLIENT_MEM_FRACTION" not in base:
            env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{max(0.05, 0.9 / sharing):.2f}"
    return env


@dataclasses.dataclass
class _Running:
    point: Point
    process: subprocess.Popen
    log: Any
    result: Path


def _start(point: Point, index: int, workers: int, gpus: int, jobs: Path,
           logs: Path) -> _Running:
    job = jobs / f"{index}.json"
    result = jobs / f"{index}.result.json"
    result.unlink(missing_ok=True)
    write_text(job, json.dumps({"point": dataclasses.asdict(point), "result": str(result)}))
    logs.mkdir(parents=True, exist_ok=True)
    log = open(logs / f"{Path(point.run_dir).parent.name}__{Path(point.run_dir).name}.log", "a")
    process = subprocess.Popen(
        [sys.executable, "-m", "ibvae.experiments.worker", str(job)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=worker_env(index, workers, gpus, dict(os.environ)),
    )
    return _Running(point, process, log, result)


def _outcome(running: _Running) -> dict[str, Any]:
    code = running.process.returncode
    running.log.close()
    if code == 0 and running.result.is_file():
        return json.loads(running.result.read_text())
    how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
    return {"state": "crashed", "status": "crashed", "evaluated": [],
            "message": f"the worker process ended ({how}); see {running.log.name}"}


def run_local(points: list[Point], done: Done, workers: int, out: Path) -> None:
    """The points on ``workers`` worker processes of this machine, each worker's output in
    ``out/logs/``."""
    require(workers >= 1, f"--workers must be >= 1, got {workers}")
    gpus = gpu_count()
    jobs = out / JOBS_FOLDER
    jobs.mkdir(parents=True, exist_ok=True)
    queue = list(enumerate(points))
    running: dict[int, _Running] = {}
    slots = list(range(workers))
    try:
        while queue or running:
            while queue and slots:
                slot = slots.pop(0)
                _, point = queue.pop(0)
                running[slot] = _start(point, slot, workers, gpus, jobs, out / "logs")
            time.sleep(0.2)
            for slot, r in list(running.items()):
                if r.process.poll() is not None:
                    del running[slot]
                    slots.append(slot)
                    done(r.point, _outcome(r))
    finally:
        for r in running.values():  # Ctrl-C or an error here: stop the workers too
            r.process.terminate()
        for r in running.values():
            r.process.wait()
            r.log.close()
        shutil.rmtree(jobs, ignore_errors=True)


def ray_module() -> Any:
    """Ray, or one error line naming the extra that installs it."""
    if importlib.util.find_spec("ray") is None:
        raise IbvaeError('--ray needs Ray: pip install -e ".[ray]" (or pip install "ray>=2.9")')
    import ray

    return ray


def _ray_point(point_dict: dict[str, Any]) -> dict[str, Any]:
    """A point run inside a Ray worker (imports ibvae there)."""
    return run_point(Point(**point_dict))


def run_ray(points: list[Point], done: Done, address: str, cpus: float = 1.0,
            gpus: float = 0.0, retries: int = 3) -> None:
    """Each point as a Ray task on the cluster at ``address`` (``auto``: the one in
    ``RAY_ADDRESS``; ``local``: start one on this machine, loopback only)."""
    ray = ray_module()
    require(cpus > 0, f"--cpus-per-point must be > 0, got {cpus}")
    require(gpus >= 0, f"--gpus-per-point must be >= 0, got {gpus}")
    started = not ray.is_initialized()
    if started:
        env = {k: v for k, v in os.environ.items() if k.startswith(("KERAS_", "TF_", "XLA_"))}
        runtime = {"env_vars": env}
        if address == "local":
            ray.init(include_dashboard=False, runtime_env=runtime, log_to_driver=False)
        else:
            ray.init(address=address, runtime_env=runtime, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=retries)(_ray_point)
        pending = {task.remote(dataclasses.asdict(p)): p for p in points}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            point = pending.pop(ready[0])
            try:
                outcome = ray.get(ready[0])
            except Exception as e:  # noqa: BLE001 -- a task that died past its retries
                outcome = {"state": "crashed", "status": "crashed", "evaluated": [],
                           "message": f"the Ray task failed: {str(e).splitlines()[0]}"}
            done(point, outcome)
    finally:
        if started:
            ray.shutdown()
