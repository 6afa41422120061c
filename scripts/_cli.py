"""What every script shares; import it first (``import _cli``), before ibvae or Keras.

* Keras (and so TensorFlow) is imported here with file descriptor 2 sent to a temporary file:
  TensorFlow 2.21 writes oneDNN / CUDA-stub notices straight to fd 2 before any Python log
  level applies, so a script's one-line user error would start with three lines of noise.
  If the import fails, what it wrote is replayed, so a broken install still shows its real
  message. ``IBVAE_VERBOSE_IMPORT=1`` turns this off. (The library itself never touches fd 2.)
* TensorFlow's Python warnings about tf.function retracing are silenced.
* :func:`parser` and :func:`run`: the argparse parser of a script and its entry point, which
  turns :class:`ibvae.IbvaeError` into one ``error:`` line and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _modules_to_import() -> list[str]:
    """Keras, and TensorFlow where it is installed beside another backend: Keras' TensorBoard
    callback would import it in the middle of a run, with its start-up lines."""
    names = ["keras"]
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend != "tensorflow" and importlib.util.find_spec("tensorflow") is not None:
        names.append("tensorflow")
    return [n for n in names if n not in sys.modules]


def import_keras_quietly() -> None:
    names = _modules_to_import()
    if os.environ.get("IBVAE_VERBOSE_IMPORT") == "1" or not names:
        return
    # 3: TensorFlow's C++ log keeps quiet even for "failed call to cuInit" on a machine
    # without a GPU; real failures still raise Python exceptions.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (some embedded interpreters): import as is
        for name in names:
            importlib.import_module(name)
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            for name in names:
                importlib.import_module(name)
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


import_keras_quietly()
# TensorFlow's Python logger warns about tf.function retracing when evaluation calls predict
# on batches of several sizes: harmless, and not something a script's user can act on.
logging.getLogger("tensorflow").setLevel(logging.ERROR)

from ibvae import config as cfg  # noqa: E402
from ibvae import (  # noqa: E402
    distribute,
    flags,  # noqa: E402
    runs,
)
from ibvae.errors import IbvaeError, script_entry  # noqa: E402

RUN_DIR = "a training run's --out directory"


class Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one ``error: ...`` line and exit code 2, like every
    other user error (argparse would print its usage first)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def parser(doc: str | None) -> argparse.ArgumentParser:
    """The parser of a script: its docstring as the description, line breaks kept."""
    return Parser(description=doc, formatter_class=argparse.RawTextHelpFormatter)


def options(argv: list[str] | None, doc: str | None, cls: type[cfg.Config], run_dir: str = ""):
    """Parse a script whose flags are all the fields of the options dataclass ``cls`` (plus a
    positional ``run_dir`` described by ``run_dir``, if given): returns ``(args, options)``."""
    p = parser(doc)
    if run_dir:
        p.add_argument("run_dir", help=run_dir)
    flags.add_flags(p, cls, title=f"{cls.__name__} (command options)")
    args = p.parse_args(argv)
    return args, cfg.from_dict(cls, flags.flag_overrides(args, cls))


def add_run_flags(p: argparse.ArgumentParser, prefix: str, cls: type[cfg.Config]) -> None:
    """``--out``, ``--resume`` (its help says what may change, from ``cls.resumable``),
    ``--overwrite`` of a training script."""
    p.add_argument("--out", help=f"run directory (default runs/{prefix}-<timestamp>)")
    p.add_argument("--resume", action="store_true",
                   help=f"continue the run in --out. {flags.resume_note(cls)}")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def add_process_flags(p: argparse.ArgumentParser) -> None:
    """Flags of a multi-process JAX job (all three, or none)."""
    g = p.add_argument_group("several processes (JAX; with --distribution data_parallel)")
    g.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0")
    g.add_argument("--num-processes", type=int, metavar="N", help="processes in the job")
    g.add_argument("--process-id", type=int, metavar="I", help="this process, 0 .. N-1")


def start_processes(args: argparse.Namespace) -> None:
    """Join the multi-process job the flags describe, before any device is used."""
    given = [args.coordinator, args.num_processes, args.process_id]
    if all(v is None for v in given):
        return
    if any(v is None for v in given):
        raise IbvaeError("--coordinator, --num-processes and --process-id go together")
    distribute.initialize(args.coordinator, args.num_processes, args.process_id)


def run_config(
    args: argparse.Namespace, cls: type[cfg.Config], run_dir: Path, default: Path | None = None
) -> cfg.Config:
    """A training script's config: the YAML (``--config``, else ``default``; with
    ``--resume``, the run's own complete ``config.yaml``), then the flags."""
    overrides = flags.flag_overrides(args, cls)
    if args.resume:
        if args.config is not None:
            raise IbvaeError("--resume continues the run's own config.yaml; drop --config")
        saved = runs.read_run_config(run_dir, cls)
        values = cfg.apply_overrides(cls, cfg.to_dict(saved), overrides)
        return cfg.from_dict(cls, values)
    return cfg.load(cls, args.config or default, overrides)


def progress(split: str, done: int, total: int) -> None:
    """One updating line per split for the dataset generators (``done`` of ``total``)."""
    print(f"\r{split}: {done}/{total}", end="\n" if done == total else "", flush=True)


def run(main: Callable[[list[str] | None], Any]) -> None:
    """``sys.exit`` with ``main``'s exit code: 0, or 2 after one ``error:`` line; Ctrl-C is
    one ``interrupted:`` line (what was kept, how to resume) and exit code 130."""
    try:
        code = script_entry(main)()
    except KeyboardInterrupt as e:
        print(f"interrupted: {e}" if str(e) else "interrupted (Ctrl-C)", file=sys.stderr)
        code = 130
    sys.exit(code)
