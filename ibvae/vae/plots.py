"""Every VAE figure: loss curves, reconstructions, sample and interpolation grids, and for 2-D
latents the latent scatter, the decoded manifold and the alpha map over it.

Multiplicative (Information Dropout) codes are drawn in log space, ``log10 z``; codes that are
exactly 0 cannot be placed there and are left out of the scatter (their count is in the
title).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ibvae.figures import pyplot, save_figure
from ibvae.vae.model import VAE


def _tile(images: np.ndarray, ncols: int) -> np.ndarray:
    """``(N, H, W, C)`` -> one ``(rows*H, ncols*W)`` (or RGB) mosaic with 1-pixel gaps."""
    n, h, w, c = images.shape
    rows = int(np.ceil(n / ncols))
    canvas = np.ones((rows * (h + 1) - 1, ncols * (w + 1) - 1, c), dtype=np.float32)
    for i, img in enumerate(images):
        r, col = divmod(i, ncols)
        canvas[r * (h + 1) : r * (h + 1) + h, col * (w + 1) : col * (w + 1) + w] = img
    return canvas[..., 0] if c == 1 else canvas


def _show(ax, mosaic: np.ndarray) -> None:
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")


def image_grid(images: np.ndarray, path: Path, title: str = "", ncols: int | None = None) -> Path:
    """A square-ish grid of images in [0, 1]."""
    ncols = ncols or int(np.ceil(np.sqrt(len(images))))
    fig, ax = pyplot().subplots(figsize=(ncols * 0.6 + 0.5, np.ceil(len(images) / ncols) * 0.6 + 0.7))
    _show(ax, _tile(images, ncols))
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def _number(text: str | None) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def loss_curves(history_csv: Path, path: Path) -> Path | None:
    """Loss, reconstruction and KL per epoch (train and validation) from ``history.csv``."""
    history_csv = Path(history_csv)
    if not history_csv.is_file():
        return None
    with history_csv.open() as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, axes = pyplot().subplots(1, 3, figsize=(12, 3.2))
    for ax, key, label in zip(
        axes,
        ("loss", "reconstruction", "kl"),
        ("loss (recon + beta KL)", "reconstruction", "KL"),
        strict=True,
    ):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = [_number(r.get(prefix + key)) for r in rows]
            if not all(np.isnan(values)):  # Keras writes NA for val_* without validation
                ax.plot(epochs, values, style, label=prefix + key)
        ax.set_xlabel("epoch")
        ax.set_ylabel("nats per example")
        ax.set_title(label)
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def reconstructions(model: VAE, x: np.ndarray, path: Path, n: int = 16) -> Path:
    """Test images (top row) and the decoded deterministic codes (bottom row)."""
    x = x[:n]
    recon = model.decode(model.encode(x))
    fig, ax = pyplot().subplots(figsize=(n * 0.6 + 0.5, 1.8))
    _show(ax, _tile(np.concatenate([x, recon]), len(x)))
    ax.set_title("test images (top) and reconstructions (bottom)", fontsize=9)
    return save_figure(fig, path)


def interpolation_grid(
    images: np.ndarray, starts: np.ndarray, ends: np.ndarray, path: Path, latent: str
) -> Path:
    """One row per pair: start image | decoded interpolation | end image."""
    pairs, steps = images.shape[:2]
    rows = [
        np.concatenate([s[None], row, e[None]])
        for s, row, e in zip(starts, images, ends, strict=True)
    ]
    fig, ax = pyplot().subplots(figsize=((steps + 2) * 0.6 + 0.5, pairs * 0.6 + 0.7))
    _show(ax, _tile(np.concatenate(rows), steps + 2))
    ax.set_title(f"interpolations ({latent}); first and last columns are the inputs", fontsize=9)
    return save_figure(fig, path)


def _log_codes(model: VAE, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plot coordinates (``log10 z`` or ``z``) and a mask of the plottable rows."""
    if not model.multiplicative:
        return codes, np.ones(len(codes), dtype=bool)
    keep = np.all(codes > 0, axis=1)
    return np.log10(np.where(codes > 0, codes, 1.0)), keep


def latent_scatter(model: VAE, x: np.ndarray, y: np.ndarray | None, path: Path) -> Path:
    """2-D latent: the deterministic codes of the test images, coloured by label."""
    coords, keep = _log_codes(model, model.encode(x).reshape(len(x), -1))
    fig, ax = pyplot().subplots(figsize=(5.5, 4.5))
    colour = None if y is None else y[keep]
    points = ax.scatter(coords[keep, 0], coords[keep, 1], c=colour, cmap="tab10", s=3, alpha=0.7)
    if y is not None:
        fig.colorbar(points, ax=ax, label="label")
    unit = "log10 z" if model.multiplicative else "z"
    ax.set_xlabel(f"{unit}[0]")
    ax.set_ylabel(f"{unit}[1]")
    left_out = int((~keep).sum())
    note = f"; {left_out} codes with a unit exactly 0 not shown" if left_out else ""
    ax.set_title(f"test codes ({model.latent}){note}", fontsize=9)
    return save_figure(fig, path)


def manifold(
    model: VAE, x: np.ndarray, grid_path: Path, alpha_path: Path, n: int = 15
) -> tuple[Path, Path]:
    """2-D latent: decode an ``n x n`` grid spanning the 2nd-98th percentiles of each unit's
    test codes (of its positive codes, in log space, for Information Dropout), and map the noise the encoder assigns to each
    decoded image (mean alpha, or the posterior std for the Gaussian latent)."""
    codes = model.encode(x).reshape(len(x), -1).astype(np.float64)
    coords, _ = _log_codes(model, codes)
    lo, hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])  # for a unit that is never on
    for j in range(2):
        on = codes[:, j] > 0 if model.multiplicative else np.ones(len(codes), dtype=bool)
        if on.sum() > 1 and np.ptp(coords[on, j]) > 0:
            lo[j], hi[j] = np.percentile(coords[on, j], [2, 98])
    gx, gy = np.linspace(lo[0], hi[0], n), np.linspace(hi[1], lo[1], n)
    grid = np.array([[a, b] for b in gy for a in gx])
    z = 10.0**grid if model.multiplicative else grid
    images = model.decode(z)
    fig, ax = pyplot().subplots(figsize=(7, 7))
    ax.imshow(_tile(images, n), cmap="gray", vmin=0, vmax=1, extent=(lo[0], hi[0], lo[1], hi[1]))
    unit = "log10 z" if model.multiplicative else "z"
    ax.set_xlabel(f"{unit}[0]")
    ax.set_ylabel(f"{unit}[1]")
    ax.set_title(f"decoded latent grid ({model.latent})", fontsize=9)
    save_figure(fig, grid_path)

    _, b = model.posterior(images)
    noise = model.noise_scale(b).mean(axis=1).reshape(n, n)
    fig, ax = pyplot().subplots(figsize=(5.5, 4.5))
    shown = ax.imshow(noise, extent=(lo[0], hi[0], lo[1], hi[1]), aspect="auto", cmap="viridis")
    label = "mean alpha" if model.multiplicative else "mean posterior std"
    fig.colorbar(shown, ax=ax, label=label)
    ax.set_xlabel(f"{unit}[0]")
    ax.set_ylabel(f"{unit}[1]")
    ax.set_title(f"{label} of the re-encoded grid images", fontsize=9)
    save_figure(fig, alpha_path)
    return Path(grid_path), Path(alpha_path)


def training_figures(
    model: VAE,
    run_dir: Path,
    x_test: np.ndarray,
    y_test: np.ndarray | None,
    samples: np.ndarray,
    source: str,
) -> list[Path]:
    """The figures every training run writes into ``run_dir/figures``: loss curves,
    reconstructions of ``x_test`` (evaluation targets), the decoded ``samples`` (from
    ``source``) and, for a 2-D latent, the scatter, the manifold and the alpha map."""
    figures = Path(run_dir) / "figures"
    written = [
        loss_curves(Path(run_dir) / "history.csv", figures / "loss_curves.png"),
        reconstructions(model, x_test, figures / "reconstructions.png"),
        image_grid(
            samples, figures / "samples.png", f"{len(samples)} samples ({source}), {model.latent}"
        ),
    ]
    if model.latent_dim == 2:
        written.append(latent_scatter(model, x_test, y_test, figures / "latent_scatter.png"))
        written.extend(manifold(model, x_test, figures / "manifold.png", figures / "alpha_map.png"))
    return [p for p in written if p is not None]
