"""The benchmarks' parent/worker protocol: a benchmark reruns itself in a subprocess per backend
or device count (a backend and its devices are fixed when it starts); the worker prints one
``RESULT <json>`` line, which the parent reads here."""

from __future__ import annotations

import json
import subprocess
import sys

PREFIX = "RESULT "


def report(result: dict) -> None:
    """The worker's side: print its result for the parent."""
    print(PREFIX + json.dumps(result))


def worker_result(cmd: list[str], env: dict, what: str) -> dict:
    """Run a worker command and return its result; exit naming ``what`` if it failed."""
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(PREFIX)]
    if proc.returncode != 0 or not lines:
        sys.exit(f"{what} failed:\n{proc.stderr[-2000:]}")
    return json.loads(lines[-1][len(PREFIX):])
