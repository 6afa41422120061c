"""An experiment's figures from ``results.csv``: for each spec figure, one panel per metric
against a grid field, one line per value of another (e.g. per config), the mean over the
aggregated field with its standard deviation as error bars and each run as a dot."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ibvae.experiments.results import column, mean_sd, number
from ibvae.experiments.spec import Figure
from ibvae.figures import pyplot, save_figure
from ibvae.sweep_figures import set_log_axis


def figure(rows: list[dict[str, str]], spec_figure: Figure, path: Path) -> Path | None:
    """Draw ``spec_figure`` into ``path`` from the completed rows; None when none has a
    numeric x."""
    f = spec_figure
    done = [r for r in rows if r.get("status") == "completed" and number(r.get(column(f.x)))
            is not None]
    if not done:
        return None
    plt = pyplot()
    x_key = column(f.x)
    groups = list(dict.fromkeys(r.get(column(f.lines), "") for r in done)) if f.lines else [""]
    xs = sorted({number(r[x_key]) for r in done})
    ncols = min(3, len(f.y))
    nrows = -(-len(f.y) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.4 * ncols, 3.4 * nrows), squeeze=False)
    for ax, metric in zip(axes.flat, f.y, strict=False):
        for group in groups:
            mine = [r for r in done if not f.lines or r.get(column(f.lines), "") == group]
            points = []
            for x in xs:
                values = [v for r in mine if number(r[x_key]) == x
                          and (v := number(r.get(metric))) is not None]
                if values:
                    points.append((x, *mean_sd(values)[:2]))
            if not points:
                continue
            px, mean, sd = (np.array(v) for v in zip(*points, strict=True))
            bars = ax.errorbar(px, mean, yerr=sd, fmt="o-", ms=4, capsize=3,
                               label=f"{column(f.lines)}={group}" if f.lines else None)
            dots = [(number(r[x_key]), number(r.get(metric))) for r in mine]
            dots = [(x, y) for x, y in dots if y is not None]
            ax.plot(*zip(*dots, strict=True), ".", alpha=0.4, color=bars.lines[0].get_color())
        if f.log_x is not False and any(x > 0 for x in xs):
            set_log_axis(ax, xs, x_key)
        else:
            ax.set_xlabel(x_key)
        ax.set_title(metric)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(f.y):]:
        ax.axis("off")
    handles, names = axes.flat[0].get_legend_handles_labels()
    if names:
        fig.legend(handles, names, loc="upper center", ncol=min(3, len(names)), fontsize=8)
    over = f"mean ± sd over {column(f.aggregate_over)}" if f.aggregate_over else ""
    fig.suptitle(f.title or over, y=0.02, va="bottom", fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1 - 0.4 / (3.4 * nrows)))
    return save_figure(fig, path)


def write_figures(rows: list[dict[str, str]], figures: list[Figure], folder: Path) -> list[Path]:
    """Each spec figure as ``folder/<name>.png`` (those with something to draw)."""
    made = [figure(rows, f, Path(folder) / f"{f.name}.png") for f in figures]
    return [p for p in made if p is not None]
