"""Platt scaling on the label log-odds (Platt 1999).

Two labels: p(l1) = sigmoid(a * z + b) with z = log p(l1) - log p(l0), the
label log-odds -- never the raw probability, whose logistic fit cannot undo
the squashing. More labels: one such map per label on log s_k - log(1 - s_k),
renormalised (see OneVsRestCalibrator).

The intercept b corrects a model's lean towards one answer, so Platt scaling
may change the predicted label; that is intended.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from calscore.calibration_store.base import LogisticOneVsRest, load_numbers
from calscore.calibration_store.logistic import fit_logistic


class PlattCalibrator(LogisticOneVsRest):
    """Logistic regression on the label log-odds.

    Parameters
    ----------
    labels : label names, in the column order of the log-probabilities.
    smoothing : Platt's regularised targets (Platt 1999, section 2.2); the default regulariser.
    C : inverse strength of an extra L2 penalty pulling the slope towards 1
        (the raw log-odds); None = no penalty. The intercept is not penalised.
    """

    method = "platt"

    def _fit_binary(self, log_s, log_rest, target, w) -> dict[str, Any]:
        z = (log_s - log_rest)[:, None]
        coef, intercept = fit_logistic(z, target, w, smoothing=self.smoothing, C=self.C, center=np.ones(1))
        return {"slope": float(coef[0]), "intercept": intercept}

    def _score_binary(self, log_s, log_rest, model) -> np.ndarray:
        return model["slope"] * (log_s - log_rest) + model["intercept"]

    def _load_binary(self, model: Any) -> dict[str, Any]:
        return load_numbers(model, {"slope": "scalar", "intercept": "scalar"}, "platt")
