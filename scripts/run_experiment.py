#!/usr/bin/env python
r"""Run an experiment spec: every point of its grid trained and evaluated in its own run
directory under --out, then OUT/results.csv, OUT/tables/*.md (mean ± sd over the seeds) and
OUT/figures/*.png.

    python scripts/run_experiment.py configs/experiments/vae_beta_sweep.yaml --out runs/vae_beta \
        --set train.data=/path/to/mnist.npz --workers 2
    python scripts/run_experiment.py configs/experiments/vae_beta_sweep.yaml --out runs/vae_beta \
        --ray auto --cpus-per-point 2

--publish docs/results/NAME copies results.csv, the tables and the figures into the docs;
--report-only remakes them from OUT/results.csv without training. Run the same command again
to continue: finished points are skipped, interrupted ones resume
from their last epoch, --set train.epochs=N extends every point. --workers N runs N points at
once in worker processes (each its own GPU where there are several; workers sharing one split
its memory); --ray ADDRESS runs each point as a Ray task (auto: the cluster in RAY_ADDRESS;
local: start one here), retried if its worker dies.
"""

from __future__ import annotations

import _cli  # first: starts Keras without TensorFlow's start-up lines

from ibvae.errors import IbvaeError
from ibvae.experiments import Execution, load_spec, report, run_experiment


def parse_set(items: list[str]) -> dict:
    """``field=value`` pairs, each value read as YAML (``30``, ``[32]``, ``none``)."""
    import yaml

    out = {}
    for item in items:
        field, sep, text = item.partition("=")
        if not sep or not field:
            raise IbvaeError(f"--set takes field=value (e.g. train.epochs=30), got {item!r}")
        try:
            out[field.strip()] = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise IbvaeError(f"--set {item}: the value is not valid YAML ({e})") from e
    return out


def main(argv: list[str] | None = None) -> None:
    p = _cli.parser(__doc__)
    p.add_argument("spec", help="experiment spec (configs/experiments/*.yaml)")
    p.add_argument("--out", required=True, help="experiment directory (created; reused to continue)")
    p.add_argument("--workers", type=int, default=1,
                   help="points at once, each in its own process (default 1: in this process)")
    p.add_argument("--ray", metavar="ADDRESS",
                   help="run each point as a Ray task: auto, local, or a cluster address")
    p.add_argument("--cpus-per-point", type=float, default=1.0, help="Ray: CPUs per point")
    p.add_argument("--gpus-per-point", type=float, default=0.0,
                   help="Ray: GPUs per point (fractions share a GPU)")
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="override a config field of every point (e.g. train.epochs=30)")
    p.add_argument("--report-only", action="store_true",
                   help="only (re)make the tables and figures from OUT/results.csv")
    p.add_argument("--publish", metavar="FOLDER",
                   help="also copy results.csv, the tables and the figures there (docs/results/...)")
    args = p.parse_args(argv)
    if args.report_only:
        result = report(load_spec(args.spec, parse_set(args.set)), args.out, args.publish)
        for path in [*result["tables"], *result["figures"]]:
            print(f"wrote {path}")
        return
    if args.ray is not None and args.workers != 1:
        raise IbvaeError("--workers and --ray exclude each other (Ray packs the points itself)")
    execution = Execution(args.workers, args.ray, args.cpus_per_point, args.gpus_per_point)
    spec = load_spec(args.spec, parse_set(args.set))
    result = run_experiment(spec, args.out, execution, parse_set(args.set), log=print)
    if args.publish:
        result = report(spec, args.out, args.publish)
    done = sum(r.get("status") == "completed" for r in result["rows"])
    print(f"{done}/{len(result['rows'])} points completed; results: {result['csv']}")
    for path in [*result["tables"], *result["figures"]]:
        print(f"wrote {path}")


if __name__ == "__main__":
    _cli.run(main)
