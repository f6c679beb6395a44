"""Scaling-binning (Kumar, Liang & Ma 2019, "Verified uncertainty calibration", Algorithm 1).

Per label (one-vs-rest beyond two labels, renormalised):
1. fit a Platt map g on the label log-odds on one half of the labeled rows;
2. on the other half, cut g's outputs into equal-mass bins and replace every
   output by the (weighted) mean of g in its bin.
The result is a step function with few values: like histogram binning its
calibration error can be measured reliably, but because it averages g rather
than the 0/1 labels its variance is much lower, which pays with few labels.
The halves come from a seeded permutation, so a fit is reproducible.
"""
from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
from scipy.special import expit, logit

from calscore.calibration_store.base import OneVsRestCalibrator, load_numbers
from calscore.calibration_store.logistic import fit_logistic
from calscore.calibration_store.binning import assign_bins, bin_edges
from calscore.calibration_store.validation import Interval

# Bin values stay strictly inside (0, 1) so their log-odds are finite.
_VALUE_CLIP = 1e-9


class HistogramCalibrator(OneVsRestCalibrator):
    """Platt scaling followed by equal-mass binning of its outputs (scaling-binning).

    Parameters
    ----------
    labels : label names, in the column order of the log-probabilities.
    n_bins : number of equal-mass bins (fewer when outputs tie).
    seed : seed of the split into the scaling half and the binning half.
    """

    method = "histogram"
    min_labels = 20
    _parameter_constraints = {
        "n_bins": Interval(Integral, 2, 1000),
        "seed": Interval(Integral, 0, None),
    }

    def __init__(self, labels, *, n_bins: int = 10, seed: int = 0):
        self.labels = labels
        self.n_bins = n_bins
        self.seed = seed

    def _fit_binary(self, log_s, log_rest, target, w) -> dict[str, Any]:
        z = log_s - log_rest
        n = z.shape[0]
        order = np.random.default_rng(self.seed).permutation(n)
        scale_rows, bin_rows = order[: n // 2], order[n // 2 :]
        slope, intercept = fit_logistic(
            z[scale_rows, None], target[scale_rows], w[scale_rows], smoothing=True, C=None, center=np.ones(1)
        )
        g = expit(slope[0] * z[bin_rows] + intercept)
        wb = w[bin_rows]
        edges = bin_edges(g, self.n_bins, "quantile", wb)
        ids = assign_bins(g, edges)
        nb = edges.shape[0] - 1
        weight = np.bincount(ids, weights=wb, minlength=nb)
        sums = np.bincount(ids, weights=wb * g, minlength=nb)
        keep = np.flatnonzero(weight > 0)
        # An empty bin is merged into the next non-empty one: keep the upper edges of
        # the non-empty bins as the inner edges (the last bin is open above).
        inner = edges[1:][keep][:-1]
        values = np.clip(sums[keep] / weight[keep], _VALUE_CLIP, 1.0 - _VALUE_CLIP)
        return {"slope": float(slope[0]), "intercept": intercept, "edges": inner, "values": values}

    def _score_binary(self, log_s, log_rest, model) -> np.ndarray:
        g = expit(model["slope"] * (log_s - log_rest) + model["intercept"])
        inner = model["edges"]
        return logit(model["values"][np.searchsorted(inner, g, side="left")])

    def _load_binary(self, model: Any) -> dict[str, Any]:
        out = load_numbers(model, _SPEC, "histogram")
        if out["values"].shape[0] != out["edges"].shape[0] + 1 or np.any(np.diff(out["edges"]) < 0):
            raise ValueError("histogram calibrator needs sorted edges and one more value than inner edges")
        if out["values"].min() <= 0 or out["values"].max() >= 1:
            raise ValueError("histogram bin values must lie strictly inside (0, 1)")
        return out


_SPEC = {"slope": "scalar", "intercept": "scalar", "edges": "vector_or_empty", "values": "vector"}
