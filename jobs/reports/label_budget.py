"""Label budget: how calibration quality grows with the number of labeled rows.

One held-out set is drawn once (a seeded share of the labeled rows, at most
`max_holdout` of them) and never touched by a fit. For each budget n (100, 200,
500, 1,000, ... below the pool size) at least `n_repeats` random subsamples of
n rows are drawn from the rest;
a calibrator is fitted on each (with its rows' weights) and scored on the
held-out set with calibration_store.metrics. A point is the mean over those
fits and the 2.5-97.5 percentile range of the figure: what a label budget of n
is likely to give. The last point, "all", fits the whole pool once (every
subsample of all the rows is the same set, so it has no spread). The spread
does not include the held-out set's own sampling noise, which is common to
every point.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure

from calscore.calibration_store import metrics
from calscore.calibration_store.registry import make_calibrator
from calscore.jobs.reports.plotting import CALIBRATED_COLOR, RAW_COLOR, error_bars, save

SIZES = (100, 200, 500, 1000)
FIGURES = ("ece", "nll", "brier", "accuracy")


def _figures(probs: np.ndarray, y: np.ndarray, w: np.ndarray, n_bins: int) -> dict[str, float]:
    return {
        "ece": metrics.ece(probs, y, n_bins=n_bins, weights=w),
        "nll": metrics.nll(probs, y, weights=w),
        "brier": metrics.brier(probs, y, weights=w),
        "accuracy": metrics.accuracy(probs, y, weights=w),
    }


def label_budget(
    logprobs: Any,
    y: Any,
    labels: Sequence[str],
    method: str,
    weights: Any = None,
    sizes: Sequence[int] = SIZES,
    n_repeats: int = 20,
    holdout_fraction: float = 0.3,
    max_holdout: int = 10_000,
    seed: int = 0,
    n_bins: int = metrics.DEFAULT_N_BINS,
) -> dict:
    """Held-out calibration figures against the number of labels used to fit `method`.

    Returns {"method", "n_repeats", "holdout_n", "pool_n", "holdout_index" (positions of the held-out rows),
    "raw": figures of the uncalibrated scores on the held-out set,
    "points": [{"size", "label" ("100" ... or "all"), "n_fits", "failed_fits", "<figure>_mean", "<figure>_low",
    "<figure>_high" for ece, nll, brier, accuracy}]}.
    """
    x = np.asarray(logprobs, dtype=float)
    t = np.asarray(y, dtype=np.int64)
    w = np.ones(t.shape[0]) if weights is None else np.asarray(weights, dtype=float)
    if n_repeats < 20:
        raise ValueError(f"n_repeats must be at least 20 for a 95% range, got {n_repeats}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(t.shape[0])
    # every one of the ~80 fits is scored on the held-out set: past 10,000 rows its figures are as exact as the
    # curve can show, and the report's time would keep growing with the labels
    n_hold = min(int(round(holdout_fraction * t.shape[0])), max_holdout)
    hold, pool = order[:n_hold], order[n_hold:]
    if n_hold < 20 or pool.shape[0] < 20:
        raise ValueError(f"{t.shape[0]} labeled rows are too few for a label-budget curve (need at least ~70)")
    hold_x, hold_y, hold_w = x[hold], t[hold], w[hold]
    raw = _figures(metrics.raw_probs(hold_x), hold_y, hold_w, n_bins)

    def score(idx: np.ndarray) -> dict[str, float]:
        cal = make_calibrator(method, list(labels)).fit(x[idx], t[idx], sample_weight=w[idx])
        return _figures(cal.predict_proba(hold_x), hold_y, hold_w, n_bins)

    points = []
    budgets = [int(s) for s in sorted(set(sizes)) if 0 < s < pool.shape[0]] + [int(pool.shape[0])]
    for size in budgets:
        is_all = size == pool.shape[0]
        runs, failed = [], 0
        attempts = 1 if is_all else 3 * n_repeats
        while len(runs) < (1 if is_all else n_repeats) and attempts > 0:
            attempts -= 1
            idx = pool if is_all else rng.choice(pool, size=size, replace=False)
            try:
                runs.append(score(idx))
            except ValueError:  # e.g. a subsample with a single label: that fit is impossible, not a bad one
                failed += 1
        point = {"size": size, "label": "all" if is_all else str(size), "n_fits": len(runs), "failed_fits": failed}
        for name in FIGURES:
            values = np.array([r[name] for r in runs], dtype=float)
            point[f"{name}_mean"] = float(values.mean()) if values.size else None
            point[f"{name}_low"] = float(np.percentile(values, 2.5)) if values.size else None
            point[f"{name}_high"] = float(np.percentile(values, 97.5)) if values.size else None
        points.append(point)
    return {"method": method, "holdout_n": int(n_hold), "pool_n": int(pool.shape[0]), "raw": raw, "points": points,
            "n_repeats": n_repeats, "holdout_index": np.sort(hold)}


def label_budget_chart(result: dict, path: Path, title: str | None = None) -> dict:
    """ECE and NLL on the held-out set against labels used (mean, 95% range), raw as a dashed line."""
    points = [p for p in result["points"] if p["n_fits"]]
    sizes = [p["size"] for p in points]
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    for ax, name, label in ((axes[0], "ece", "ECE (15 bins)"), (axes[1], "nll", "NLL")):
        mean = np.array([p[f"{name}_mean"] for p in points])
        low = np.array([p[f"{name}_low"] for p in points])
        high = np.array([p[f"{name}_high"] for p in points])
        ax.errorbar(sizes, mean, yerr=error_bars(mean, low, high), fmt="o-", color=CALIBRATED_COLOR, capsize=4,
                    label=f"{result['method']}, mean and 95% range")
        ax.axhline(result["raw"][name], color=RAW_COLOR, linestyle="--", linewidth=1, label="raw (uncalibrated)")
        ax.set_xscale("log")
        ax.set_xticks(sizes, [p["label"] if p["label"] != "all" else f"all\n({p['size']})" for p in points])
        ax.minorticks_off()
        ax.set(xlabel="labeled rows used to fit", ylabel=f"held-out {label}")
        ax.legend(fontsize=8)
    fig.suptitle(title or f"Label budget: held-out set of {result['holdout_n']} rows", fontsize=11)
    return {"path": save(fig, path), **result}
