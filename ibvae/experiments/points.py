"""The points of an experiment: each one config with its grid values set, trained and
evaluated in its own run directory ``DIR/<label>/<field>=<value>,...`` with the rules of
every run directory (:mod:`ibvae.runs`): a finished point is skipped, an interrupted one
resumes from its last epoch, one asked for more epochs is extended, one whose loss stopped
being finite is reported as failed and skipped (delete its directory to retry).

:func:`run_point` is what a worker does with a point, in this process, in a worker process
or in a Ray task alike.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any

from ibvae import config as cfg
from ibvae import runs
from ibvae.errors import TrainingFailed, require
from ibvae.evaluations import evaluate_run
from ibvae.experiments.spec import CONFIG, Spec, expand, with_fields
from ibvae.training import get_task

# metrics.json entries that are not columns of results.csv (timings per epoch, shapes)
NOT_COLUMNS = {"epoch_seconds", "kl_map_shapes", "run_dir"}
MAX_LIST_COLUMNS = 16


@dataclasses.dataclass
class Point:
    """One point: where it runs and everything a worker needs (all plain, picklable data)."""

    label: str
    values: dict[str, Any]  # dotted grid field -> value
    task: str
    config: dict[str, Any]  # the complete config, as a mapping
    run_dir: str
    evaluate: list[dict[str, Any]]

    @property
    def name(self) -> str:
        return str(Path(self.run_dir).relative_to(Path(self.run_dir).parents[1]))


def value_text(value: Any) -> str:
    """A grid value as it appears in a directory name: exact (``repr`` of a float), so that
    two values never share a directory."""
    if isinstance(value, list | tuple):
        return "-".join(value_text(v) for v in value)
    text = repr(value) if isinstance(value, float) else str(value)
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text)


def point_dir_name(values: dict[str, Any]) -> str:
    """``beta=0.1,seed=0`` for ``{"model.beta": 0.1, "train.seed": 0}``."""
    return ",".join(f"{field.split('.')[-1]}={value_text(v)}" for field, v in values.items()
                    ) or "default"


def points(spec: Spec, out: str | Path) -> list[Point]:
    """Every point of ``spec`` under ``out``, its config checked (a value of the wrong type
    or out of range is one error naming the point), no two in one directory."""
    found: list[Point] = []
    for arm, values in expand(spec):
        cls = arm.task.config_class
        where = f"point {arm.label} {point_dir_name(values)}"
        mapping = with_fields(cls, arm.values, values, where)
        try:
            config = cfg.from_dict(cls, mapping)
        except Exception as e:
            raise type(e)(f"{where}: {e}") from e
        run_dir = Path(out) / arm.label / point_dir_name(values)
        found.append(Point(arm.label, values, arm.task.name, cfg.to_dict(config), str(run_dir),
                           spec.evaluate))
    dirs = [p.run_dir for p in found]
    twice = sorted({d for d in dirs if dirs.count(d) > 1})
    require(not twice, f"two points share the directory {twice[0]}; make the grid's values "
            "differ in their names" if twice else "")
    return found


def point_config(point: Point) -> cfg.Config:
    return cfg.from_dict(get_task(point.task).config_class, point.config)


def point_state(run_dir: Path, config: cfg.Config) -> str:
    """``new``, ``done`` (completed with ``config``), ``failed`` or ``resume``."""
    if not (run_dir / runs.CONFIG_FILE).is_file():
        require(
            not run_dir.exists() or not any(run_dir.iterdir()),
            f"{run_dir} exists but is not a run directory; move it out of the experiment",
        )
        return "new"
    metrics = runs.read_metrics(run_dir)
    if metrics.get("status") == "failed":
        return "failed"
    done = metrics.get("status") == "completed" and (run_dir / "model.keras").is_file()
    if done and runs.read_run_config(run_dir, type(config)) == config:
        return "done"
    return "resume"


def check_point(point: Point) -> str:
    """The point's state, with a resume checked now (a config that may not resume the run
    already there is refused before any point trains)."""
    config = point_config(point)
    state = point_state(Path(point.run_dir), config)
    if state == "resume":
        runs.check_resume(Path(point.run_dir), config)
    return state


def run_point(point: Point, verbose: int | str = 0,
              callbacks: list[Any] | None = None) -> dict[str, Any]:
    """Train (or resume, or skip) one point and run its evaluations; returns
    ``{"state": ..., "status": ..., "evaluated": [...], "message": ...}``."""
    config = point_config(point)
    run_dir = Path(point.run_dir)
    state = point_state(run_dir, config)
    message = ""
    if state in ("new", "resume"):
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            get_task(point.task).train(config, None, run_dir, callbacks,
                                       resume=state == "resume", verbose=verbose)
        except TrainingFailed as e:
            message = str(e)
    status = runs.read_metrics(run_dir).get("status", "unfinished")
    evaluated = []
    if status == "completed":
        for e in point.evaluate:
            params = {k: v for k, v in e.items() if k != "name"}
            if evaluate_run(run_dir, point.task, config, e["name"], params):
                evaluated.append(e["name"])
    return {"state": state, "status": status, "evaluated": evaluated, "message": message}


def _number(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def metric_columns(metrics: dict[str, Any]) -> dict[str, Any]:
    """Every number of ``metrics.json`` as a column; a short list of numbers (one per pool,
    say) as ``key_1``, ``key_2``, ..."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if key in NOT_COLUMNS:
            continue
        if isinstance(value, bool | int | float | str):
            out[key] = value
        elif (isinstance(value, list) and 0 < len(value) <= MAX_LIST_COLUMNS
              and all(v is None or (isinstance(v, int | float) and not isinstance(v, bool))
                      for v in value)):
            out.update({f"{key}_{i + 1}": v for i, v in enumerate(value)})
    return out


def point_row(point: Point, status: str | None = None) -> dict[str, Any]:
    """One row of ``results.csv``: the config's label, the grid values (by leaf name), what
    the task says the point is, its status, the task's curated columns, then every other
    metric of ``metrics.json``, and the run directory."""
    task = get_task(point.task)
    config = point_config(point)
    run_dir = Path(point.run_dir)
    metrics = runs.read_metrics(run_dir) if run_dir.is_dir() else {}
    row: dict[str, Any] = {CONFIG: point.label}
    row.update({field.split(".")[-1]: _plain(v) for field, v in point.values.items()})
    row.update(task.describe(config))
    row.update(epochs=config.train.epochs,
               status=status or metrics.get("status") or "pending")
    if metrics:
        row.update(task.row(config, metrics))
        row.update({k: v for k, v in metric_columns(metrics).items() if k not in row})
    row["run_dir"] = point.name  # relative to the experiment directory
    return {k: _number(v) for k, v in row.items()}


def _plain(value: Any) -> Any:
    return "-".join(map(str, value)) if isinstance(value, list | tuple) else value
