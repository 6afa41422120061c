"""Command-line flags generated from a config's fields (:mod:`ibvae.config`): one flag per
hyperparameter, named after its leaf (``--latent-dim`` for ``model.latent_dim``), with the
field's type, choices, bounds in its help and its default shown; a flag left out leaves the
config's value standing. Also the sentences a script's help says about ``--resume``, made
from the config's ``resumable`` fields so that they cannot drift from them."""

from __future__ import annotations

import argparse
import types
import typing
from typing import Any, Literal

from ibvae.config import Config, Leaf, leaves, type_name

_EXPLICIT_NONE = object()  # "--flag none" on an optional field (None itself = not given)


def flag_name(leaf: Leaf) -> str:
    return "--" + leaf.name.replace("_", "-")


def _optional(tp: Any) -> Any:
    def parse(text: str) -> Any:
        return _EXPLICIT_NONE if text.lower() in ("none", "null") else tp(text)

    parse.__name__ = type_name(tp)
    return parse


def add_flags(parser: argparse.ArgumentParser, cls: type[Config], title: str | None = None) -> None:
    """One flag per hyperparameter of ``cls`` (``--latent-dim`` for ``latent_dim``), with its
    type, choices and help; every flag defaults to "not given" so the config's value stands."""
    group = parser.add_argument_group(title or f"{cls.__name__} (each overrides the YAML config)")
    for leaf in leaves(cls):
        tp, kwargs = leaf.type, {}
        origin = typing.get_origin(tp)
        optional = origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)
        if optional:
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
            origin = typing.get_origin(tp)
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is Literal:
            choices = list(typing.get_args(tp))
            kwargs.update(choices=choices, type=type(choices[0]))
        elif origin in (list, tuple):
            kwargs.update(nargs="*", type=typing.get_args(tp)[0])
        else:
            kwargs["type"] = _optional(tp) if optional else tp
        default = leaf.default
        shown = "none" if default is None else default
        help_text = f"{leaf.help} [{'.'.join(leaf.path)}; default {shown}]"
        group.add_argument(
            flag_name(leaf),
            *leaf.field.metadata.get("aliases", ()),
            dest=leaf.name,
            default=None,
            help=help_text.replace("%", "%%"),
            **kwargs,
        )


def flag_overrides(args: argparse.Namespace, cls: type[Config]) -> dict[str, Any]:
    """The hyperparameters given on the command line, by leaf name (``none`` -> None)."""
    given = {}
    for leaf in leaves(cls):
        value = getattr(args, leaf.name, None)
        if value is not None:
            given[leaf.name] = None if value is _EXPLICIT_NONE else value
    return given


def resumable_flags(cls: type[Config]) -> list[str]:
    """The flags of ``cls``'s ``resumable`` fields, the ones a resumed run may change."""
    by_name = {leaf.name: leaf for leaf in leaves(cls)}
    return [flag_name(by_name[name]) for name in getattr(cls, "resumable", ())]


def resume_note(cls: type[Config]) -> str:
    """One sentence for a script's help: what ``--resume`` reads and what it lets change."""
    flags = resumable_flags(cls)
    listed = ", ".join(flags[:-1]) + f" and {flags[-1]}" if len(flags) > 1 else "".join(flags)
    return (
        "With --resume the run's own config.yaml is read, and only "
        f"{listed or 'nothing'} may change from it."
    )
