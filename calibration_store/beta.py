"""Beta calibration (Kull, Silva Filho & Flach 2017).

logit p(l) = a * ln s - b * ln(1 - s) + c with a, b >= 0, where s is the
label's share of the label mass. Three parameters per label: it contains
Platt on the log-odds (a = b) and the identity (a = b = 1, c = 0), and also
bends the map where the model is over- or under-confident on one side only,
which pays on small label sets where isotonic regression overfits.
The constraint a, b >= 0 keeps the map monotone (Kull et al. 2017, section 3.3
drop a negative coefficient and refit; a bounded optimiser does the same).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from calscore.calibration_store.base import LogisticOneVsRest, load_numbers
from calscore.calibration_store.logistic import fit_logistic


class BetaCalibrator(LogisticOneVsRest):
    """Beta calibration on each label's share (one-vs-rest beyond two labels).

    Parameters
    ----------
    labels : label names, in the column order of the log-probabilities.
    smoothing : Platt's regularised targets (Platt 1999, section 2.2).
    C : inverse strength of an L2 penalty pulling (a, b) towards (1, 1); None = off.
    """

    method = "beta"

    def _fit_binary(self, log_s, log_rest, target, w) -> dict[str, Any]:
        X = np.column_stack([log_s, -log_rest])
        coef, intercept = fit_logistic(
            X, target, w, smoothing=self.smoothing, C=self.C, center=np.ones(2), nonnegative=True
        )
        return {"a": float(coef[0]), "b": float(coef[1]), "c": intercept}

    def _score_binary(self, log_s, log_rest, model) -> np.ndarray:
        return model["a"] * log_s - model["b"] * log_rest + model["c"]

    def _load_binary(self, model: Any) -> dict[str, Any]:
        out = load_numbers(model, {"a": "scalar", "b": "scalar", "c": "scalar"}, "beta")
        if out["a"] < 0 or out["b"] < 0:
            raise ValueError("beta calibrator needs a >= 0 and b >= 0 (a monotone map)")
        return out
