"""Platt scaling whose slope depends on the off-label mass: coverage as evidence, not only a gate.

A row whose label tokens got little of the first-token probability (the model began
its answer with " The" or " Science" where the labels are World/Sports/Business/SciTech)
is not necessarily wrong: on 400 AG News rows scored zero-shot by the demo model, 398
were off-format and about 75% of them right after calibration (bench/bench_coverage.py).
Plain Platt scaling gives every row the same slope on the
label log-odds; this map lets the off-label mass m = 1 - coverage change it:

    p(l1) = sigmoid((a + c * m) * z + b),   z = log p(l1) - log p(l0),   m = 1 - sum_k p(label k)

With c = 0 it is Platt scaling (the fit starts there: slope 1, no coverage effect). c < 0
flattens the confidence of off-format rows (they are less sure than their label shares
claim), c > 0 sharpens it. More labels: one such map per label on its one-vs-rest
log-odds, renormalised, as every `OneVsRestCalibrator`. The coverage is read from the
label log-probabilities themselves (their total mass), so the map needs no other column.

It is one of `methods.CANDIDATES`: the promotion and `auto` choose it only where it wins
on held-out labels.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import logsumexp

from calscore.calibration_store.base import LogisticOneVsRest, load_numbers, log_rest, log_shares
from calscore.calibration_store.logistic import fit_logistic


def off_label_mass(logprobs: np.ndarray) -> np.ndarray:
    """(n,) 1 - coverage: the first-token probability on no label token, in [0, 1]."""
    return np.clip(-np.expm1(logsumexp(logprobs, axis=1)), 0.0, 1.0)


class CoveragePlattCalibrator(LogisticOneVsRest):
    """Logistic regression on the label log-odds and their product with the off-label mass."""

    method = "platt_coverage"

    def _inputs(self, x: np.ndarray) -> np.ndarray:
        # the label shares, then the off-label mass as one more column (read back by _features)
        return np.column_stack([log_shares(x), off_label_mass(x)])

    def _features(self, ls: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        shares = ls[:, : self.n_labels]
        return shares[:, k] - log_rest(shares, k), ls[:, self.n_labels]

    def _fit_binary(self, z, m, target, w) -> dict[str, Any]:
        coef, intercept = fit_logistic(np.column_stack([z, z * m]), target, w, smoothing=self.smoothing, C=self.C,
                                       center=np.array([1.0, 0.0]))
        return {"slope": float(coef[0]), "off_label_slope": float(coef[1]), "intercept": intercept}

    def _score_binary(self, z, m, model) -> np.ndarray:
        return (model["slope"] + model["off_label_slope"] * m) * z + model["intercept"]

    def _load_binary(self, model: Any) -> dict[str, Any]:
        spec = {"slope": "scalar", "off_label_slope": "scalar", "intercept": "scalar"}
        return load_numbers(model, spec, "platt_coverage")
