"""The one experiment runner: a spec -> its points -> a run directory each (trained,
resumed or skipped, then evaluated) -> ``results.csv`` -> the tables and figures.

An experiment directory holds ``experiment.yaml`` (the spec as it was run, and what marks the
folder as an experiment's), ``results.csv`` (rewritten as each point finishes), ``tables/``
(one Markdown table per spec table), ``figures/``, ``logs/`` (local workers' output),
``<label>/<field>=<value>,.../`` (one ordinary run directory per point) and ``.lock`` (held by
the runner: a second runner on the same directory is refused with one line naming the pid).
Running the same command again continues it: finished points and evaluations are skipped,
interrupted ones resume, ``--set train.epochs=N`` extends every point.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ibvae import runs
from ibvae.classifier import evaluations as _classifier_evaluations  # noqa: F401 (registers)
from ibvae.errors import require
from ibvae.experiments import executors
from ibvae.experiments.plots import write_figures
from ibvae.experiments.points import Point, check_point, point_row, points
from ibvae.experiments.results import RESULTS_CSV, read_results, write_results, write_tables
from ibvae.experiments.spec import Spec, load_spec
from ibvae.files import write_text
from ibvae.vae import evaluations as _vae_evaluations  # noqa: F401 (registers)

MARKER = "experiment.yaml"


@dataclasses.dataclass
class Execution:
    """Where the points run: ``workers`` processes here (1: in this process), or Ray at
    ``ray`` (``auto``, ``local`` or an address) with resources per point."""

    workers: int = 1
    ray: str | None = None
    cpus_per_point: float = 1.0
    gpus_per_point: float = 0.0


def check_out(out: Path) -> None:
    """``out`` may hold this experiment: absent, empty, or an experiment directory."""
    require(not out.exists() or out.is_dir(), f"--out {out} is a file; choose a directory")
    if out.is_dir() and any(out.iterdir()):
        require((out / MARKER).is_file(),
                f"{out} exists and is not an experiment directory (no {MARKER}); choose a new "
                "--out")


def _describe(spec: Spec, overrides: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump({
        "name": spec.name, "source": spec.source, "description": spec.description,
        "configs": {a.label: {"task": a.task.name, "grid": a.grid} for a in spec.arms},
        "grid": spec.grid, "set_on_the_command_line": overrides, "evaluate": spec.evaluate,
        "tables": [dataclasses.asdict(t) for t in spec.tables],
        "figures": [dataclasses.asdict(f) for f in spec.figures],
    }, sort_keys=False)


def run_experiment(
    spec: str | os.PathLike | Spec,
    out: str | os.PathLike,
    execution: Execution | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    callbacks: list[Any] | None = None,
    verbose: int | str = "auto",
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run every point of ``spec`` into ``out`` (see the module docstring), then write
    ``results.csv``, the tables and the figures.

    Args:
        spec: a spec file (``configs/experiments/*.yaml``) or a parsed :class:`Spec`.
        out: the experiment directory (created; reused to continue).
        execution: workers here or Ray (default: one point after another in this process).
        overrides: dotted config fields set on every point after the spec's ``set``.
        callbacks: extra Keras callbacks for every point's ``fit`` (in this process only).
        verbose: Keras' verbosity for points trained in this process.
        log: receives one line per point as it starts and ends.

    Returns ``{"rows": [...], "csv": path, "tables": [paths], "figures": [paths]}``.
    """
    execution = execution or Execution()
    require(not callbacks or (execution.workers == 1 and execution.ray is None),
            "callbacks run in this process only: use workers=1 and no Ray with them")
    if execution.ray is not None:
        executors.ray_module()  # the extra is there, before anything is created
    say = log or (lambda message: None)
    if not isinstance(spec, Spec):
        spec = load_spec(spec, overrides)
    out = Path(out)
    todo = points(spec, out)
    check_out(out)
    states = {p.run_dir: check_point(p) for p in todo}  # every point checked before any runs
    out.mkdir(parents=True, exist_ok=True)
    with runs.lock(out, what="experiment runner"):
        write_text(out / MARKER, _describe(spec, overrides or {}))
        outcomes: dict[str, dict[str, Any]] = {}

        def write() -> None:
            crashed = {d for d, o in outcomes.items() if o["status"] == "crashed"}
            rows = [point_row(p, "crashed" if p.run_dir in crashed else None) for p in todo]
            write_results(rows, out / RESULTS_CSV)

        def done(point: Point, outcome: dict[str, Any]) -> None:
            outcomes[point.run_dir] = outcome
            extra = f", evaluated {', '.join(outcome['evaluated'])}" if outcome["evaluated"] else ""
            why = f": {outcome['message']}" if outcome.get("message") else ""
            say(f"[{len(outcomes)}/{len(todo)}] {point.name}: {outcome['status']}{extra}{why}")
            write()

        for p in todo:
            say(f"{p.name}: " + {"new": "to train", "resume": "to resume", "done": "finished",
                                 "failed": "failed before, skipped (delete it to retry)"}
                [states[p.run_dir]])
        write()
        if execution.ray is not None:
            executors.run_ray(todo, done, execution.ray, execution.cpus_per_point,
                              execution.gpus_per_point)
        elif execution.workers > 1:
            executors.run_local(todo, done, execution.workers, out)
        else:
            executors.run_serial(todo, done, verbose, callbacks)
        return report(spec, out)


def report(spec: Spec, out: str | os.PathLike, publish: str | os.PathLike | None = None
           ) -> dict[str, Any]:
    """The tables and figures of ``spec`` from ``out/results.csv`` (nothing is trained);
    with ``publish``, ``results.csv``, the tables and the figures are also copied there (a
    folder of ``docs/results/``, say), so what the docs show is what the runner made."""
    out = Path(out)
    require((out / RESULTS_CSV).is_file(), f"{out} has no {RESULTS_CSV}; run the experiment first")
    rows = read_results(out / RESULTS_CSV)
    tables = write_tables(rows, spec.tables, out / "tables", spec.name)
    figures = write_figures(rows, spec.figures, out / "figures")
    if publish is not None:
        target = Path(publish)
        target.mkdir(parents=True, exist_ok=True)
        for path in [out / RESULTS_CSV, *tables, *figures]:
            shutil.copyfile(path, target / path.name)
    return {"rows": rows, "csv": out / RESULTS_CSV, "tables": tables, "figures": figures}
