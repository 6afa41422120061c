"""The one way ibvae makes and saves a figure: matplotlib's non-interactive Agg backend, the
parent folder created, the figure closed so long runs do not pile them up in memory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend. Imported on first use, not with ibvae:
    matplotlib takes about half a second to import and the models never need it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 100, tight: bool = True) -> Path:
    """Write ``fig`` to ``path`` (PNG by its suffix), creating the folder, then close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight" if tight else None)
    pyplot().close(fig)
    return path
