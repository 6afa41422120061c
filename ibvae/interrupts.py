"""Ctrl-C during a training: stop at the next step boundary, outside any compiled call and
before the epoch is recorded as done, so the run is left resumable (a ``KeyboardInterrupt``
raised wherever Python happens to be can land inside a checkpoint write, which Keras'
saving code swallows, or inside a compiled step)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

import keras


class Interrupted(KeyboardInterrupt):
    """A training stopped by Ctrl-C at a step boundary; the message says how to resume."""


class StopAtStep(keras.callbacks.Callback):
    """Raises :class:`Interrupted` at the first step boundary after ``requested`` is set (by
    the SIGINT handler), outside any compiled call, before the epoch is recorded as done."""

    def __init__(self) -> None:
        super().__init__()
        self.requested = False

    def on_train_batch_end(self, batch, logs=None) -> None:
        if self.requested:
            raise Interrupted("training interrupted (Ctrl-C)")

    on_test_batch_end = on_train_batch_end


def in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def sigint_stops_at_a_step(stopper: StopAtStep) -> Iterator[None]:
    """For the body: the first SIGINT asks ``stopper`` to stop at the next step and restores
    the previous handler, so a second one interrupts at once; the old handler is back after."""
    previous = signal.getsignal(signal.SIGINT) if in_main_thread() else None
    if previous in (None, signal.SIG_IGN):
        # handlers can only be set in the main thread; an ignored SIGINT (a background job,
        # nohup) stays ignored
        yield
        return

    def request(signum, frame) -> None:
        stopper.requested = True
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, request)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
