"""The figures of a beta sweep (:mod:`ibvae.sweep`), drawn from its rows:

* ``rate_distortion.png``: distortion against rate, one curve per config (label), points in
  the order of beta and marked with it; mean over seeds. VAE: reconstruction NLL against KL
  (nats per example: the information plane of the VAE); classifier: test error against the
  KL summed over the information pools.
* ``metrics_vs_beta.png``: one panel per metric against beta (log axis, symlog when beta = 0
  is in the sweep), one curve per label (the mean over seeds), every seed's value as a dot; a
  classifier's per-pool metrics share a panel, one curve per pool; a metric spanning more than
  two decades gets a log y axis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ibvae.figures import pyplot, save_figure

AXES = {
    "vae": ("rate: KL (nats / example)", "distortion: reconstruction NLL (nats / example)"),
    "classifier": ("rate: KL summed over pools (nats / image)", "test error (%)"),
}
VAE_METRICS = ("rate", "distortion", "neg_elbo", "iw_nll", "active_units",
               "total_correlation", "total_correlation_excess")


def row_value(row: dict[str, Any], key: str) -> float:
    v = row.get(key)
    return float("nan") if v is None or v == "" else float(v)


def seed_means(rows: list[dict[str, Any]], key: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per label: the betas (sorted) and the mean of ``key`` over seeds at each."""
    out = {}
    for label in dict.fromkeys(r["label"] for r in rows):
        mine = [r for r in rows if r["label"] == label]
        betas = np.array(sorted({float(r["beta"]) for r in mine}))
        means = []
        for b in betas:
            values = [row_value(r, key) for r in mine if float(r["beta"]) == b]
            finite = [v for v in values if np.isfinite(v)]
            means.append(np.mean(finite) if finite else np.nan)
        out[label] = (betas, np.array(means))
    return out


def _legend(rows: list[dict[str, Any]], label: str) -> str:
    row = next(r for r in rows if r["label"] == label)
    what = row.get("latent") or row.get("dropout") or ""
    note = " (KL up to a constant)" if str(row.get("elbo_is_bound")) == "False" else ""
    return f"{label}: {what}{note}" if what and what != label else f"{label}{note}"


def metric_columns(rows: list[dict[str, Any]], kind: str) -> list[str]:
    """The metrics drawn against beta: those with at least one finite value."""
    if kind == "vae":
        keys = list(VAE_METRICS)
    else:
        keys = ["test_error", "rate"] + [k for k in dict.fromkeys(k for r in rows for k in r)
                                         if k.startswith(("kl_nats_", "kl_lift_", "kl_auc_",
                                                         "nuisance_error_"))]
    return [k for k in keys if any(np.isfinite(row_value(r, k)) for r in rows)]


def rate_distortion_figure(rows: list[dict[str, Any]], kind: str, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    distortion_key = "distortion" if kind == "vae" else "test_error"
    rates, distortions = seed_means(rows, "rate"), seed_means(rows, distortion_key)
    for label, (betas, rate) in rates.items():
        distortion = distortions[label][1]
        ax.plot(rate, distortion, "o-", label=_legend(rows, label))
        for b, x, y in zip(betas, rate, distortion, strict=True):
            if np.isfinite(x) and np.isfinite(y):
                ax.annotate(f"{b:g}", (x, y), textcoords="offset points", xytext=(4, 4),
                            fontsize=8)
    ax.set_xlabel(AXES[kind][0])
    ax.set_ylabel(AXES[kind][1])
    ax.set_title("rate vs distortion over beta (labels: beta)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def set_log_axis(ax: Any, values: list[float], label: str = "beta") -> None:
    """A log x axis that keeps 0: symlog, linear below the smallest positive value (a plain
    log axis drops the point, and beta = 0 is the no-KL baseline of a sweep)."""
    positive = [b for b in values if b > 0]
    if positive and len(positive) < len(values):
        ax.set_xscale("symlog", linthresh=min(positive))
        ax.set_xlim(-0.3 * min(positive), max(positive) * 1.5)
    elif positive:
        ax.set_xscale("log")
        ax.set_xlim(min(positive) / 1.5, max(positive) * 1.5)
    ax.set_xticks(values, labels=[f"{b:g}" for b in values])
    ax.minorticks_off()
    ax.set_xlabel(label)


def metric_panels(keys: list[str], kind: str) -> dict[str, list[str]]:
    """Panel title -> the columns drawn in it. A classifier's per-pool columns (``kl_nats_1``,
    ``kl_nats_2``, ...) share one panel, a line per pool, so pools compare at a glance."""
    panels: dict[str, list[str]] = {}
    for key in keys:
        stem, _, pool = key.rpartition("_")
        family = stem if kind == "classifier" and stem and pool.isdigit() else key
        panels.setdefault(family, []).append(key)
    return panels


def metrics_figure(rows: list[dict[str, Any]], kind: str, path: Path) -> Path:
    plt = pyplot()
    panels = metric_panels(metric_columns(rows, kind) or ["rate"], kind)
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
    all_betas = sorted({float(r["beta"]) for r in rows})
    styles = ["-", "--", ":", "-."]
    labels = list(dict.fromkeys(r["label"] for r in rows))
    for ax, (title, keys) in zip(axes.flat, panels.items(), strict=False):
        for key_i, key in enumerate(keys):
            for label, (betas, mean) in seed_means(rows, key).items():
                name = _legend(rows, label) if len(keys) == 1 else (
                    f"pool {key.rpartition('_')[2]}" + (f", {label}" if len(labels) > 1 else ""))
                color = None if len(keys) == 1 else f"C{key_i}"
                style = styles[labels.index(label) % len(styles)]
                (line,) = ax.plot(betas, mean, "o" + style, color=color, label=name, ms=4)
                dots = [(float(r["beta"]), row_value(r, key)) for r in rows if r["label"] == label]
                ax.plot(*zip(*dots, strict=True), ".", color=line.get_color(), alpha=0.5)
        values = [row_value(r, k) for r in rows for k in keys]
        positive = [v for v in values if np.isfinite(v) and v > 0]
        if positive and max(positive) / min(positive) > 100:
            ax.set_yscale("log")
        set_log_axis(ax, all_betas)
        ax.set_title(title if len(keys) == 1 else f"{title} (per pool)")
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", ncol=min(3, len(names)), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (3.2 * nrows)))
    return save_figure(fig, path)


def sweep_figures(rows: list[dict[str, Any]], kind: str, folder: Path) -> list[Path]:
    """Both figures of a sweep into ``folder``; nothing when no point has finished."""
    if not any(r.get("status") == "completed" for r in rows):
        return []
    done = [r for r in rows if r.get("status") == "completed"]
    return [
        rate_distortion_figure(done, kind, Path(folder) / "rate_distortion.png"),
        metrics_figure(done, kind, Path(folder) / "metrics_vs_beta.png"),
    ]
