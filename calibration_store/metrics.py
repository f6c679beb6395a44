"""Calibration metrics: accuracy, top-label ECE / MCE, smooth and debiased ECE, NLL, Brier, AUROC, reliability bins.

AUROC is scikit-learn's roc_auc_score behind this module's input checks; accuracy,
NLL and Brier are plain numpy (a recalibration scores many candidates on hundreds
of thousands of rows, where scikit-learn's per-call validation dominated), held by
the tests to accuracy_score, log_loss and brier_score_loss; the binned figures
(reliability bins, ECE, MCE: `binning`; their bootstrap intervals: `ece_intervals`),
the smooth ECE and the debiased ECE are computed here, weighted, as scikit-learn has
no such metrics.

Conventions (all functions take optional per-row `weights`, e.g. inverse
inclusion probabilities of an audit sample, and then estimate the figure for
the whole population the labeled rows were drawn from):

- Top-label view (Guo et al. 2017): a row's confidence is its largest
  probability, its prediction that label (first one on ties), correct when it
  equals y.
- Bins, ECE and MCE: as `binning` defines them.
- smooth ECE (Blasiok & Nakkiran 2023) of the top-label confidence: binning
  replaced by Gaussian kernel smoothing, its width chosen from the data; the
  same figure as the authors' relplot package (smECE). Binned ECE on a few
  hundred rows is mostly binning noise; the smooth ECE much less so.
- debiased ECE (Kumar, Liang & Ma 2019): the l2 binned error on equal-mass
  bins with each bin's label-noise bias subtracted.
- NLL = mean of -log p(y), the true label's probability in the full label
  distribution, with p(y) floored at machine epsilon (as scikit-learn's
  log_loss clips). For two labels it is the usual binary log loss.
- Brier = mean of (1/2) * sum_k (p_k - [y == k])^2 over the K labels: the
  original multi-class Brier score (Brier 1950) halved, so that for two labels
  it equals the usual binary Brier score (p(l1) - y)^2, and lies in [0, 1] for
  any K (scikit-learn: brier_score_loss(..., scale_by_half=True)).
- AUROC of the confidence for telling correct from wrong rows (ties count
  half); None when all rows are correct or all wrong.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import softmax

from calscore.calibration_store.binning import (
    DEFAULT_N_BINS,
    assign_bins,
    bin_edges,
    bin_stats,
    calibration_errors,
    reliability_bins,
)
from calscore.calibration_store.ece_intervals import binned_ece_interval, smooth_ece_interval
from calscore.calibration_store.kernel_ece import smece_with_sigma
from calscore.calibration_store.validation import (
    check_confidence,
    check_logprobs,
    check_probs,
    check_targets,
    check_weights,
)


def raw_probs(logprobs: Any) -> np.ndarray:
    """The raw label distribution: softmax over the K label log-probs = each label's share of the label mass."""
    x = np.asarray(logprobs)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"logprobs must have shape (n, K) with K >= 2 labels, got {x.shape}")
    return softmax(check_logprobs(x, x.shape[1]), axis=1)


def _checked(probs: Any, y: Any, weights: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = check_probs(probs)
    t = check_targets(y, p.shape[0], p.shape[1])
    w = check_weights(weights, p.shape[0])
    return p, t, np.ones(p.shape[0]) if w is None else w


def _top_label(p: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.argmax(p, axis=1)
    return p[np.arange(p.shape[0]), pred], (pred == t).astype(np.float64)


def accuracy(probs: Any, y: Any, weights: Any = None) -> float:
    """Weighted share of rows whose most probable label is the true one."""
    p, t, w = _checked(probs, y, weights)
    return float(w @ (np.argmax(p, axis=1) == t) / w.sum())


def nll(probs: Any, y: Any, weights: Any = None) -> float:
    """Weighted mean negative log-likelihood of the true label (natural log), each p floored at the float
    epsilon as scikit-learn's log_loss does; a certain and correct row costs exactly nothing (log_loss would
    also cap p at 1 - eps and charge it eps). Plain numpy: recalibrations score many candidates on hundreds of
    thousands of rows, where log_loss's validation took most of the time (the tests hold it to log_loss)."""
    p, t, w = _checked(probs, y, weights)
    p_true = p[np.arange(p.shape[0]), t]
    loss = np.where(p_true < 1.0, -np.log(np.maximum(p_true, np.finfo(np.float64).eps)), 0.0)
    return float(w @ loss / w.sum())


def brier(probs: Any, y: Any, weights: Any = None) -> float:
    """Weighted mean of (1/2) sum_k (p_k - [y == k])^2; the usual binary Brier score for two labels (halved for
    every K: scikit-learn's "auto" halves only for two labels, the convention here always does)."""
    p, t, w = _checked(probs, y, weights)
    onehot = np.zeros_like(p)
    onehot[np.arange(p.shape[0]), t] = 1.0
    return float(w @ (0.5 * ((p - onehot) ** 2).sum(axis=1)) / w.sum())


def auroc(probs: Any, y: Any, weights: Any = None) -> float | None:
    """AUROC of the top-label confidence for correctness; None when there are no correct or no wrong rows."""
    p, t, w = _checked(probs, y, weights)
    conf, correct = _top_label(p, t)
    return auroc_from_confidence(conf, correct, w)


def auroc_from_confidence(confidence: Any, correct: Any, weights: Any = None) -> float | None:
    """Weighted Mann-Whitney AUC: P(conf of a correct row > conf of a wrong row) + P(tie) / 2."""
    c, k = check_confidence(confidence, correct)
    w = check_weights(weights, c.shape[0])
    w = np.ones(c.shape[0]) if w is None else w
    # roc_auc_score raises on a single class; a class present only with weight 0 is just as undefined.
    if w @ k <= 0 or w @ (1.0 - k) <= 0:
        return None
    from sklearn.metrics import roc_auc_score  # where used: see the package docstring

    return float(roc_auc_score(k, c, sample_weight=w))


# --- binned ECE and MCE (the bins: binning; the interval: ece_intervals) ------------------


def ece(probs: Any, y: Any, n_bins: int = DEFAULT_N_BINS, strategy: str = "uniform", weights: Any = None) -> float:
    """Top-label expected calibration error (Guo et al. 2017; Naeini et al. 2015)."""
    p, t, w = _checked(probs, y, weights)
    return calibration_errors(*_top_label(p, t), n_bins, strategy, w)[0]


def mce(probs: Any, y: Any, n_bins: int = DEFAULT_N_BINS, strategy: str = "uniform", weights: Any = None) -> float:
    """Top-label maximum calibration error over the non-empty bins."""
    p, t, w = _checked(probs, y, weights)
    return calibration_errors(*_top_label(p, t), n_bins, strategy, w)[1]


def ece_bootstrap_ci(
    probs: Any,
    y: Any,
    weights: Any = None,
    n_bins: int = DEFAULT_N_BINS,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Bias-corrected bootstrap interval for the equal-width top-label ECE (`ece_intervals`: rows resampled with
    replacement, weights kept); it always contains the ECE, never goes below 0, and reaches 0 when the rows are
    consistent with a perfectly calibrated model."""
    p, t, w = _checked(probs, y, weights)
    return binned_ece_interval(*_top_label(p, t), w, n_bins, n_boot, level, seed)


# --- smooth ECE (the estimator: kernel_ece) and debiased ECE (Kumar et al. 2019) --------------


def smooth_ece(probs: Any, y: Any, weights: Any = None) -> float:
    """Top-label smooth ECE (Blasiok & Nakkiran 2023, "Smooth ECE: principled reliability diagrams via kernel
    smoothing"), computed as relplot 1.0.3's smECE on (confidence, correct).

    The residuals confidence - correct are smoothed with a Gaussian kernel of width sigma (reflected at 0 and
    1), and smECE_sigma is their mean absolute value under the kernel density of the confidences; sigma is
    the fixed point smECE_sigma = sigma, found by bisection. No bins, so no binning noise: on a few hundred
    rows it moves far less with the sample than the binned ECE. Weights scale each row's share of the
    smoothing (relplot has none; integer weights give the figure of the repeated rows).
    """
    p, t, w = _checked(probs, y, weights)
    return smece_with_sigma(*_top_label(p, t), w)[0]


def smece_bootstrap_ci(
    probs: Any, y: Any, weights: Any = None, n_boot: int = 200, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Bias-corrected bootstrap interval for smooth_ece (`ece_intervals.smooth_ece_interval`)."""
    p, t, w = _checked(probs, y, weights)
    return smooth_ece_interval(*_top_label(p, t), w, n_boot, level, seed)


def debiased_ece(
    probs: Any, y: Any, n_bins: int = DEFAULT_N_BINS, weights: Any = None, squared: bool = False
) -> float:
    """Top-label debiased l2 calibration error (Kumar, Liang & Ma 2019, "Verified Uncertainty Calibration").

    The variant: equal-mass bins (the quantile bins of ece_equal_mass), and in each bin the unbiased
    estimate of the squared gap, (confidence_b - accuracy_b)^2 - accuracy_b (1 - accuracy_b) / (n_b - 1):
    the plug-in square less the variance the labels' noise adds to it, as `unbiased_l2_ce` in the authors'
    package (uncertainty-calibration) computes it; that package puts bin edges midway between neighbouring
    confidences, here they are quantiles. A bin of fewer than 2 rows adds 0. The bins' sum, weighted by
    W_b / W, is clipped at 0 and square-rooted: an l2 error, so compare it with l2 figures, not with the
    (l1) ECE. squared=True returns the sum itself, an unbiased estimate of the squared binned error, which
    can be negative.

    With weights, n_b is the bin's effective size (sum w)^2 / sum w^2, which keeps the correction unbiased.
    """
    p, t, w = _checked(probs, y, weights)
    c, k = _top_label(p, t)
    edges = bin_edges(c, n_bins, "quantile", w)
    keep, weight, conf_sum, acc_sum, _ = bin_stats(c, k, w, edges)
    weight_sq = np.bincount(assign_bins(c, edges), weights=w * w, minlength=weight.shape[0])
    n_eff = np.divide(weight**2, weight_sq, out=np.zeros_like(weight), where=keep)
    keep &= n_eff > 1 + 1e-9  # unweighted: n_eff is the bin's row count, so at least 2 rows
    wb, n_eff = weight[keep], n_eff[keep]
    conf, acc = conf_sum[keep] / wb, acc_sum[keep] / wb
    square = (conf - acc) ** 2 - acc * (1 - acc) / (n_eff - 1)
    total = float(wb @ square / w.sum())
    return total if squared else float(np.sqrt(max(total, 0.0)))


def reliability_report(
    probs: Any,
    y: Any,
    weights: Any = None,
    n_bins: int = DEFAULT_N_BINS,
    n_boot: int = 200,
    seed: int = 0,
    intervals: bool = True,
) -> dict[str, Any]:
    """All figures of a reliability snapshot, JSON-safe (floats, ints, None; never NaN); without `intervals`
    the ECE and smooth-ECE intervals are None (the bootstraps are most of the cost)."""
    p, t, w = _checked(probs, y, weights)
    conf, correct = _top_label(p, t)
    ece_w, mce_w = calibration_errors(conf, correct, n_bins, "uniform", w)
    ece_m, _ = calibration_errors(conf, correct, n_bins, "quantile", w)
    low, high = ece_bootstrap_ci(p, t, w, n_bins=n_bins, n_boot=n_boot, seed=seed) if intervals else (None, None)
    smece, sigma = smece_with_sigma(conf, correct, w)
    sm_low, sm_high = smece_bootstrap_ci(p, t, w, n_boot=n_boot, seed=seed) if intervals else (None, None)
    return {
        "n": int(p.shape[0]),
        "weighted": weights is not None,
        "n_bins": int(n_bins),
        "accuracy": accuracy(p, t, w),
        "ece": ece_w,
        "ece_equal_mass": ece_m,
        "ece_ci_low": low,
        "ece_ci_high": high,
        "mce": mce_w,
        "smece": smece,
        "smece_ci_low": sm_low,
        "smece_ci_high": sm_high,
        "smece_sigma": sigma,
        "debiased_ece": debiased_ece(p, t, n_bins, w),
        "nll": nll(p, t, w),
        "brier": brier(p, t, w),
        "auroc": auroc_from_confidence(conf, correct, w),
        "bins": reliability_bins(conf, correct, n_bins, "uniform", w),
    }
