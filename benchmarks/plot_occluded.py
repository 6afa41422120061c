#!/usr/bin/env python
"""The figure of the nuisance experiment (benchmarks/issue11_runs.sh occluded): task error and
nuisance-probe error against beta for information dropout, with binary and no dropout as
horizontal references and the probe's chance error.

    python benchmarks/plot_occluded.py runs/issue11/occluded [--out FIGURE.png]

Reads OCCLUDED/{information,binary,none}/sweep.csv (rerun the sweeps after probing so they
hold nuisance_error_i and nuisance_error_noisy_i) and each run's metrics.json for the chance
error; writes OCCLUDED/nuisance_vs_beta.png unless --out says otherwise.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from ibvae.figures import pyplot, save_figure
from ibvae.sweep_figures import row_value, seed_means, set_log_axis


def read_rows(root: Path, name: str) -> list[dict[str, str]]:
    path = root / name / "sweep.csv"
    if not path.is_file():
        return []
    return [r for r in csv.DictReader(path.open()) if r.get("status") == "completed"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("occluded", type=Path, help="the occluded folder of issue11_runs.sh")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    info = read_rows(args.occluded, "information")
    if not info:
        parser.exit(2, f"error: {args.occluded}/information/sweep.csv has no completed point; "
                       "run benchmarks/issue11_runs.sh occluded first\n")
    refs = {name: read_rows(args.occluded, name) for name in ("binary", "none")}
    pools = sorted(int(k.rsplit("_", 1)[1]) for k in info[0] if k.startswith("nuisance_error_")
                   and k.rsplit("_", 1)[1].isdigit() and "noisy" not in k)
    chance = json.loads((Path(info[0]["run_dir"]) / "metrics.json").read_text())
    chance = chance.get("nuisance_chance_error")
    betas = sorted({float(r["beta"]) for r in info})
    plt = pyplot()
    panels = [("task: test error (%)", ["test_error"])]
    panels += [(f"nuisance probe on {what} (%)", [f"nuisance_error{suffix}_{p}" for p in pools])
               for what, suffix in (("f(x), noise-free", ""), ("z = f(x) eps, one draw",
                                                                  "_noisy"))]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8))
    for ax, (title, keys) in zip(axes, panels, strict=True):
        for i, key in enumerate(keys):
            label = "information" if len(keys) == 1 else f"information, pool {pools[i]}"
            ax.plot(*seed_means(info, key)[info[0]["label"]], "o-", color=f"C{i}", label=label)
            for name, style, what in (("binary", "--", "binary dropout"),
                                      ("none", ":", "no dropout")):
                vals = [row_value(r, key) for r in refs[name]]
                if vals and np.isfinite(np.nanmean(vals)):
                    ax.axhline(np.nanmean(vals), color=f"C{i}", ls=style, lw=1,
                               label=what + ("" if len(keys) == 1 else f", pool {pools[i]}"))
        if keys[0] != "test_error" and chance is not None:
            ax.axhline(chance, color="grey", lw=1, label="chance")
        set_log_axis(ax, betas)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Occluded Fashion-MNIST: task kept, nuisance dropped as beta grows?")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    out = args.out or args.occluded / "nuisance_vs_beta.png"
    print(f"figure: {save_figure(fig, out)}")


if __name__ == "__main__":
    main()
