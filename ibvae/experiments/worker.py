"""One point in a fresh worker process: ``python -m ibvae.experiments.worker JOB.json``, where
the job file holds the point and where to write its outcome (see
:func:`ibvae.experiments.executors.run_local`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ibvae.experiments.points import Point, run_point
from ibvae.files import write_text


def main(job_file: str) -> int:
    job = json.loads(Path(job_file).read_text())
    outcome = run_point(Point(**job["point"]), verbose=2)
    write_text(job["result"], json.dumps(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
