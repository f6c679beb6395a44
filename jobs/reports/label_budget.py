"""Label budget: how calibration quality grows with the number of labeled rows, and how many are enough.

One held-out set is drawn once (a seeded share of the labeled rows, at most
`max_holdout` of them) and never touched by a fit. For each budget n (100, 200,
500, 1,000, 2,000, ... up to half the pool) random subsamples of n rows are drawn
from the rest, the same subsamples for every calibration method; a calibrator is
fitted on each (with its rows' weights) and scored on the held-out set. A point
is the mean over those fits and the 2.5-97.5 percentile range of the figure:
what a label budget of n is likely to give. The last point, "all", fits the whole
pool once (every subsample of all the rows is the same set, so it has no spread).
The spread does not include the held-out set's own sampling noise, which is
common to every point (and to every method).

The answer to "how many labels do I need?", per method: the smallest budget n
tried at which at least 90% of the subsamples' fits are within tolerance of the
all-labels fit on the held-out set -- held-out NLL at most `nll_tolerance` nats
above it and held-out ECE at most `ece_tolerance` above it (a fit that does
better is within). A subsample whose fit is impossible (e.g. a single label)
counts as not within. When no budget tried qualifies (half the labels fall short
of all of them), the answer is "more than the labels you have".
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from calscore.calibration_store import metrics
from calscore.calibration_store.methods import CANDIDATES
from calscore.calibration_store.registry import make_calibrator
from calscore.jobs.reports.plotting import CALIBRATED_COLOR, RAW_COLOR, error_bars, legend_outside, save

SIZES = (100, 200, 500, 1000, 2000, 5000, 10_000)
FIGURES = ("ece", "nll", "brier", "accuracy")
NLL_TOLERANCE = 0.01  # nats
ECE_TOLERANCE = 0.01
SHARE = 0.9
OTHER_COLORS = colormaps["Dark2"]  # one per method beside the highlighted one, however many methods there are
_EPS = np.finfo(np.float64).eps


def _figures(probs: np.ndarray, t: np.ndarray, w: np.ndarray, n_bins: int) -> dict[str, float]:
    """calibration_store.metrics' ECE, NLL, Brier and accuracy (equal to 1e-12, tested), without sklearn's
    per-call validation: the curves score hundreds of fits, and that validation was most of their time."""
    rows = np.arange(t.shape[0])
    p_true = probs[rows, t]
    # metrics.nll: floored at machine epsilon; a certain and correct row costs nothing
    loss = np.where(p_true < 1.0, -np.log(np.clip(p_true, _EPS, 1.0 - _EPS)), 0.0)
    onehot = np.zeros_like(probs)
    onehot[rows, t] = 1.0
    pred = np.argmax(probs, axis=1)
    return {
        "ece": metrics.calibration_errors(probs[rows, pred], (pred == t).astype(np.float64), n_bins,
                                          weights=w)[0],
        "nll": float(np.dot(w, loss) / w.sum()),
        "brier": float(np.dot(w, 0.5 * ((probs - onehot) ** 2).sum(axis=1)) / w.sum()),
        "accuracy": float(np.dot(w, pred == t) / w.sum()),
    }


def _spread(runs: list[dict[str, float]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name in FIGURES:
        values = np.array([r[name] for r in runs], dtype=float)
        out[f"{name}_mean"] = float(values.mean()) if values.size else None
        out[f"{name}_low"] = float(np.percentile(values, 2.5)) if values.size else None
        out[f"{name}_high"] = float(np.percentile(values, 97.5)) if values.size else None
    return out


def label_budgets(
    logprobs: Any,
    y: Any,
    labels: Sequence[str],
    methods: Sequence[str] = tuple(CANDIDATES),
    weights: Any = None,
    sizes: Sequence[int] = SIZES,
    n_repeats: int = 20,
    holdout_fraction: float = 0.3,
    max_holdout: int = 10_000,
    seed: int = 0,
    n_bins: int = metrics.DEFAULT_N_BINS,
    nll_tolerance: float = NLL_TOLERANCE,
    ece_tolerance: float = ECE_TOLERANCE,
    share: float = SHARE,
) -> dict:
    """Held-out calibration figures against the number of labels used to fit each method, and each method's answer.

    Returns {"methods", "n_repeats", "labeled_n", "holdout_n", "pool_n", "holdout_index" (positions of the held-out
    rows), "subsamples" ({size: the row positions of each subsample drawn, in the order they were tried}),
    "tolerance" ({"nll", "ece", "share"}), "raw": figures of the uncalibrated scores on the held-out set,
    "curves": {method: {"method", "points", "answer"}}}. A point is {"size", "label" ("100" ... or "all"),
    "n_fits", "failed_fits", "within" (fits within tolerance of "all"), "share_within" (within / fits tried, None
    for "all"), "<figure>_mean", "<figure>_low", "<figure>_high" for ece, nll, brier, accuracy}; an answer is
    {"n" (None: none of the sizes tried), "sentence"}.
    """
    x = np.asarray(logprobs, dtype=float)
    t = np.asarray(y, dtype=np.int64)
    w = np.ones(t.shape[0]) if weights is None else np.asarray(weights, dtype=float)
    if n_repeats < 20:
        raise ValueError(f"n_repeats must be at least 20 for a 95% range, got {n_repeats}")
    if not 0.0 < share <= 1.0 or nll_tolerance < 0 or ece_tolerance < 0:
        raise ValueError("share must be in (0, 1] and the tolerances non-negative")
    if not methods:
        raise ValueError("a label budget needs at least one method")
    for method in methods:
        make_calibrator(method, list(labels))  # an unknown method is an error here, not a failed fit below
    rng = np.random.default_rng(seed)
    order = rng.permutation(t.shape[0])
    # every fit is scored on the held-out set: past 10,000 rows its figures are as exact as the curve can show,
    # and the report's time would keep growing with the labels
    n_hold = min(int(round(holdout_fraction * t.shape[0])), max_holdout)
    hold, pool = order[:n_hold], order[n_hold:]
    if n_hold < 20 or pool.shape[0] < 20:
        raise ValueError(f"{t.shape[0]} labeled rows are too few for a label-budget curve (need at least ~70)")
    hold_x, hold_y, hold_w = x[hold], t[hold], w[hold]
    raw = _figures(metrics.raw_probs(hold_x), hold_y, hold_w, n_bins)
    # at most half the pool: a larger subsample shares most of its rows with the all-labels fit, so its being
    # within tolerance of that fit says little about how many labels are enough
    budgets = [int(s) for s in sorted(set(sizes)) if 0 < s <= pool.shape[0] / 2]
    # the same subsamples for every method (drawn on demand: a failed fit takes the next one), so the
    # curves differ by method only
    subsamples: dict[int, list[np.ndarray]] = {size: [] for size in budgets}
    draws = {size: np.random.default_rng([seed, size]) for size in budgets}

    def subsample(size: int, i: int) -> np.ndarray:
        while len(subsamples[size]) <= i:
            subsamples[size].append(draws[size].choice(pool, size=size, replace=False))
        return subsamples[size][i]

    def score(method: str, idx: np.ndarray) -> dict[str, float]:
        cal = make_calibrator(method, list(labels)).fit(x[idx], t[idx], sample_weight=w[idx])
        return _figures(cal.predict_proba(hold_x), hold_y, hold_w, n_bins)

    curves = {}
    for method in methods:
        try:
            full = score(method, pool)
        except ValueError:  # the whole pool cannot be fitted (e.g. one label): no curve for this method
            full = None
        points = []
        for size in budgets:
            runs, failed, within, tried = [], 0, 0, 0
            while len(runs) < n_repeats and tried < 3 * n_repeats:
                tried += 1
                try:
                    runs.append(score(method, subsample(size, tried - 1)))
                except ValueError:  # e.g. a subsample with a single label: that fit is impossible, not a bad one
                    failed += 1
                    continue
                within += full is not None and (runs[-1]["nll"] <= full["nll"] + nll_tolerance
                                                and runs[-1]["ece"] <= full["ece"] + ece_tolerance)
            points.append({"size": size, "label": str(size), "n_fits": len(runs), "failed_fits": failed,
                           "within": int(within), "share_within": within / tried, **_spread(runs)})
        points.append({"size": int(pool.shape[0]), "label": "all", "n_fits": int(full is not None),
                       "failed_fits": int(full is None), "within": None, "share_within": None,
                       **_spread([full] if full else [])})
        curve = {"method": method, "points": points}
        curve["answer"] = budget_answer(curve, int(pool.shape[0]), nll_tolerance, ece_tolerance, share)
        curves[method] = curve
    return {"methods": list(methods), "curves": curves, "labeled_n": int(t.shape[0]), "holdout_n": int(n_hold),
            "pool_n": int(pool.shape[0]), "raw": raw, "n_repeats": n_repeats, "holdout_index": np.sort(hold),
            "subsamples": subsamples, "tolerance": {"nll": nll_tolerance, "ece": ece_tolerance, "share": share}}


def budget_answer(curve: dict, pool_n: int, nll_tolerance: float = NLL_TOLERANCE,
                  ece_tolerance: float = ECE_TOLERANCE, share: float = SHARE) -> dict:
    """{"n", "sentence"}: the smallest size whose share of fits within tolerance is at least `share` (None if none)."""
    method = curve["method"]
    tried = [p for p in curve["points"] if p["label"] != "all"]
    rule = (f"held-out NLL at most {nll_tolerance:g} nats and ECE at most {ece_tolerance:g} above the fit on all "
            f"{pool_n:,} labels")
    if curve["points"][-1]["n_fits"] == 0:
        return {"n": None, "sentence": f"{method}: no answer -- it cannot be fitted on the {pool_n:,} labels."}
    for p in tried:
        if p["share_within"] >= share:
            return {"n": p["size"], "sentence": (
                f"{method}: {p['size']:,} labels are enough -- {p['share_within']:.0%} of the fits on "
                f"{p['size']:,} random labels had {rule}.")}
    largest = f" (up to {tried[-1]['size']:,}, at most half of them)" if tried else ""
    return {"n": None, "sentence": (
        f"{method}: more than the {pool_n:,} labels you have to fit on -- at no budget tried{largest} did "
        f"{share:.0%} of the fits have {rule}.")}


def label_budget(
    logprobs: Any,
    y: Any,
    labels: Sequence[str],
    method: str,
    weights: Any = None,
    **options: Any,
) -> dict:
    """One method's curve (`label_budgets` with methods=[method]): its "method", "points" and "answer" beside the
    shared keys."""
    result = label_budgets(logprobs, y, labels, [method], weights, **options)
    return {**result, **result["curves"][method]}


def label_budget_chart(result: dict, path: Path, title: str | None = None, highlight: str | None = None) -> dict:
    """ECE and NLL on the held-out set against labels used, one line per method (mean; the 95% range for the
    highlighted one), each method's answer ringed, raw as a dashed line."""
    highlight = highlight or result.get("method") or result["methods"][0]
    fig = Figure(figsize=(11, 4.8), layout="constrained")
    axes = fig.subplots(1, 2)
    ticks: list[dict] = []
    for ax, name, label in ((axes[0], "ece", "ECE (15 bins)"), (axes[1], "nll", "NLL")):
        for color, (method, curve) in zip(OTHER_COLORS(np.linspace(0, 1, len(result["curves"]))),
                                          result["curves"].items()):
            points = [p for p in curve["points"] if p["n_fits"]]
            ticks = max(ticks, points, key=len)
            sizes = [p["size"] for p in points]
            mean = np.array([p[f"{name}_mean"] for p in points])
            if method == highlight:
                low = np.array([p[f"{name}_low"] for p in points])
                high = np.array([p[f"{name}_high"] for p in points])
                ax.errorbar(sizes, mean, yerr=error_bars(mean, low, high), fmt="o-", color=CALIBRATED_COLOR,
                            capsize=4, linewidth=2, zorder=3, label=f"{method}, mean and 95% range")
            else:
                ax.plot(sizes, mean, "o-", color=color, markersize=3, linewidth=1, alpha=0.8, label=method)
            enough = curve["answer"]["n"]
            if enough is not None:
                at = next(p for p in points if p["size"] == enough)
                ax.plot([enough], [at[f"{name}_mean"]], "o", markersize=11, markerfacecolor="none",
                        markeredgecolor=CALIBRATED_COLOR if method == highlight else color, zorder=4)
        ax.axhline(result["raw"][name], color=RAW_COLOR, linestyle="--", linewidth=1, label="raw (uncalibrated)")
        ax.set_xscale("log")
        ax.set_xticks([p["size"] for p in ticks],
                      [p["label"] if p["label"] != "all" else f"all\n({p['size']})" for p in ticks])
        ax.minorticks_off()
        ax.set(xlabel="labeled rows used to fit (ring: enough labels)", ylabel=f"held-out {label}")
    legend_outside(fig, *axes, ncols=min(len(result["curves"]) + 1, 4), fontsize=8)
    fig.suptitle(title or f"Label budget: held-out set of {result['holdout_n']} rows", fontsize=11)
    return {"path": save(fig, path), **result}
