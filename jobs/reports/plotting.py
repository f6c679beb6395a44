"""Shared matplotlib set-up: the Agg backend (no display), one figure saved as PNG and closed."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

RAW_COLOR = "#d95f02"
CALIBRATED_COLOR = "#1b9e77"
NEUTRAL_COLOR = "#7570b3"


def save(fig, path: Path) -> Path:
    """Write the figure as PNG (parents created) and free it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"
