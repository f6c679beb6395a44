"""Calibration metrics: accuracy, top-label ECE / MCE, smooth and debiased ECE, NLL, Brier, AUROC, reliability bins.

AUROC is scikit-learn's roc_auc_score behind this module's input checks; accuracy,
NLL and Brier are plain numpy (a recalibration scores many candidates on hundreds
of thousands of rows, where scikit-learn's per-call validation dominated), held by
the tests to accuracy_score, log_loss and brier_score_loss; the binned figures
(reliability bins, ECE, MCE and the ECE's bootstrap interval), the smooth ECE and
the debiased ECE are computed here, weighted, as scikit-learn has no such metrics.

Conventions (all functions take optional per-row `weights`, e.g. inverse
inclusion probabilities of an audit sample, and then estimate the figure for
the whole population the labeled rows were drawn from):

- Top-label view (Guo et al. 2017): a row's confidence is its largest
  probability, its prediction that label (first one on ties), correct when it
  equals y.
- Bins are (lower, upper], as in Guo et al. 2017 and Naeini et al. 2015; a
  confidence of exactly 0 goes to the first bin. "uniform" = equal-width bins
  on [0, 1]; "quantile" = equal-mass bins whose edges are quantiles of the
  confidences (weighted quantiles when weights differ). Only bins holding
  rows are reported and counted.
- ECE = sum_b (W_b / W) * |accuracy_b - confidence_b|;
  MCE = max_b |accuracy_b - confidence_b|  (W_b = weight in bin b).
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

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import softmax

from calscore.calibration_store.kernel_ece import smece_at_sigma, smece_with_sigma
from calscore.calibration_store.validation import (
    check_confidence,
    check_logprobs,
    check_probs,
    check_targets,
    check_weights,
)

DEFAULT_N_BINS = 15
STRATEGIES = ("uniform", "quantile")


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


# --- binning -----------------------------------------------------------------------


def bin_edges(values: np.ndarray, n_bins: int, strategy: str, weights: np.ndarray | None = None) -> np.ndarray:
    """Sorted distinct bin edges: equal-width on [0, 1], or quantiles of `values` (equal mass)."""
    _check_binning(n_bins, strategy)
    if strategy == "uniform":
        return np.arange(n_bins + 1) / n_bins  # exact b / n_bins, so a confidence of b / n_bins is an upper edge
    q = np.linspace(0.0, 1.0, n_bins + 1)
    if weights is None or np.all(weights == weights[0]):
        edges = np.quantile(values, q)  # linear interpolation, as np.percentile in calibration_curve
    else:
        edges = np.quantile(values, q, weights=weights, method="inverted_cdf")
    edges = np.unique(edges)
    return edges if edges.shape[0] > 1 else np.repeat(edges, 2)


def assign_bins(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each value for (lower, upper] bins; values at or below the first inner edge go to bin 0."""
    return np.searchsorted(edges[1:-1], values, side="left")


def _check_binning(n_bins: Any, strategy: Any) -> None:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {strategy!r}")


def _bin_stats(c: np.ndarray, k: np.ndarray, w: np.ndarray, edges: np.ndarray):
    ids = assign_bins(c, edges)
    nb = edges.shape[0] - 1
    weight = np.bincount(ids, weights=w, minlength=nb)
    conf_sum = np.bincount(ids, weights=w * c, minlength=nb)
    acc_sum = np.bincount(ids, weights=w * k, minlength=nb)
    count = np.bincount(ids, minlength=nb)
    keep = weight > 0
    return keep, weight, conf_sum, acc_sum, count


def reliability_bins(
    confidence: Any,
    correct: Any,
    n_bins: int = DEFAULT_N_BINS,
    strategy: str = "uniform",
    weights: Any = None,
) -> list[dict[str, float | int]]:
    """The non-empty bins: lower, upper, mean confidence, accuracy (both weighted), count (rows), weight."""
    c, k = check_confidence(confidence, correct)
    w = check_weights(weights, c.shape[0])
    w = np.ones(c.shape[0]) if w is None else w
    edges = bin_edges(c, n_bins, strategy, w)
    keep, weight, conf_sum, acc_sum, count = _bin_stats(c, k, w, edges)
    return [
        {
            "lower": float(edges[b]),
            "upper": float(edges[b + 1]),
            "confidence": float(conf_sum[b] / weight[b]),
            "accuracy": float(acc_sum[b] / weight[b]),
            "count": int(count[b]),
            "weight": float(weight[b]),
        }
        for b in np.flatnonzero(keep)
    ]


def calibration_errors(
    confidence: Any,
    correct: Any,
    n_bins: int = DEFAULT_N_BINS,
    strategy: str = "uniform",
    weights: Any = None,
) -> tuple[float, float]:
    """(ECE, MCE) from top-label confidences and 0/1 correctness."""
    bins = reliability_bins(confidence, correct, n_bins, strategy, weights)
    total = sum(b["weight"] for b in bins)
    gaps = [abs(b["accuracy"] - b["confidence"]) for b in bins]
    ece_value = sum(b["weight"] / total * g for b, g in zip(bins, gaps))
    return float(ece_value), float(max(gaps))


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
    """Bias-corrected bootstrap interval for the equal-width ECE (rows resampled with replacement, weights
    kept); it always contains the ECE, never goes below 0, and reaches 0 when the rows are consistent with a
    perfectly calibrated model.

    Why not the percentile interval (the (1 - level) / 2 quantiles of the resampled ECEs): the binned ECE sums
    absolute bin gaps, so it is biased upwards, and a resample's ECE more so (Efron & Tibshirani 1993, ch. 10:
    the resamples sit about one bias above the estimate as the estimate sits above the truth). Their quantiles
    then lie above the estimate, shifted the wrong way: on perfectly calibrated samples the percentile interval
    missed its own estimate in about 12% of them (a real task printed "ECE 0.016 [0.017, 0.058]") and never
    contained the true ECE, 0. See `_bias_corrected_interval` for the interval used instead and why.
    """
    p, t, w = _checked(probs, y, weights)
    _check_bootstrap(n_boot, level)
    c, k = _top_label(p, t)
    binned = _BinnedEce(c, w, n_bins)
    estimate = calibration_errors(c, k, n_bins, "uniform", w)[0]
    return _bias_corrected_interval(estimate, lambda idx: binned(k, idx), binned, k, n_boot, level, seed)


# Rows per bootstrap resample at most: larger samples are resampled m out of n (`_bias_corrected_interval`).
BOOTSTRAP_ROWS = 10_000


def _check_bootstrap(n_boot: Any, level: Any) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 10:
        raise ValueError(f"n_boot must be an integer >= 10, got {n_boot!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")


class _BinnedEce:
    """The equal-width binned ECE of fixed confidences c and weights w, for any outcomes k and resample idx."""

    def __init__(self, c: np.ndarray, w: np.ndarray, n_bins: int) -> None:
        edges = bin_edges(c, n_bins, "uniform")
        self.c, self.w, self.ids, self.n_bins = c, w, assign_bins(c, edges), edges.shape[0] - 1

    def __call__(self, k: np.ndarray, idx: np.ndarray | None = None, subset: bool = False) -> float:
        """ECE of rows `idx` (all: None) with outcomes `k` of every row, or, `subset`, outcomes of those rows."""
        if idx is None:
            idx = slice(None)
        c, w, k = self.c[idx], self.w[idx], (k if subset else k[idx])
        total = w.sum()
        gaps = np.bincount(self.ids[idx], weights=w * (k - c), minlength=self.n_bins)
        return float(np.abs(gaps).sum() / total) if total > 0 else 0.0


def _bias_corrected_interval(
    estimate: float,
    statistic: Callable[[np.ndarray], float],
    binned: _BinnedEce,
    k: np.ndarray,
    n_boot: int,
    level: float,
    seed: int,
) -> tuple[float, float]:
    """Interval for a calibration error (`statistic` of a resample of row indices; `estimate` on all rows).

    1. The basic bootstrap interval [2 est - q_high, 2 est - q_low] (q: quantiles of n_boot resampled
       figures; Davison & Hinkley 1997, section 5.2): it reads the resamples' spread around the estimate as
       the estimate's spread around the truth, so an upward bias moves it down, where the truth is (the
       bias-corrected estimate 2 est - mean, Efron & Tibshirani 1993, ch. 10, is its centre). BCa
       (Efron & Tibshirani 1993, ch. 14) corrects for bias too, but breaks down in just the failing case: when
       nearly all resamples exceed the estimate its bias constant z0 runs off to minus infinity.
    2. Widened to contain the estimate. The reflection contains it exactly when the percentile interval does,
       so a strong bias puts the whole basic interval below the estimate; widening only adds coverage.
    3. Its low end set to 0 when the rows are consistent with a perfectly calibrated model: a bootstrap
       interval cannot cover a truth on the boundary, ECE = 0 (the resampled figures never go that low), so
       the low end comes from a test of perfect calibration instead: each row drawn right with probability
       its confidence, n_boot times (consistency resampling, Broecker & Smith 2007), and the rows' binned ECE
       compared with those draws' (Monte Carlo p-value above (1 - level) / 2). The binned ECE serves every
       calibration error here: a perfectly calibrated model has each of them at 0, and its draws are cheap.
       Clipped at 0.

    In tests/test_ece_interval.py's simulation (200 samples of 200 to 2,000 rows) it contains the estimate
    always and covers the true 15-bin ECE in 96-99% of perfectly calibrated samples and 86-93% of miscalibrated
    ones (nominal 95%); the percentile interval, on 500 rows: never, and 74%.

    Above `BOOTSTRAP_ROWS` rows the resamples (and the consistency draws) are of `BOOTSTRAP_ROWS` rows, not n:
    the m-out-of-n bootstrap (Bickel & Sakov 2008), whose deviations sqrt(m) (stat_m - est) stand for
    sqrt(n) (est - truth), so each is scaled by sqrt(m / n). A calibration error's sampling spread shrinks as
    1 / sqrt(n), so this keeps the interval's width and its cost fixed, where resampling 200,000 labels 200
    times (with the smooth ECE's bandwidth search in each) took most of a recalibration.
    """
    rng = np.random.default_rng(seed)
    n = k.shape[0]
    m = min(n, BOOTSTRAP_ROWS)
    shrink = np.sqrt(m / n)
    values = estimate + shrink * (np.array([statistic(rng.integers(0, n, size=m)) for _ in range(n_boot)]) - estimate)
    q_low, q_high = np.quantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
    low, high = min(estimate, 2 * estimate - q_high), max(estimate, 2 * estimate - q_low)
    if low > 0:
        observed = binned(k)
        draws = []
        for _ in range(n_boot):
            idx = rng.integers(0, n, size=m)
            draws.append(shrink * binned(rng.random(m) < binned.c[idx], idx, subset=True))
        if (1 + (np.array(draws) >= observed).sum()) / (1 + n_boot) > (1 - level) / 2:
            low = 0.0
    return float(max(low, 0.0)), float(high)


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
    """Bias-corrected bootstrap interval for smooth_ece (rows resampled with replacement, weights kept; sigma
    chosen again in every resample): like the binned ECE the smooth ECE is an absolute error, biased upwards,
    and its percentile interval missed its own estimate in 13-28% of perfectly calibrated samples, so it is
    built as ece_bootstrap_ci's (`_bias_corrected_interval`): basic bootstrap, widened to contain the
    estimate, 0 when the rows are consistent with perfect calibration (that test on the 15-bin ECE). Above
    BOOTSTRAP_ROWS rows (resampled m out of n) every resample keeps the bandwidth chosen on all the rows: with
    that many rows it barely moves, and its search was most of the cost."""
    p, t, w = _checked(probs, y, weights)
    _check_bootstrap(n_boot, level)
    c, k = _top_label(p, t)
    estimate, sigma = smece_with_sigma(c, k, w)
    if c.shape[0] > BOOTSTRAP_ROWS:  # m out of n: the bandwidth of all the rows, searched once
        def statistic(idx):
            return smece_at_sigma(c[idx], k[idx], w[idx], sigma)
    else:
        def statistic(idx):
            return smece_with_sigma(c[idx], k[idx], w[idx])[0]
    return _bias_corrected_interval(estimate, statistic, _BinnedEce(c, w, DEFAULT_N_BINS), k, n_boot, level, seed)


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
    keep, weight, conf_sum, acc_sum, _ = _bin_stats(c, k, w, edges)
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
