"""Honest evaluation: a calibrator is never scored on the rows it was fitted on.

`cross_fit` gives every labeled row a prediction from a calibrator fitted on
the other folds; `heldout_report` turns those into the reliability figures.
Sampling weights (inverse inclusion probabilities) go into both the fits and
the figures, so the figures describe all predictions, not only the reviewed
ones. (A time split for champion/challenger lives in `promotion`.)
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from calscore.calibration_store import metrics
from calscore.calibration_store.folds import cross_fit_with
from calscore.calibration_store.registry import make_calibrator
from calscore.calibration_store.validation import check_labels


def cross_fit(
    method: str,
    labels: Sequence[str],
    logprobs: Any,
    y: Any,
    weights: Any = None,
    folds: int = 5,
    seed: int = 0,
    **params: Any,
) -> np.ndarray:
    """(n, K) held-out calibrated probabilities: each row predicted by a calibrator not fitted on it."""
    labels = check_labels(labels)
    make_calibrator(method, labels, **params)  # fail on a bad method or parameter before any fitting
    return cross_fit_with(
        lambda: make_calibrator(method, labels, **params), logprobs, y, weights, len(labels), folds, seed
    )


def heldout_report(
    method: str,
    labels: Sequence[str],
    logprobs: Any,
    y: Any,
    weights: Any = None,
    folds: int = 5,
    seed: int = 0,
    n_bins: int = metrics.DEFAULT_N_BINS,
    **params: Any,
) -> dict[str, Any]:
    """Reliability report of `method`'s cross-fitted held-out predictions (method "raw" = no calibration)."""
    if method == "raw":
        probs = metrics.raw_probs(logprobs)
    else:
        probs = cross_fit(method, labels, logprobs, y, weights, folds, seed, **params)
    report = metrics.reliability_report(probs, y, weights, n_bins=n_bins, seed=seed)
    report["evaluation"] = "raw" if method == "raw" else f"{folds}-fold cross-fitting"
    return report
