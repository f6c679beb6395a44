"""Two calibrators on the same rows: a paired bootstrap of the NLL gain and the ECE increase.

`paired_bootstrap(challenger_probs, baseline_probs, y, weights)` resamples the rows with
replacement (the same resample for both, weights kept) and gives each difference with its
one-sided bounds; `promotion.verdict` turns that into a decision. The compared ECE is any
`(probs, y, weights) -> float`; `BinnedEce` (the default) also computes many resamples at once.

**Many rows.** Above `LARGE_N` rows (20,000) drawing n row indices a thousand times costs more than
the fits it judges (200 million draws at 200,000 labels), and buys nothing: both differences depend
on the rows only through sums over cells (a cell: the pair of ECE bins a row falls in for the two
calibrators): its weight, both calibrators' weighted gaps (correct - confidence) and its weighted
log-loss difference. A Poisson bootstrap (each row drawn Poisson(1) times; Hanley & MacGibbon 2006,
Chamandy et al. 2012, "Estimating uncertainty for massive data streams") resamples each cell's sums
independently with mean the sums and covariance the sum of the rows' outer products, and with tens
of thousands of rows the central limit theorem makes those resampled sums normal. So `_cell_draws`
draws the at most 15 x 15 cells' sums from that normal and computes both differences from them:
for the NLL gain this is the normal approximation of a (weighted) mean difference; for the ECE the
absolute value per bin is still applied to each resample, so the binned ECE's bias is reproduced as
the row bootstrap reproduces it. A cell with few rows is poorly approximated, and weighs as little.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from calscore.calibration_store import metrics
from calscore.calibration_store.validation import (
    check_probs,
    check_targets,
    check_weights,
)

N_RESAMPLES = 1000
LEVEL = 0.95  # one-sided confidence of each bound
LARGE_N = 20_000  # rows above which the resampling runs on cell sums (module docstring)
_CHUNK_CELLS = 2_000_000  # row indices drawn per bootstrap chunk (16 MB)

EceFunction = Callable[[np.ndarray, np.ndarray, "np.ndarray | None"], float]


class BinnedEce:
    """The top-label ECE on `n_bins` equal-width bins (metrics.ece) as a `(probs, y, weights)` function.

    Any such function can be the compared ECE; this one also offers `resampled`,
    the same figure for many bootstrap resamples at once (what makes a
    1,000-resample comparison cheap), equal to calling it on each resample.
    """

    def __init__(self, n_bins: int = metrics.DEFAULT_N_BINS):
        self.n_bins = n_bins
        self.metric_name = f"ECE ({n_bins} equal-width bins)"

    def __call__(self, probs: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
        return metrics.ece(probs, y, self.n_bins, "uniform", weights)

    def resampled(self, probs: np.ndarray, y: np.ndarray, weights: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """ECE of each resample, rows `idx[i]`: sum over bins of |sum w (correct - confidence)| / sum w."""
        pred = np.argmax(probs, axis=1)
        conf = probs[np.arange(probs.shape[0]), pred]
        edges = metrics.bin_edges(conf, self.n_bins, "uniform")
        bins, nb = metrics.assign_bins(conf, edges), edges.shape[0] - 1
        gap = weights * ((pred == y) - conf)
        rows = np.arange(idx.shape[0])[:, None] * nb + bins[idx]
        sums = np.bincount(rows.ravel(), weights=gap[idx].ravel(), minlength=idx.shape[0] * nb)
        return np.abs(sums.reshape(idx.shape[0], nb)).sum(axis=1) / weights[idx].sum(axis=1)


def metric_name(ece: EceFunction) -> str:
    return getattr(ece, "metric_name", None) or getattr(ece, "__name__", None) or type(ece).__name__


class Interval(NamedTuple):
    """A paired difference on the compared rows and its one-sided bounds (percentiles of the resamples)."""

    estimate: float
    low: float
    high: float

    def text(self) -> str:
        return f"{self.estimate:+.4f} [{self.low:+.4f}, {self.high:+.4f}]"


@dataclass(frozen=True)
class PairedComparison:
    """Challenger vs baseline on the same rows: the paired bootstrap of both differences."""

    n: int
    nll_gain: Interval  # NLL(baseline) - NLL(challenger): > 0 means the challenger is better
    ece_increase: Interval  # ECE(challenger) - ECE(baseline): > 0 means the challenger is worse
    ece_metric: str
    n_resamples: int
    seed: int
    level: float  # of the ECE increase's bounds
    gain_level: float  # of the NLL gain's bounds (higher when a choice among recipes is adjusted for)
    method: str = "paired bootstrap"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, as recorded with the decision."""
        return {
            "method": self.method,
            "n": self.n,
            "n_resamples": self.n_resamples,
            "seed": self.seed,
            "level": self.level,
            "gain_level": self.gain_level,
            "bounds": f"one-sided, {_pct(self.gain_level)} for the NLL gain and {_pct(self.level)} for the ECE increase",
            "metrics": ["nll", self.ece_metric],
            "nll_gain": self.nll_gain._asdict(),
            "ece_increase": self.ece_increase._asdict(),
        }

    def text(self) -> str:
        return (
            f"NLL gain {self.nll_gain.text()}, ECE increase {self.ece_increase.text()} "
            f"({self.ece_metric}; bounds one-sided, {_pct(self.gain_level)} for the gain and {_pct(self.level)} "
            f"for the ECE; {self.method} of {self.n} rows, {self.n_resamples} resamples, seed {self.seed})"
        )


def _pct(level: float) -> str:
    """95% or 99.38%: as many decimals as the level needs."""
    return f"{100 * level:.4g}%"


def _row_losses(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """-log p(y) per row, floored at machine epsilon as metrics.nll; a certain and correct row costs 0."""
    return -np.log(np.maximum(p[np.arange(p.shape[0]), t], np.finfo(np.float64).eps))


def paired_bootstrap(
    challenger_probs: Any,
    baseline_probs: Any,
    y: Any,
    weights: Any = None,
    *,
    ece: EceFunction | None = None,
    n_resamples: int = N_RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
    gain_level: float | None = None,
) -> PairedComparison:
    """Paired percentile bootstrap of NLL(baseline) - NLL(challenger) and ECE(challenger) - ECE(baseline).

    Both calibrators' probabilities are for the same rows; each resample draws
    n rows with replacement (weights travel with their rows) and computes both
    differences on it, so what the rows have in common cancels (Efron &
    Tibshirani 1993, ch. 13, percentile interval). The estimates are the
    differences on all rows (weighted as metrics.nll and `ece`); the bounds
    are the (1 - level) and level percentiles of the resampled differences
    (`gain_level`, default `level`, for the NLL gain). Above `LARGE_N` rows,
    with the binned ECE, the resampling runs on cell sums (module docstring).
    """
    pc, pb = check_probs(challenger_probs), check_probs(baseline_probs)
    if pc.shape != pb.shape:
        raise ValueError(f"challenger and baseline probabilities differ in shape: {pc.shape} vs {pb.shape}")
    t = check_targets(y, pc.shape[0], pc.shape[1])
    w = check_weights(weights, pc.shape[0])
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 100:
        raise ValueError(f"n_resamples must be an integer >= 100, got {n_resamples!r}")
    gain_level = level if gain_level is None else gain_level
    for name, value in (("level", level), ("gain_level", gain_level)):
        if not 0.5 < value < 1:
            raise ValueError(f"{name} must be in (0.5, 1), got {value!r}")
    ece = BinnedEce() if ece is None else ece
    n = t.shape[0]
    ww = np.ones(n) if w is None else w
    gain = _row_losses(pb, t) - _row_losses(pc, t)
    estimate = (float(ww @ gain / ww.sum()), float(ece(pc, t, w) - ece(pb, t, w)))
    rng = np.random.default_rng(seed)
    if n > LARGE_N and isinstance(ece, BinnedEce):
        draws, method = _cell_draws(pc, pb, t, ww, gain, ece.n_bins, n_resamples, rng), "paired Poisson bootstrap of cell sums"
    else:
        draws, method = _row_draws(pc, pb, t, w, ww, gain, ece, n_resamples, rng), "paired bootstrap"
    gain_bounds = np.nanquantile(draws[:, 0], [1 - gain_level, gain_level])
    ece_bounds = np.nanquantile(draws[:, 1], [1 - level, level])
    return PairedComparison(
        n=n,
        nll_gain=Interval(estimate[0], float(gain_bounds[0]), float(gain_bounds[1])),
        ece_increase=Interval(estimate[1], float(ece_bounds[0]), float(ece_bounds[1])),
        ece_metric=metric_name(ece),
        n_resamples=int(n_resamples),
        seed=int(seed),
        level=float(level),
        gain_level=float(gain_level),
        method=method,
    )


def _row_draws(pc, pb, t, w, ww, gain, ece, n_resamples, rng) -> np.ndarray:
    """(n_resamples, 2) resampled (NLL gain, ECE increase): rows drawn with replacement, a chunk at a time."""
    n = t.shape[0]
    draws = np.full((n_resamples, 2), np.nan)
    chunk = max(1, min(n_resamples, _CHUNK_CELLS // n))  # resamples drawn at once: memory stays bounded
    for start in range(0, n_resamples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_resamples - start), n))
        total = ww[idx].sum(axis=1)
        ok = total > 0  # with zero weights a resample can hold no weight at all: left out
        idx, out = idx[ok], draws[start : start + idx.shape[0]]
        out[ok, 0] = (ww[idx] * gain[idx]).sum(axis=1) / total[ok]
        if hasattr(ece, "resampled"):
            out[ok, 1] = ece.resampled(pc, t, ww, idx) - ece.resampled(pb, t, ww, idx)
        else:
            out[ok, 1] = [ece(pc[i], t[i], None if w is None else w[i]) - ece(pb[i], t[i], None if w is None else w[i])
                          for i in idx]
    return draws


def _cell_draws(pc, pb, t, ww, gain, n_bins, n_resamples, rng) -> np.ndarray:
    """(n_resamples, 2) resampled (NLL gain, ECE increase) from normal draws of the cells' sums (module docstring)."""
    edges = metrics.bin_edges(np.zeros(0), n_bins, "uniform")
    nb = edges.shape[0] - 1
    columns, bins = [ww], []
    for p in (pc, pb):
        pred = np.argmax(p, axis=1)
        conf = p[np.arange(p.shape[0]), pred]
        columns.append(ww * ((pred == t) - conf))
        bins.append(metrics.assign_bins(conf, edges))
    columns.append(ww * gain)
    v = np.column_stack(columns)  # per row: weight, challenger gap, baseline gap, loss difference
    cells, cell = np.unique(bins[0] * nb + bins[1], return_inverse=True)
    m, d = cells.shape[0], v.shape[1]
    sums = np.stack([np.bincount(cell, weights=v[:, j], minlength=m) for j in range(d)], axis=1)
    outer = np.stack([np.bincount(cell, weights=v[:, i] * v[:, j], minlength=m)
                      for i in range(d) for j in range(d)], axis=1).reshape(m, d, d)
    values, vectors = np.linalg.eigh(outer)  # covariance square roots: symmetric, maybe singular
    roots = vectors * np.sqrt(np.clip(values, 0.0, None))[:, None, :]
    drawn = sums + np.einsum("mij,bmj->bmi", roots, rng.standard_normal((n_resamples, m, d)))
    total = drawn[:, :, 0].sum(axis=1)
    in_bin = [np.equal.outer(cells // nb, np.arange(nb)), np.equal.outer(cells % nb, np.arange(nb))]
    ece_c, ece_b = (np.abs(drawn[:, :, 1 + i] @ in_bin[i]).sum(axis=1) / total for i in range(2))
    draws = np.column_stack([drawn[:, :, 3].sum(axis=1) / total, ece_c - ece_b])
    draws[total <= 0] = np.nan  # a resample with no weight at all says nothing
    return draws
