"""Isotonic regression on the label log-odds (Zadrozny & Elkan 2002).

A monotone non-decreasing step map from the log-odds log s - log(1 - s) to a
probability, fitted by pool-adjacent-violators (scikit-learn's
IsotonicRegression, with sample weights), then read by linear interpolation
between its breakpoints and clamped at the ends. Outputs are clipped to
[eps, 1 - eps] so a held-out mistake never costs an infinite log loss.
"""
from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np
from scipy.special import logit

from calscore.calibration_store.base import OneVsRestCalibrator, load_numbers
from calscore.calibration_store.validation import Interval


class IsotonicCalibrator(OneVsRestCalibrator):
    """Isotonic regression per label (one-vs-rest beyond two labels, renormalised).

    Parameters
    ----------
    labels : label names, in the column order of the log-probabilities.
    eps : outputs are clipped to [eps, 1 - eps].
    """

    method = "isotonic"
    _parameter_constraints = {"eps": Interval(Real, 0.0, 0.1, closed="neither")}

    def __init__(self, labels, *, eps: float = 1e-3):
        self.labels = labels
        self.eps = eps

    def _fit_binary(self, log_s, log_rest, target, w) -> dict[str, Any]:
        from sklearn.isotonic import IsotonicRegression  # where used: see the package docstring

        z = log_s - log_rest
        iso = IsotonicRegression(y_min=self.eps, y_max=1.0 - self.eps, increasing=True, out_of_bounds="clip")
        iso.fit(z, target, sample_weight=w)
        return {"x": np.asarray(iso.X_thresholds_, dtype=np.float64), "y": np.asarray(iso.y_thresholds_, dtype=np.float64)}

    def _score_binary(self, log_s, log_rest, model) -> np.ndarray:
        q = np.interp(log_s - log_rest, model["x"], model["y"])
        return logit(np.clip(q, self.eps, 1.0 - self.eps))

    def _load_binary(self, model: Any) -> dict[str, Any]:
        out = load_numbers(model, {"x": "vector", "y": "vector"}, "isotonic")
        x, y = out["x"], out["y"]
        if x.shape != y.shape or np.any(np.diff(x) < 0) or np.any(np.diff(y) < 0):
            raise ValueError("isotonic breakpoints must be two equally long non-decreasing lists")
        if y.min() < 0 or y.max() > 1:
            raise ValueError("isotonic breakpoint values must be probabilities")
        return out
