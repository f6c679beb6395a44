"""Vector scaling (Guo, Pleiss, Sun & Weinberger 2017, section 4.2).

p = softmax(scale * log s + bias): a scale and a bias per label, fitted by
minimising the weighted NLL plus an L2 penalty (strength 1 / C) pulling
(scale, bias) towards the identity (1, 0). The penalty also fixes the one
redundant degree of freedom (adding a constant to every bias changes nothing)
and keeps the map finite for a label with no examples. The biases correct a
lean towards one label, so the prediction may change.
"""
from __future__ import annotations

import warnings
from numbers import Real
from typing import Any, Mapping

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax

from calscore.calibration_store.base import BaseCalibrator, load_numbers
from calscore.calibration_store.validation import Interval


class VectorCalibrator(BaseCalibrator):
    """Per-label scale and bias on the label log-shares.

    Parameters
    ----------
    labels : label names, in the column order of the log-probabilities.
    C : inverse strength of the L2 penalty towards the identity map.
    """

    method = "vector"
    _parameter_constraints = {"C": Interval(Real, 0.0, None, closed="neither")}

    def __init__(self, labels, *, C: float = 1.0):
        self.labels = labels
        self.C = C

    def _fit(self, ls: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
        n, k = ls.shape
        onehot = np.zeros((n, k))
        onehot[np.arange(n), y] = 1.0
        center = np.concatenate([np.ones(k), np.zeros(k)])

        def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
            scale, bias = theta[:k], theta[k:]
            logits = ls * scale + bias
            logp = log_softmax(logits, axis=1)
            diff = theta - center
            loss = float(-(w @ (logp * onehot).sum(axis=1))) + float(diff @ diff) / (2.0 * self.C)
            g = w[:, None] * (np.exp(logp) - onehot)
            grad = np.concatenate([(g * ls).sum(axis=0), g.sum(axis=0)]) + diff / self.C
            return loss, grad

        res = minimize(loss_grad, center, jac=True, method="L-BFGS-B", options={"maxiter": 2000, "ftol": 1e-12, "gtol": 1e-8})
        if not res.success:
            from sklearn.exceptions import ConvergenceWarning  # where used: see the package docstring

            warnings.warn(f"vector scaling fit did not converge: {res.message}", ConvergenceWarning, stacklevel=3)
        self.scale_ = res.x[:k].copy()
        self.bias_ = res.x[k:].copy()

    def _predict(self, ls: np.ndarray) -> np.ndarray:
        return softmax(ls * self.scale_ + self.bias_, axis=1)

    def _get_state(self) -> dict[str, Any]:
        return {"scale": self.scale_.tolist(), "bias": self.bias_.tolist()}

    def _set_state(self, state: Mapping[str, Any]) -> None:
        out = load_numbers(state, {"scale": "vector", "bias": "vector"}, "vector")
        if out["scale"].shape != (self.n_labels,) or out["bias"].shape != (self.n_labels,):
            raise ValueError(f"vector calibrator needs {self.n_labels} scales and biases")
        self.scale_, self.bias_ = out["scale"], out["bias"]
