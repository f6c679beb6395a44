"""The smooth ECE's estimator (Blasiok & Nakkiran 2023) on top-label confidences and outcomes.

It follows relplot 1.0.3 (the authors' package; relplot.metrics.smECE with its default
ReflectedGaussianKernel) step by step, so the figures agree with it to rounding;
tests/test_smooth_ece.py checks that. The only departures: weights (relplot has none), and FFT
instead of direct convolution. `metrics.smooth_ece` and the reliability report call it.
"""
from __future__ import annotations

import numpy as np
from scipy.fft import next_fast_len

from calscore.calibration_store.validation import normalised_weights

_SMECE_MIN_SIGMA = 1e-3  # relplot smECE(eps=0.001): a narrower kernel counts as too narrow
_SMECE_STEPS = 10  # relplot search_param(refine=10): bisection steps for sigma
_SMECE_MESH = 200  # relplot config.smECE_mesh_pts: points the error is averaged over, at least
_SMECE_DENSITY_FLOOR = 1e-4  # relplot BaseKernelMixin.smooth(eps): keeps empty regions from dividing by 0


class _KernelSmoother:
    """Per-row values of data points at c, spread onto a grid on [0, 1] and smoothed with a Gaussian kernel
    reflected at 0 and 1 (relplot GaussianKernel.apply with ReflectedGaussianKernel.convolve), any bandwidth.

    The grid's size depends on sigma only below 0.01; its spectrum is kept per size, so each bandwidth the
    search tries costs one kernel transform and one inverse FFT.
    """

    def __init__(self, c: np.ndarray, values: np.ndarray) -> None:
        self.c, self.values = c, values
        self._spectra: dict[int, tuple[int, np.ndarray]] = {}

    def _spectrum(self, m: int) -> tuple[int, np.ndarray]:
        if m not in self._spectra:
            # each point split linearly between its two neighbouring grid points (relplot smooth_round_to_grid)
            pos = self.c * (m - 1)
            i = np.clip(pos.astype(np.int64), 0, m - 2)
            frac = pos - i
            on_grid = np.stack([np.bincount(i, weights=(1 - frac) * v, minlength=m)
                                + np.bincount(i + 1, weights=frac * v, minlength=m) for v in self.values])
            mirrored = on_grid[:, ::-1]  # reflected once each side, the edge point not repeated
            extended = np.concatenate([mirrored[:, :-1], on_grid, mirrored[:, 1:]], axis=1)
            size = next_fast_len(extended.shape[1])  # circular wrap-around only reaches outputs left unused
            self._spectra[m] = size, np.fft.rfft(extended, size, axis=1)
        return self._spectra[m]

    def smooth(self, sigma: float) -> tuple[np.ndarray, np.ndarray]:
        """(grid, smoothed values on it), one row per row of values."""
        m = max(2000, round(20 / sigma)) // 2 + 1
        size, spectrum = self._spectrum(m)
        grid = np.linspace(0.0, 1.0, m)
        kernel = np.exp(-((grid - 0.5) ** 2) / (2 * sigma**2)) / (np.sqrt(2 * np.pi) * sigma)  # cut at +-1/2
        full = np.fft.irfft(spectrum * np.fft.rfft(kernel, size), size, axis=1)
        start = m - 1 + m // 2  # np.convolve(extended, kernel, "valid")[m // 2: m // 2 + m], as relplot
        return grid, full[:, start: start + m]


def _smece_at(smoother: _KernelSmoother, sigma: float) -> float:
    """smECE_sigma: the density-weighted mean |kernel-smoothed residual| (relplot metrics.smooth_ece)."""
    grid, (res, dens) = smoother.smooth(sigma)
    t = np.linspace(0.0, 1.0, max(round(10 / sigma), _SMECE_MESH))
    density = np.interp(t, grid, dens) + _SMECE_DENSITY_FLOOR
    # sum |res / density| * density / sum density
    return float(np.abs(np.interp(t, grid, res)).sum() / density.sum())


def smece_at_sigma(c: np.ndarray, k: np.ndarray, w: np.ndarray, sigma: float) -> float:
    """smECE_sigma at a given bandwidth (no search): what a bootstrap of many rows resamples, where the
    bandwidth found on all of them barely moves."""
    if w.sum() <= 0:
        return 0.0
    w = normalised_weights(w, c.shape[0])
    return _smece_at(_KernelSmoother(c, np.stack([w * (c - k), w])), sigma)


def smece_with_sigma(c: np.ndarray, k: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """(smECE, sigma) of confidences c for outcomes k; sigma is the fixed point smECE_sigma = sigma.

    sigma is found by bisection on [0, 1] as relplot's search_param does: 10 halvings, keeping the
    upper end (the smallest sigma seen with smECE_sigma <= sigma); sigma < 0.001 counts as below.
    """
    total = w.sum()
    if total <= 0:
        return 0.0, 1.0
    w = normalised_weights(w, c.shape[0])  # mean 1: unit weights are relplot's, the density floor keeps its scale
    smoother = _KernelSmoother(c, np.stack([w * (c - k), w]))
    hi, lo = 1.0, 0.0  # smECE_sigma <= sigma at hi; smECE_sigma > sigma (or sigma < 0.001) at lo
    if _smece_at(smoother, hi) <= hi:  # else sigma = 1, as relplot (smECE_1 > 1 cannot happen for c in [0, 1])
        for _ in range(_SMECE_STEPS):
            mid = (hi + lo) / 2
            if mid < _SMECE_MIN_SIGMA or mid < _smece_at(smoother, mid):
                lo = mid
            else:
                hi = mid
    return _smece_at(smoother, hi), hi
