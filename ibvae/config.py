"""Dataclass configs <-> YAML, with command-line overrides and validation that names the
problem. Each experiment defines a dataclass (see ``vae.VAEConfig``, ``classifier``'s config);
this module knows nothing about any of them.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from ibvae.errors import IbvaeError

C = TypeVar("C")


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(name: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted where floats are."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
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
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is str:
        if isinstance(value, str):
            return value
    raise IbvaeError(
        f"config key {name!r} must be of type {getattr(tp, '__name__', tp)}, got {value!r}"
    )


def from_dict(cls: type[C], values: dict[str, Any]) -> C:
    """Build and validate a config; unknown keys and wrong types raise :class:`IbvaeError`."""
    types_ = _field_types(cls)
    unknown = sorted(set(values) - set(types_))
    if unknown:
        raise IbvaeError(
            f"unknown config key(s) {unknown}; valid keys are: {', '.join(sorted(types_))}"
        )
    coerced = {k: _coerce(k, v, types_[k]) for k, v in values.items()}
    config = cls(**coerced)
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
    return config


def load(cls: type[C], path: str | Path | None, overrides: dict[str, Any] | None = None) -> C:
    """Read a YAML file (or start from the dataclass defaults), apply non-None overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise IbvaeError(f"config file {path} not found; pass an existing YAML with --config")
        import yaml  # here, not at module level: ``import ibvae`` works without PyYAML

        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise IbvaeError(f"config file {path} is not valid YAML: {e}".splitlines()[0]) from e
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise IbvaeError(f"config file {path} must hold a mapping of key: value")
        values.update(loaded)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return from_dict(cls, values)


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def save(config: Any, path: str | Path) -> None:
    """Write the fully resolved config as YAML (reloadable with :func:`load`)."""
    import yaml

    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


def require(condition: bool, message: str) -> None:
    """Raise :class:`IbvaeError` with ``message`` unless ``condition`` holds (for ``validate``)."""
    if not condition:
        raise IbvaeError(message)


def one_of(name: str, value: Any, allowed: typing.Sequence[Any]) -> None:
    require(value in allowed, f"{name} must be one of {list(allowed)}, got {value!r}")
