"""Binomial intervals for accuracies, with audit weights through the effective sample size.

With inclusion weights w_i (1 / inclusion probability) an accuracy is the
weighted mean p = sum(w_i c_i) / sum(w_i); its binomial intervals use Kish's
effective sample size n_eff = (sum w)^2 / sum w^2 and k_eff = p * n_eff
(Kish 1965; the usual design-effect adjustment). With equal weights n_eff = n
and the intervals are the textbook ones.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
# scipy.special's quantile functions are what scipy.stats' beta and norm call (equal, tested), without
# importing scipy.stats: half a second of every command's start
from scipy.special import betaincinv, ndtri


def effective_sample_size(weights: Any) -> float:
    """Kish's n_eff = (sum w)^2 / sum w^2 (0 for no rows)."""
    w = np.asarray(weights, dtype=float)
    if w.size == 0 or not np.any(w > 0):
        return 0.0
    return float(w.sum() ** 2 / np.square(w).sum())


def weighted_proportion(success: Any, weights: Any = None) -> tuple[float | None, float, float]:
    """(p, n_eff, k_eff) of 0/1 outcomes; p is None when there are no rows."""
    s = np.asarray(success, dtype=float)
    w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=float)
    if s.size == 0 or w.sum() <= 0:
        return None, 0.0, 0.0
    p = float(np.average(s, weights=w))
    n_eff = effective_sample_size(w)
    return p, n_eff, p * n_eff


def wilson_interval(p: float | None, n: float, level: float = 0.95) -> tuple[float | None, float | None]:
    """Two-sided Wilson score interval for a proportion p observed on n (possibly effective) trials."""
    if p is None or n <= 0:
        return None, None
    z = float(ndtri(1 - (1 - level) / 2))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def clopper_pearson_lower(k: float, n: float, level: float = 0.95) -> float | None:
    """One-sided exact lower confidence bound: the accuracy is >= this with probability `level`.

    Clopper & Pearson (1934): the alpha quantile of Beta(k, n - k + 1), with
    alpha = 1 - level; 0 when k = 0. Equal to the lower end of the two-sided
    interval at confidence 2 * level - 1 (scipy's binomtest(k, n).proportion_ci(
    confidence_level=0.90, method='exact').low for a 95% one-sided bound).
    """
    if n <= 0:
        return None
    if k <= 0:
        return 0.0
    return float(betaincinv(k, n - k + 1, 1 - level))


# Groups of labeled rows compared by their weighted accuracies: the bucket-order warnings and the floor suggestion
# (`jobs.reports.bucket_order`) and the coverage floor a champion applies (`jobs.calibrators.coverage_floor`).
GROUP_LEVEL = 0.95


def group_accuracy(correct: Any, weights: Any, level: float = GROUP_LEVEL) -> dict:
    """n labels, weighted accuracy, effective n and Wilson interval (low, high) of one group of labeled rows."""
    correct = np.asarray(correct, dtype=bool)
    p, n_eff, _ = weighted_proportion(correct, weights)
    low, high = wilson_interval(p, n_eff, level)
    return {"n": int(correct.shape[0]), "accuracy": p, "n_eff": n_eff, "low": low, "high": high}


def more_accurate(lower: dict, upper: dict) -> bool:
    """Whether `lower` is more accurate than `upper`: its Wilson lower bound is above upper's point estimate."""
    return (lower["accuracy"] is not None and upper["accuracy"] is not None
            and lower["low"] > upper["accuracy"])


def less_accurate(group: dict, other: dict) -> bool:
    """Whether `group` is less accurate than `other`: `more_accurate` mirrored, its Wilson upper bound below
    other's point estimate (the coverage floor a champion applies: `jobs.calibrators.coverage_floor`)."""
    return (group["accuracy"] is not None and other["accuracy"] is not None
            and group["high"] < other["accuracy"])


def group_size(group: Mapping[str, Any]) -> str:
    """`n=40, effective n 31.2` (the effective n only where the weights make it differ): a group's label count."""
    n_eff = group["n_eff"]
    return f"n={group['n']}" + (f", effective n {n_eff:.1f}" if abs(n_eff - group["n"]) > 0.05 else "")
