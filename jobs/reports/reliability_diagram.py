"""Reliability diagram: per-bin accuracy against mean confidence, raw and calibrated overlaid on one axes.

Bins are calibration_store.metrics' 15 equal-width (lower, upper] bins, and
ECE / MCE are its figures, weighted by 1 / inclusion probability when weights
are given (so they speak for all predictions, not only the labeled ones). Each
bin carries a 95% Wilson interval on its (Kish effective) row count, drawn as
an error bar, as scikit-learn's CalibrationDisplay overlays several models on
one axes. Under the curves one histogram, on one shared scale, shows how many
rows of each kind fall in each bin, its counts written inside the frame.

Two views (`view`):

- "top-label": the confidence of the predicted label against whether it was
  right. Such a confidence is never below 1/K, so the axes start there (0.5
  for a binary task, where the lower half of a 0-1 axes would always be empty).
- "positive-class": for a binary task, P(the positive label) against whether
  the row is that label, on 0-1 (the view of scikit-learn's calibration_curve).

The figure's subtitle says which view it shows.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
from matplotlib.figure import Figure

from calscore.calibration_store.binning import (
    DEFAULT_N_BINS,
    assign_bins,
    bin_edges,
    calibration_errors,
    reliability_bins,
)
from calscore.jobs.common.intervals import wilson_interval
from calscore.jobs.reports.plotting import CALIBRATED_COLOR, RAW_COLOR, error_bars, legend_outside, lower_limit, save

VIEWS = ("top-label", "positive-class")


def bin_intervals(confidence: Any, weights: Any = None, n_bins: int = DEFAULT_N_BINS) -> dict[int, float]:
    """{bin index: Kish effective n} of the non-empty equal-width bins (the n a bin's Wilson interval uses)."""
    c = np.asarray(confidence, dtype=float)
    w = np.ones(c.shape[0]) if weights is None else np.asarray(weights, dtype=float)
    ids = assign_bins(c, bin_edges(c, n_bins, "uniform"))
    s1 = np.bincount(ids, weights=w, minlength=n_bins)
    s2 = np.bincount(ids, weights=w * w, minlength=n_bins)
    return {int(b): float(s1[b] ** 2 / s2[b]) for b in np.flatnonzero(s1 > 0)}


def reliability_numbers(confidence: Any, correct: Any, weights: Any = None, n_bins: int = DEFAULT_N_BINS,
                        level: float = 0.95) -> dict:
    """n, accuracy, mean confidence, ECE, MCE and the non-empty bins of one set of confidences.

    Each bin: lower, upper, confidence, accuracy, count, weight (as metrics.reliability_bins), n_eff (Kish) and
    the Wilson interval (low, high) of its accuracy at `level` on n_eff."""
    c = np.asarray(confidence, dtype=float)
    k = np.asarray(correct, dtype=float)
    if c.size == 0:
        return {"n": 0, "accuracy": None, "mean_confidence": None, "ece": None, "mce": None, "bins": []}
    w = None if weights is None else np.asarray(weights, dtype=float)
    ece, mce = calibration_errors(c, k, n_bins=n_bins, weights=w)
    bins = reliability_bins(c, k, n_bins=n_bins, weights=w)
    n_eff = bin_intervals(c, w, n_bins)
    for b in bins:
        b["n_eff"] = n_eff[min(int(round(b["lower"] * n_bins)), n_bins - 1)]
        b["low"], b["high"] = wilson_interval(b["accuracy"], b["n_eff"], level)
    return {
        "n": int(c.size),
        "accuracy": float(np.average(k, weights=w)),
        "mean_confidence": float(np.average(c, weights=w)),
        "ece": ece,
        "mce": mce,
        "bins": bins,
    }


def axis_start(view: str, n_labels: int | None) -> float:
    """Where the confidence axis starts: 0 for the positive-class view, else 1/K rounded down to a tenth."""
    if view not in VIEWS:
        raise ValueError(f"view must be one of {list(VIEWS)}, got {view!r}")
    if view == "positive-class" or not n_labels or n_labels < 2:
        return 0.0
    return math.floor(10 / n_labels + 1e-9) / 10


def view_note(view: str, n_labels: int | None = None, positive: str | None = None) -> str:
    """The sentence a figure's subtitle carries to say which view it shows."""
    if view == "positive-class":
        return f"positive-class view: P({positive or 'positive'}) against the share of rows that are it, on 0-1"
    start = axis_start(view, n_labels)
    return f"top-label view: confidence of the predicted label against its accuracy, on {start:g}-1"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def reliability_diagram(
    raw_confidence: Any,
    raw_correct: Any,
    calibrated_confidence: Any | None,
    calibrated_correct: Any | None,
    path: Path,
    weights: Any = None,
    n_bins: int = DEFAULT_N_BINS,
    title: str | None = None,
    view: str = "top-label",
    n_labels: int | None = None,
    positive: str | None = None,
) -> dict:
    """Draw raw (and, when given, calibrated) reliability of the same labeled rows on one axes; return what was
    drawn: {"path", "weighted", "view", "x_range", "raw": numbers, "calibrated": numbers or None}, numbers as in
    `reliability_numbers`.

    `n_labels` sets where a top-label axes starts (1/K; by default the smallest confidence decides: 0.5 when
    every confidence is at least 0.5); `positive` names the label of the positive-class view."""
    raw = reliability_numbers(raw_confidence, raw_correct, weights, n_bins)
    cal = (
        None
        if calibrated_confidence is None
        else reliability_numbers(calibrated_confidence, calibrated_correct, weights, n_bins)
    )
    if n_labels is None and view == "top-label":
        lowest = min([float(np.min(raw_confidence))] if raw["n"] else [1.0])
        n_labels = 2 if lowest >= 0.5 else None
    start = axis_start(view, n_labels)
    curves = [("raw", raw, RAW_COLOR)] + ([("calibrated", cal, CALIBRATED_COLOR)] if cal is not None else [])

    fig = Figure(figsize=(7.2, 6.6), layout="constrained")
    grid = fig.add_gridspec(2, 1, height_ratios=(3, 1.15))
    ax, hist = fig.add_subplot(grid[0]), fig.add_subplot(grid[1], sharex=None)
    ax.plot([start, 1], [start, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
    lows = []
    tallest = 1
    labels_at: list[tuple[str, float, int]] = []  # (curve, x, count) of each count label of the histogram
    for i, (name, numbers, color) in enumerate(curves):
        bins = numbers["bins"]
        if not bins:
            continue
        conf = np.array([b["confidence"] for b in bins])
        acc = np.array([b["accuracy"] for b in bins])
        low = np.array([b["low"] for b in bins])
        high = np.array([b["high"] for b in bins])
        lows.append(float(low.min()))
        ax.errorbar(conf, acc, yerr=error_bars(acc, low, high), fmt="o-", color=color, markersize=4, capsize=3,
                    linewidth=1.3, label=f"{name}: ECE {_fmt(numbers['ece'])}, MCE {_fmt(numbers['mce'])}, "
                                         f"n={numbers['n']}")
        # one shared histogram: the visible part of each bin split in two, raw on the left, calibrated on the right
        left = np.array([max(b["lower"], start) for b in bins])
        part = (np.array([b["upper"] for b in bins]) - left) / len(curves)
        counts = [b["count"] for b in bins]
        tallest = max(tallest, max(counts))
        bars = hist.bar(left + i * part, counts, width=part, align="edge", color=color, alpha=0.75,
                        edgecolor="white")
        for bar, n in zip(bars, counts):
            labels_at.append((name, float(bar.get_x() + bar.get_width() / 2), n))
            hist.annotate(str(n), (bar.get_x() + bar.get_width() / 2, bar.get_height()), textcoords="offset points",
                          xytext=(0, 1), ha="center", va="bottom", fontsize=6, clip_on=True)
    ax.set(xlim=(start, 1), ylim=(lower_limit(start, lows), 1.02), ylabel="observed accuracy" if view == "top-label"
           else f"share of rows that are {positive or 'positive'}")
    ax.tick_params(labelbottom=False)
    ax.grid(alpha=0.3)
    legend_outside(fig, ax, ncols=len(curves) + 1, fontsize=8, title_fontsize=7,
                   title="bins with 95% Wilson intervals; above them, rows per bin in the same colours")
    hist.set(xlim=(start, 1), ylim=(0, tallest * 1.35), ylabel="rows per bin",
             xlabel="confidence of the predicted label" if view == "top-label"
             else f"P({positive or 'positive'})")
    hist.set_xticks(np.round(np.arange(math.ceil(start * n_bins), n_bins + 1, 3 if start == 0 else 1) / n_bins, 3))
    hist.tick_params(axis="x", labelsize=7)
    weighted = "; weighted by 1 / inclusion probability" if weights is not None else ""
    title = f"{title or 'Reliability'}\n{view_note(view, n_labels, positive)}{weighted}"
    fig.suptitle(title, fontsize=9.5)
    return {"path": save(fig, path), "title": title, "weighted": weights is not None, "view": view,
            "x_range": (start, 1.0), "count_labels": labels_at,
            "positive": positive if view == "positive-class" else None, "raw": raw, "calibrated": cal}


def figure_title(task: str, what: str, calibrator: str | None = None, when: Any = None) -> str:
    """'<task>: <what> · calibrator <version> · <date>': every figure names its task, calibrator and date."""
    if when is None:
        when = datetime.now(timezone.utc).date()
    elif isinstance(when, datetime):
        when = when.astimezone(timezone.utc).strftime("%Y-%m-%d")
    calibrator = f"calibrator {calibrator}" if calibrator else "no calibrator (raw scores)"
    return f"{task}: {what} · {calibrator} · {when}"


def diagram_from_probs(raw_probs: Any, calibrated_probs: Any, y: Any, weights: Any, path: str | Path,
                       title: str | None = None) -> dict:
    """The diagram for (n, K) raw and calibrated label probabilities of the same labeled rows (top-label view)."""
    raw, cal, y = np.asarray(raw_probs), np.asarray(calibrated_probs), np.asarray(y)
    return reliability_diagram(
        raw.max(axis=1), raw.argmax(axis=1) == y, cal.max(axis=1), cal.argmax(axis=1) == y, Path(path),
        weights=weights, title=title, n_labels=raw.shape[1],
    )


def snapshot_diagram(spec: Any) -> Callable[..., dict]:
    """The `diagram` callback of a recalibration for `spec`: `diagram_from_probs` titled with the task, the
    calibrator the snapshot measures (the champion once the run has committed: the one promoted, or the one
    kept) and the date."""
    from calscore.calibration_store.store import champion
    from calscore.jobs.warehouse.connection import reader

    def draw(raw_probs: Any, calibrated_probs: Any, y: Any, weights: Any, path: str | Path) -> dict:
        with reader(spec.warehouse.path) as con:
            doc = champion(con, spec.task_version)
        title = figure_title(spec.name, f"reliability on {np.asarray(y).shape[0]} held-out labels",
                             None if doc is None else doc["version"])
        return diagram_from_probs(raw_probs, calibrated_probs, y, weights, path, title=title)

    return draw
