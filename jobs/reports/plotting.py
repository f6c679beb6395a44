"""Shared drawing set-up: report colours, error bars, legends outside the axes, one figure saved as PNG.

Figures are plain `matplotlib.figure.Figure` objects, never pyplot's: saving one
as PNG renders it with Agg without selecting a process-wide backend (so
importing the reports never changes the backend of a notebook or another
library), and nothing has to be closed, as pyplot keeps no reference to it.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.legend import Legend

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


def legend_outside(fig: Figure, *axes, where: str = "lower center", entries: tuple[list, list] | None = None,
                   **kwargs) -> Legend:
    """One legend in the figure's margin (`where`: matplotlib's "outside ..." locations), outside every axes, so
    it never covers a plotted point; constrained layout makes room for it, so `fig` must be made with
    layout="constrained". Its entries: `entries` (handles, labels), or those of `axes`, each label once."""
    if entries is None:
        found: dict = {}
        for ax in axes:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                found.setdefault(label, handle)
        entries = (list(found.values()), list(found))
    return fig.legend(*entries, loc=f"outside {where}", **kwargs)


def lower_limit(start: float, lows) -> float:
    """Where a y axis must start to hold every interval: `start`, or the tenth at or below the lowest of `lows`,
    less a margin that keeps a point there off the frame."""
    return min([start] + [math.floor(low * 10) / 10 for low in lows]) - 0.02
