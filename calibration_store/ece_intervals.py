"""Bootstrap intervals for calibration errors (the binned ECE, the smooth ECE), on top-label confidences c,
0/1 outcomes k and row weights w.

Why not the percentile interval (the (1 - level) / 2 quantiles of the resampled figures): a calibration error sums
absolute gaps, so it is biased upwards, and a resample's more so (Efron & Tibshirani 1993, ch. 10: the resamples
sit about one bias above the estimate as the estimate sits above the truth). Their quantiles then lie above the
estimate, shifted the wrong way: on perfectly calibrated samples the percentile interval missed its own estimate
in about 12% of them (a real task printed "ECE 0.016 [0.017, 0.058]") and never contained the true ECE, 0.
`_bias_corrected_interval` says what is used instead and why.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from calscore.calibration_store.binning import DEFAULT_N_BINS, assign_bins, bin_edges, calibration_errors
from calscore.calibration_store.kernel_ece import smece_at_sigma, smece_with_sigma

# Rows per bootstrap resample at most: larger samples are resampled m out of n (`_bias_corrected_interval`).
BOOTSTRAP_ROWS = 10_000


def binned_ece_interval(c: np.ndarray, k: np.ndarray, w: np.ndarray, n_bins: int, n_boot: int, level: float,
                        seed: int) -> tuple[float, float]:
    """The equal-width ECE's interval: rows resampled with replacement, weights kept; it always contains the ECE,
    never goes below 0, and reaches 0 when the rows are consistent with a perfectly calibrated model."""
    _check_bootstrap(n_boot, level)
    binned = _BinnedEce(c, w, n_bins)
    estimate = calibration_errors(c, k, n_bins, "uniform", w)[0]
    return _bias_corrected_interval(estimate, lambda idx: binned(k, idx), binned, k, n_boot, level, seed)


def smooth_ece_interval(c: np.ndarray, k: np.ndarray, w: np.ndarray, n_boot: int, level: float,
                        seed: int) -> tuple[float, float]:
    """The smooth ECE's interval (sigma chosen again in every resample): like the binned ECE it is an absolute
    error, biased upwards, and its percentile interval missed its own estimate in 13-28% of perfectly calibrated
    samples, so it is built as the binned ECE's: basic bootstrap, widened to contain the estimate, 0 when the rows
    are consistent with perfect calibration (that test on the 15-bin ECE). Above BOOTSTRAP_ROWS rows (resampled m
    out of n) every resample keeps the bandwidth chosen on all the rows: with that many rows it barely moves, and
    its search was most of the cost."""
    _check_bootstrap(n_boot, level)
    estimate, sigma = smece_with_sigma(c, k, w)
    if c.shape[0] > BOOTSTRAP_ROWS:  # m out of n: the bandwidth of all the rows, searched once
        def statistic(idx):
            return smece_at_sigma(c[idx], k[idx], w[idx], sigma)
    else:
        def statistic(idx):
            return smece_with_sigma(c[idx], k[idx], w[idx])[0]
    return _bias_corrected_interval(estimate, statistic, _BinnedEce(c, w, DEFAULT_N_BINS), k, n_boot, level, seed)


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
