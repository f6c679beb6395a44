"""Reliability diagram: per-bin accuracy against mean confidence, raw and calibrated side by side.

Bins are calibration_store.metrics' 15 equal-width (lower, upper] bins, and
ECE / MCE are its figures, weighted by 1 / inclusion probability when weights
are given (so they speak for all predictions, not only the labeled ones).
Under each diagram a histogram shows how many of the rows fall in each bin.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from calscore.calibration_store.metrics import DEFAULT_N_BINS, calibration_errors, reliability_bins
from calscore.jobs.reports.plotting import CALIBRATED_COLOR, RAW_COLOR, save


def reliability_numbers(confidence: Any, correct: Any, weights: Any = None, n_bins: int = DEFAULT_N_BINS) -> dict:
    """n, accuracy, mean confidence, ECE, MCE and the non-empty bins of one set of top-label confidences."""
    c = np.asarray(confidence, dtype=float)
    k = np.asarray(correct, dtype=float)
    if c.size == 0:
        return {"n": 0, "accuracy": None, "mean_confidence": None, "ece": None, "mce": None, "bins": []}
    w = None if weights is None else np.asarray(weights, dtype=float)
    ece, mce = calibration_errors(c, k, n_bins=n_bins, weights=w)
    return {
        "n": int(c.size),
        "accuracy": float(np.average(k, weights=w)),
        "mean_confidence": float(np.average(c, weights=w)),
        "ece": ece,
        "mce": mce,
        "bins": reliability_bins(c, k, n_bins=n_bins, weights=w),
    }


def _panel(fig, spec, numbers: dict, title: str, color: str, n_bins: int) -> None:
    grid = spec.subgridspec(2, 1, height_ratios=(3, 1), hspace=0.08)
    ax, hist = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
    bins = numbers["bins"]
    if bins:
        conf = [b["confidence"] for b in bins]
        acc = [b["accuracy"] for b in bins]
        counts = [b["count"] for b in bins]
        ax.plot(conf, acc, color=color, linewidth=1.2)
        ax.scatter(conf, acc, s=[20 + 180 * c / max(counts) for c in counts], color=color, alpha=0.8,
                   edgecolor="white", zorder=3, label="bin (dot size = rows)")
        for x, y, c in zip(conf, acc, counts):
            ax.annotate(str(c), (x, y), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=7)
        edges = np.linspace(0, 1, n_bins + 1)
        hist.bar([b["lower"] for b in bins], counts, width=1 / n_bins, align="edge", color=color, alpha=0.6,
                 edgecolor="white")
        hist.set_xticks(edges[::3])
    ece = "n/a" if numbers["ece"] is None else f"{numbers['ece']:.3f}"
    mce = "n/a" if numbers["mce"] is None else f"{numbers['mce']:.3f}"
    ax.set_title(f"{title}: ECE {ece}, MCE {mce} (n={numbers['n']})", fontsize=10)
    ax.set(xlim=(0, 1), ylim=(0, 1.05), ylabel="observed accuracy")
    ax.tick_params(labelbottom=False)
    ax.legend(loc="upper left", fontsize=7)
    hist.set(xlim=(0, 1), xlabel="confidence", ylabel="rows")


def reliability_diagram(
    raw_confidence: Any,
    raw_correct: Any,
    calibrated_confidence: Any | None,
    calibrated_correct: Any | None,
    path: Path,
    weights: Any = None,
    n_bins: int = DEFAULT_N_BINS,
    title: str | None = None,
) -> dict:
    """Draw raw (and, when given, calibrated) reliability for the same labeled rows; return what was drawn.

    Returns {"path", "weighted", "raw": numbers, "calibrated": numbers or None}, numbers as in
    `reliability_numbers`.
    """
    raw = reliability_numbers(raw_confidence, raw_correct, weights, n_bins)
    cal = (
        None
        if calibrated_confidence is None
        else reliability_numbers(calibrated_confidence, calibrated_correct, weights, n_bins)
    )
    panels = [("raw", raw, RAW_COLOR)] + ([("calibrated", cal, CALIBRATED_COLOR)] if cal is not None else [])
    fig = Figure(figsize=(5.2 * len(panels), 5.2))
    grid = fig.add_gridspec(1, len(panels), wspace=0.25)
    for i, (name, numbers, color) in enumerate(panels):
        _panel(fig, grid[i], numbers, name, color, n_bins)
    weighted = " (weighted by 1 / inclusion probability)" if weights is not None else ""
    fig.suptitle((title or "Reliability") + weighted, fontsize=11)
    return {"path": save(fig, path), "weighted": weights is not None, "raw": raw, "calibrated": cal}


def diagram_from_probs(raw_probs: Any, calibrated_probs: Any, y: Any, weights: Any, path: str | Path) -> dict:
    """The diagram for (n, K) raw and calibrated label probabilities of the same labeled rows."""
    raw, cal, y = np.asarray(raw_probs), np.asarray(calibrated_probs), np.asarray(y)
    return reliability_diagram(
        raw.max(axis=1), raw.argmax(axis=1) == y, cal.max(axis=1), cal.argmax(axis=1) == y, Path(path), weights=weights
    )
