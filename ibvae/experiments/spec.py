"""An experiment spec: the training configs, what every point overrides, the grid, the
evaluations and the tables and figures of one published result, as one YAML file
(``configs/experiments/*.yaml``).

    name: vae_beta_sweep
    description: rate and distortion of three latents against beta
    configs:                        # label: path, or label: {config: path, set: .., grid: ..}
      gaussian: configs/vae_mnist_gaussian.yaml
      information_dropout: configs/vae_mnist.yaml
    set: {train.epochs: 30}         # dotted config fields, applied to every point
    grid:                           # the points are the product (with each config's own grid)
      model.beta: [0.1, 1, 10]
      train.seed: [0, 1, 2]
    evaluate:                       # registered evaluations (ibvae.evaluations) and params
      - {name: iw_nll, k: 1000}
    tables:
      - {name: rate_distortion, rows: [config, model.beta], columns: [rate, distortion],
         aggregate_over: train.seed}
      - {name: tuned, rows: [config], columns: [test_error], aggregate_over: train.seed,
         choose: {by: valid_error, over: [model.beta]}}  # per config its best beta
    figures:
      - {name: rate_vs_beta, x: model.beta, y: [rate, distortion], lines: config,
         aggregate_over: train.seed}

``config`` names the config's label wherever a field may stand. Everything is checked when
the spec is read (:func:`load_spec`): an unknown key or field, a value of the wrong type, an
empty grid or an evaluation that does not exist is one :class:`~ibvae.errors.IbvaeError`, and
nothing has been created.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from pathlib import Path
from typing import Any

from ibvae import config as cfg
from ibvae.errors import IbvaeError, require
from ibvae.evaluations import check_evaluation
from ibvae.training import Task, task_for_values

CONFIG = "config"  # the pseudo-field that names a point's config (its label)
SPEC_KEYS = ("name", "description", "configs", "set", "grid", "evaluate", "tables", "figures")
TABLE_KEYS = {"name", "rows", "columns", "aggregate_over", "title", "choose"}
FIGURE_KEYS = {"name", "x", "y", "lines", "aggregate_over", "title", "log_x"}
ARM_KEYS = {"config", "set", "grid"}
# The repository the committed specs' relative config paths are relative to.
REPOSITORY = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class Arm:
    """One config of a spec: its label, its task, its base values and its own grid."""

    label: str
    task: Task
    values: dict[str, Any]
    grid: dict[str, list[Any]]


@dataclasses.dataclass
class Table:
    name: str
    rows: list[str]
    columns: list[str]
    aggregate_over: str | None = None
    title: str = ""
    # {"by": metric, "over": [fields]}: per row, only the values of the ``over`` fields with
    # the lowest mean ``by`` (e.g. a validation error), shown beside the row
    choose: dict[str, Any] | None = None

    @property
    def choose_over(self) -> list[str]:
        return list(self.choose["over"]) if self.choose else []


@dataclasses.dataclass
class Figure:
    name: str
    x: str
    y: list[str]
    lines: str | None = None
    aggregate_over: str | None = None
    title: str = ""
    log_x: bool | None = None


@dataclasses.dataclass
class Spec:
    """A checked experiment spec (see the module docstring)."""

    name: str
    description: str
    arms: list[Arm]
    grid: dict[str, list[Any]]
    evaluate: list[dict[str, Any]]
    tables: list[Table]
    figures: list[Figure]
    source: str = ""

    def fields(self) -> list[str]:
        """The grid's fields in order (``config`` first when there are several configs)."""
        names = [CONFIG] if len(self.arms) > 1 else []
        for grid in [self.grid, *(a.grid for a in self.arms)]:
            names += [k for k in grid if k not in names]
        return names


def _resolve_path(path: str, base: Path) -> Path:
    p = Path(os.path.expanduser(path))
    if p.is_absolute():
        return p
    for root in (base, REPOSITORY, Path.cwd()):
        if (root / p).is_file():
            return root / p
    return REPOSITORY / p


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    require(isinstance(value, dict), f"{what} must be a mapping of field: value, got {value!r}")
    return dict(value)


def _leaf_paths(cls: type[cfg.Config]) -> dict[str, tuple[str, ...]]:
    return {".".join(leaf.path): leaf.path for leaf in cfg.leaves(cls)}


def set_field(values: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set the nested ``values[path[0]][path[1]]...`` (creating sections)."""
    node = values
    for name in path[:-1]:
        node = node.setdefault(name, {})
    node[path[-1]] = value


def with_fields(cls: type[cfg.Config], values: dict[str, Any], fields: dict[str, Any],
                where: str) -> dict[str, Any]:
    """``values`` with the dotted ``fields`` set; an unknown field is an error naming the
    valid ones."""
    paths = _leaf_paths(cls)
    out = cfg.to_dict(cfg.from_dict(cls, values))
    for name, value in fields.items():
        if name not in paths:
            raise IbvaeError(f"{where}: unknown field {name!r} of a {cls.__name__}; fields are "
                             f"{', '.join(paths)}")
        set_field(out, paths[name], value)
    return out


def _grid(value: Any, what: str) -> dict[str, list[Any]]:
    grid = _mapping(value, what)
    for field, values in grid.items():
        require(isinstance(values, list) and len(values) >= 1,
                f"{what}: {field} must list at least one value, got {values!r}")
        require(len({repr(v) for v in values}) == len(values),
                f"{what}: {field} lists a value twice: {values}")
    return grid


def _arms(configs: Any, base: Path, kind: str | None) -> list[Arm]:
    from_list = isinstance(configs, list)
    require(from_list or isinstance(configs, dict),
            f"configs must be a list of paths or a mapping label: path, got {configs!r}")
    entries = ({Path(str(c)).stem: c for c in configs} if from_list else dict(configs))
    require(len(entries) >= 1, "configs must name at least one training config")
    require(not from_list or len(entries) == len(configs),
            "two configs have the same file name; give them labels (configs: {label: path})")
    arms = []
    for label, entry in entries.items():
        entry = entry if isinstance(entry, dict) else {"config": entry}
        unknown = sorted(set(entry) - ARM_KEYS)
        require(not unknown, f"configs.{label}: unknown key(s) {unknown}; use {sorted(ARM_KEYS)}")
        require(isinstance(entry.get("config"), str),
                f"configs.{label} needs config: PATH (a training config YAML)")
        path = _resolve_path(entry["config"], base)
        values = cfg.read_yaml(path)
        task = task_for_values(values, path, kind)
        try:
            values = cfg.to_dict(cfg.from_dict(task.config_class, values))
        except IbvaeError as e:
            raise IbvaeError(f"{path}: {e}") from e
        arm_set = _mapping(entry.get("set"), f"configs.{label}.set")
        values = with_fields(task.config_class, values, arm_set, f"configs.{label}.set")
        arms.append(Arm(str(label), task, values, _grid(entry.get("grid"),
                                                        f"configs.{label}.grid")))
    return arms


def _entries(value: Any, what: str, allowed: set[str], required: tuple[str, ...]
             ) -> list[tuple[int, dict[str, Any]]]:
    """The mappings of a spec's ``tables`` or ``figures`` list, their keys checked."""
    require(value is None or isinstance(value, list), f"{what} must be a list, got {value!r}")
    out = []
    for i, entry in enumerate(value or []):
        require(isinstance(entry, dict), f"{what}[{i}] must be a mapping, got {entry!r}")
        unknown = sorted(set(entry) - allowed)
        require(not unknown, f"{what}[{i}]: unknown key(s) {unknown}; use {sorted(allowed)}")
        for key in required:
            require(key in entry, f"{what}[{i}] needs {key}")
        out.append((i, entry))
    return out


def _check_fields(names: list[str | None], fields: list[str], where: str) -> None:
    for name in names:
        require(name is None or name in fields,
                f"{where}: {name!r} is not a field of the grid ({', '.join(fields)})")


def _tables(value: Any, fields: list[str]) -> list[Table]:
    tables = []
    for i, t in _entries(value, "tables", TABLE_KEYS, ("name", "rows", "columns")):
        table = Table(**t)
        require(isinstance(table.rows, list) and isinstance(table.columns, list)
                and len(table.columns) >= 1, f"tables[{i}]: rows and columns must be lists")
        where = f"tables[{i}] ({table.name})"
        _check_fields([*table.rows, table.aggregate_over], fields, where)
        if table.choose is not None:
            c = table.choose
            require(isinstance(c, dict) and set(c) == {"by", "over"}
                    and isinstance(c["by"], str) and isinstance(c["over"], list)
                    and len(c["over"]) >= 1,
                    f"{where}: choose must be {{by: METRIC, over: [FIELD, ...]}}, got {c!r}")
            _check_fields(c["over"], fields, f"{where}: choose")
            require(not set(c["over"]) & set(table.rows),
                    f"{where}: a field is both a row and chosen over: "
                    f"{sorted(set(c['over']) & set(table.rows))}")
        tables.append(table)
    return tables


def _figures(value: Any, fields: list[str]) -> list[Figure]:
    figures = []
    for i, f in _entries(value, "figures", FIGURE_KEYS, ("name", "x", "y")):
        figure = Figure(**{**f, "y": f["y"] if isinstance(f["y"], list) else [f["y"]]})
        _check_fields([figure.x, figure.lines, figure.aggregate_over], fields,
                      f"figures[{i}] ({figure.name})")
        figures.append(figure)
    return figures


def parse_spec(values: dict[str, Any], base: Path, source: str = "",
               overrides: dict[str, Any] | None = None, kind: str | None = None) -> Spec:
    """A checked :class:`Spec` from a mapping (a YAML file's, with its folder ``base`` for
    relative config paths); ``overrides`` are dotted fields set on every point after the
    spec's own ``set`` (the runner's ``--set``)."""
    require(isinstance(values, dict), "an experiment spec must be a mapping")
    unknown = sorted(set(values) - set(SPEC_KEYS))
    require(not unknown, f"unknown key(s) {unknown}; a spec has {', '.join(SPEC_KEYS)}")
    require("configs" in values, "a spec needs configs: the training config(s) it runs")
    arms = _arms(values["configs"], base, kind)
    shared = {**_mapping(values.get("set"), "set"), **(overrides or {})}
    grid = _grid(values.get("grid"), "grid")
    require(bool(grid) or any(a.grid for a in arms),
            "the grid is empty: give grid: {field: [values, ...]} (e.g. train.seed: [0, 1, 2])")
    for arm in arms:
        arm.values = with_fields(arm.task.config_class, arm.values, shared, "set")
        for field in [*grid, *arm.grid]:
            require(field in _leaf_paths(arm.task.config_class),
                    f"grid: unknown field {field!r} of a {arm.task.config_class.__name__} "
                    f"(configs.{arm.label}); fields are "
                    f"{', '.join(_leaf_paths(arm.task.config_class))}")
    evaluate = []
    for i, e in enumerate(values.get("evaluate") or []):
        e = {"name": e} if isinstance(e, str) else e
        require(isinstance(e, dict) and "name" in e,
                f"evaluate[{i}] must be a name or {{name: ..., params}}, got {e!r}")
        check_evaluation(e["name"], {k: v for k, v in e.items() if k != "name"})
        evaluate.append(dict(e))
    spec = Spec(str(values.get("name") or Path(source).stem or "experiment"),
                str(values.get("description") or ""), arms, grid, evaluate, [], [], source)
    fields = spec.fields()
    spec.tables = _tables(values.get("tables"), fields)
    spec.figures = _figures(values.get("figures"), fields)
    return spec


def load_spec(path: str | os.PathLike, overrides: dict[str, Any] | None = None,
              kind: str | None = None) -> Spec:
    """Read and check the spec ``path`` (see :func:`parse_spec`)."""
    path = Path(path)
    values = cfg.read_yaml(path)
    try:
        return parse_spec(values, path.parent, str(path), overrides, kind)
    except IbvaeError as e:
        raise IbvaeError(f"{path}: {e}") from e


def expand(spec: Spec) -> list[tuple[Arm, dict[str, Any]]]:
    """Every point: its arm and its grid values (dotted field -> value), in grid order."""
    points = []
    for arm in spec.arms:
        grid = {**spec.grid, **arm.grid}
        for combo in itertools.product(*grid.values()):
            points.append((arm, dict(zip(grid, combo, strict=True))))
    return points
