"""Shared drawing set-up: report colours, error bars, one figure saved as PNG.

Figures are plain `matplotlib.figure.Figure` objects, never pyplot's: saving one
as PNG renders it with Agg without selecting a process-wide backend (so
importing the reports never changes the backend of a notebook or another
library), and nothing has to be closed, as pyplot keeps no reference to it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

RAW_COLOR = "#d95f02"
CALIBRATED_COLOR = "#1b9e77"
NEUTRAL_COLOR = "#7570b3"


def save(fig: Figure, path: Path) -> Path:
    """Write the figure as PNG (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=110, bbox_inches="tight")
    return path


def pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def error_bars(value, low, high):
    """matplotlib's yerr for an estimate and its interval; never negative (a Wilson bound can
    sit a rounding error inside an accuracy of exactly 1, a percentile range off a mean)."""
    value, low, high = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (value, low, high))
    return [np.maximum(value - low, 0.0), np.maximum(high - value, 0.0)]
