"""Configs as dataclasses: one source of truth per hyperparameter.

Every field is declared once, with :func:`option`: its type (``Literal[...]`` for choices), its
default, a one-line help and its bounds. From that one declaration come

* the checks (types, choices, bounds, finite numbers), run whenever a config is built, from
  Python or from YAML, by :class:`Config` (and, for a model's own arguments, by
  :func:`check_values`);
* the YAML file of a run (:func:`save` / :func:`load`, with unknown keys named);
* the command-line flags of the scripts (:mod:`ibvae.flags`), so a field cannot lack a flag
  and a flag cannot drift from its field.

A config may hold *sections* (``model``, ``train``), each a :class:`Config` of its own; flags
are named after the leaf fields, which are unique within one config.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import os
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from ibvae.errors import IbvaeError, one_of
from ibvae.files import write_text

C = TypeVar("C", bound="Config")
#: the seeds NumPy and every Keras backend accept (``keras.utils.set_random_seed``)
SEED_BOUNDS = {"ge": 0, "lt": 2**32}
_BOUNDS = {"ge": (">=", operator.ge), "gt": (">", operator.gt), "le": ("<=", operator.le),
           "lt": ("<", operator.lt)}


def option(
    default: Any,
    help: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    aliases: tuple[str, ...] = (),
) -> Any:
    """A config field: its default, one line of help, bounds (applied to each item of a list)
    and extra flag names (``aliases=("--lr",)``)."""
    metadata = {"help": help, "ge": ge, "gt": gt, "le": le, "lt": lt, "aliases": aliases}
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def seed_option(default: int, help: str) -> Any:
    """A seed field, bounded to what NumPy and the backends accept, so a bad seed is the
    field's one-line error and not a traceback from deep inside the first draw."""
    return option(default, help, **SEED_BOUNDS)


def section(cls: type[Config], help: str) -> Any:
    """A field holding a sub-config (e.g. ``model``), built from its own defaults."""
    return dataclasses.field(default_factory=cls, metadata={"help": help, "section": True})


def config_class(**defaults: Any) -> Any:
    """``@dataclasses.dataclass`` for a :class:`Config` that inherits shared fields and gives
    some of them its own defaults (``@config_class(epochs=80)``): each field stays declared
    once, in its base, with its help, bounds and flag aliases; only the default differs."""

    def apply(cls: type) -> type:
        inherited: dict[str, dataclasses.Field] = {}
        hints: dict[str, Any] = {}
        for base in reversed(cls.__mro__[1:]):
            if dataclasses.is_dataclass(base):
                inherited.update({f.name: f for f in dataclasses.fields(base)})
                hints.update(_hints(base))
        unknown = sorted(set(defaults) - set(inherited))
        if unknown:
            raise TypeError(f"{cls.__name__}: no inherited field(s) {unknown} to give defaults")
        annotations = dict(cls.__dict__.get("__annotations__", {}))
        for name, value in defaults.items():
            metadata = dict(inherited[name].metadata)
            annotations[name] = hints[name]
            setattr(cls, name, option(value, metadata.pop("help"), **metadata))
        cls.__annotations__ = annotations
        return dataclasses.dataclass(cls)

    return apply


@dataclasses.dataclass(frozen=True)
class Leaf:
    """One hyperparameter of a (possibly sectioned) config: ``path`` from the root."""

    path: tuple[str, ...]
    type: Any
    field: dataclasses.Field

    @property
    def name(self) -> str:
        return self.path[-1]

    @property
    def help(self) -> str:
        return self.field.metadata.get("help", "")

    @property
    def default(self) -> Any:
        f = self.field
        return f.default_factory() if f.default is dataclasses.MISSING else f.default


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_section(field: dataclasses.Field) -> bool:
    return bool(field.metadata.get("section"))


def leaves(cls: type) -> Iterator[Leaf]:
    """Every hyperparameter of ``cls``, depth first, sections expanded."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if _is_section(f):
            for leaf in leaves(hints[f.name]):
                yield Leaf((f.name, *leaf.path), leaf.type, leaf.field)
        else:
            yield Leaf((f.name,), hints[f.name], f)


def type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(name: str, value: Any, tp: Any) -> Any:
    """``value`` checked against the annotation ``tp``: ints are accepted where floats are,
    floats must be finite, ``Literal`` means one of its values."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return one_of(name, value, typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None and len(args) < len(typing.get_args(tp)):
            return None
        errors = []
        for arg in args:
            try:
                return _coerce(name, value, arg)
            except IbvaeError as e:
                errors.append(str(e))
        raise IbvaeError(errors[0])
    if origin in (list, tuple):
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        if not isinstance(value, list | tuple):
            raise IbvaeError(f"config key {name!r} must be a list, got {value!r}")
        return [_coerce(name, v, item_tp) for v in value]
    if tp is Any:
        return value
    if tp is bool and isinstance(value, bool):
        return value
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is str and isinstance(value, str):
        return value
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise IbvaeError(f"{name} must be a finite number, got {value!r}")
        return float(value)
    raise IbvaeError(f"config key {name!r} must be of type {type_name(tp)}, got {value!r}")


def _check_bounds(name: str, value: Any, metadata: Mapping[str, Any]) -> None:
    items = value if isinstance(value, list) else [value]
    for key, (symbol, holds) in _BOUNDS.items():
        bound = metadata.get(key)
        if bound is not None and any(v is not None and not holds(v, bound) for v in items):
            what = f"every entry of {name}" if isinstance(value, list) else name
            shown = bound if isinstance(bound, int) else f"{bound:g}"
            raise IbvaeError(f"{what} must be {symbol} {shown}, got {value!r}")


def _checked(field: dataclasses.Field, tp: Any, value: Any) -> Any:
    value = _coerce(field.name, value, tp)
    _check_bounds(field.name, value, field.metadata)
    return value


class Config:
    """Base of every config dataclass: checks each field on construction (types, choices,
    bounds), turns a mapping given for a section into that section's config, then runs the
    class's ``validate()`` for rules that involve several fields."""

    # Fields added after runs were saved, with the value that reproduces how those runs were
    # trained: a saved config may lack them (read as that value); any other missing field is
    # an error.
    added_later: ClassVar[dict[str, Any]] = {}

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if _is_section(f):
                section_cls = hints[f.name]
                if isinstance(value, Mapping):
                    value = from_dict(section_cls, dict(value))
                elif not isinstance(value, section_cls):
                    raise IbvaeError(
                        f"config section {f.name!r} must be a mapping or a "
                        f"{section_cls.__name__}, got {value!r}"
                    )
            else:
                value = _checked(f, hints[f.name], value)
            object.__setattr__(self, f.name, value)
        self.validate()

    def validate(self) -> None:
        """Rules across fields; subclasses override (the default has none)."""


def check_values(cls: type[Config], **values: Any) -> dict[str, Any]:
    """Check some of ``cls``'s fields by their declaration (for a model's constructor, whose
    arguments are config fields): returns the coerced values."""
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    return {k: _checked(fields[k], hints[k], v) for k, v in values.items()}


def from_dict(cls: type[C], values: Mapping[str, Any], complete: bool = False) -> C:
    """Build and check a config; unknown keys raise :class:`IbvaeError` listing the valid
    ones. ``complete`` also refuses a mapping that lacks a field (a run's saved config)."""
    if not isinstance(values, Mapping):
        raise IbvaeError(f"a {cls.__name__} must be a mapping of key: value, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise IbvaeError(
            f"unknown config key(s) {unknown}; valid keys are: {', '.join(sorted(fields))}"
        )
    if complete:
        values = {**cls.added_later, **values}
        missing = sorted(set(fields) - set(values))
        if missing:
            raise IbvaeError(f"config lacks key(s) {missing}")
    hints = _hints(cls)
    kwargs = {}
    for name, value in values.items():
        if _is_section(fields[name]):
            if not isinstance(value, Mapping):
                raise IbvaeError(f"config section {name!r} must be a mapping, got {value!r}")
            value = from_dict(hints[name], value, complete)
        kwargs[name] = value
    return cls(**kwargs)


def to_dict(config: Config) -> dict[str, Any]:
    return dataclasses.asdict(config)


def flat_values(config: Config) -> dict[str, Any]:
    """``{leaf name: value}`` of a (sectioned) config."""
    values = {}
    for leaf in leaves(type(config)):
        node: Any = config
        for name in leaf.path:
            node = getattr(node, name)
        values[leaf.name] = node
    return values


def apply_overrides(cls: type[Config], values: dict[str, Any], overrides: Mapping[str, Any]):
    """Set leaf values given by name (flags) inside a nested mapping of ``cls``'s layout."""
    by_name = {leaf.name: leaf.path for leaf in leaves(cls)}
    for name, value in overrides.items():
        if name not in by_name:
            raise IbvaeError(f"unknown config key {name!r}")
        *sections, key = by_name[name]
        node = values
        for s in sections:
            node = node.setdefault(s, {})
            if not isinstance(node, dict):
                raise IbvaeError(f"config section {s!r} must be a mapping, got {node!r}")
        node[key] = value
    return values


class _DuplicateKey(Exception):
    """A mapping of a YAML file names one key twice."""


def _unique_keys_loader() -> type:
    """PyYAML's safe loader, refusing a key given twice in one mapping: plain YAML keeps the
    last one silently, so a value written higher up would be ignored without a word."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise _DuplicateKey(
                        f"key {key!r} appears twice (lines {seen[key]} and {line})")
                seen[key] = line
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML mapping from a file; a missing, unreadable or non-mapping file is an error."""
    path = Path(path)
    if not path.is_file():
        raise IbvaeError(f"config file {path} not found; pass an existing YAML with --config")
    import yaml  # here, not at module level: ``import ibvae`` works without PyYAML (GPU box)

    try:
        loaded = yaml.load(path.read_text(), Loader=_unique_keys_loader())
    except _DuplicateKey as e:
        raise IbvaeError(f"config file {path}: {e}; keep one of them") from e
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise IbvaeError(f"config file {path} is not valid YAML: {e}".splitlines()[0]) from e
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise IbvaeError(f"config file {path} must hold a mapping of key: value")
    return loaded


def load(
    cls: type[C],
    path: str | os.PathLike | None,
    overrides: Mapping[str, Any] | None = None,
    complete: bool = False,
) -> C:
    """Defaults, then the YAML file (if any), then the overrides (by leaf name)."""
    values: dict[str, Any] = {}
    if path is not None:
        values = read_yaml(path)
        try:  # the file alone first, so its own mistakes are reported with its name
            from_dict(cls, values, complete)
        except IbvaeError as e:
            raise IbvaeError(f"{path}: {e}") from e
    apply_overrides(cls, values, overrides or {})
    return from_dict(cls, values, complete)


def save(config: Config, path: str | os.PathLike, header: str = "") -> Path:
    """Write the fully resolved config as YAML (atomically; reloadable with :func:`load`),
    after a ``# header`` comment line if given."""
    import yaml

    comment = f"# {header}\n" if header else ""
    return write_text(path, comment + yaml.safe_dump(to_dict(config), sort_keys=False))
