"""Load a script of ``scripts/`` (or ``benchmarks/``) as a module, so that tests call its
``main`` in-process (the scripts are not a package)."""

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from ibvae.errors import script_entry

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str, folder: Path = SCRIPTS) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, Path(folder) / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def script_main(name: str) -> Callable:
    """A script's ``main`` behind the same error wrapper as on the command line."""
    return script_entry(load_script(name).main)
