"""Print the state of a run directory for a wanted number of epochs: ``new`` (no run),
``resume`` (started, failed, or shorter than wanted) or ``done``. Used by the result drivers
(issue10_runs.sh, issue11_runs.sh) to skip finished steps.

    python benchmarks/run_state.py RUN_DIR EPOCHS
"""

import json
import sys
from pathlib import Path

import yaml


def run_state(run: Path, epochs: int) -> str:
    if not (run / "config.yaml").is_file():
        return "new"
    metrics = run / "metrics.json"
    status = json.loads(metrics.read_text()).get("status") if metrics.is_file() else None
    ran = yaml.safe_load((run / "config.yaml").read_text())["train"]["epochs"]
    return "done" if status == "completed" and ran >= epochs else "resume"


if __name__ == "__main__":
    print(run_state(Path(sys.argv[1]), int(sys.argv[2])))
