"""Temperature scaling (Guo, Pleiss, Sun & Weinberger 2017, section 4.2).

p = softmax(log s / T) with one temperature T > 0 for all labels, fitted by
minimising the (weighted) negative log-likelihood. Dividing every label's
log-probability by the same positive T never reorders them, so the raw
prediction is kept; only the confidence changes. Works for any K and, having
one parameter, is the safe choice when labels are few.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from calscore.calibration_store.base import BaseCalibrator

# The search range for T; the NLL is convex in 1/T (a one-parameter
# multinomial logistic regression), so a bounded scalar search finds its minimum.
_LOG_T_BOUNDS = (math.log(1e-3), math.log(1e3))


class TemperatureCalibrator(BaseCalibrator):
    """One temperature on the label log-probabilities; keeps the argmax."""

    method = "temperature"
    _parameter_constraints: dict[str, Any] = {}

    def __init__(self, labels):
        self.labels = labels

    def _fit(self, ls: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
        rows = np.arange(y.shape[0])

        def nll(log_t: float) -> float:
            return float(-(w @ log_softmax(ls / math.exp(log_t), axis=1)[rows, y]))

        res = minimize_scalar(nll, bounds=_LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-10})
        self.temperature_ = float(math.exp(res.x))

    def _predict(self, ls: np.ndarray) -> np.ndarray:
        return softmax(ls / self.temperature_, axis=1)

    def _get_state(self) -> dict[str, Any]:
        return {"temperature": self.temperature_}

    def _set_state(self, state: Mapping[str, Any]) -> None:
        t = state.get("temperature") if set(state) == {"temperature"} else None
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not (math.isfinite(t) and t > 0):
            raise ValueError(f"temperature calibrator state needs exactly a positive finite 'temperature', got {dict(state)!r}")
        self.temperature_ = float(t)
