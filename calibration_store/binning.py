"""Reliability bins of top-label confidences: their edges, each row's bin, and the binned ECE and MCE.

Bins are (lower, upper], as in Guo et al. 2017 and Naeini et al. 2015; a confidence of exactly 0 goes to the
first bin. "uniform" = equal-width bins on [0, 1]; "quantile" = equal-mass bins whose edges are quantiles of the
confidences (weighted quantiles when weights differ). Only bins holding rows are reported and counted.
ECE = sum_b (W_b / W) * |accuracy_b - confidence_b|; MCE = max_b |accuracy_b - confidence_b| (W_b = weight in b).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from calscore.calibration_store.validation import check_confidence, check_weights

DEFAULT_N_BINS = 15
STRATEGIES = ("uniform", "quantile")


def bin_edges(values: np.ndarray, n_bins: int, strategy: str, weights: np.ndarray | None = None) -> np.ndarray:
    """Sorted distinct bin edges: equal-width on [0, 1], or quantiles of `values` (equal mass)."""
    _check_binning(n_bins, strategy)
    if strategy == "uniform":
        return np.arange(n_bins + 1) / n_bins  # exact b / n_bins, so a confidence of b / n_bins is an upper edge
    q = np.linspace(0.0, 1.0, n_bins + 1)
    if weights is None or np.all(weights == weights[0]):
        edges = np.quantile(values, q)  # linear interpolation, as np.percentile in calibration_curve
    else:
        edges = np.quantile(values, q, weights=weights, method="inverted_cdf")
    edges = np.unique(edges)
    return edges if edges.shape[0] > 1 else np.repeat(edges, 2)


def assign_bins(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each value for (lower, upper] bins; values at or below the first inner edge go to bin 0."""
    return np.searchsorted(edges[1:-1], values, side="left")


def _check_binning(n_bins: Any, strategy: Any) -> None:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {strategy!r}")


def bin_stats(c: np.ndarray, k: np.ndarray, w: np.ndarray, edges: np.ndarray):
    ids = assign_bins(c, edges)
    nb = edges.shape[0] - 1
    weight = np.bincount(ids, weights=w, minlength=nb)
    conf_sum = np.bincount(ids, weights=w * c, minlength=nb)
    acc_sum = np.bincount(ids, weights=w * k, minlength=nb)
    count = np.bincount(ids, minlength=nb)
    keep = weight > 0
    return keep, weight, conf_sum, acc_sum, count


def reliability_bins(
    confidence: Any,
    correct: Any,
    n_bins: int = DEFAULT_N_BINS,
    strategy: str = "uniform",
    weights: Any = None,
) -> list[dict[str, float | int]]:
    """The non-empty bins: lower, upper, mean confidence, accuracy (both weighted), count (rows), weight."""
    c, k = check_confidence(confidence, correct)
    w = check_weights(weights, c.shape[0])
    w = np.ones(c.shape[0]) if w is None else w
    edges = bin_edges(c, n_bins, strategy, w)
    keep, weight, conf_sum, acc_sum, count = bin_stats(c, k, w, edges)
    return [
        {
            "lower": float(edges[b]),
            "upper": float(edges[b + 1]),
            "confidence": float(conf_sum[b] / weight[b]),
            "accuracy": float(acc_sum[b] / weight[b]),
            "count": int(count[b]),
            "weight": float(weight[b]),
        }
        for b in np.flatnonzero(keep)
    ]


def calibration_errors(
    confidence: Any,
    correct: Any,
    n_bins: int = DEFAULT_N_BINS,
    strategy: str = "uniform",
    weights: Any = None,
) -> tuple[float, float]:
    """(ECE, MCE) from top-label confidences and 0/1 correctness."""
    bins = reliability_bins(confidence, correct, n_bins, strategy, weights)
    total = sum(b["weight"] for b in bins)
    gaps = [abs(b["accuracy"] - b["confidence"]) for b in bins]
    ece_value = sum(b["weight"] / total * g for b, g in zip(bins, gaps))
    return float(ece_value), float(max(gaps))
