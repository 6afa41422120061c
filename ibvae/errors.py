"""The one exception type for mistakes a user can make (bad config, missing file, bad value),
and the two helpers every check in ibvae uses to raise it, so that every message reads alike:
``<name> must be <rule>, got <value>``.

Scripts catch :class:`IbvaeError` (:func:`script_entry`), print its message as one line on
stderr and exit with code 2; programming errors keep their traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable
from typing import Any


class IbvaeError(ValueError):
    """A user-facing error: the message names the problem and what to do about it."""


def require(condition: bool, message: str) -> None:
    """Raise :class:`IbvaeError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise IbvaeError(message)


def one_of(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """``value`` if it is in ``allowed``, else ``<name> must be one of [...], got <value>``."""
    allowed = list(allowed)
    require(value in allowed, f"{name} must be one of {allowed}, got {value!r}")
    return value


class TrainingFailed(IbvaeError):
    """Training stopped on its own (a non-finite loss): the run directory is kept, with the
    failure recorded in its ``metrics.json`` and its last finite checkpoint."""


def script_entry(main: Callable[[list[str] | None], Any]) -> Callable[[list[str] | None], int]:
    """Wrap a script's ``main(argv)``: user errors -> ``error: ...`` on stderr, exit code 2."""

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None) -> int:
        try:
            main(argv)
        except IbvaeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0

    return wrapper
